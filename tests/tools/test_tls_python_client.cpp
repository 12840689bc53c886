// Python's ssl module, with verification and the host name check on (cafile = the generated
// CA), against `rill echo --tls-cert/--tls-key`: TLS 1.3 and 1.2, the name given as a host
// name and as an IP address, lines echoed, and a clean close_notify exchange at the end.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "support/child_process.hpp"
#include "support/rill_tool.hpp"
#include "support/tls_certs.hpp"
#include "support/tls_peers.hpp"

namespace {

using rill_test::child_process;

struct python_case {
    std::string version;  // the Python client's VERSION argument
    std::string server_name;  // server_hostname: what the certificate must name
    std::string expected;  // SSLSocket.version()
};

TEST(TlsPythonClient, VerifiesTheHostNameAndEchoes) {
    if (!rill_test::built_with_tls) GTEST_SKIP() << rill_test::without_tls_reason;
    if (!rill_test::program_available("python3")) GTEST_SKIP() << "python3 is not installed";
    rill_test::tls_test_certificates certs;
    const auto log = certs.directory / "echo.log";
    child_process echo(rill_test::rill_tls_echo(certs.server, log));
    const int port = rill_test::start_rill_echo(echo);
    ASSERT_GT(port, 0);
    for (const python_case& c : {python_case{"tls1_3", "localhost", "TLSv1.3"},
                                 python_case{"tls1_2", "localhost", "TLSv1.2"},
                                 python_case{"any", "127.0.0.1", "TLSv1.3"}}) {
        SCOPED_TRACE(c.version + " " + c.server_name);
        child_process client(
            rill_test::python_tls_client(port, certs.ca.path.string(), c.server_name, c.version));
        ASSERT_GT(rill_test::python_client_local_port(client), 0);
        EXPECT_EQ(client.read_stdout_line(rill_test::tls_peer_start_limit),
                  "connected " + c.expected + " verified");
        client.write_stdin("from python\n");
        EXPECT_EQ(client.read_stdout_line(rill_test::tls_peer_start_limit),
                  "reply from python<CR>");
        client.write_stdin("\xce\xbb line two\n");
        EXPECT_EQ(client.read_stdout_line(rill_test::tls_peer_start_limit),
                  "reply \xce\xbb line two<CR>");
        // Python's unwrap sends close_notify and waits for the server's: rill echo reads end
        // of stream and closes with its own close_notify.
        auto o = client.wait(rill_test::tls_peer_run_limit);
        EXPECT_EQ(o.out, "closed cleanly\n");
        EXPECT_EQ(o.exit_status, 0) << o.err;
    }
    echo.stop();
    EXPECT_EQ(rill_test::read_file(log), "") << "clean closes are not failures";
}

TEST(TlsPythonClient, VerifiesTheIpv6LoopbackAddress) {
    if (!rill_test::built_with_tls) GTEST_SKIP() << rill_test::without_tls_reason;
    if (!rill_test::program_available("python3")) GTEST_SKIP() << "python3 is not installed";
    rill_test::tls_test_certificates certs;
    const auto log = certs.directory / "echo.log";
    auto argv = rill_test::rill_tls_echo(certs.server, log);
    std::replace(argv.begin(), argv.end(), std::string("127.0.0.1:0"), std::string("[::1]:0"));
    child_process echo(argv);
    const auto first = echo.read_stdout_line(rill_test::tls_peer_start_limit);
    if (!first) {
        const std::string why = rill_test::read_file(log);
        if (why.find("Cannot assign requested address") != std::string::npos ||
            why.find("Address family not supported") != std::string::npos)
            GTEST_SKIP() << "no IPv6 loopback here: " << why;
        FAIL() << "rill echo [::1]:0 printed no address; stderr: " << why;
    }
    ASSERT_THAT(*first, testing::MatchesRegex("\\[::1\\]:[0-9]+"));
    const int port = std::stoi(first->substr(first->rfind(':') + 1));
    // The certificate names IP:::1; Python checks the address against it.
    child_process client(
        rill_test::python_tls_client(port, certs.ca.path.string(), "::1", "any", "::1"));
    ASSERT_GT(rill_test::python_client_local_port(client), 0);
    EXPECT_EQ(client.read_stdout_line(rill_test::tls_peer_start_limit),
              "connected TLSv1.3 verified");
    client.write_stdin("over ipv6\n");
    auto o = client.wait(rill_test::tls_peer_run_limit);
    EXPECT_EQ(o.out, "reply over ipv6<CR>\nclosed cleanly\n") << o.err;
    EXPECT_EQ(o.exit_status, 0) << o.err;
}

}  // namespace
