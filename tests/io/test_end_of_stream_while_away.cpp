// A peer's last line and its end of stream that arrive while the reading task waits on
// something else (a timer here; a flush_writer send waiting for room, in the flood that found
// it) must both be read: the last line, then end of stream at once. Edge-triggered epoll
// reports the peer's end as one edge only; when no task waited to read, the backend kept that
// edge in the same flag as a plain "data came" edge, the receive that took the last line used
// the flag up (it reads the line and stops short of the end, so the socket counts as drained),
// and the next read waited for an edge that never came: `rill echo` never closed a flooder's
// connection, which waited out its 10 s receive timeout.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <thread>

#include <rill/rill.hpp>

#include "support/loopback.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;

// The server's reader timeout: a lost end of stream shows as a read that waits this long.
constexpr auto server_reader_timeout = 10s;
// How long the read after the last line may take to see end of stream: a lost end waits the
// whole server_reader_timeout; a loaded machine takes milliseconds.
constexpr auto end_of_stream_limit = 2s;
// How long the reading task stays away from the socket once the peer has ended: a loop turn
// that polls the kernel (and so takes the line's and the end's edges) while no task waits to
// read.
constexpr auto away_after_peer_ended = 1ms;

struct server_view {
    std::string first_line;
    std::string second_line;
    std::string last_line;
    bool third_read_found_a_line = false;
    std::chrono::milliseconds third_read_time{0};
};

TEST(EndOfStreamWhileAway, TheLastLineAndTheEndThatCameMeanwhileAreBothRead) {
    std::atomic<int> port{0};
    std::atomic<bool> first_read{false};
    std::atomic<bool> second_read{false};
    std::atomic<bool> peer_ended{false};
    server_view seen;
    std::exception_ptr peer_error;

    std::thread peer([&] {
        try {
            if (!rill_test::thread_wait_until([&] { return port.load() != 0; })) return;
            rill_test::raw_client c(port.load());
            c.send("first\n");
            // The second line is sent once the server has read the first: its read waits for
            // it, so the socket is in the backend's set (a socket whose reads never waited is
            // added with its state when one first does, and no edge can be lost before that).
            if (!rill_test::thread_wait_until([&] { return first_read.load(); })) return;
            c.send("second\n");
            // The server has read the second line (its socket is drained): the rest comes while
            // its task waits elsewhere.
            if (!rill_test::thread_wait_until([&] { return second_read.load(); })) return;
            c.send("last\n");
            c.shutdown_write();
            peer_ended = true;
            c.receive_all();  // until the server closes (bounded by the client's io limit)
        } catch (...) {
            peer_error = std::current_exception();
        }
    });

    rill::run(
        [&] {
            rill::tcp_server_stream server(0);  // 127.0.0.1, any free port
            port = rill::tcp_server_socket_info(server).port_number;
            auto client = rill::read(server);
            ASSERT_TRUE(client);
            rill::tcp_client_stream& s = *client;
            rill::reader_timeout(s, std::chrono::milliseconds(server_reader_timeout));
            ASSERT_TRUE(rill::read_line(s, seen.first_line));
            first_read = true;
            ASSERT_TRUE(rill::read_line(s, seen.second_line));
            second_read = true;
            // Away from the socket while the line and the end arrive, as a task that waits for
            // a database or for room to send its answers.
            EXPECT_TRUE(rill_test::task_wait_until([&] { return peer_ended.load(); }));
            rill::task_sleep(away_after_peer_ended);
            EXPECT_TRUE(rill::read_line(s, seen.last_line));
            const auto before = std::chrono::steady_clock::now();
            std::string after_the_end;
            seen.third_read_found_a_line = rill::read_line(s, after_the_end);
            seen.third_read_time = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - before);
            rill::close_stream(s);
        },
        {.workers = 1});
    peer.join();
    if (peer_error) std::rethrow_exception(peer_error);

    EXPECT_EQ(seen.first_line, "first");
    EXPECT_EQ(seen.second_line, "second");
    EXPECT_EQ(seen.last_line, "last");
    EXPECT_FALSE(seen.third_read_found_a_line);
    EXPECT_LT(seen.third_read_time, end_of_stream_limit)
        << "the read after the last line waited " << seen.third_read_time.count()
        << " ms: the peer's end of stream was lost";
}

}  // namespace
