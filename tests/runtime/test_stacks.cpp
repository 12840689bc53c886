// Task stacks: many parked tasks at once, deep recursion within the default stack, reuse of
// pooled stacks, and (plain builds) a guard page that turns an overflow into SIGSEGV.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <iostream>
#include <vector>

#include <rill/rill.hpp>

#include "runtime/fiber.hpp"
#include "runtime/runtime_test_support.hpp"

namespace {

using namespace std::chrono_literals;

// A kilobyte of the task's own stack holding a pattern; checks it is intact when destroyed.
class stack_witness {
public:
    stack_witness(unsigned seed, std::atomic<int>& intact, std::atomic<int>& destroyed)
        : seed_(seed), intact_(intact), destroyed_(destroyed) {
        for (std::size_t i = 0; i < sizeof bytes_; ++i)
            bytes_[i] = static_cast<unsigned char>(seed_ + i);
    }
    ~stack_witness() {
        bool ok = true;
        for (std::size_t i = 0; i < sizeof bytes_; ++i)
            if (bytes_[i] != static_cast<unsigned char>(seed_ + i)) ok = false;
        if (ok) intact_.fetch_add(1, std::memory_order_relaxed);
        destroyed_.fetch_add(1, std::memory_order_relaxed);
    }

private:
    volatile unsigned char bytes_[1024];
    unsigned seed_;
    std::atomic<int>& intact_;
    std::atomic<int>& destroyed_;
};

void park_many(int tasks, int workers) {
    std::atomic<int> parked{0}, intact{0}, destroyed{0};
    rill::run(
        [&] {
            for (int i = 0; i < tasks; ++i)
                rill::spawn([&, i] {
                    stack_witness w(static_cast<unsigned>(i * 7), intact, destroyed);
                    parked.fetch_add(1, std::memory_order_relaxed);
                    rill::task_sleep(1h);
                });
            ASSERT_TRUE(rill_test::task_wait_until([&] { return parked.load() == tasks; }, 60s))
                << parked.load() << " of " << tasks << " tasks parked";
        },
        {.workers = workers});
    EXPECT_EQ(destroyed.load(), tasks);
    EXPECT_EQ(intact.load(), tasks);
}

constexpr int many_tasks = rill_test::scaled_task_count(20000);

TEST(Stacks, ManyParkedTasksAreAllCancelled) {
    park_many(many_tasks, 1);
    const std::string mechanism = rill::detail::stack_pool::guard_mechanism();
    std::cout << "[          ] " << many_tasks
              << " parked tasks; stack guard mechanism: " << mechanism << std::endl;
    RecordProperty("stack_guard_mechanism", mechanism);
    EXPECT_NE(mechanism, "none yet");
}

TEST(Stacks, ManyParkedTasksOnTwoWorkers) { park_many(many_tasks / 2, 2); }

// Recurses until `budget` bytes of stack below `top` are in use; returns the depth reached.
[[gnu::noinline]] int recurse_until(const char* top, std::size_t budget, int depth) {
    volatile char frame[200];
    frame[0] = static_cast<char>(depth);
    const char* here = static_cast<const char*>(__builtin_frame_address(0));
    int reached = depth;
    if (static_cast<std::size_t>(top - here) < budget)
        reached = recurse_until(top, budget, depth + 1);
    frame[1] = frame[0];  // a use after the call: no tail call, every frame stays
    return reached;
}

int recurse_in_task(std::size_t budget, std::size_t stack_size) {
    int depth = 0;
    rill::run(
        [&] {
            rill::spawn([&] {
                const char* top = static_cast<const char*>(__builtin_frame_address(0));
                depth = recurse_until(top, budget, 0);
            }).join();
        },
        {.stack_size = stack_size});
    return depth;
}

TEST(Stacks, DeepRecursionWithinTheDefaultStack) {
    // 48 KiB of the 64 KiB stack, whatever the frame size of this build.
    EXPECT_GT(recurse_in_task(48 * 1024, rill::default_stack_size_bytes), 10);
}

TEST(Stacks, LargerStackSizeOption) { EXPECT_GT(recurse_in_task(900 * 1024, 1024 * 1024), 100); }

TEST(Stacks, TinyStackSizeIsRoundedUp) {
    // Rounded up to a usable minimum (whole pages, at least four).
    EXPECT_GT(recurse_in_task(8 * 1024, 1), 5);
}

TEST(Stacks, StacksAreReusedAcrossWaves) {
    // Waves of concurrent tasks: more than the pool keeps hot, so released stacks are given
    // back and handed out again.
    constexpr int waves = rill_test::under_tsan ? 3 : 10;
    constexpr int per_wave = 300;
    std::atomic<int> intact{0}, destroyed{0};
    rill::run(
        [&] {
            for (int wave = 0; wave < waves; ++wave) {
                std::vector<rill::task> tasks;
                for (int i = 0; i < per_wave; ++i)
                    tasks.push_back(rill::spawn([&, wave, i] {
                        stack_witness w(static_cast<unsigned>(wave * 1000 + i), intact, destroyed);
                        rill::task_yield();
                        rill::task_sleep(100us);
                    }));
                for (auto& t : tasks) t.join();
            }
        },
        {.workers = 2});
    EXPECT_EQ(destroyed.load(), waves * per_wave);
    EXPECT_EQ(intact.load(), waves * per_wave);
}

TEST(Stacks, UnmappableStackSizeThrowsInsteadOfTerminating) {
    // 16 TiB stacks, 16 to a slab: more than the address space, so the first stack (main's)
    // cannot be mapped. run throws, with one worker or several, and works again afterwards.
    const std::size_t huge = std::size_t{1} << 44;
    for (int workers : {1, 2}) {
        bool ran = false;
        EXPECT_THROW(rill::run([&] { ran = true; }, {.workers = workers, .stack_size = huge}),
                     rill::error);
        EXPECT_FALSE(ran);
    }
    EXPECT_EQ(rill::run([] { return 1; }, {.workers = 2}), 1);
}

// Recurses with no budget (bounded only by a count far beyond any stack).
[[gnu::noinline]] int overflow(int depth) {
    volatile char frame[512];
    frame[0] = static_cast<char>(depth);
    int reached = depth < 100'000'000 ? overflow(depth + 1) : depth;
    frame[1] = frame[0];
    return reached + frame[1];
}

// In the death test's child: overflow a task's stack.
void overflow_a_task_stack() {
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);  // the child only: no core file
    rill::runtime_options options;
    options.workers = 1;
    rill::run([] { rill::spawn([] { (void)overflow(0); }).join(); }, options);
}

TEST(StacksDeathTest, OverflowHitsTheGuardPage) {
    if (rill_test::under_asan || rill_test::under_tsan)
        GTEST_SKIP() << "the sanitizers catch SIGSEGV themselves";
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(overflow_a_task_stack(), testing::KilledBySignal(SIGSEGV), "");
}

}  // namespace
