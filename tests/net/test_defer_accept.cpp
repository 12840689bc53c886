// server_options::defer_accept (TCP_DEFER_ACCEPT): read(server) hands out a connection once
// its first bytes have arrived, or once the deferral has passed without any. Loopback only;
// every wait is bounded.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>

#include <rill/rill.hpp>

#include "net/net_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using rill::tcp_client_stream;
using rill::tcp_server_stream;

TEST(DeferAccept, ConnectionComesOnceItsFirstBytesArrive) {
    rill::run([] {
        tcp_server_stream server(0, {.defer_accept = 5s});
        const int port = rill::tcp_server_socket_info(server).port_number;
        std::atomic<bool> handed_out{false};
        auto acceptor = rill::spawn([&] {
            auto client = rill::read(server);
            ASSERT_TRUE(client);
            handed_out = true;
            rill::call_with_stream(*client, [](tcp_client_stream& s) {
                if (auto line = rill::read_line(s)) rill::showln(s, *line);
            });
        });
        tcp_client_stream c(port);  // connected: the handshake is done
        rill::task_sleep(300ms);
        EXPECT_FALSE(handed_out) << "a connection without bytes was handed out at once";
        rill::showln(c, "hello");
        rill::flush_writer(c);
        EXPECT_EQ(rill::read_line(c), "hello");
        EXPECT_TRUE(handed_out);
        acceptor.join();
    });
}

TEST(DeferAccept, DefaultHandsOutAConnectionAtOnce) {
    rill::run([] {
        tcp_server_stream server(0);
        const int port = rill::tcp_server_socket_info(server).port_number;
        tcp_client_stream c(port);
        auto accepted = rill::read(server);  // nothing sent: returns all the same
        ASSERT_TRUE(accepted);
        rill::showln(*accepted, "welcome");  // a server that speaks first
        rill::flush_writer(*accepted);
        EXPECT_EQ(rill::read_line(c), "welcome");
    });
}

TEST(DeferAccept, SilentClientIsHandedOutAfterTheDeferral) {
    // A client that waits for the server to speak first is still accepted, once the deferral
    // (rounded up to the kernel's SYN-ACK retransmission times: 1 s here) has passed.
    rill::run([] {
        tcp_server_stream server(0, {.defer_accept = 1s});
        const int port = rill::tcp_server_socket_info(server).port_number;
        const auto start = std::chrono::steady_clock::now();
        tcp_client_stream c(port);
        auto watchdog = rill::spawn([&] {
            rill::task_sleep(10s);
            rill::close_stream(server);  // read(server) below then returns empty
        });
        auto accepted = rill::read(server);
        const auto waited = std::chrono::steady_clock::now() - start;
        ASSERT_TRUE(accepted) << "not accepted within 10 s";
        EXPECT_GE(waited, 500ms);
        rill::showln(*accepted, "welcome");
        rill::flush_writer(*accepted);
        EXPECT_EQ(rill::read_line(c), "welcome");
    });
}

TEST(DeferAccept, OutOfRangeIsAnArgumentError) {
    rill::run([] {
        EXPECT_EQ(rill_test::message_of<rill::argument_error>(
                      [] { tcp_server_stream s(0, {.defer_accept = -1s}); }),
                  "defer_accept must be 0..2147483647 seconds, got -1");
        EXPECT_EQ(rill_test::message_of<rill::argument_error>([] {
                      tcp_server_stream s(0, {.defer_accept = std::chrono::seconds(1LL << 40)});
                  }),
                  "defer_accept must be 0..2147483647 seconds, got 1099511627776");
    });
}

}  // namespace
