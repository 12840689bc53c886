// read(server): clients come out in the order they connected; close_stream(server) from
// another task wakes a reader, which returns empty; closing twice is harmless; a closed
// server's port is free again.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "net/net_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using rill::tcp_client_stream;
using rill::tcp_server_stream;

int local_port_of(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
}

TEST(ServerRead, ReturnsClientsInTheOrderTheyConnected) {
    constexpr int clients = 8;
    rill::run([] {
        tcp_server_stream server(0);
        const int port = rill::tcp_server_socket_info(server).port_number;
        // The handshakes complete in the listen backlog, before anyone accepts.
        std::vector<std::unique_ptr<rill_test::raw_client>> raw;
        for (int i = 0; i < clients; ++i) {
            raw.push_back(std::make_unique<rill_test::raw_client>(port));
            raw.back()->send("client " + std::to_string(i) + "\n");
        }
        for (int i = 0; i < clients; ++i) {
            SCOPED_TRACE(i);
            auto c = rill::read(server);
            ASSERT_TRUE(c);
            EXPECT_EQ(rill::tcp_client_peer_socket_info(*c).port_number,
                      local_port_of(raw[i]->fd()));
            EXPECT_EQ(rill::read_line(*c), "client " + std::to_string(i));
        }
    });
}

// A task waits in read(server); another closes the server. Returns how long the reader took
// to come back after the close, and whether it came back empty.
void close_wakes_reader(rill::runtime_options options) {
    bool reader_got_client = true;
    std::chrono::steady_clock::duration woke_after{};
    rill::run(
        [&] {
            tcp_server_stream server(0);
            const int port = rill::tcp_server_socket_info(server).port_number;
            std::chrono::steady_clock::time_point closed_at;
            auto reader = rill::spawn([&] {
                auto c = rill::read(server);
                woke_after = std::chrono::steady_clock::now() - closed_at;
                reader_got_client = c.has_value();
                // Once closed, read stays empty.
                EXPECT_FALSE(rill::read(server));
            });
            auto closer = rill::spawn([&] {
                rill::task_sleep(50ms);  // the reader is parked in accept by now
                closed_at = std::chrono::steady_clock::now();
                rill::close_stream(server);
                EXPECT_FALSE(server.is_open());
            });
            closer.join();
            reader.join();
            // The port is free again: a server that does not ask for SO_REUSEADDR binds it.
            tcp_server_stream again(port, {.reuse_address = false});
            EXPECT_EQ(rill::tcp_server_socket_info(again).port_number, port);
        },
        options);
    EXPECT_FALSE(reader_got_client);
    EXPECT_LT(woke_after, 1s);
}

TEST(ServerRead, CloseFromAnotherTaskWakesTheReader) { close_wakes_reader({}); }

TEST(ServerRead, CloseFromAnotherWorkerWakesTheReader) { close_wakes_reader({.workers = 2}); }

TEST(ServerRead, CloseTwiceIsHarmless) {
    rill::run([] {
        tcp_server_stream server(0);
        EXPECT_TRUE(server.is_open());
        rill::close_stream(server);
        EXPECT_FALSE(server.is_open());
        rill::close_stream(server);
        EXPECT_FALSE(server.is_open());
        EXPECT_FALSE(rill::read(server));
        EXPECT_FALSE(rill::read(server));
    });
}

TEST(ServerRead, ClosedServerFreesItsPortAndRefusesClients) {
    const int fds_before = rill_test::count_open_fds();
    rill::run([] {
        tcp_server_stream server(0);
        const int port = rill::tcp_server_socket_info(server).port_number;
        // A client waiting in the backlog when the server closes is dropped, not served.
        rill_test::raw_client waiting(port);
        rill::close_stream(server);
        EXPECT_EQ(rill_test::receive_all_in_task(waiting), "");

        std::string message;
        EXPECT_EQ(rill_test::os_error_code([&] { tcp_client_stream c(port); }, &message),
                  ECONNREFUSED);

        tcp_server_stream again(port, {.reuse_address = false});
        EXPECT_EQ(rill::tcp_server_socket_info(again).port_number, port);
        rill::close_stream(again);
    });
    EXPECT_EQ(rill_test::count_open_fds(), fds_before);
}

TEST(ServerRead, EndOfRunCancelsABlockedReader) {
    const int fds_before = rill_test::count_open_fds();
    bool cancelled = false;
    rill::run([&] {
        // Main returns while a task waits in read(server): the read throws task_cancelled,
        // the server's destructor closes the socket.
        rill::spawn([&] {
            tcp_server_stream server(0);
            try {
                rill::read(server);
            } catch (const rill::task_cancelled&) {
                cancelled = true;
                throw;
            }
        });
        rill::task_sleep(20ms);
    });
    EXPECT_TRUE(cancelled);
    EXPECT_EQ(rill_test::count_open_fds(), fds_before);
}

TEST(ServerRead, ClosingTheServerLeavesAcceptedClientsAlone) {
    rill::run([] {
        tcp_server_stream server(0);
        const int port = rill::tcp_server_socket_info(server).port_number;
        tcp_client_stream c(port);
        auto accepted = rill::read(server);
        ASSERT_TRUE(accepted);
        rill::close_stream(server);
        rill::showln(c, "still here");
        rill::flush_writer(c);
        EXPECT_EQ(rill::read_line(*accepted), "still here");
    });
}

}  // namespace
