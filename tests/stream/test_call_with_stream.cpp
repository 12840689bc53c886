// call_with_stream(s, fn): calls fn(s), closes s when fn returns or throws (rethrowing), and
// returns fn's value.
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>

#include <rill/rill.hpp>

#include "stream/stream_test_support.hpp"

namespace {

using namespace rill_stream_test;

TEST(CallWithStream, ReturnsTheValueAndClosesAfterFlushing) {
    serve_raw_peer(
        [](rill::tcp_client_stream& s) {
            const int n = rill::call_with_stream(s, [](rill::tcp_client_stream& c) {
                EXPECT_TRUE(c.is_open());
                auto line = rill::read_line(c);
                rill::showln(c, "echo: ", line.value_or("<eof>"));  // flushed by the close
                return 42;
            });
            EXPECT_EQ(n, 42);
            EXPECT_FALSE(s.is_open());
            EXPECT_THROW((void)rill::read_line(s), rill::error);
        },
        [](rill_test::raw_client& c) {
            c.send("ping\r\n");
            EXPECT_EQ(c.receive_all(), "echo: ping\r\n");
        });
}

TEST(CallWithStream, VoidAndMoveOnlyResults) {
    serve_raw_peer(
        [](rill::tcp_client_stream& s) {
            std::unique_ptr<std::string> first = rill::call_with_stream(s, [](rill::stream& c) {
                return std::make_unique<std::string>(rill::read_line(c).value_or("<eof>"));
            });
            ASSERT_TRUE(first);
            EXPECT_EQ(*first, "payload");
            bool called = false;
            rill::call_with_stream(
                s, [&](rill::stream&) { called = true; });  // already closed: harmless
            EXPECT_TRUE(called);
        },
        [](rill_test::raw_client& c) {
            c.send("payload\r\n");
            EXPECT_EQ(c.receive_all(), "");
        });
}

TEST(CallWithStream, ClosesAndRethrowsWhenFnThrows) {
    serve_raw_peer(
        [](rill::tcp_client_stream& s) {
            try {
                rill::call_with_stream(s, [](rill::tcp_client_stream& c) -> int {
                    EXPECT_EQ(rill::read_line(c), "x");
                    throw std::logic_error("boom");
                });
                ADD_FAILURE() << "the exception was swallowed";
            } catch (const std::logic_error& e) {
                EXPECT_STREQ(e.what(), "boom");
            }
            EXPECT_FALSE(s.is_open());
        },
        [](rill_test::raw_client& c) {
            c.send("x\r\n");
            c.receive_all();  // end of stream: the server side closed
        });
}

TEST(CallWithStream, RethrowsRillErrorsToo) {
    serve_raw_peer(
        [](rill::tcp_client_stream& s) {
            rill::max_line_length(s, 3);
            EXPECT_THROW(
                rill::call_with_stream(s, [](rill::stream& c) { return rill::read_line(c); }),
                rill::line_too_long);
            EXPECT_FALSE(s.is_open());
        },
        [](rill_test::raw_client& c) {
            c.send("toolong\r\n");
            c.receive_all();
        });
}

// The seed's echo server: one task per client, each served by call_with_stream.
TEST(CallWithStream, SeedEchoServerWithManyClients) {
    constexpr int clients = 20;
    std::vector<std::string> replies(clients);
    rill::run([&] {
        rill::tcp_server_stream server(0);
        const int port = rill::tcp_server_socket_info(server).port_number;
        std::vector<rill::task> peers;
        for (int i = 0; i < clients; ++i) {
            peers.push_back(rill::spawn([&, i, port] {
                rill::tcp_client_stream c(port);
                rill::showln(c, "hello ", i);
                rill::flush_writer(c);
                replies[static_cast<std::size_t>(i)] = rill::read_line(c).value_or("<eof>");
                EXPECT_EQ(rill::read_line(c), std::nullopt);
            }));
        }
        std::vector<rill::task> servers;
        for (int i = 0; i < clients; ++i) {
            auto client = rill::read(server);
            ASSERT_TRUE(client);
            servers.push_back(rill::spawn([c = std::move(*client)]() mutable {
                rill::call_with_stream(c, [](rill::tcp_client_stream& s) {
                    if (auto line = rill::read_line(s)) rill::showln(s, *line);
                    rill::flush_writer(s);
                });
            }));
        }
        for (auto& t : peers) t.join();
        for (auto& t : servers) t.join();
    });
    for (int i = 0; i < clients; ++i)
        EXPECT_EQ(replies[static_cast<std::size_t>(i)], "hello " + std::to_string(i));
}

}  // namespace
