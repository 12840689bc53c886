// Gambit Scheme's TLS (the reference's runtime: make-tls-context, and tls-context: on
// open-tcp-client and open-tcp-server) against rill, both ways: a Gambit client against
// `rill echo --tls-cert/--tls-key`, and `rill send --tls --tls-ca` against a Gambit TLS echo
// server. Skipped, with the probe's own error, only where gsi was built without OpenSSL.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <string>

#include "support/child_process.hpp"
#include "support/rill_tool.hpp"
#include "support/tls_certs.hpp"
#include "support/tls_peers.hpp"

namespace {

using namespace std::chrono_literals;
using rill_test::child_process;
using rill_test::rill_tool;
using testing::MatchesRegex;

// Why Gambit's TLS cannot be used here, or nothing when it can: gsi must exist and make a TLS
// context (Debian's gambc 4.9 is configured with --enable-openssl).
std::optional<std::string> gambit_tls_unavailable() {
    if (!rill_test::program_available("gsi"))
        return "gsi (Gambit Scheme, package gambc) is not installed";
    child_process probe({"gsi", "-e", "(make-tls-context) (display \"tls ok\")"});
    auto o = probe.wait(10s);
    if (o.exit_status == 0 && o.out == "tls ok") return std::nullopt;
    return "gsi -e '(make-tls-context)' failed (exit " + std::to_string(o.exit_status) +
           "): " + o.err + o.out;
}

TEST(TlsGambit, GambitClientAgainstRillEcho) {
    if (!rill_test::built_with_tls) GTEST_SKIP() << rill_test::without_tls_reason;
    if (auto why = gambit_tls_unavailable()) GTEST_SKIP() << *why;
    rill_test::tls_test_certificates certs;
    const auto log = certs.directory / "echo.log";
    child_process echo(rill_test::rill_tls_echo(certs.server, log));
    const int port = rill_test::start_rill_echo(echo);
    ASSERT_GT(port, 0);
    // A Gambit client context verifies the server against OpenSSL's default locations, which
    // SSL_CERT_FILE names; the generated CA is the only one it trusts here.
    const std::string script =
        "(let ((p (open-tcp-client (list server-address: \"127.0.0.1\" port-number: " +
        std::to_string(port) +
        " eol-encoding: 'cr-lf tls-context: (make-tls-context)))))"
        " (display \"hello from gambit over tls\" p) (newline p) (force-output p)"
        " (write (read-line p)) (newline) (display \"second\" p) (newline p) (force-output p)"
        " (write (read-line p)) (newline) (close-port p))";
    child_process gsi({"env", "SSL_CERT_FILE=" + certs.ca.path.string(), "gsi", "-e", script});
    auto o = gsi.wait(rill_test::tls_peer_run_limit);
    EXPECT_EQ(o.out, "\"hello from gambit over tls\"\n\"second\"\n") << o.err;
    EXPECT_EQ(o.exit_status, 0) << o.err;

    // The same client trusting nothing (an empty CA file): Gambit refuses rill's certificate,
    // so the success above was a verified TLS connection. rill echo reports that connection.
    const auto no_ca = certs.directory / "empty-ca.pem";
    { std::ofstream(no_ca).flush(); }
    child_process untrusting({"env", "SSL_CERT_FILE=" + no_ca.string(), "gsi", "-e", script});
    auto refused = untrusting.wait(rill_test::tls_peer_run_limit);
    EXPECT_NE(refused.exit_status, 0);
    EXPECT_EQ(refused.out, "");
    const auto failures = rill_test::log_lines_with(log, "tls handshake with", 1);
    ASSERT_EQ(failures.size(), 1u) << rill_test::read_file(log);
    EXPECT_THAT(failures[0], testing::HasSubstr("unknown ca")) << "Gambit's alert, as rill saw it";
}

TEST(TlsGambit, RillSendAgainstGambitServer) {
    if (!rill_test::built_with_tls) GTEST_SKIP() << rill_test::without_tls_reason;
    if (auto why = gambit_tls_unavailable()) GTEST_SKIP() << *why;
    rill_test::tls_test_certificates certs;
    // A Gambit TLS echo server on a port the kernel picks; it prints the port, then serves
    // one connection line by line (CR LF line ends, as rill writes them), printing each line
    // it read. Gambit 4.9.3 does not take a peer's close_notify as end of file: its read
    // fails ("Unknown error" from read-char), or, depending on timing, returns the last line
    // once more and the answer's write fails (Python's ssl unwrap and openssl s_client get the
    // same from it), and closing its side may then fail too. The script takes all that as the end
    // of the connection; the test looks only at what came before.
    const std::string script =
        "(let* ((ctx (make-tls-context options: '(server-mode) certificate: \"" +
        certs.server.certificate.path.string() + "\" private-key: \"" +
        certs.server.private_key.path.string() +
        "\")) (s (open-tcp-server (list server-address: \"127.0.0.1\" port-number: 0"
        " eol-encoding: 'cr-lf tls-context: ctx))))"
        " (display (socket-info-port-number (tcp-server-socket-info s))) (newline) (force-output)"
        " (let ((c (read s)))"
        "  (with-exception-catcher"
        "   (lambda (e) (display \"ended by: \") (display-exception e))"
        "   (lambda () (let echo () (let ((line (read-line c)))"
        "    (write line) (newline) (force-output)"
        "    (if (not (eof-object? line))"
        "     (begin (display (string-append \"gambit: \" line) c) (newline c) (force-output c)"
        "      (echo)))))))"
        "  (with-exception-catcher"
        "   (lambda (e) (display \"close: \") (display-exception e))"
        "   (lambda () (close-port c)))))";
    child_process gsi({"gsi", "-e", script});
    auto first = gsi.read_stdout_line(rill_test::tls_peer_start_limit);
    ASSERT_TRUE(first) << "the Gambit server printed no port; stderr: " << gsi.wait(1s).err;
    ASSERT_THAT(*first, MatchesRegex("[0-9]+"));
    child_process send({rill_tool, "send", "127.0.0.1:" + *first, "hello from rill", "again",
                        "--tls", "--tls-ca", certs.ca.path.string(), "--server-name", "localhost"});
    auto o = send.wait(rill_test::tls_peer_run_limit);
    EXPECT_EQ(o.out, "gambit: hello from rill\ngambit: again\n");
    EXPECT_EQ(o.err, "");
    EXPECT_EQ(o.exit_status, 0);
    auto g = gsi.wait(rill_test::tls_peer_run_limit);
    EXPECT_EQ(g.exit_status, 0) << "stdout: " << g.out << "stderr: " << g.err;
    // Both lines arrived whole, in order, before rill's close.
    EXPECT_THAT(g.out, testing::StartsWith("\"hello from rill\"\n\"again\"\n")) << g.err;
}

}  // namespace
