// run(): what it returns and rethrows, and what is refused outside it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <rill/rill.hpp>

#include "runtime/runtime_test_support.hpp"
#include "support/errors.hpp"
#include "support/loopback.hpp"

namespace {

using namespace std::chrono_literals;
using rill_test::contains;
using rill_test::message_of;

struct main_failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

TEST(Run, ReturnsMainsInt) {
    EXPECT_EQ(rill::run([] { return 42; }), 42);
    EXPECT_EQ(rill::run([] { return -7; }), -7);
}

TEST(Run, VoidMainReturnsZero) {
    bool ran = false;
    EXPECT_EQ(rill::run([&] { ran = true; }), 0);
    EXPECT_TRUE(ran);
}

TEST(Run, MainRunsOnTheCallingThreadInsideATask) {
    const auto caller = std::this_thread::get_id();
    EXPECT_FALSE(rill::in_task());
    rill::run([&] {
        EXPECT_TRUE(rill::in_task());
        EXPECT_EQ(std::this_thread::get_id(), caller);
    });
    EXPECT_FALSE(rill::in_task());
}

TEST(Run, RethrowsMainsException) {
    try {
        rill::run([]() -> int { throw main_failure("main gave up"); });
        FAIL() << "run returned";
    } catch (const main_failure& e) {
        EXPECT_STREQ(e.what(), "main gave up");
    }
}

TEST(Run, RethrowsMainsExceptionAfterCancellingTheOthers) {
    std::atomic<int> unwound{0};
    EXPECT_THROW(rill::run([&] {
                     rill::spawn([&] {
                         rill_test::count_on_destroy guard{unwound};
                         rill::task_sleep(1h);
                     });
                     rill::task_yield();
                     throw main_failure("main failed while a task slept");
                 }),
                 main_failure);
    EXPECT_EQ(unwound.load(), 1);
}

TEST(Run, CanRunAgainAfterAnException) {
    EXPECT_THROW(rill::run([] { throw main_failure("first"); }), main_failure);
    EXPECT_EQ(rill::run([] { return 3; }), 3);
    EXPECT_EQ(rill::run([] { return 4; }), 4);
}

TEST(Run, NestedRunThrows) {
    std::string message;
    bool inner_ran = false;
    rill::run(
        [&] { message = message_of<rill::error>([&] { rill::run([&] { inner_ran = true; }); }); });
    EXPECT_FALSE(inner_ran);
    EXPECT_TRUE(contains(message, "run")) << message;
    EXPECT_TRUE(contains(message, "nest")) << message;
}

TEST(Run, NestedRunFromAnotherTaskThrows) {
    std::string message;
    rill::run([&] {
        rill::spawn([&] { message = message_of<rill::error>([] { rill::run([] {}); }); }).join();
    });
    EXPECT_TRUE(contains(message, "nest")) << message;
}

TEST(Run, BlockingCallsOutsideRunThrowClearErrors) {
    const std::string spawn_msg = message_of<rill::error>([] { rill::spawn([] {}); });
    EXPECT_TRUE(contains(spawn_msg, "spawn")) << spawn_msg;
    EXPECT_TRUE(contains(spawn_msg, "outside")) << spawn_msg;

    const std::string sleep_msg = message_of<rill::error>([] { rill::task_sleep(1ms); });
    EXPECT_TRUE(contains(sleep_msg, "task_sleep")) << sleep_msg;
    EXPECT_TRUE(contains(sleep_msg, "outside")) << sleep_msg;

    const std::string yield_msg = message_of<rill::error>([] { rill::task_yield(); });
    EXPECT_TRUE(contains(yield_msg, "task_yield")) << yield_msg;
    EXPECT_TRUE(contains(yield_msg, "outside")) << yield_msg;

    // A handle carried out of run: joining it outside is refused, not a hang.
    rill::task escaped;
    rill::run([&] { escaped = rill::spawn([] {}); });
    ASSERT_TRUE(escaped.joinable());
    const std::string join_msg = message_of<rill::error>([&] { escaped.join(); });
    EXPECT_TRUE(contains(join_msg, "join")) << join_msg;
    EXPECT_TRUE(contains(join_msg, "outside")) << join_msg;

    // Waiting on a channel outside run is refused too.
    rill::channel<int> ch(1);
    const std::string receive_msg = message_of<rill::error>([&] { (void)ch.receive(); });
    EXPECT_TRUE(contains(receive_msg, "channel")) << receive_msg;
    EXPECT_TRUE(contains(receive_msg, "outside")) << receive_msg;
}

TEST(Run, BlockingCallsFromAPlainThreadDuringRunThrow) {
    std::string message;
    rill::run([&] {
        // A std::thread is not a task even while run() is active on another thread.
        std::thread([&] {
            message = message_of<rill::error>([] { rill::task_sleep(1ms); });
        }).join();
    });
    EXPECT_TRUE(contains(message, "outside")) << message;
}

TEST(Run, ZeroWorkersIsAnArgumentError) {
    bool ran = false;
    try {
        rill::run([&] { ran = true; }, {.workers = 0});
        FAIL() << "run accepted workers = 0";
    } catch (const rill::argument_error& e) {
        EXPECT_TRUE(contains(e.what(), "workers")) << e.what();
        EXPECT_TRUE(contains(e.what(), "0")) << e.what();
    }
    EXPECT_THROW(rill::run([] {}, {.workers = -3}), rill::argument_error);
    EXPECT_FALSE(ran);
}

TEST(Run, MainsCapturesAreDestroyedBeforeRunReturns) {
    auto witness = std::make_shared<int>(1);
    std::weak_ptr<int> weak = witness;
    rill::run([w = std::move(witness)] { EXPECT_EQ(*w, 1); });
    EXPECT_TRUE(weak.expired());
}

TEST(Run, IndependentRunsOnTwoThreadsAtOnce) {
    // Each thread's run has its own tasks: spawns, joins and sleeps stay within it.
    std::atomic<int> wrong_thread{0};
    auto one_runtime = [&](int workers, int result) {
        std::set<std::thread::id> mine;
        std::mutex mine_mutex;
        return rill::run(
            [&] {
                {
                    std::lock_guard lock(mine_mutex);
                    mine.insert(std::this_thread::get_id());
                }
                int done = 0;
                for (int round = 0; round < 20; ++round) {
                    std::vector<rill::task> tasks;
                    for (int i = 0; i < 10; ++i)
                        tasks.push_back(rill::spawn([&] {
                            rill::task_sleep(100us);
                            std::lock_guard lock(mine_mutex);
                            mine.insert(std::this_thread::get_id());
                        }));
                    for (auto& t : tasks) t.join();
                    done += static_cast<int>(tasks.size());
                }
                std::lock_guard lock(mine_mutex);
                if (mine.size() > static_cast<std::size_t>(workers)) ++wrong_thread;
                return done == 200 ? result : -1;
            },
            {.workers = workers});
    };
    for (int workers : {1, 2}) {
        int first = 0, second = 0;
        std::thread a([&] { first = one_runtime(workers, 1); });
        std::thread b([&] { second = one_runtime(workers, 2); });
        a.join();
        b.join();
        EXPECT_EQ(first, 1);
        EXPECT_EQ(second, 2);
    }
    EXPECT_EQ(wrong_thread.load(), 0);
}

TEST(Run, SeveralWorkersReturnMainsInt) {
    EXPECT_EQ(rill::run([] { return 9; }, {.workers = 3}), 9);
    EXPECT_THROW(rill::run([] { throw main_failure("x"); }, {.workers = 2}), main_failure);
}

}  // namespace
