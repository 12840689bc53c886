// More completions arrive at once than io_uring's completion queue holds: the kernel keeps the
// rest aside (IORING_FEAT_NODROP, which the backend requires) and flags the overflow, and the
// backend flushes them into the queue, so every parked task still wakes. The queue is shrunk
// to 16 entries for the test (set_ring_sizes_for_tests) and 200 connections each get a line
// and answer it while the worker is held, so the receives and then the answers' sends
// complete in bursts far larger than the queue. On the epoll backend the same burst is checked
// for lost wake-ups.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <rill/rill.hpp>

#include "io/backend.hpp"
#include "runtime/scheduler.hpp"
#include "support/descriptors.hpp"
#include "support/loopback.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using rill_test::thread_wait_until;

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
    std::atomic<int> port{0};
    std::atomic<bool> all_parked{false};
    std::atomic<bool> all_sent{false};
    std::atomic<bool> peers_done{false};
    std::atomic<int> echoed{0};
    std::string first_wrong;
    bool uring = false;

    std::thread peers([&] {
        if (!thread_wait_until([&] { return port.load() != 0; })) return;
        std::vector<std::unique_ptr<rill_test::raw_client>> c;
        for (int i = 0; i < clients; ++i)
            c.push_back(std::make_unique<rill_test::raw_client>(port.load()));
        if (thread_wait_until([&] { return all_parked.load(); })) {
            for (int i = 0; i < clients; ++i) c[i]->send("ping " + std::to_string(i) + "\n");
            all_sent = true;
            for (int i = 0; i < clients; ++i) {
                std::string got;
                try {
                    got = c[i]->receive_line();
                } catch (const std::exception& e) {
                    got = std::string("(") + e.what() + ")";
                }
                if (got == "ping " + std::to_string(i) + "\r\n")
                    ++echoed;
                else if (first_wrong.empty())
                    first_wrong = "client " + std::to_string(i) + " got \"" + got + "\"";
            }
        }
        c.clear();
        peers_done = true;
    });

    rill::run(
        [&] {
            uring = std::string(rill::detail::task_backend("test").name()) == "io_uring";
            rill::tcp_server_stream server("127.0.0.1:0", {.backlog = clients});
            port = rill::tcp_server_socket_info(server).port_number;
            for (int i = 0; i < clients; ++i) {
                auto client = rill::read(server);
                ASSERT_TRUE(client);
                rill::spawn([c = std::move(*client)]() mutable {
                    rill::call_with_stream(c, [](rill::tcp_client_stream& s) {
                        std::string line;
                        while (rill::read_line(s, line)) {
                            rill::showln(s, line);
                            rill::flush_writer(s);
                        }
                    });
                });
            }
            rill::task_sleep(50ms);  // every echo task parks on its first receive
            all_parked = true;
            // Hold the worker while every client sends: the completions pile up.
            EXPECT_TRUE(thread_wait_until([&] { return all_sent.load(); }));
            rill_test::task_wait_until([&] { return peers_done.load(); });
        },
        {.workers = 1});
    peers.join();

    EXPECT_EQ(echoed.load(), clients) << first_wrong;
    EXPECT_EQ(rill::detail::dropped_completions(), 0u);
    if (uring) {
        EXPECT_GT(rill::detail::completion_queue_overflows(), overflows_before)
            << "the completion queue never overflowed: the test did not reach the case";
    }
}

}  // namespace
