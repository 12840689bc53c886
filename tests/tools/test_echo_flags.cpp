// `rill echo --reader-timeout D --writer-timeout D --max-connections N`: the values parse
// (500ms, 30s, 2m), a bad one is refused with one line naming the flag and the value, and
// each flag takes effect on a running server.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/loopback.hpp"
#include "support/rill_tool.hpp"

namespace {

using namespace std::chrono_literals;
using testing::HasSubstr;

constexpr auto run_limit = 10s;

struct refused_value {
    std::vector<std::string> args;
    std::string names;  // what the one line must mention
};

TEST(EchoFlags, BadValuesAreRefusedWithOneLineNamingFlagAndValue) {
    const std::vector<refused_value> cases = {
        {{"--reader-timeout", "500"},
         "--reader-timeout needs a unit (ms, s, m or h), as in "
         "500ms or 30s, got \"500\""},
        {{"--writer-timeout", "30"}, "--writer-timeout needs a unit"},
        {{"--reader-timeout", "5x"},
         "--reader-timeout has an unknown unit (ms, s, m or h), got "
         "\"5x\""},
        {{"--reader-timeout", "ms"},
         "--reader-timeout takes a duration such as 500ms, 30s or "
         "2m, got \"ms\""},
        {{"--writer-timeout", "-1s"}, "--writer-timeout takes a duration"},
        {{"--writer-timeout", "0ms"}, "--writer-timeout must be longer than 0, got \"0ms\""},
        {{"--reader-timeout", "99999999999999999999h"}, "--reader-timeout is too long"},
        {{"--max-connections", "0"},
         "--max-connections takes a whole number of at least 1, got "
         "\"0\""},
        {{"--max-connections", "ten"}, "--max-connections takes a whole number"},
        {{"--max-connections", "-3"}, "\"-3\""},
        {{"--reader-timeout"}, "--reader-timeout needs a value"},
    };
    for (const auto& c : cases) {
        std::vector<std::string> args = {"echo", "127.0.0.1:0"};
        args.insert(args.end(), c.args.begin(), c.args.end());
        SCOPED_TRACE(testing::PrintToString(c.args));
        auto o = rill_test::run_rill(args, run_limit);
        EXPECT_EQ(o.exit_status, 2);
        EXPECT_EQ(o.out, "") << "no server was started";
        EXPECT_THAT(o.err, HasSubstr(c.names));
        EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
    }
}

TEST(EchoFlags, UsageNamesTheFlags) {
    auto o = rill_test::run_rill({"--help"}, run_limit);
    EXPECT_EQ(o.exit_status, 0);
    EXPECT_THAT(o.out, HasSubstr("--reader-timeout D"));
    EXPECT_THAT(o.out, HasSubstr("--writer-timeout D"));
    EXPECT_THAT(o.out, HasSubstr("--max-connections N"));
}

TEST(EchoFlags, GoodValuesStartTheServer) {
    for (const char* d : {"500ms", "30s", "2m", "1h"}) {
        SCOPED_TRACE(d);
        rill_test::rill_echo echo({"127.0.0.1:0", "--reader-timeout", d, "--writer-timeout", d,
                                   "--max-connections", "10"});
        const int port = echo.port();
        ASSERT_GT(port, 0);
        rill_test::raw_client c(port);
        c.send("hi\n");
        EXPECT_EQ(c.receive_line(), "hi\r\n");
    }
}

TEST(EchoFlags, ReaderTimeoutClosesASilentClient) {
    rill_test::rill_echo echo({"127.0.0.1:0", "--mode", "persistent", "--reader-timeout", "200ms"});
    const int port = echo.port();
    ASSERT_GT(port, 0);
    rill_test::raw_client talkative(port);
    talkative.send("one\n");
    EXPECT_EQ(talkative.receive_line(), "one\r\n");
    // Silent from now on: the server closes it after 200 ms without a byte.
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(talkative.receive_all(), "");
    const auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_GE(waited, 150ms);
    EXPECT_LT(waited, 5s);
}

TEST(EchoFlags, WriterTimeoutClosesAClientThatDoesNotRead) {
    rill_test::rill_echo echo({"127.0.0.1:0", "--mode", "persistent", "--writer-timeout", "300ms"});
    const int port = echo.port();
    ASSERT_GT(port, 0);
    // A client that sends and never reads: the echoes fill its receive buffer and the server's
    // send buffer, the server's write waits, and past 300 ms the server drops the client.
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ASSERT_GE(fd, 0);
    const int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    const rill_test::loopback_sockaddr to(port, false);
    if (::connect(fd, to.get(), to.length) != 0) {
        ASSERT_EQ(errno, EINPROGRESS);
        pollfd p{fd, POLLOUT, 0};
        ASSERT_EQ(::poll(&p, 1, 10000), 1);
    }
    const std::string line(1000, 'x');
    const std::string chunk = [&] {
        std::string c;
        for (int i = 0; i < 64; ++i) c += line + "\n";
        return c;
    }();
    bool dropped = false;
    const auto start = std::chrono::steady_clock::now();
    while (!dropped && std::chrono::steady_clock::now() - start < 10s) {
        ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) dropped = true;
        if (n < 0 && errno == EAGAIN) {
            pollfd p{fd, POLLOUT, 0};
            ::poll(&p, 1, 50);
            if (p.revents & (POLLERR | POLLHUP)) dropped = true;
        }
    }
    const auto waited = std::chrono::steady_clock::now() - start;
    ::close(fd);
    EXPECT_TRUE(dropped) << "the server kept a client that reads nothing";
    EXPECT_GE(waited, 250ms);
    // And the server still serves the next client.
    rill_test::raw_client next(port);
    next.send("next\n");
    EXPECT_EQ(next.receive_line(), "next\r\n");
    auto o = echo.wait(100ms);  // stopped: its stderr tells why the client went
    EXPECT_THAT(o.err, HasSubstr("writer timeout"));
}

TEST(EchoFlags, MaxConnectionsHoldsTheNextClientBack) {
    rill_test::rill_echo echo({"127.0.0.1:0", "--mode", "persistent", "--max-connections", "2"});
    const int port = echo.port();
    ASSERT_GT(port, 0);
    std::vector<std::unique_ptr<rill_test::raw_client>> open;
    for (int i = 0; i < 2; ++i) {
        open.push_back(std::make_unique<rill_test::raw_client>(port));
        open.back()->send("in\n");
        ASSERT_EQ(open.back()->receive_line(), "in\r\n");
    }
    rill_test::raw_client third(port);
    third.send("third\n");
    EXPECT_TRUE(third.quiet_for(300ms)) << "a third client was served with --max-connections 2";
    open.front()->close();
    EXPECT_EQ(third.receive_line(), "third\r\n");
}

}  // namespace
