// `openssl s_client` against `rill echo --tls-cert/--tls-key`: the handshake verifies against
// the generated CA (for the host name and for the IP address), in TLS 1.3 and in TLS 1.2, and
// lines come back echoed over the encrypted connection.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/rill_tool.hpp"
#include "support/tls_certs.hpp"
#include "support/tls_peers.hpp"

namespace {

using rill_test::child_process;
using testing::HasSubstr;

struct s_client_case {
    std::string version_flag;  // -tls1_3 or -tls1_2
    std::string expected_version;  // as s_client -brief names it
    std::vector<std::string> name_check;
};

TEST(TlsOpensslClient, VerifiesAndEchoesInTls13AndTls12) {
    if (!rill_test::built_with_tls) GTEST_SKIP() << rill_test::without_tls_reason;
    if (!rill_test::program_available("openssl")) GTEST_SKIP() << "openssl is not installed";
    rill_test::tls_test_certificates certs;
    const auto log = certs.directory / "echo.log";
    child_process echo(rill_test::rill_tls_echo(certs.server, log));
    const int port = rill_test::start_rill_echo(echo);
    ASSERT_GT(port, 0);
    for (const s_client_case& c :
         {s_client_case{"-tls1_3", "TLSv1.3", {"-verify_hostname", "localhost"}},
          s_client_case{"-tls1_2", "TLSv1.2", {"-verify_hostname", "localhost"}},
          s_client_case{"-tls1_3", "TLSv1.3", {"-verify_ip", "127.0.0.1"}}}) {
        SCOPED_TRACE(c.version_flag + " " + c.name_check[0]);
        std::vector<std::string> argv = {"openssl",
                                         "s_client",
                                         "-connect",
                                         "127.0.0.1:" + std::to_string(port),
                                         "-servername",
                                         "localhost",
                                         "-CAfile",
                                         certs.ca.path.string(),
                                         "-verify_return_error",
                                         "-brief",
                                         "-nocommands",
                                         c.version_flag};
        argv.insert(argv.end(), c.name_check.begin(), c.name_check.end());
        child_process client(argv);
        // Each line is answered before the next is sent: the echo is over the TLS connection
        // (the server speaks nothing else), line by line.
        client.write_stdin("first line\n");
        EXPECT_EQ(client.read_stdout_line(rill_test::tls_peer_start_limit), "first line\r");
        client.write_stdin("caf\xc3\xa9 and more\n");
        EXPECT_EQ(client.read_stdout_line(rill_test::tls_peer_start_limit),
                  "caf\xc3\xa9 and more\r");
        // End of input: s_client sends close_notify and ends.
        auto o = client.wait(rill_test::tls_peer_run_limit);
        EXPECT_EQ(o.exit_status, 0) << o.err;
        EXPECT_EQ(o.out, "");
        EXPECT_THAT(o.err, HasSubstr("CONNECTION ESTABLISHED"));
        EXPECT_THAT(o.err, HasSubstr("Protocol version: " + c.expected_version));
        EXPECT_THAT(o.err, HasSubstr("Verification: OK"));
    }
    // Clean closes are not failures: rill echo reported nothing.
    echo.stop();
    EXPECT_EQ(rill_test::read_file(log), "");
}

}  // namespace
