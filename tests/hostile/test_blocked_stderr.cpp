// `rill echo` whose stderr is a pipe nobody reads, with clients whose connections each end in
// an error reported there: the server keeps answering the others.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "support/child_process.hpp"
#include "support/loopback.hpp"
#include "support/rill_tool.hpp"

using namespace std::chrono_literals;

namespace {
// Far more report lines than a pipe holds (64 KiB of ~100-byte lines).
constexpr int failing_clients = 1500;
}  // namespace

TEST(HostileBlockedStderr, ReportsNeverStallTheServer) {
    // raise mode: each client's one undecodable byte ends its task with a decoding_error,
    // which nobody joins: one report each.
    rill_test::rill_echo echo({"127.0.0.1:0", "--workers", "1", "--mode", "persistent",
                               "--transcoder", "UTF-8,lf,raise"});
    const int port = echo.port();
    ASSERT_NE(port, 0);
    for (int i = 0; i < failing_clients; ++i) {
        rill_test::raw_client bad(port);
        bad.send("\xff\n");
        // The server ends the connection after the error: wait for that, so the failures
        // really happen now, one per client.
        EXPECT_EQ(bad.receive_all(), "") << "client " << i;
    }
    // The server still answers, promptly.
    rill_test::raw_client good(port);
    const auto asked = std::chrono::steady_clock::now();
    good.send("still here\n");
    EXPECT_EQ(good.receive_line(), "still here\n");
    EXPECT_LT(std::chrono::steady_clock::now() - asked, 2s);
    good.close();
    // The lines that did get out are the reports, and the rest were counted.
    echo.stop();
    auto o = echo.wait(2s);
    EXPECT_NE(o.err.find("ended with an exception nobody joined: "), std::string::npos)
        << o.err.substr(0, 500);
    EXPECT_NE(o.err.find("cannot decode bytes FF"), std::string::npos) << o.err.substr(0, 500);
}
