// A receive that waited on io_uring's provided buffers copies its bytes into the stream's input
// buffer; when that copy cannot get memory (std::bad_alloc), the provided buffer still goes
// back to the ring. The pool is shrunk to 2 buffers and two allocation failures are injected
// (fail_buffer_allocations_for_tests, with the worker's warm blocks held so the copy needs a
// fresh one): a buffer kept by each failure would leave the pool empty, and every later
// receive would come back with ENOBUFS (counted as a shortfall). The read that hit the failure
// throws std::bad_alloc; the lines sent after it arrive whole. On the epoll backend the
// allocation fails before the receive, so no line is lost there.
#include <gtest/gtest.h>

#include <atomic>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <rill/rill.hpp>

#include "io/backend.hpp"
#include "io/byte_buffer.hpp"
#include "runtime/scheduler.hpp"
#include "support/loopback.hpp"
#include "support/wait.hpp"

namespace {

using rill_test::thread_wait_until;

constexpr unsigned provided_buffers = 2;
constexpr int failed_reads = 2;
constexpr int lines_after = 8;

struct small_pool {
    small_pool() { rill::detail::set_provided_buffer_count_for_tests(provided_buffers); }
    ~small_pool() {
        rill::detail::set_provided_buffer_count_for_tests(0);
        rill::detail::fail_buffer_allocations_for_tests(0);
    }
};

TEST(ProvidedBufferOnBadAlloc, BufferGoesBackWhenTheCopyCannotAllocate) {
    small_pool pool;
    std::atomic<int> port{0};
    std::atomic<int> wanted{0};  // lines the server asked for: the peer sends one per request
    std::atomic<bool> server_done{false};
    std::vector<std::string> after;  // what the reads after the failures returned
    int bad_allocs = 0;
    bool provided = false;
    std::uint64_t shortfalls_during = 0;

    std::thread peer([&] {
        if (!thread_wait_until([&] { return port.load() != 0; })) return;
        rill_test::raw_client c(port.load());
        int sent = 0;
        while (!server_done.load()) {
            // One line at a time, each once the server waits for it: each receive is its own.
            if (!thread_wait_until([&] { return wanted.load() > sent || server_done.load(); }))
                break;
            if (wanted.load() > sent) {
                c.send("line " + std::to_string(sent) + "\n");
                ++sent;
            }
        }
    });

    rill::run(
        [&] {
            provided = rill::detail::task_backend("test").receives_into_provided_buffers();
            rill::tcp_server_stream server("127.0.0.1:0");
            port = rill::tcp_server_socket_info(server).port_number;
            auto s = rill::read(server);
            ASSERT_TRUE(s);
            int asked = 0;
            // A first line: the socket is then drained, so the next receives wait on the
            // provided buffers holding none of the stream's.
            wanted = ++asked;
            EXPECT_EQ(rill::read_line(*s), std::optional<std::string>("line 0"));
            const std::uint64_t shortfalls_before = rill::detail::provided_buffer_shortfalls();
            for (int i = 0; i < failed_reads; ++i) {
                // The failure hook is met only by an allocation that finds no warm block: hold
                // them all (this task runs on the worker whose blocks the stream takes).
                std::vector<char*> held;
                for (std::size_t b = 0; b < rill::detail::warm_buffer_blocks_busy_max; ++b)
                    held.push_back(rill::detail::acquire_buffer_block());
                rill::detail::fail_buffer_allocations_for_tests(1);
                wanted = ++asked;
                try {
                    auto line = rill::read_line(*s);
                    after.push_back(line ? *line : "(end of stream)");
                } catch (const std::bad_alloc&) {
                    ++bad_allocs;
                }
                rill::detail::fail_buffer_allocations_for_tests(0);
                for (char* b : held) rill::detail::release_buffer_block(b);
            }
            for (int i = 0; i < lines_after; ++i) {
                wanted = ++asked;
                auto line = rill::read_line(*s);
                after.push_back(line ? *line : "(end of stream)");
            }
            shortfalls_during = rill::detail::provided_buffer_shortfalls() - shortfalls_before;
            server_done = true;
        },
        {.workers = 1});
    peer.join();

    EXPECT_EQ(bad_allocs, failed_reads) << "the injected failures were not reached";
    EXPECT_EQ(shortfalls_during, 0u) << "provided buffers were kept by the failed copies";
    // The lines after the failures arrive whole and in order (with provided buffers the lines
    // of the failed reads are lost with their copies; on epoll they come first).
    ASSERT_GE(after.size(), static_cast<std::size_t>(lines_after));
    const std::size_t skip = after.size() - lines_after;
    for (int i = 0; i < lines_after; ++i)
        EXPECT_EQ(after[skip + i],
                  "line " + std::to_string(1 + failed_reads + i - (provided ? 0 : failed_reads)))
            << "read " << i << " after the failures";
}

}  // namespace
