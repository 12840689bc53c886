// A task that cannot start (no stack can be mapped: an address-space limit here) ends with
// that error instead of taking its spawner down: spawn returns a handle of an ended task, its
// body is destroyed at once, a joiner gets the error, a dropped handle reports it, and the
// failure is counted. Once memory is back, tasks start again.
#include <sys/resource.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include <rill/rill.hpp>

#include "runtime/runtime_test_support.hpp"
#include "support/child_limits.hpp"
#include "support/process_limits.hpp"

namespace {

using namespace std::chrono_literals;

// RLIMIT_AS lowered to what is mapped now, plus `slack_bytes`, for the scope: a new slab of
// task stacks (16 stacks of 68 KiB) cannot be mapped, small allocations from the heap's free
// room still can.
class address_space_limit : public rill_test::lowered_soft_limit {
public:
    explicit address_space_limit(rlim_t slack_bytes)
        : lowered_soft_limit(RLIMIT_AS, rill_test::mapped_bytes_of(::getpid()) + slack_bytes) {}
};

// What the error that ended a task says ("" when it ended normally).
std::string error_of(rill::task& t) {
    try {
        t.join();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

// A failed start names the stack mapping, or says there was no memory for the task at all.
bool is_start_failure(const std::string& what) {
    return what.find("spawn: mmap task stacks") != std::string::npos ||
           what.find("spawn: mprotect stack guard page") != std::string::npos ||
           what == std::bad_alloc().what();
}

constexpr int stacks_per_slab = 16;

// Collects what set_task_failure_handler is told for the scope (the default report is a line
// on stderr written later by a thread of its own).
class reported_failures {
public:
    reported_failures() {
        rill::set_task_failure_handler([this](std::uint64_t, const std::exception_ptr& e) {
            std::lock_guard lock(mutex_);
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                whats_.emplace_back(ex.what());
            } catch (...) {
                whats_.emplace_back("non-standard");
            }
        });
    }
    reported_failures(const reported_failures&) = delete;
    reported_failures& operator=(const reported_failures&) = delete;
    ~reported_failures() { rill::set_task_failure_handler({}); }
    std::vector<std::string> whats() {
        std::lock_guard lock(mutex_);
        return whats_;
    }

private:
    std::mutex mutex_;
    std::vector<std::string> whats_;
};

// Counts the destruction of a task body's captures once (a move leaves nothing to count).
class capture_witness {
public:
    explicit capture_witness(std::atomic<int>& destroyed) noexcept : destroyed_(&destroyed) {}
    capture_witness(capture_witness&& o) noexcept
        : destroyed_(std::exchange(o.destroyed_, nullptr)) {}
    capture_witness& operator=(capture_witness&&) = delete;
    ~capture_witness() {
        if (destroyed_) destroyed_->fetch_add(1);
    }

private:
    std::atomic<int>* destroyed_;
};

TEST(StartFailure, LocalSpawnEndsOnlyThatTask) {
    if (rill_test::under_asan || rill_test::under_tsan)
        GTEST_SKIP() << "the sanitizers reserve address space an RLIMIT_AS cannot leave room for";
    const auto before = rill::counters_snapshot();
    std::atomic<int> bodies_destroyed{0};
    std::string failure;
    bool body_destroyed_by_spawn = false;
    bool spawner_went_on = false;
    int failed = 0;
    rill::run(
        [&] {
            // Take every stack of the first slab (main has one): parked on a channel.
            rill::channel<int> go(1);
            std::vector<rill::task> parked;
            for (int i = 0; i < stacks_per_slab - 1; ++i)
                parked.push_back(rill::spawn([go]() mutable { (void)go.receive(); }));
            rill::task_yield();  // they have started (and taken their stacks)
            {
                address_space_limit limit(64 * 1024);
                ASSERT_TRUE(limit.active());
                rill::task t =
                    rill::spawn([witness = capture_witness(bodies_destroyed)] { FAIL(); });
                body_destroyed_by_spawn = bodies_destroyed.load() == 1;
                limit.end();
                failure = error_of(t);
                failed = failure.empty() ? 0 : 1;
            }
            spawner_went_on = true;
            go.close();
            for (auto& t : parked) t.join();
            // With memory back, tasks start again.
            int ran = 0;
            rill::spawn([&] { ++ran; }).join();
            EXPECT_EQ(ran, 1);
        },
        {.workers = 1});
    EXPECT_TRUE(spawner_went_on);
    EXPECT_TRUE(is_start_failure(failure)) << failure;
    EXPECT_TRUE(body_destroyed_by_spawn) << "the body outlived the failed spawn";
    EXPECT_EQ(bodies_destroyed.load(), 1);
    EXPECT_EQ(rill::counters_snapshot().tasks_failed_to_start - before.tasks_failed_to_start,
              static_cast<std::uint64_t>(failed));
}

TEST(StartFailure, DroppedHandleOfAFailedTaskIsReported) {
    if (rill_test::under_asan || rill_test::under_tsan)
        GTEST_SKIP() << "the sanitizers reserve address space an RLIMIT_AS cannot leave room for";
    reported_failures reports;
    rill::run(
        [&] {
            rill::channel<int> go(1);
            std::vector<rill::task> parked;
            for (int i = 0; i < stacks_per_slab - 1; ++i)
                parked.push_back(rill::spawn([go]() mutable { (void)go.receive(); }));
            rill::task_yield();
            {
                address_space_limit limit(64 * 1024);
                ASSERT_TRUE(limit.active());
                (void)rill::spawn([] { FAIL(); });  // detached at once
            }
            go.close();
            for (auto& t : parked) t.join();
        },
        {.workers = 1});
    const auto whats = reports.whats();
    ASSERT_EQ(whats.size(), 1u);
    EXPECT_TRUE(is_start_failure(whats[0])) << whats[0];
}

TEST(StartFailure, TasksSentToAnotherWorkerEndTheSameWay) {
    if (rill_test::under_asan || rill_test::under_tsan)
        GTEST_SKIP() << "the sanitizers reserve address space an RLIMIT_AS cannot leave room for";
    // Two workers: half the spawns start on the other worker (its take_remote maps the stack).
    // More tasks than both workers' first slabs hold: some cannot start.
    constexpr int tasks = 3 * stacks_per_slab;
    const auto before = rill::counters_snapshot();
    std::atomic<int> bodies_destroyed{0};
    std::atomic<int> ran{0};
    int failed = 0, ended_otherwise = 0;
    rill::run(
        [&] {
            rill::channel<int> go(1);
            std::vector<rill::task> spawned;
            {
                address_space_limit limit(64 * 1024);
                ASSERT_TRUE(limit.active());
                for (int i = 0; i < tasks; ++i)
                    spawned.push_back(rill::spawn(
                        [go, &ran, witness = capture_witness(bodies_destroyed)]() mutable {
                            ++ran;
                            (void)go.receive();
                        }));
                // Wait until every task has either started or failed to: each body is then
                // either running (parked on go) or destroyed.
                EXPECT_TRUE(rill_test::task_wait_until(
                    [&] { return ran.load() + bodies_destroyed.load() == tasks; }));
            }
            go.close();
            for (auto& t : spawned) {
                const std::string what = error_of(t);
                if (what.empty()) continue;
                if (is_start_failure(what))
                    ++failed;
                else
                    ++ended_otherwise;
            }
        },
        {.workers = 2});
    EXPECT_GT(failed, 0);
    EXPECT_EQ(ended_otherwise, 0);
    EXPECT_EQ(ran.load() + failed, tasks);
    EXPECT_EQ(bodies_destroyed.load(), tasks);
    EXPECT_EQ(rill::counters_snapshot().tasks_failed_to_start - before.tasks_failed_to_start,
              static_cast<std::uint64_t>(failed));
}

// A callable whose move runs out of memory: its body cannot be made (as when the allocation
// of the body itself fails).
struct body_without_memory {
    std::atomic<int>* ran;
    explicit body_without_memory(std::atomic<int>& r) : ran(&r) {}
    body_without_memory(body_without_memory&&) { throw std::bad_alloc(); }
    void operator()() const { ran->fetch_add(1); }
};

TEST(StartFailure, NoMemoryForTheBodyEndsOnlyThatTask) {
    const auto before = rill::counters_snapshot();
    std::atomic<int> ran{0};
    std::string joined_error;
    reported_failures reports;
    rill::run([&] {
        rill::task t = rill::spawn(body_without_memory(ran));
        EXPECT_EQ(t.id(), 0u);  // no task was made
        joined_error = error_of(t);
        (void)rill::spawn(body_without_memory(ran));  // dropped at once: reported
        // The spawner goes on, and spawns again.
        rill::spawn([&] { ran.fetch_add(10); }).join();
    });
    EXPECT_EQ(ran.load(), 10);
    EXPECT_EQ(joined_error, std::bad_alloc().what());
    EXPECT_EQ(reports.whats(), std::vector<std::string>{std::bad_alloc().what()});
    EXPECT_EQ(rill::counters_snapshot().tasks_failed_to_start - before.tasks_failed_to_start, 2u);
}

}  // namespace
