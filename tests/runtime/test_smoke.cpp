#include <gtest/gtest.h>

#include <rill/rill.hpp>

#include "support/loopback.hpp"

TEST(Smoke, EchoOneLineOverLoopback) {
    std::string reply;
    rill::run([&] {
        rill::tcp_server_stream server(0);
        const int port = rill::tcp_server_socket_info(server).port_number;
        auto t = rill::spawn([&] {
            rill::tcp_client_stream c(port);
            rill::showln(c, "hello");
            rill::flush_writer(c);
            reply = rill::read_line(c).value_or("<eof>");
        });
        auto client = rill::read(server);
        ASSERT_TRUE(client);
        rill::call_with_stream(*client, [](rill::tcp_client_stream& s) {
            if (auto line = rill::read_line(s)) rill::showln(s, *line);
        });
        t.join();
    });
    EXPECT_EQ(reply, "hello");
}
