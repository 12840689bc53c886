// `rill send --tls --tls-ca` against `openssl s_server -rev` (it answers each line reversed):
// rill verifies the server against the generated CA by IP address and by --server-name, in
// the version the server insists on, and s_server reports the TLS connection it saw.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/rill_tool.hpp"
#include "support/tls_certs.hpp"
#include "support/tls_peers.hpp"

namespace {

using rill_test::child_process;
using rill_test::rill_tool;
using testing::HasSubstr;

// The port of a started `openssl s_server -accept 127.0.0.1:0`, from its "ACCEPT" line; 0 and
// a test failure if it printed none.
int s_server_port(child_process& server) {
    for (int line = 0; line < 10; ++line) {
        auto text = server.read_stdout_line(rill_test::tls_peer_start_limit);
        if (!text) break;
        if (text->starts_with("ACCEPT 127.0.0.1:"))
            return std::stoi(text->substr(std::string("ACCEPT 127.0.0.1:").size()));
    }
    ADD_FAILURE() << "openssl s_server printed no ACCEPT line; stderr: "
                  << server.wait(std::chrono::seconds(1)).err;
    return 0;
}

// The command line of `openssl s_server` on 127.0.0.1 (a free port) serving `served`: it answers
// each line reversed (-rev) and ends after one connection; `extra` flags go last.
std::vector<std::string> s_server_argv(const rill_test::certificate_and_key& served,
                                       const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {"openssl",  "s_server",
                                     "-accept",  "127.0.0.1:0",
                                     "-cert",    served.certificate.path.string(),
                                     "-key",     served.private_key.path.string(),
                                     "-naccept", "1",
                                     "-rev"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
}

struct s_server_case {
    std::string version_flag;  // the only version s_server accepts
    std::string expected_version;  // as s_server prints it
    std::vector<std::string> name;  // rill send's --server-name, or nothing (the IP is checked)
};

TEST(TlsOpensslServer, RillSendVerifiesAndTalksTls13AndTls12) {
    if (!rill_test::built_with_tls) GTEST_SKIP() << rill_test::without_tls_reason;
    if (!rill_test::program_available("openssl")) GTEST_SKIP() << "openssl is not installed";
    rill_test::tls_test_certificates certs;
    for (const s_server_case& c :
         {s_server_case{"-tls1_3", "TLSv1.3", {}}, s_server_case{"-tls1_2", "TLSv1.2", {}},
          s_server_case{"-tls1_3", "TLSv1.3", {"--server-name", "localhost"}}}) {
        SCOPED_TRACE(c.version_flag + (c.name.empty() ? "" : " --server-name"));
        child_process server(s_server_argv(certs.server, {c.version_flag}));
        const int port = s_server_port(server);
        ASSERT_GT(port, 0);
        std::vector<std::string> argv = {rill_tool,
                                         "send",
                                         "127.0.0.1:" + std::to_string(port),
                                         "hello over tls",
                                         "second line",
                                         "--tls",
                                         "--tls-ca",
                                         certs.ca.path.string()};
        argv.insert(argv.end(), c.name.begin(), c.name.end());
        child_process send(argv);
        auto o = send.wait(rill_test::tls_peer_run_limit);
        EXPECT_EQ(o.out, "slt revo olleh\nenil dnoces\n");
        EXPECT_EQ(o.err, "");
        EXPECT_EQ(o.exit_status, 0);
        // -naccept 1: s_server ends after this one connection, having described it on stderr.
        auto s = server.wait(rill_test::tls_peer_run_limit);
        EXPECT_THAT(s.err, HasSubstr("CONNECTION ESTABLISHED"));
        EXPECT_THAT(s.err, HasSubstr("Protocol version: " + c.expected_version));
        EXPECT_EQ(s.exit_status, 0) << s.err;
    }
}

TEST(TlsOpensslServer, RillSendRefusesAServerItCannotVerify) {
    if (!rill_test::built_with_tls) GTEST_SKIP() << rill_test::without_tls_reason;
    if (!rill_test::program_available("openssl")) GTEST_SKIP() << "openssl is not installed";
    rill_test::tls_test_certificates certs;
    struct refused {
        const rill_test::certificate_and_key* served;
        std::vector<std::string> flags;
        std::string reason;
    };
    for (const refused& r : {
             refused{&certs.self_signed, {}, "self-signed certificate"},
             refused{
                 &certs.expired, {"--tls-ca", certs.ca.path.string()}, "certificate has expired"},
             refused{&certs.wrong_host,
                     {"--tls-ca", certs.ca.path.string(), "--server-name", "localhost"},
                     "hostname mismatch"},
             refused{
                 &certs.wrong_host, {"--tls-ca", certs.ca.path.string()}, "IP address mismatch"},
         }) {
        SCOPED_TRACE(r.reason);
        child_process server(s_server_argv(*r.served));
        const int port = s_server_port(server);
        ASSERT_GT(port, 0);
        const std::string where = "127.0.0.1:" + std::to_string(port);
        std::vector<std::string> argv = {rill_tool, "send", where, "secret", "--tls"};
        argv.insert(argv.end(), r.flags.begin(), r.flags.end());
        child_process send(argv);
        auto o = send.wait(rill_test::tls_peer_run_limit);
        EXPECT_EQ(o.exit_status, 1);
        EXPECT_EQ(o.out, "") << "nothing was sent, nothing answered";
        EXPECT_THAT(o.err, testing::MatchesRegex("rill send: ([a-z_]+: )?tls handshake with " +
                                                 where + ": certificate verify failed: .*\n"));
        EXPECT_THAT(o.err, HasSubstr(r.reason));
        // s_server saw the client give up: no line reached it.
        auto s = server.wait(rill_test::tls_peer_run_limit);
        EXPECT_THAT(s.err, testing::Not(HasSubstr("CONNECTION ESTABLISHED")));
    }
}

TEST(TlsOpensslServer, InsecureConnectsAndSaysSo) {
    if (!rill_test::built_with_tls) GTEST_SKIP() << rill_test::without_tls_reason;
    if (!rill_test::program_available("openssl")) GTEST_SKIP() << "openssl is not installed";
    rill_test::tls_test_certificates certs;
    child_process server(s_server_argv(certs.self_signed));
    const int port = s_server_port(server);
    ASSERT_GT(port, 0);
    child_process send(
        {rill_tool, "send", "127.0.0.1:" + std::to_string(port), "abc", "--tls", "--insecure"});
    auto o = send.wait(rill_test::tls_peer_run_limit);
    EXPECT_EQ(o.out, "cba\n");
    EXPECT_EQ(o.exit_status, 0);
    EXPECT_EQ(o.err, "rill send: --insecure: the server's certificate and name are not verified\n");
}

// s_server -Verify 1 requires a client certificate signed by its -CAfile: rill send presents
// one with --tls-cert/--tls-key and is answered; without, the server refuses the handshake.
TEST(TlsOpensslServer, RillSendPresentsAClientCertificate) {
    if (!rill_test::built_with_tls) GTEST_SKIP() << rill_test::without_tls_reason;
    if (!rill_test::program_available("openssl")) GTEST_SKIP() << "openssl is not installed";
    rill_test::tls_test_certificates certs;
    for (const bool presented : {true, false}) {
        SCOPED_TRACE(presented ? "with the client certificate" : "without");
        child_process server(s_server_argv(certs.server, {"-CAfile", certs.ca.path.string(),
                                                          "-Verify", "1", "-verify_return_error"}));
        const int port = s_server_port(server);
        ASSERT_GT(port, 0);
        std::vector<std::string> argv = {rill_tool,
                                         "send",
                                         "127.0.0.1:" + std::to_string(port),
                                         "mutual",
                                         "--tls",
                                         "--tls-ca",
                                         certs.ca.path.string()};
        if (presented) {
            argv.insert(argv.end(), {"--tls-cert", certs.client.certificate.path.string(),
                                     "--tls-key", certs.client.private_key.path.string()});
        }
        child_process send(argv);
        auto o = send.wait(rill_test::tls_peer_run_limit);
        auto s = server.wait(rill_test::tls_peer_run_limit);
        if (presented) {
            EXPECT_EQ(o.out, "lautum\n");
            EXPECT_EQ(o.err, "");
            EXPECT_EQ(o.exit_status, 0);
            EXPECT_THAT(s.err, HasSubstr("CN = rill-test-client")) << s.err;
        } else {
            EXPECT_EQ(o.out, "");
            EXPECT_EQ(o.exit_status, 1);
            EXPECT_THAT(o.err, HasSubstr("tls ")) << o.err;
            EXPECT_THAT(o.err, HasSubstr("certificate required")) << o.err;
        }
    }
}

}  // namespace
