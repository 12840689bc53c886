// task_sleep and task_yield: they suspend the calling task only.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "runtime/runtime_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// Timing asserts only bound below; the upper bounds are generous (sanitizers, loaded CI).
constexpr auto generous_slack = 2s;

TEST(SleepYield, SleepLastsAtLeastTheDuration) {
    rill::run([] {
        for (auto d : {1ms, 5ms, 20ms}) {
            const auto before = steady::now();
            rill::task_sleep(d);
            const auto slept = steady::now() - before;
            EXPECT_GE(slept, d);
            EXPECT_LT(slept, d + generous_slack);
        }
        const auto before = steady::now();
        rill::task_sleep(1500us);  // not a whole number of milliseconds
        EXPECT_GE(steady::now() - before, 1500us);
    });
}

TEST(SleepYield, SleepSuspendsOnlyTheCallingTask) {
    rill::run(
        [] {
            int ticks = 0;
            auto sleeper = rill::spawn([] { rill::task_sleep(50ms); });
            auto ticker = rill::spawn([&] {
                for (int i = 0; i < 10; ++i) {
                    ++ticks;
                    rill::task_sleep(1ms);
                }
            });
            ticker.join();
            EXPECT_EQ(ticks, 10);
            sleeper.join();
        },
        {.workers = 1});
}

TEST(SleepYield, ConcurrentSleepsOverlap) {
    rill::run(
        [] {
            const auto before = steady::now();
            std::vector<rill::task> tasks;
            for (int i = 0; i < 100; ++i)
                tasks.push_back(rill::spawn([] { rill::task_sleep(50ms); }));
            for (auto& t : tasks) t.join();
            const auto took = steady::now() - before;
            EXPECT_GE(took, 50ms);
            EXPECT_LT(took, 50ms + generous_slack);  // not 100 x 50 ms
        },
        {.workers = 1});
}

TEST(SleepYield, SleepersWakeInDeadlineOrder) {
    // Every sleeper aims at an absolute deadline: a common base plus 100 us per rank, the
    // ranks shuffled over the spawn order. task_sleep takes a duration, so the deadline it
    // really sets is later than the aimed one by however long passed between the task reading
    // the clock and task_sleep reading it; with one worker that is bounded by when the next
    // task in the batch starts. Two sleepers may only wake out of rank order when that bound
    // allows it (the machine was busy elsewhere), never otherwise. A sleeper that started
    // less than a millisecond before its deadline is left out (its sleep is about a yield).
    constexpr int sleepers = 200;
    constexpr auto spacing = 100us;
    std::vector<int> rank_at(sleepers);  // spawn position -> rank
    std::iota(rank_at.begin(), rank_at.end(), 0);
    std::shuffle(rank_at.begin(), rank_at.end(), std::mt19937(12345));
    std::vector<steady::time_point> started(sleepers), clock_read(sleepers);  // by position
    std::vector<int> woke;  // ranks, in wake order
    int late = 0;
    rill::run(
        [&] {
            // One worker: the sleepers start only when main blocks in join, after `base` is set
            // (so the cost of creating them, large under the sanitizers, does not count).
            steady::time_point base;
            std::vector<rill::task> tasks;
            for (int position = 0; position < sleepers; ++position) {
                tasks.push_back(rill::spawn([&, position] {
                    started[position] = steady::now();
                    const int r = rank_at[position];
                    const auto deadline = base + r * spacing;
                    clock_read[position] = steady::now();
                    const auto left = deadline - clock_read[position];
                    rill::task_sleep(left);
                    EXPECT_GE(steady::now(), deadline);
                    if (left >= 1ms) {
                        woke.push_back(r);
                    } else {
                        ++late;
                    }
                }));
            }
            base = steady::now() + 50ms;
            for (auto& t : tasks) t.join();
        },
        {.workers = 1});
    EXPECT_EQ(woke.size() + static_cast<std::size_t>(late), static_cast<std::size_t>(sleepers));
    EXPECT_GE(woke.size(), static_cast<std::size_t>(sleepers / 2))
        << late << " sleepers started late";

    // How much later than aimed each rank's deadline may be.
    std::vector<steady::duration> slack(sleepers, steady::duration::max());
    for (int position = 0; position + 1 < sleepers; ++position)
        slack[rank_at[position]] = started[position + 1] - clock_read[position];
    int excused = 0;
    for (std::size_t i = 0; i < woke.size(); ++i) {
        for (std::size_t j = i + 1; j < woke.size(); ++j) {
            const int first = woke[i], second = woke[j];
            if (first < second) continue;  // in rank order
            // `second` aimed earlier but woke later: only if its real deadline was later.
            if (slack[second] != steady::duration::max() &&
                second * spacing + slack[second] < first * spacing) {
                ADD_FAILURE() << "rank " << second << " woke after rank " << first
                              << " though its deadline was earlier by at least "
                              << std::chrono::duration_cast<std::chrono::microseconds>(
                                     (first - second) * spacing - slack[second])
                                     .count()
                              << " us";
            } else {
                ++excused;
            }
        }
    }
    if (excused)
        std::cout << "[          ] " << excused
                  << " wake(s) out of rank order, explained by a busy machine\n";
}

TEST(SleepYield, TheLongestSleepLastsUntilCancelled) {
    // A deadline past the clock's range saturates: it sleeps "for ever", not not at all.
    std::atomic<int> returned{0}, cancelled{0};
    rill::run([&] {
        for (auto d : {std::chrono::nanoseconds::max(), std::chrono::nanoseconds::max() - 1ns,
                       std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::hours(24 * 365 * 200))})
            rill::spawn([&, d] {
                try {
                    rill::task_sleep(d);
                    ++returned;
                } catch (const rill::task_cancelled&) {
                    ++cancelled;
                }
            });
        rill::task_sleep(20ms);
    });
    EXPECT_EQ(returned.load(), 0);
    EXPECT_EQ(cancelled.load(), 3);
}

TEST(SleepYield, ZeroOrNegativeSleepYields) {
    rill::run(
        [] {
            bool other_ran = false;
            auto t = rill::spawn([&] { other_ran = true; });
            rill::task_sleep(0ms);
            EXPECT_TRUE(other_ran);
            other_ran = false;
            auto u = rill::spawn([&] { other_ran = true; });
            rill::task_sleep(-5ms);
            EXPECT_TRUE(other_ran);
            t.join();
            u.join();
        },
        {.workers = 1});
}

TEST(SleepYield, YieldLetsOthersRun) {
    std::string trace;
    rill::run(
        [&] {
            auto a = rill::spawn([&] {
                for (int i = 0; i < 4; ++i) {
                    trace += 'a';
                    rill::task_yield();
                }
            });
            auto b = rill::spawn([&] {
                for (int i = 0; i < 4; ++i) {
                    trace += 'b';
                    rill::task_yield();
                }
            });
            a.join();
            b.join();
        },
        {.workers = 1});
    EXPECT_EQ(trace, "abababab");
}

TEST(SleepYield, AYieldingTaskDoesNotStarveTimers) {
    // A task that only yields must not keep a sleeper (and the I/O poll) from running.
    rill::run(
        [] {
            std::atomic<bool> woke{false};
            auto sleeper = rill::spawn([&] {
                rill::task_sleep(10ms);
                woke = true;
            });
            const auto limit = steady::now() + 5s;
            long spins = 0;
            while (!woke && steady::now() < limit && spins < 50'000'000) {
                rill::task_yield();
                ++spins;
            }
            EXPECT_TRUE(woke.load());
            sleeper.join();
        },
        {.workers = 1});
}

TEST(SleepYield, YieldWithNothingElseReadyReturns) {
    rill::run([] {
        for (int i = 0; i < 1000; ++i) rill::task_yield();
    });
}

TEST(SleepYield, SleepOnSeveralWorkers) {
    rill::run(
        [] {
            std::vector<rill::task> tasks;
            std::atomic<int> done{0};
            for (int i = 0; i < 20; ++i)
                tasks.push_back(rill::spawn([&] {
                    const auto before = steady::now();
                    rill::task_sleep(10ms);
                    EXPECT_GE(steady::now() - before, 10ms);
                    ++done;
                }));
            for (auto& t : tasks) t.join();
            EXPECT_EQ(done.load(), 20);
        },
        {.workers = 2});
}

}  // namespace
