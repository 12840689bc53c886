// Task micro-benchmarks (Google Benchmark): what a spawn + join, a yield and a channel round
// trip cost, on one worker. Each benchmark runs its whole loop inside one rill::run.
#include <benchmark/benchmark.h>

#include <atomic>

#include <rill/rill.hpp>

namespace {

// spawn an empty task and join it: stack from the pool, two switches, the join's wake.
void spawn_join(benchmark::State& state) {
    rill::run([&] {
        for (auto _ : state) {
            auto t = rill::spawn([] {});
            t.join();
        }
    });
}
BENCHMARK(spawn_join);

// spawn without joining (Slogan's `!` as the seed uses it), then let the tasks run.
void spawn_detached(benchmark::State& state) {
    std::atomic<long> ran{0};
    rill::run([&] {
        for (auto _ : state) rill::spawn([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
        rill::task_yield();
    });
    benchmark::DoNotOptimize(ran.load());
}
BENCHMARK(spawn_detached);

// task_yield while one other task yields too: each iteration is a switch pair in each task
// (task -> scheduler -> other task -> scheduler -> task).
void yield_pair(benchmark::State& state) {
    rill::run([&] {
        bool done = false;
        auto other = rill::spawn([&] {
            while (!done) rill::task_yield();
        });
        for (auto _ : state) rill::task_yield();
        done = true;
        other.join();
    });
}
BENCHMARK(yield_pair);

// A value to another task and back through two channels of capacity 1.
void channel_round_trip(benchmark::State& state) {
    rill::run([&] {
        rill::channel<int> to(1), from(1);
        auto echo = rill::spawn([to, from]() mutable {
            while (auto v = to.receive()) from.send(*v);
        });
        int i = 0;
        for (auto _ : state) {
            to.send(++i);
            benchmark::DoNotOptimize(from.receive());
        }
        to.close();
        echo.join();
    });
}
BENCHMARK(channel_round_trip);

}  // namespace

BENCHMARK_MAIN();
