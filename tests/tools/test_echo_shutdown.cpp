// `rill echo` and a real SIGINT or SIGTERM: it stops accepting, closes its idle clients at
// once, answers the line a client was part way through, prints a one-line summary and exits
// 0; a second signal ends a drain that a client which never reads would hold open.
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "support/child_process.hpp"
#include "support/clean_end.hpp"
#include "support/files.hpp"
#include "support/loopback.hpp"
#include "support/rill_tool.hpp"
#include "support/tls_certs.hpp"
#include "support/tls_peers.hpp"

namespace {

using namespace std::chrono_literals;
using rill_test::child_process;
using rill_test::rill_tool;
using rill_test::start_rill_echo;
using testing::MatchesRegex;

constexpr auto run_limit = 10s;
// What a client that never reads sends at most before its sends would block.
constexpr std::size_t flood_cap_bytes = 64 << 20;

// A fresh directory under /tmp, removed with the object.
struct scratch_directory {
    std::filesystem::path path;
    scratch_directory() {
        std::string pattern = "/tmp/rill-echo-dump-XXXXXX";
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        path = pattern;
    }
    scratch_directory(const scratch_directory&) = delete;
    scratch_directory& operator=(const scratch_directory&) = delete;
    ~scratch_directory() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

void drain_ends_with_a_summary(int signal_number) {
    rill_test::rill_echo echo(
        {"127.0.0.1:0", "--mode", "persistent", "--workers", "2", "--drain-timeout", "20s"});
    const int port = echo.port();
    ASSERT_GT(port, 0);
    rill_test::raw_client idle(port);
    idle.send("one\n");
    ASSERT_EQ(idle.receive_line(), "one\r\n");
    rill_test::raw_client mid_line(port);
    mid_line.send("two\npar");
    ASSERT_EQ(mid_line.receive_line(), "two\r\n");  // so "par" has been read too

    ASSERT_EQ(::kill(echo.pid(), signal_number), 0);
    rill_test::expect_clean_end(idle, "the idle client");
    mid_line.send("tial\n");
    EXPECT_EQ(mid_line.receive_line(), "partial\r\n");
    rill_test::expect_clean_end(mid_line, "the mid-line client");

    const auto o = echo.wait(run_limit);
    EXPECT_EQ(o.exit_status, 0) << o.err;
    EXPECT_EQ(o.err, "");
    // one + two + partial: 3 lines of 3 + 3 + 7 bytes.
    EXPECT_THAT(o.out, MatchesRegex("rill echo: shut down: 2 connections, 3 lines \\(13 bytes\\) "
                                    "echoed; the drain took [0-9]+ ms\n"));
}

TEST(EchoShutdown, SigtermDrainsAndPrintsASummary) { drain_ends_with_a_summary(SIGTERM); }
TEST(EchoShutdown, SigintDrainsAndPrintsASummary) { drain_ends_with_a_summary(SIGINT); }

TEST(EchoShutdown, ASecondSignalEndsTheDrain) {
    rill_test::rill_echo echo(
        {"127.0.0.1:0", "--mode", "persistent", "--workers", "1", "--drain-timeout", "60s"});
    const int port = echo.port();
    ASSERT_GT(port, 0);
    // Lines until the server's answers fill its socket and it stops reading: it is then in the
    // middle of a write that never ends.
    rill_test::raw_client never_reads(port);
    std::string chunk;
    for (int i = 0; i < 1024; ++i) chunk += std::string(63, 'y') + "\n";
    std::size_t sent = 0;
    while (sent < flood_cap_bytes) {
        const ssize_t n =
            ::send(never_reads.fd(), chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pollfd p{never_reads.fd(), POLLOUT, 0};
            if (::poll(&p, 1, 500) == 0) break;  // the server has not read for 500 ms
            continue;
        }
        ASSERT_GT(n, 0) << std::strerror(errno);
        sent += static_cast<std::size_t>(n);
    }
    ASSERT_LT(sent, flood_cap_bytes) << "the server never stopped reading";

    ASSERT_EQ(::kill(echo.pid(), SIGTERM), 0);
    EXPECT_FALSE(echo.read_stdout_line(500ms)) << "the drain ended without the second signal";
    const auto second = std::chrono::steady_clock::now();
    ASSERT_EQ(::kill(echo.pid(), SIGTERM), 0);
    const auto o = echo.wait(run_limit);
    EXPECT_LT(std::chrono::steady_clock::now() - second, 5s);
    EXPECT_EQ(o.exit_status, 0) << o.err;
    EXPECT_THAT(o.out, MatchesRegex("rill echo: shut down: 1 connections, [0-9]+ lines \\([0-9]+ "
                                    "bytes\\) echoed; the drain took [0-9]+ ms\n"));
}

// The dump is written on stderr (a file here, read while rill echo runs): a task that has
// just answered may still be ready rather than waiting, so the test dumps again (a bounded
// number of times) until the idle client's task shows its wait.
TEST(EchoShutdown, SigquitWritesTheTaskDumpAndServingGoesOn) {
    const scratch_directory directory;
    const auto log = directory.path / "stderr.log";
    child_process echo({"/bin/sh", "-c", "exec \"$@\" 2>>\"$0\"", log.string(), rill_tool, "echo",
                        "127.0.0.1:0", "--mode", "persistent", "--workers", "1"});
    const int port = start_rill_echo(echo);
    ASSERT_GT(port, 0);
    rill_test::raw_client idle(port);
    idle.send("one\n");
    ASSERT_EQ(idle.receive_line(), "one\r\n");
    sockaddr_in local{};
    socklen_t length = sizeof local;
    ASSERT_EQ(::getsockname(idle.fd(), reinterpret_cast<sockaddr*>(&local), &length), 0);
    const std::string idle_wait =
        "waiting read from 127.0.0.1:" + std::to_string(ntohs(local.sin_port)) + " for ";
    bool seen = false;
    for (std::size_t dumps = 1; dumps <= 20 && !seen; ++dumps) {
        ASSERT_EQ(::kill(echo.pid(), SIGQUIT), 0);
        const auto headers = rill_test::log_lines_with(log, "rill task dump:", dumps);
        ASSERT_EQ(headers.size(), dumps) << "no dump on SIGQUIT";
        EXPECT_THAT(headers.back(),
                    MatchesRegex("rill task dump: 2 tasks on 1 worker \\((io_uring|epoll)\\)"));
        seen = !rill_test::log_lines_with(log, idle_wait, 1, 0ms).empty();
    }
    EXPECT_TRUE(seen) << rill_test::read_file(log);
    // Still serving (the dump is written between two tasks' turns).
    idle.send("two\n");
    EXPECT_EQ(idle.receive_line(), "two\r\n");
    ASSERT_EQ(::kill(echo.pid(), SIGTERM), 0);
    const auto o = echo.wait(run_limit);
    EXPECT_EQ(o.exit_status, 0);
    const std::string err = rill_test::read_file(log);
    EXPECT_THAT(err, testing::ContainsRegex("task [0-9]+ worker 0 waiting accept on "
                                            "127\\.0\\.0\\.1:" +
                                            std::to_string(port) +
                                            " for [0-9]+ ms spawned at [^ ]*rill\\.cpp:[0-9]+"));
    EXPECT_THAT(err, testing::ContainsRegex(idle_wait +
                                            "[0-9]+ ms spawned at [^ ]*tools/rill\\.cpp:[0-9]+"));
}

// python3 -c SCRIPT PORT CAFILE: a verified TLS client that sends "hello", reads its echo,
// prints "ready", then waits for the server to end the connection and says how:
// "close_notify" (an orderly TLS close) or "eof without close_notify: ...".
const std::string idle_tls_client_script = R"(
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10),
                    server_hostname="localhost")
s.sendall(b"hello\n")
reply = b""
while not reply.endswith(b"\n"):
    reply += s.recv(100)
print("ready", reply.decode().strip(), flush=True)
try:
    data = s.recv(100)
    print("close_notify" if data == b"" else "data " + repr(data), flush=True)
except ssl.SSLError as e:
    print("eof without close_notify:", e, flush=True)
)";

TEST(EchoShutdown, AnIdleTlsClientGetsCloseNotify) {
    if (!rill_test::built_with_tls) GTEST_SKIP() << rill_test::without_tls_reason;
    rill_test::tls_test_certificates certs;
    const auto log = certs.directory / "echo.log";
    child_process echo(rill_test::rill_tls_echo(certs.server, log));
    const int port = start_rill_echo(echo);
    ASSERT_GT(port, 0);
    child_process client(
        {"python3", "-c", idle_tls_client_script, std::to_string(port), certs.ca.path.string()});
    ASSERT_EQ(client.read_stdout_line(run_limit), "ready hello");
    ASSERT_EQ(::kill(echo.pid(), SIGTERM), 0);
    EXPECT_EQ(client.read_stdout_line(run_limit), "close_notify");
    const auto o = echo.wait(run_limit);
    EXPECT_EQ(o.exit_status, 0) << o.err;
    EXPECT_THAT(o.out, MatchesRegex("rill echo: shut down: 1 connections, 1 lines \\(5 bytes\\) "
                                    "echoed; the drain took [0-9]+ ms\n"));
}

}  // namespace
