// spawn and join: spawning never blocks, join waits and rethrows, and what an unjoined task's
// exception does (a line on stderr, never the end of the process).
#include <gtest/gtest.h>

#include <array>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "runtime/runtime_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using rill_test::contains;

struct task_failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

TEST(SpawnJoin, SpawnReturnsBeforeTheTaskRuns) {
    // One worker: a spawned task cannot run until the spawner blocks, so spawn did not wait.
    rill::run(
        [] {
            const int count = rill_test::scaled_task_count(1000);
            int started = 0;
            std::vector<rill::task> tasks;
            for (int i = 0; i < count; ++i) tasks.push_back(rill::spawn([&] { ++started; }));
            EXPECT_EQ(started, 0);
            for (auto& t : tasks) t.join();
            EXPECT_EQ(started, count);
        },
        {.workers = 1});
}

TEST(SpawnJoin, SpawnDoesNotWaitForABlockedTask) {
    rill::run([] {
        const auto before = std::chrono::steady_clock::now();
        auto t = rill::spawn([] { rill::task_sleep(200ms); });
        EXPECT_LT(std::chrono::steady_clock::now() - before, 150ms);
        t.join();
        EXPECT_GE(std::chrono::steady_clock::now() - before, 200ms);
    });
}

TEST(SpawnJoin, JoinWaitsForTheTask) {
    rill::run(
        [] {
            bool done = false;
            auto t = rill::spawn([&] {
                rill::task_sleep(20ms);
                done = true;
            });
            EXPECT_FALSE(done);
            t.join();
            EXPECT_TRUE(done);
            EXPECT_FALSE(t.joinable());
        },
        {.workers = 1});  // the check before join reads what the task writes
}

TEST(SpawnJoin, JoinAFinishedTaskReturnsAtOnce) {
    rill::run(
        [] {
            int value = 0;
            auto t = rill::spawn([&] { value = 7; });
            rill::task_yield();  // one worker: the task, ready before main, runs to its end first
            EXPECT_EQ(value, 7);
            t.join();
        },
        {.workers = 1});  // the check before join reads what the task writes
}

TEST(SpawnJoin, JoinRethrowsTheTasksException) {
    rill::run([] {
        auto t = rill::spawn([] {
            rill::task_yield();
            throw task_failure("task broke");
        });
        try {
            t.join();
            ADD_FAILURE() << "join did not rethrow";
        } catch (const task_failure& e) {
            EXPECT_STREQ(e.what(), "task broke");
        }
        // A task that fails before anyone joins keeps its exception until then.
        auto early = rill::spawn([] { throw task_failure("early"); });
        rill::task_sleep(5ms);
        EXPECT_THROW(early.join(), task_failure);
        // A non-standard exception comes back as it was thrown.
        auto odd = rill::spawn([] { throw 42; });
        try {
            odd.join();
            ADD_FAILURE() << "join did not rethrow";
        } catch (int v) {
            EXPECT_EQ(v, 42);
        }
    });
}

TEST(SpawnJoin, JoiningAnEmptyHandleIsAnArgumentError) {
    rill::run([] {
        rill::task empty;
        EXPECT_FALSE(empty.joinable());
        EXPECT_EQ(empty.id(), 0u);
        EXPECT_THROW(empty.join(), rill::argument_error);

        auto t = rill::spawn([] {});
        rill::task moved = std::move(t);
        EXPECT_THROW(t.join(), rill::argument_error);  // NOLINT(bugprone-use-after-move)
        moved.join();
        EXPECT_THROW(moved.join(), rill::argument_error);  // joined already
    });
    // Outside run the empty handle is still an argument error, checked before anything else.
    rill::task empty;
    EXPECT_THROW(empty.join(), rill::argument_error);
}

TEST(SpawnJoin, ATaskCannotJoinItself) {
    std::string message;
    rill::run(
        [&] {
            rill::task self;
            self = rill::spawn([&] {
                try {
                    self.join();
                } catch (const rill::error& e) {
                    message = e.what();
                }
            });
            rill::task_yield();  // one worker: the task tries its join before main's
            self.join();
        },
        {.workers = 1});
    EXPECT_TRUE(contains(message, "itself")) << message;
}

TEST(SpawnJoin, TaskIdsAreDistinctAndNonZero) {
    rill::run([] {
        std::set<std::uint64_t> ids;
        std::vector<rill::task> tasks;
        for (int i = 0; i < 100; ++i) {
            tasks.push_back(rill::spawn([] {}));
            EXPECT_NE(tasks.back().id(), 0u);
            ids.insert(tasks.back().id());
        }
        EXPECT_EQ(ids.size(), 100u);
        for (auto& t : tasks) t.join();
    });
}

TEST(SpawnJoin, TasksSpawnTasks) {
    // A tree of fan-out 3, each level joining its children.
    struct tree {
        static int grow(int depth) {
            if (depth == 0) return 1;
            std::vector<rill::task> children;
            std::vector<int> counts(3, 0);
            for (int i = 0; i < 3; ++i)
                children.push_back(
                    rill::spawn([&counts, i, depth] { counts[i] = grow(depth - 1); }));
            for (auto& c : children) c.join();
            return 1 + counts[0] + counts[1] + counts[2];
        }
    };
    constexpr int depth = rill_test::under_tsan ? 4 : 6;
    int power = 1;
    for (int i = 0; i <= depth; ++i) power *= 3;
    int nodes = 0;
    rill::run([&] { nodes = tree::grow(depth); }, {.workers = 2});
    EXPECT_EQ(nodes, (power - 1) / 2);  // 1 + 3 + ... + 3^depth
}

TEST(SpawnJoin, UnjoinedExceptionIsReportedWithTaskIdAndMessage) {
    std::uint64_t id_dropped_early = 0;
    std::uint64_t id_dropped_late = 0;
    bool others_ran = false;
    testing::internal::CaptureStderr();
    const int result = rill::run([&] {
        {
            // Handle dropped while the task has not run yet.
            auto t = rill::spawn([] { throw task_failure("boom-before-detach"); });
            id_dropped_early = t.id();
        }
        // Handle dropped after the task ended with its exception.
        auto late = rill::spawn([] { throw task_failure("boom-after-finish"); });
        id_dropped_late = late.id();
        rill::task_sleep(5ms);
        late = rill::task();
        // Other tasks carry on.
        rill::spawn([&] { others_ran = true; }).join();
        return 11;
    });
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(result, 11);
    EXPECT_TRUE(others_ran);
    EXPECT_TRUE(contains(err, "task " + std::to_string(id_dropped_early))) << err;
    EXPECT_TRUE(contains(err, "boom-before-detach")) << err;
    EXPECT_TRUE(contains(err, "task " + std::to_string(id_dropped_late))) << err;
    EXPECT_TRUE(contains(err, "boom-after-finish")) << err;
}

TEST(SpawnJoin, UnjoinedNonStandardExceptionIsReported) {
    std::uint64_t id = 0;
    testing::internal::CaptureStderr();
    rill::run([&] {
        id = rill::spawn([] { throw 3.5; }).id();
        rill::task_sleep(5ms);
    });
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_TRUE(contains(err, "task " + std::to_string(id))) << err;
    EXPECT_TRUE(contains(err, "non-standard")) << err;
}

TEST(SpawnJoin, CancellationIsNotReported) {
    std::atomic<int> unwound{0};
    rill::task kept;
    testing::internal::CaptureStderr();
    rill::run([&] {
        for (int i = 0; i < 3; ++i)
            rill::spawn([&] {
                rill_test::count_on_destroy guard{unwound};
                rill::task_sleep(1h);
            });
        // A task that throws task_cancelled itself is not reported either.
        rill::spawn([] { throw rill::task_cancelled(); });
        // And a kept handle to a cancelled task, dropped after run's cancellation.
        kept = rill::spawn([] { rill::task_sleep(1h); });
        rill::task_sleep(5ms);
    });
    kept = rill::task();
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(unwound.load(), 3);
    EXPECT_EQ(err, "");
}

TEST(SpawnJoin, JoinedExceptionIsNotReported) {
    testing::internal::CaptureStderr();
    rill::run([] {
        auto t = rill::spawn([] { throw task_failure("joined, so silent"); });
        EXPECT_THROW(t.join(), task_failure);
    });
    EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST(SpawnJoin, CancelledTaskRethrowsTaskCancelledToItsJoiner) {
    bool joiner_saw_cancel = false;
    rill::run([&] {
        auto sleeper = std::make_shared<rill::task>(rill::spawn([] { rill::task_sleep(1h); }));
        rill::spawn([&, sleeper] {
            try {
                sleeper->join();
            } catch (const rill::task_cancelled&) {
                joiner_saw_cancel = true;
                throw;
            }
        });
        rill::task_sleep(5ms);
    });
    EXPECT_TRUE(joiner_saw_cancel);
}

}  // namespace

namespace {
// Counts live copies, so a test sees every capture destroyed exactly once.
struct counted {
    static inline int live = 0;
    int value;
    explicit counted(int v) : value(v) { ++live; }
    counted(const counted& o) : value(o.value) { ++live; }
    counted(counted&& o) noexcept : value(o.value) { ++live; }
    ~counted() { --live; }
};
// A capture whose move may throw: its body stays on the heap.
struct throwing_move {
    int value;
    explicit throwing_move(int v) : value(v) {}
    throwing_move(const throwing_move&) = default;
    throwing_move(throwing_move&& o) noexcept(false) : value(o.value) {}
};
}  // namespace

TEST(SpawnJoin, CapturesOfEveryKindAreIntactAndDestroyedOnce) {
    // Small nothrow-movable bodies move to the top of the task's stack; large ones and ones
    // whose move may throw stay on the heap. Every kind must see its captures intact, across
    // waits, and destroy them once.
    counted::live = 0;
    rill::run(
        [] {
            std::vector<int> seen(4, 0);
            std::array<int, 2048> big{};  // 8 KiB of captures: stays on the heap
            for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<int>(i);
            std::vector<rill::task> tasks;
            tasks.push_back(rill::spawn([c = counted(7), &seen] {
                rill::task_yield();
                seen[0] = c.value;
            }));
            tasks.push_back(rill::spawn([big, &seen] {
                rill::task_sleep(1ms);
                long sum = 0;
                for (int v : big) sum += v;
                seen[1] = static_cast<int>(sum == 2047L * 2048 / 2);
            }));
            tasks.push_back(rill::spawn([t = throwing_move(9), &seen] {
                rill::task_yield();
                seen[2] = t.value;
            }));
            tasks.push_back(rill::spawn([s = std::string(100, 'x'), c = counted(1), &seen] {
                rill::task_sleep(1ms);
                seen[3] = static_cast<int>(s.size()) + c.value;
            }));
            for (auto& t : tasks) t.join();
            EXPECT_EQ(seen, (std::vector<int>{7, 1, 9, 101}));
        },
        {.workers = 1});
    EXPECT_EQ(counted::live, 0);
}
