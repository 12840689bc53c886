// The shipped programs against each other and against other implementations: the seed's
// echo and echo_client examples, `rill echo` and `rill send`, nc, and Gambit Scheme (the
// reference's runtime). Every program is started with posix_spawn, stopped by its PID and
// reaped; traffic stays on the loopback.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/child_process.hpp"
#include "support/files.hpp"
#include "support/loopback.hpp"
#include "support/rill_tool.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using rill_test::child_process;
using rill_test::rill_tool;
using testing::HasSubstr;
using testing::MatchesRegex;

constexpr auto start_limit = 10s;
constexpr auto run_limit = 10s;
constexpr int seed_echo_port = 2020;  // examples/echo's fixed port, as in the seed

// True when a server could bind host:port with SO_REUSEADDR (as rill's servers do), i.e.
// nothing listens there.
bool port_free(int port, bool ipv6) {
    int fd = ::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return !ipv6;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const rill_test::loopback_sockaddr where(port, ipv6);
    int r = ::bind(fd, where.get(), where.length);
    if (r != 0 && ipv6 && errno == EADDRNOTAVAIL) r = 0;  // no IPv6 loopback: nothing there either
    ::close(fd);
    return r == 0;
}

// port_free, polled: a server process that was just stopped may hold its port a little
// longer (with io_uring, the kernel tears a dead process's ring down asynchronously, and the
// accept still in flight keeps the listening socket open until then).
bool port_free_soon(int port, bool ipv6) {
    return rill_test::thread_wait_until([&] { return port_free(port, ipv6); }, 2s);
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        lines.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return lines;
}

TEST(Interop, SeedEchoClientAgainstSeedEcho) {
    if (!port_free_soon(seed_echo_port, false) || !port_free_soon(seed_echo_port, true))
        GTEST_SKIP() << "port " << seed_echo_port << " is in use; examples/echo needs it";
    child_process echo({rill_test::built("examples/echo")});
    // examples/echo prints nothing: wait until it accepts connections (a probe that sends
    // nothing gets nothing back and is closed, as the seed's echo does at end of stream).
    const bool listening = rill_test::thread_wait_until(
        [] {
            try {
                rill_test::raw_client probe(seed_echo_port);
                return true;
            } catch (const std::exception&) {
                return false;
            }
        },
        5s);
    if (!listening) {
        auto o = echo.wait(1s);
        if (o.err.find("Address already in use") != std::string::npos)
            GTEST_SKIP() << "port " << seed_echo_port << " was taken meanwhile: " << o.err;
        FAIL() << "examples/echo did not start listening; stderr: " << o.err;
    }
    child_process client({rill_test::built("examples/echo_client")});
    auto o = client.wait(run_limit);
    EXPECT_EQ(o.out, "hello\n");
    EXPECT_EQ(o.err, "");
    EXPECT_EQ(o.exit_status, 0);
    // The seed's echo serves one line per connection, then closes.
    rill_test::raw_client again(seed_echo_port);
    again.send("two\nlines\n");
    EXPECT_EQ(again.receive_all(), "two\r\n");
}

TEST(Interop, RillEchoDefaultsToTheSeedPort) {
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{rill_tool, "echo"},
          std::vector<std::string>{rill_tool, "echo", "127.0.0.1"}}) {
        SCOPED_TRACE(args.size() == 2 ? "no ADDRESS" : "INTF alone");
        if (!port_free_soon(seed_echo_port, false))
            GTEST_SKIP() << "port " << seed_echo_port << " is in use";
        child_process echo(args);
        auto first = echo.read_stdout_line(start_limit);
        if (!first) {
            auto o = echo.wait(1s);
            if (o.err.find("Address already in use") != std::string::npos)
                GTEST_SKIP() << "port " << seed_echo_port << " was taken meanwhile: " << o.err;
            FAIL() << "rill echo printed no address; stderr: " << o.err;
        }
        EXPECT_EQ(*first, "127.0.0.1:2020");
    }
}

TEST(Interop, NetcatAgainstRillEcho) {
    if (!rill_test::program_available("nc")) GTEST_SKIP() << "nc (netcat-openbsd) is not installed";
    rill_test::rill_echo echo({"127.0.0.1:0"});
    const int port = echo.port();
    ASSERT_GT(port, 0);
    // -N: shut the socket down for writing at end of input, so nc ends once the server closes.
    child_process nc({"nc", "-N", "-w", "5", "127.0.0.1", std::to_string(port)});
    nc.write_stdin("hi from nc\n");
    auto o = nc.wait(run_limit);
    EXPECT_EQ(o.out, "hi from nc\r\n");
    EXPECT_EQ(o.exit_status, 0) << o.err;
}

TEST(Interop, RillEchoModes) {
    {
        rill_test::rill_echo echo({"127.0.0.1:0", "--mode", "persistent"});
        const int port = echo.port();
        ASSERT_GT(port, 0);
        rill_test::raw_client c(port);
        c.send("one\ntwo\r\nthree\n");
        EXPECT_EQ(c.receive_line(), "one\r\n");
        EXPECT_EQ(c.receive_line(), "two\r\n");
        EXPECT_EQ(c.receive_line(), "three\r\n");
        EXPECT_TRUE(c.quiet_for(100ms)) << "persistent: the connection stays open";
        c.send("four\n");
        EXPECT_EQ(c.receive_line(), "four\r\n");
        c.shutdown_write();
        EXPECT_EQ(c.receive_all(), "");
    }
    {
        rill_test::rill_echo echo({"--mode", "once", "127.0.0.1:0"});
        const int port = echo.port();
        ASSERT_GT(port, 0);
        rill_test::raw_client c(port);
        c.send("one\ntwo\n");
        EXPECT_EQ(c.receive_all(), "one\r\n");
    }
    {
        // Every server option is taken; the address can come from --port-number.
        rill_test::rill_echo echo({"127.0.0.1", "--port-number", "0", "--backlog", "16",
                                   "--no-reuse-address", "--transcoder", "utf_8,lf", "--workers",
                                   "2", "--defer-accept", "5"});
        const int port = echo.port();
        ASSERT_GT(port, 0);
        rill_test::raw_client c(port);
        c.send("caf\xc3\xa9\n");
        EXPECT_EQ(c.receive_all(), "caf\xc3\xa9\n");
    }
}

TEST(Interop, RillSendAgainstRillEcho) {
    rill_test::rill_echo echo({"127.0.0.1:0", "--mode", "persistent"});
    const int port = echo.port();
    ASSERT_GT(port, 0);
    const std::string where = "127.0.0.1:" + std::to_string(port);
    {
        child_process send({rill_tool, "send", where, "a", "b c", "--keep-alive", "--no-coalesce"});
        auto o = send.wait(run_limit);
        EXPECT_EQ(o.out, "a\nb c\n");
        EXPECT_EQ(o.err, "");
        EXPECT_EQ(o.exit_status, 0);
    }
    {
        // A bare number is a port on the loopback, as for rill echo.
        child_process send({rill_tool, "send", std::to_string(port), "by port"});
        auto o = send.wait(run_limit);
        EXPECT_EQ(o.out, "by port\n");
        EXPECT_EQ(o.exit_status, 0) << o.err;
    }
    {
        // No LINE arguments: the lines come from standard input.
        child_process send({rill_tool, "send", where});
        send.write_stdin("from\nstdin\n");
        auto o = send.wait(run_limit);
        EXPECT_EQ(o.out, "from\nstdin\n");
        EXPECT_EQ(o.exit_status, 0) << o.err;
    }
}

// Runs `rill ARGS...` and expects a failure reported as one line on stderr.
void expect_one_line_error(const std::vector<std::string>& args, const std::string& expected_part) {
    SCOPED_TRACE(rill_test::rill_command_line(args));
    auto o = rill_test::run_rill(args, run_limit);
    EXPECT_NE(o.exit_status, 0);
    EXPECT_GT(o.exit_status, 0) << "ended by a signal or did not end";
    EXPECT_EQ(o.out, "");
    ASSERT_EQ(lines_of(o.err).size(), 1u) << "stderr:\n" << o.err;
    EXPECT_THAT(o.err, HasSubstr(expected_part));
    EXPECT_TRUE(o.err.starts_with("rill ")) << o.err;
    EXPECT_TRUE(o.err.ends_with("\n")) << o.err;
}

TEST(Interop, RillCommandErrorsAreOneLine) {
    expect_one_line_error({"echo", "--bogus"}, "unknown option --bogus");
    expect_one_line_error({"echo", "70000"}, "port_number must be 0..65535, got 70000");
    expect_one_line_error({"echo", "127.0.0.1:99999"}, "99999");
    expect_one_line_error({"echo", "127.0.0.1", "--port-number", "70000"},
                          "port_number must be 0..65535, got 70000");
    expect_one_line_error({"echo", "127.0.0.1:0", "--backlog", "0"},
                          "backlog must be positive, got 0");
    expect_one_line_error({"echo", "--backlog", "many"},
                          "--backlog takes a whole number, got \"many\"");
    expect_one_line_error({"echo", "127.0.0.1:0", "--defer-accept", "-1"},
                          "defer_accept must be 0..2147483647 seconds, got -1");
    expect_one_line_error({"echo", "--port-number"}, "--port-number needs a value");
    expect_one_line_error({"echo", "--mode", "sometimes"}, "--mode is once or persistent");
    expect_one_line_error({"echo", "127.0.0.1:0", "127.0.0.1:1"}, "more than one ADDRESS");
    expect_one_line_error({"echo", "127.0.0.1:0", "--transcoder", "klingon"}, "klingon");
    expect_one_line_error({"send"}, "needs an ADDRESS");
    expect_one_line_error({"send", "127.0.0.1:0", "x", "--bogus"}, "unknown option --bogus");
    expect_one_line_error({"frobnicate"}, "unknown command");

    // A port nothing listens on: connection refused, named with the address.
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    const std::string closed_port = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    expect_one_line_error({"send", closed_port, "x"},
                          "tcp_client_stream: connect " + closed_port + ": Connection refused");
    // The same port, bound (not listening): a second server cannot bind it.
    expect_one_line_error({"echo", closed_port},
                          "tcp_server_stream: bind " + closed_port + ": Address already in use");
    ::close(fd);
}

TEST(Interop, RillHelp) {
    auto o = rill_test::run_rill({"--help"}, run_limit);
    EXPECT_EQ(o.exit_status, 0);
    EXPECT_THAT(o.out, HasSubstr("rill echo [ADDRESS]"));
    EXPECT_THAT(o.out, HasSubstr("rill send ADDRESS"));
    EXPECT_EQ(o.err, "");
}

TEST(Interop, RillSendToAOnceServerReportsTheClose) {
    rill_test::rill_echo echo({"127.0.0.1:0"});
    const int port = echo.port();
    ASSERT_GT(port, 0);
    child_process send({rill_tool, "send", "127.0.0.1:" + std::to_string(port), "first", "second"});
    auto o = send.wait(run_limit);
    EXPECT_EQ(o.out, "first\n");
    EXPECT_EQ(o.exit_status, 1);
    EXPECT_EQ(lines_of(o.err).size(), 1u) << o.err;
}

TEST(Interop, GambitClientAgainstRillEcho) {
    if (!rill_test::program_available("gsi"))
        GTEST_SKIP() << "gsi (Gambit Scheme, package gambc) is not installed";
    rill_test::rill_echo echo({"127.0.0.1:0"});
    const int port = echo.port();
    ASSERT_GT(port, 0);
    // rill writes a line end as CR LF (the reference's default for TCP streams); a Gambit port
    // reads that as one line end under eol-encoding cr-lf (its default, lf, would keep the CR).
    const std::string script =
        "(let ((p (open-tcp-client (list server-address: \"127.0.0.1\" port-number: " +
        std::to_string(port) +
        " eol-encoding: 'cr-lf)))) (display \"hello from gambit\" p) (newline p) (force-output p)"
        " (write (read-line p)) (newline) (write (read-line p)) (newline))";
    child_process gsi({"gsi", "-e", script});
    auto o = gsi.wait(run_limit);
    // The line, then end of stream (the seed's server closes after one line).
    EXPECT_EQ(o.out, "\"hello from gambit\"\n#!eof\n") << o.err;
    EXPECT_EQ(o.exit_status, 0) << o.err;
}

TEST(Interop, RillSendAgainstGambitServer) {
    if (!rill_test::program_available("gsi"))
        GTEST_SKIP() << "gsi (Gambit Scheme, package gambc) is not installed";
    // A Gambit echo server on a port the kernel picks; it prints the port, then serves.
    const std::string script =
        "(let ((s (open-tcp-server (list server-address: \"127.0.0.1\" port-number: 0))))"
        " (display (socket-info-port-number (tcp-server-socket-info s))) (newline) (force-output)"
        " (let loop ((n 0)) (if (< n 10) (let ((c (read s)))"
        "  (let echo () (let ((line (read-line c))) (if (not (eof-object? line))"
        "   (begin (display line c) (newline c) (force-output c) (echo)))))"
        "  (close-port c) (loop (+ n 1))))))";
    child_process gsi({"gsi", "-e", script});
    auto first = gsi.read_stdout_line(start_limit);
    ASSERT_TRUE(first) << "the Gambit server printed no port; stderr: " << gsi.wait(1s).err;
    ASSERT_THAT(*first, MatchesRegex("[0-9]+"));
    const std::string where = "127.0.0.1:" + *first;
    child_process send({rill_tool, "send", where, "hello from rill", "and again"});
    auto o = send.wait(run_limit);
    EXPECT_EQ(o.out, "hello from rill\nand again\n");
    EXPECT_EQ(o.exit_status, 0) << o.err;
}

}  // namespace
