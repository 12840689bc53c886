// Accept errors read(server) does not know (injected: none can be provoked from outside) and
// running out of descriptors or memory do not end the server: it backs off, tries again and
// counts each retry; the clients waiting in the backlog are served afterwards. Only the
// listening socket's own end (EBADF, EINVAL, ENOTSOCK) ends read(server), with empty.
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <string>

#include <rill/rill.hpp>

#include "net/accept_faults.hpp"
#include "net/net_test_support.hpp"

namespace {

using namespace std::chrono_literals;

struct no_injection_left {
    ~no_injection_left() { rill::detail::inject_accept_errors_for_tests(0, 0); }
};

TEST(AcceptErrors, UnknownAndResourceErrorsAreRetriedAndCounted) {
    for (int error : {EIO, ENOMEM, EMFILE, ENFILE, ENOBUFS}) {
        SCOPED_TRACE(error);
        no_injection_left cleanup;
        rill_test::echo_server_thread server;
        const auto before = rill::counters_snapshot();
        constexpr unsigned failures = 4;
        rill::detail::inject_accept_errors_for_tests(error, failures);
        // Whichever accept meets the failures, both clients are served once they are over.
        rill_test::raw_client first(server.port());
        first.send("first\n");
        EXPECT_EQ(first.receive_line(), "first\r\n");
        rill_test::raw_client second(server.port());
        second.send("second\n");
        EXPECT_EQ(second.receive_line(), "second\r\n");
        const auto after = rill::counters_snapshot();
        EXPECT_EQ(after.accept_errors_retried - before.accept_errors_retried, failures);
        EXPECT_EQ(server.clients_served(), 2);
        // The server's stop finds it still serving (an exception that ended it fails here).
    }
}

TEST(AcceptErrors, AbortedConnectionsAreSkippedWithoutBackingOff) {
    no_injection_left cleanup;
    rill::run([] {
        rill::tcp_server_stream server("127.0.0.1:0");
        const int port = rill::tcp_server_socket_info(server).port_number;
        rill::tcp_client_stream peer(port);
        const auto before = rill::counters_snapshot();
        rill::detail::inject_accept_errors_for_tests(ECONNABORTED, 3);
        auto c = rill::read(server);
        ASSERT_TRUE(c);
        EXPECT_EQ(rill::counters_snapshot().accept_errors_retried, before.accept_errors_retried);
    });
}

TEST(AcceptErrors, TheListeningSocketsOwnEndEndsRead) {
    for (int error : {EBADF, EINVAL, ENOTSOCK}) {
        SCOPED_TRACE(error);
        no_injection_left cleanup;
        rill::run([&] {
            rill::tcp_server_stream server("127.0.0.1:0");
            rill::detail::inject_accept_errors_for_tests(error, 1);
            EXPECT_FALSE(rill::read(server));
        });
    }
}

TEST(AcceptErrors, ClosingTheServerDuringTheBackOffEndsRead) {
    no_injection_left cleanup;
    rill::run([] {
        rill::tcp_server_stream server("127.0.0.1:0");
        rill::detail::inject_accept_errors_for_tests(EIO, 1000);
        rill::channel<int> reading(1);
        auto reader = rill::spawn([&] {
            reading.send(1);
            EXPECT_FALSE(rill::read(server));
        });
        (void)reading.receive();
        rill::task_sleep(20ms);  // a few failures and back-offs
        rill::close_stream(server);
        const auto closed_at = std::chrono::steady_clock::now();
        reader.join();
        // At most one back-off (100 ms) late.
        EXPECT_LT(std::chrono::steady_clock::now() - closed_at, 1s);
    });
}

}  // namespace
