// More completions arrive at once than io_uring's completion queue holds: the kernel keeps the
// rest aside (IORING_FEAT_NODROP, which the backend requires) and flags the overflow, and the
// backend flushes them into the queue, so every parked task still wakes. The queue is shrunk
// to 16 entries for the test (set_ring_sizes_for_tests) and 200 connections each get a line
// and answer it while the worker is held, so the receives and then the answers' sends
// complete in bursts far larger than the queue. On the epoll backend the same burst is checked
// for lost wake-ups.
#include <gtest/gtest.h>

#include <string>

#include <rill/rill.hpp>

#include "io/backend.hpp"
#include "runtime/scheduler.hpp"
#include "support/descriptors.hpp"
#include "support/echo_burst.hpp"

namespace {

constexpr int clients = 200;
constexpr unsigned queue_entries = 16;
constexpr rlim_t descriptors_needed = 2 * clients + 256;

struct tiny_completion_queue {
    tiny_completion_queue() {
        rill::detail::set_ring_sizes_for_tests(queue_entries, queue_entries);
    }
    ~tiny_completion_queue() { rill::detail::set_ring_sizes_for_tests(0, 0); }
};

TEST(CompletionQueueOverflow, EveryTaskWakesWhenCompletionsOutnumberTheQueue) {
    rill_test::descriptor_limit_at_least limit(descriptors_needed);
    if (!limit.ok()) GTEST_SKIP() << "RLIMIT_NOFILE's hard limit is below " << descriptors_needed;
    tiny_completion_queue queue;
    const std::uint64_t overflows_before = rill::detail::completion_queue_overflows();
    const rill_test::echo_burst_result burst = rill_test::run_echo_burst(
        clients, [](int i) { return "ping " + std::to_string(i) + "\n"; });

    EXPECT_EQ(burst.echoed, clients) << burst.first_wrong;
    EXPECT_EQ(rill::detail::dropped_completions(), 0u);
    if (burst.backend == "io_uring") {
        EXPECT_GT(rill::detail::completion_queue_overflows(), overflows_before)
            << "the completion queue never overflowed: the test did not reach the case";
    }
}

}  // namespace
