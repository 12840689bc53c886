// The TLS flags of the rill tool: `rill echo --tls-cert FILE --tls-key FILE
// [--tls-handshake-timeout D]` and `rill send --tls [--tls-ca FILE] [--insecure]
// [--server-name NAME]`. Misuse is refused with one line naming the flag (and the file), before
// anything listens or connects; --tls-handshake-timeout takes effect on a running server.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/loopback.hpp"
#include "support/rill_tool.hpp"
#include "support/tls_certs.hpp"
#include "support/tls_peers.hpp"

namespace {

using namespace std::chrono_literals;
using rill_test::child_process;
using testing::HasSubstr;
using testing::MatchesRegex;

// Runs `rill ARGS...` and expects it to fail with `exit_status` and one line on stderr
// containing `expected_part`.
void expect_one_line_error(const std::vector<std::string>& args, const std::string& expected_part,
                           int exit_status) {
    SCOPED_TRACE(rill_test::rill_command_line(args));
    auto o = rill_test::run_rill(args, 10s);
    EXPECT_EQ(o.exit_status, exit_status) << o.err;
    EXPECT_EQ(o.out, "") << "nothing listened: no address printed";
    EXPECT_THAT(o.err, MatchesRegex("rill (echo|send): [^\n]*\n")) << "one line";
    EXPECT_THAT(o.err, HasSubstr(expected_part));
}

int local_port_of(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
    return ntohs(a.sin_port);
}

constexpr int usage_exit = 2;  // a misused flag
constexpr int failure_exit = 1;  // a file or certificate that cannot be used

TEST(TlsToolFlags, EchoMisuseIsOneLine) {
    if (!rill_test::built_with_tls) GTEST_SKIP() << rill_test::without_tls_reason;
    rill_test::tls_test_certificates certs;
    const std::string cert = certs.server.certificate.path.string();
    const std::string key = certs.server.private_key.path.string();
    const std::string missing = (certs.directory / "missing.pem").string();
    expect_one_line_error({"echo", "127.0.0.1:0", "--tls-key", key}, "--tls-key needs --tls-cert",
                          usage_exit);
    expect_one_line_error({"echo", "127.0.0.1:0", "--tls-cert", cert}, "--tls-cert needs --tls-key",
                          usage_exit);
    expect_one_line_error({"echo", "127.0.0.1:0", "--tls-handshake-timeout", "5s"},
                          "--tls-handshake-timeout needs --tls-cert", usage_exit);
    expect_one_line_error({"echo", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
                           "--tls-handshake-timeout", "5"},
                          "--tls-handshake-timeout needs a unit", usage_exit);
    expect_one_line_error({"echo", "127.0.0.1:0", "--tls-cert"}, "--tls-cert needs a value",
                          usage_exit);
    expect_one_line_error({"echo", "127.0.0.1:0", "--tls-cert", missing, "--tls-key", key},
                          "--tls-cert " + missing + ": No such file or directory", failure_exit);
    expect_one_line_error({"echo", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", missing},
                          "--tls-key " + missing + ": No such file or directory", failure_exit);
    if (::geteuid() != 0) {  // root reads every file
        const auto unreadable = certs.directory / "unreadable.key";
        std::filesystem::copy_file(key, unreadable);
        std::filesystem::permissions(unreadable, std::filesystem::perms::none);
        expect_one_line_error(
            {"echo", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", unreadable.string()},
            "--tls-key " + unreadable.string() + ": Permission denied", failure_exit);
    }
    // Files that are there but do not fit: the library's tls_error, on one line.
    expect_one_line_error({"echo", "127.0.0.1:0", "--tls-cert", cert, "--tls-key",
                           certs.client.private_key.path.string()},
                          "", failure_exit);
    const auto not_pem = certs.directory / "not-a-certificate.pem";
    std::ofstream(not_pem) << "just some text\n";
    expect_one_line_error({"echo", "127.0.0.1:0", "--tls-cert", not_pem.string(), "--tls-key", key},
                          "", failure_exit);
}

TEST(TlsToolFlags, SendMisuseIsOneLine) {
    if (!rill_test::built_with_tls) GTEST_SKIP() << rill_test::without_tls_reason;
    rill_test::tls_test_certificates certs;
    const std::string ca = certs.ca.path.string();
    const std::string missing = (certs.directory / "missing-ca.pem").string();
    expect_one_line_error({"send", "127.0.0.1:1", "x", "--tls-ca", ca}, "--tls-ca needs --tls",
                          usage_exit);
    expect_one_line_error({"send", "127.0.0.1:1", "x", "--insecure"}, "--insecure needs --tls",
                          usage_exit);
    expect_one_line_error({"send", "127.0.0.1:1", "x", "--server-name", "localhost"},
                          "--server-name needs --tls", usage_exit);
    expect_one_line_error({"send", "127.0.0.1:1", "x", "--tls", "--insecure", "--tls-ca", ca},
                          "--insecure verifies nothing", usage_exit);
    expect_one_line_error({"send", "127.0.0.1:1", "x", "--tls", "--tls-ca", missing},
                          "--tls-ca " + missing + ": No such file or directory", failure_exit);
    const std::string cert = certs.client.certificate.path.string();
    const std::string key = certs.client.private_key.path.string();
    expect_one_line_error({"send", "127.0.0.1:1", "x", "--tls-cert", cert, "--tls-key", key},
                          "--tls-cert needs --tls", usage_exit);
    expect_one_line_error({"send", "127.0.0.1:1", "x", "--tls", "--tls-cert", cert},
                          "--tls-cert needs --tls-key", usage_exit);
    expect_one_line_error({"send", "127.0.0.1:1", "x", "--tls", "--tls-key", key},
                          "--tls-key needs --tls-cert", usage_exit);
    expect_one_line_error(
        {"send", "127.0.0.1:1", "x", "--tls", "--tls-cert", missing, "--tls-key", key},
        "--tls-cert " + missing + ": No such file or directory", failure_exit);
}

TEST(TlsToolFlags, HelpShowsTheFlags) {
    auto o = rill_test::run_rill({"--help"}, 10s);
    EXPECT_EQ(o.exit_status, 0);
    for (const char* flag : {"--tls-cert FILE --tls-key FILE", "--tls-handshake-timeout D",
                             "--tls [--tls-ca FILE] [--insecure] [--server-name NAME]"})
        EXPECT_THAT(o.out, HasSubstr(flag));
}

TEST(TlsToolFlags, HandshakeTimeoutClosesASilentClient) {
    if (!rill_test::built_with_tls) GTEST_SKIP() << rill_test::without_tls_reason;
    rill_test::tls_test_certificates certs;
    const auto log = certs.directory / "echo.log";
    child_process echo(
        rill_test::rill_tls_echo(certs.server, log, {"--tls-handshake-timeout", "300ms"}));
    const int port = rill_test::start_rill_echo(echo);
    ASSERT_GT(port, 0);
    const auto start = std::chrono::steady_clock::now();
    rill_test::raw_client silent(port);  // connects, never says hello
    const int silent_port = local_port_of(silent.fd());
    EXPECT_EQ(silent.receive_all(), "") << "closed without a word";
    const auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_GE(waited, 250ms);
    EXPECT_LT(waited, 5s);
    const auto reports = rill_test::log_lines_with(log, "tls handshake with", 1);
    ASSERT_EQ(reports.size(), 1u) << rill_test::read_file(log);
    EXPECT_THAT(reports[0],
                HasSubstr("tls handshake with 127.0.0.1:" + std::to_string(silent_port) + ": "));
    EXPECT_THAT(reports[0], HasSubstr("300 ms")) << "the limit it ran into";
}

TEST(TlsToolFlags, BuildWithoutTlsSaysSo) {
    if (rill_test::built_with_tls) GTEST_SKIP() << "this build has TLS (RILL_WITH_TLS)";
    rill_test::tls_test_certificates certs;
    const std::string says = "this rill was built without TLS (RILL_WITH_TLS=OFF)";
    expect_one_line_error({"echo", "127.0.0.1:0", "--tls-cert",
                           certs.server.certificate.path.string(), "--tls-key",
                           certs.server.private_key.path.string()},
                          "--tls-cert: " + says, failure_exit);
    expect_one_line_error({"send", "127.0.0.1:1", "x", "--tls"}, "--tls: " + says, failure_exit);
}

}  // namespace
