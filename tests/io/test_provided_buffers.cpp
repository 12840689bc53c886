// More receives complete at once than the io_uring backend has provided buffers: the ones that
// find none receive into their stream's own buffer, and every line still comes back whole and
// in order. The worker is held (a blocking sleep, no kernel entry) while every client sends,
// so the receives complete in bursts when it next enters the kernel. The pool is shrunk to 8
// buffers for the test: the kernel runs deferred completions in batches (about 20 per entry on
// Linux 6.18), and the tasks give buffers back between entries, so the default 256 are not
// exhausted this way. On the epoll backend the same burst is checked for lost bytes.
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

constexpr int clients = 300;
constexpr unsigned provided_buffers = 8;
constexpr rlim_t descriptors_needed = 2 * clients + 256;

// The shrunken pool for this test's runtime only.
struct small_provided_pool {
    small_provided_pool() { rill::detail::set_provided_buffer_count_for_tests(provided_buffers); }
    ~small_provided_pool() { rill::detail::set_provided_buffer_count_for_tests(0); }
};

// Blocks the calling thread (a client thread, or the worker on purpose) until `ready`.
using rill_test::thread_wait_until;

TEST(ProvidedBuffers, MoreReceivesAtOnceThanProvidedBuffersLoseNothing) {
    rill_test::descriptor_limit_at_least limit(descriptors_needed);
    if (!limit.ok()) GTEST_SKIP() << "RLIMIT_NOFILE's hard limit is below " << descriptors_needed;
    small_provided_pool pool;
    const std::uint64_t shortfalls_before = rill::detail::provided_buffer_shortfalls();
    std::atomic<int> port{0};
    std::atomic<int> accepted{0};
    std::atomic<bool> all_parked{false};
    std::atomic<bool> all_sent{false};
    std::atomic<bool> peers_done{false};
    std::atomic<int> echoed{0};
    std::string first_wrong;
    bool provided = false;

    // The clients live on a thread of their own: blocking sockets, outside the runtime.
    std::thread peers([&] {
        if (!thread_wait_until([&] { return port.load() != 0; })) return;
        std::vector<std::unique_ptr<rill_test::raw_client>> c;
        c.reserve(clients);
        for (int i = 0; i < clients; ++i)
            c.push_back(std::make_unique<rill_test::raw_client>(port.load()));
        if (thread_wait_until([&] { return all_parked.load(); })) {
            // Two lines each, sent together: the second must follow the first even when the
            // first came through the stream's own buffer.
            for (int i = 0; i < clients; ++i)
                c[i]->send("first " + std::to_string(i) + "\nsecond " + std::to_string(i) + "\n");
            all_sent = true;
            for (int i = 0; i < clients; ++i) {
                const std::string want =
                    "first " + std::to_string(i) + "\r\nsecond " + std::to_string(i) + "\r\n";
                std::string got;
                try {
                    got = c[i]->receive_line();
                    if (got == "first " + std::to_string(i) + "\r\n") got += c[i]->receive_line();
                } catch (const std::exception& e) {
                    got += std::string(" (") + e.what() + ")";
                }
                if (got == want)
                    ++echoed;
                else if (first_wrong.empty())
                    first_wrong = "client " + std::to_string(i) + " got \"" + got + "\"";
            }
        }
        c.clear();  // end of stream for every echo task
        peers_done = true;
    });

    rill::run(
        [&] {
            provided = rill::detail::task_backend("test").receives_into_provided_buffers();
            rill::tcp_server_stream server("127.0.0.1:0", {.backlog = clients});
            port = rill::tcp_server_socket_info(server).port_number;
            for (int i = 0; i < clients; ++i) {
                auto client = rill::read(server);
                ASSERT_TRUE(client);
                ++accepted;
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
            // Every echo task runs until it waits for its first line.
            rill::task_sleep(50ms);
            all_parked = true;
            // Hold the worker while every client sends: the ring is not entered meanwhile.
            // (A loopback send has queued the data and the ring's wake-up when it returns.)
            EXPECT_TRUE(thread_wait_until([&] { return all_sent.load(); }));
            rill_test::task_wait_until([&] { return peers_done.load(); });
        },
        {.workers = 1});
    peers.join();

    EXPECT_EQ(accepted.load(), clients);
    EXPECT_EQ(echoed.load(), clients) << first_wrong;
    if (provided) {
        EXPECT_GT(rill::detail::provided_buffer_shortfalls(), shortfalls_before)
            << "every receive found a provided buffer: the shortage was not reached";
    }
}

}  // namespace
