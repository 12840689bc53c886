// More receives complete at once than the io_uring backend has provided buffers: the ones that
// find none receive into their stream's own buffer, and every line still comes back whole and
// in order. The worker is held (a blocking sleep, no kernel entry) while every client sends,
// so the receives complete in bursts when it next enters the kernel. The pool is shrunk to 8
// buffers for the test: the kernel runs deferred completions in batches (about 20 per entry on
// Linux 6.18), and the tasks give buffers back between entries, so the default 256 are not
// exhausted this way. On the epoll backend the same burst is checked for lost bytes.
#include <gtest/gtest.h>

#include <string>

#include <rill/rill.hpp>

#include "io/backend.hpp"
#include "runtime/scheduler.hpp"
#include "support/descriptors.hpp"
#include "support/echo_burst.hpp"

namespace {

constexpr int clients = 300;
constexpr unsigned provided_buffers = 8;
constexpr rlim_t descriptors_needed = 2 * clients + 256;

// The shrunken pool for this test's runtime only.
struct small_provided_pool {
    small_provided_pool() { rill::detail::set_provided_buffer_count_for_tests(provided_buffers); }
    ~small_provided_pool() { rill::detail::set_provided_buffer_count_for_tests(0); }
};

TEST(ProvidedBuffers, MoreReceivesAtOnceThanProvidedBuffersLoseNothing) {
    rill_test::descriptor_limit_at_least limit(descriptors_needed);
    if (!limit.ok()) GTEST_SKIP() << "RLIMIT_NOFILE's hard limit is below " << descriptors_needed;
    small_provided_pool pool;
    const std::uint64_t shortfalls_before = rill::detail::provided_buffer_shortfalls();
    // Two lines each, sent together: the second must follow the first even when the first came
    // through the stream's own buffer.
    const rill_test::echo_burst_result burst = rill_test::run_echo_burst(clients, [](int i) {
        return "first " + std::to_string(i) + "\nsecond " + std::to_string(i) + "\n";
    });

    EXPECT_EQ(burst.accepted, clients);
    EXPECT_EQ(burst.echoed, clients) << burst.first_wrong;
    if (burst.receives_into_provided_buffers) {
        EXPECT_GT(rill::detail::provided_buffer_shortfalls(), shortfalls_before)
            << "every receive found a provided buffer: the shortage was not reached";
    }
}

}  // namespace
