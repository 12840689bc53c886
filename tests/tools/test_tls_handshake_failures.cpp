// Bad TLS peers of `rill echo --tls-cert/--tls-key`: plaintext sent to the TLS port, garbage
// handshake bytes, a client expecting another host name, and a certificate `rill send --tls`
// cannot trust (self-signed, expired). Each fails that one connection with a clear error
// naming it, quickly (not by the handshake timeout), while another TLS client, connected
// before and still open, keeps being served.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/loopback.hpp"
#include "support/rill_tool.hpp"
#include "support/tls_certs.hpp"
#include "support/tls_peers.hpp"

namespace {

using rill_test::child_process;
using rill_test::rill_tool;
using testing::HasSubstr;
using testing::MatchesRegex;
using testing::Not;

// Longer than every wait below: a failure that only the handshake timeout ended would make
// the test fail instead of passing late.
const std::string handshake_timeout_flag = "30s";

int local_port_of(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
    return ntohs(a.sin_port);
}

class TlsHandshakeFailures : public testing::Test {
protected:
    void SetUp() override {
        if (!rill_test::built_with_tls) GTEST_SKIP() << rill_test::without_tls_reason;
        if (!rill_test::program_available("python3")) GTEST_SKIP() << "python3 is not installed";
    }

    // Starts rill echo serving `served`, and a Python client (trusting `witness_ca`, or
    // nothing with "-") that is connected and answered once before the bad peer comes.
    void start(const rill_test::certificate_and_key& served, const std::string& witness_ca) {
        echo.emplace(rill_test::rill_tls_echo(served, log,
                                              {"--tls-handshake-timeout", handshake_timeout_flag}));
        port = rill_test::start_rill_echo(*echo);
        ASSERT_GT(port, 0);
        witness.emplace(rill_test::python_tls_client(port, witness_ca, "localhost"));
        witness_port = rill_test::python_client_local_port(*witness);
        ASSERT_GT(witness_port, 0);
        ASSERT_THAT(witness->read_stdout_line(rill_test::tls_peer_start_limit),
                    testing::Optional(testing::StartsWith("connected TLSv1.3")));
        witness_says("before the bad peer");
    }

    void witness_says(const std::string& text) {
        witness->write_stdin(text + "\n");
        EXPECT_EQ(witness->read_stdout_line(rill_test::tls_peer_start_limit),
                  "reply " + text + "<CR>");
    }

    // The bad peer's one failure report (a line of rill echo's stderr); then the witness,
    // still connected, is answered and closes cleanly, and no other failure was reported.
    std::string the_one_failure() {
        auto failures = rill_test::log_lines_with(log, "tls handshake with", 1);
        witness_says("after the bad peer");
        auto o = witness->wait(rill_test::tls_peer_run_limit);
        EXPECT_EQ(o.out, "closed cleanly\n");
        EXPECT_EQ(o.exit_status, 0) << o.err;
        // A new client is served too.
        child_process again(rill_test::python_tls_client(port, witness_ca_used, "localhost"));
        again.write_stdin("a new client\n");
        auto a = again.wait(rill_test::tls_peer_run_limit);
        EXPECT_THAT(a.out, HasSubstr("reply a new client<CR>\nclosed cleanly\n")) << a.err;
        echo->stop();
        const std::string whole_log = rill_test::read_file(log);
        EXPECT_THAT(whole_log, Not(HasSubstr("127.0.0.1:" + std::to_string(witness_port))))
            << "the witness's connection failed too";
        const auto all = rill_test::log_lines_with(log, "", 1, std::chrono::milliseconds(0));
        EXPECT_EQ(all.size(), 1u) << whole_log;
        if (failures.size() != 1) {
            ADD_FAILURE() << "expected one failure report, got:\n" << whole_log;
            return "";
        }
        // rill's unjoined-task report around the library's tls_error (which may name the
        // stream operation that ran the handshake first).
        EXPECT_THAT(failures[0],
                    MatchesRegex("rill: task [0-9]+ ended with an exception nobody "
                                 "joined: ([a-z_]+: )?tls handshake with 127\\.0\\.0\\.1:[0-9]+: "
                                 ".+"));
        return failures[0];
    }

    rill_test::tls_test_certificates certs;
    std::filesystem::path log = certs.directory / "echo.log";
    std::optional<child_process> echo;
    int port = 0;
    std::optional<child_process> witness;
    int witness_port = 0;
    std::string witness_ca_used;
};

TEST_F(TlsHandshakeFailures, PlaintextOnTheTlsPort) {
    witness_ca_used = certs.ca.path.string();
    start(certs.server, witness_ca_used);
    ASSERT_FALSE(HasFatalFailure());
    rill_test::raw_client plain(port);
    const int plain_port = local_port_of(plain.fd());
    plain.send("hello in plaintext\n");
    const std::string answer = plain.receive_all();  // the server closes the connection
    EXPECT_THAT(answer, Not(HasSubstr("hello"))) << "plaintext must not be echoed";
    EXPECT_TRUE(answer.empty() || answer[0] == '\x15')
        << "only a TLS alert record may come back, got " << answer.size() << " bytes";
    const std::string failure = the_one_failure();
    EXPECT_THAT(failure, HasSubstr("tls handshake with 127.0.0.1:" + std::to_string(plain_port) +
                                   ": wrong version number"));
}

TEST_F(TlsHandshakeFailures, GarbageHandshakeBytes) {
    witness_ca_used = certs.ca.path.string();
    start(certs.server, witness_ca_used);
    ASSERT_FALSE(HasFatalFailure());
    rill_test::raw_client garbage(port);
    const int garbage_port = local_port_of(garbage.fd());
    // A well-formed TLS record header (handshake, TLS 1.0 record version, 32 bytes) carrying
    // a handshake message of unknown type and nonsense length.
    std::string record = {'\x16', '\x03', '\x01', '\x00', '\x20'};
    record += std::string(32, '\xff');
    garbage.send(record);
    const std::string answer = garbage.receive_all();
    EXPECT_TRUE(answer.empty() || answer[0] == '\x15')
        << "only a TLS alert record may come back, got " << answer.size() << " bytes";
    const std::string failure = the_one_failure();
    EXPECT_THAT(failure, HasSubstr("tls handshake with 127.0.0.1:" + std::to_string(garbage_port) +
                                   ": unexpected message"));
}

TEST_F(TlsHandshakeFailures, ClientExpectingAnotherHostName) {
    witness_ca_used = certs.ca.path.string();
    start(certs.server, witness_ca_used);
    ASSERT_FALSE(HasFatalFailure());
    child_process wrong(
        rill_test::python_tls_client(port, certs.ca.path.string(), "wrong-host.example"));
    const int wrong_port = rill_test::python_client_local_port(wrong);
    auto o = wrong.wait(rill_test::tls_peer_run_limit);
    EXPECT_EQ(o.exit_status, 1) << o.err;
    EXPECT_THAT(o.out, HasSubstr("handshake failed: SSLCertVerificationError"));
    EXPECT_THAT(o.out, HasSubstr("wrong-host.example"));
    // The client's alert ends the handshake on the server's side too.
    const std::string failure = the_one_failure();
    EXPECT_THAT(failure, HasSubstr("tls handshake with 127.0.0.1:" + std::to_string(wrong_port) +
                                   ": sslv3 alert bad certificate"));
}

struct untrusted_case {
    const char* name;
    const rill_test::certificate_and_key rill_test::tls_test_certificates::*served;
    bool witness_verifies;  // the witness trusts the served certificate itself
    const char* reason;  // OpenSSL's verify error, as rill send reports it
    const char* alert;  // the alert rill send's refusal sends, as rill echo reports it
};

void PrintTo(const untrusted_case& c, std::ostream* os) { *os << c.name; }

class TlsUntrustedCertificate : public TlsHandshakeFailures,
                                public testing::WithParamInterface<untrusted_case> {};

TEST_P(TlsUntrustedCertificate, SeenByRillSend) {
    const untrusted_case& c = GetParam();
    const auto& served = certs.*(c.served);
    witness_ca_used = c.witness_verifies ? served.certificate.path.string() : "-";
    start(served, witness_ca_used);
    ASSERT_FALSE(HasFatalFailure());
    const std::string where = "127.0.0.1:" + std::to_string(port);
    child_process send(
        {rill_tool, "send", where, "never sent", "--tls", "--tls-ca", certs.ca.path.string()});
    auto o = send.wait(rill_test::tls_peer_run_limit);
    EXPECT_EQ(o.exit_status, 1);
    EXPECT_EQ(o.out, "");
    EXPECT_THAT(o.err, MatchesRegex("rill send: ([a-z_]+: )?tls handshake with " + where +
                                    ": certificate verify failed: .*\n"));
    EXPECT_THAT(o.err, HasSubstr(c.reason));
    // rill send's refusal (its alert) fails that connection on the server too.
    EXPECT_THAT(the_one_failure(), HasSubstr(c.alert));
}

INSTANTIATE_TEST_SUITE_P(
    Certificates, TlsUntrustedCertificate,
    testing::Values(untrusted_case{"SelfSigned", &rill_test::tls_test_certificates::self_signed,
                                   true, "self-signed certificate", "alert unknown ca"},
                    untrusted_case{"Expired", &rill_test::tls_test_certificates::expired, false,
                                   "certificate has expired", "alert certificate expired"}),
    [](const testing::TestParamInfo<untrusted_case>& info) { return info.param.name; });

}  // namespace
