// Clients that connect and say nothing. With `rill echo --reader-timeout 200ms` they are shed
// and the next client is served; with --max-connections and a small descriptor limit as well,
// a crowd of them holds the server at its limits only until the timeout sheds them: a client
// that does speak is still answered.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "support/child_limits.hpp"
#include "support/child_process.hpp"
#include "support/loopback.hpp"
#include "support/rill_tool.hpp"

namespace {

using namespace std::chrono_literals;
using rill_test::raw_client;

using crowd = std::vector<std::unique_ptr<raw_client>>;

crowd silent_crowd(int port, int size) {
    crowd c;
    for (int i = 0; i < size; ++i) c.push_back(std::make_unique<raw_client>(port));
    return c;
}

// How many of the crowd the server closed (end of stream or reset) within the time limit.
int shed_count(crowd& c) {
    int shed = 0;
    for (auto& client : c) {
        try {
            if (client->receive_all().empty()) ++shed;
        } catch (const std::exception&) {
            // still open past the limit: not shed
        }
    }
    return shed;
}

TEST(SilentPeers, AreShedAndTheNextClientIsServed) {
    rill_test::rill_echo echo({"127.0.0.1:0", "--mode", "persistent", "--reader-timeout", "200ms"});
    const int port = echo.port();
    ASSERT_GT(port, 0);
    constexpr int crowd_size = 50;
    auto silent = silent_crowd(port, crowd_size);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(shed_count(silent), crowd_size);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
    raw_client speaker(port);
    speaker.send("hello\n");
    EXPECT_EQ(speaker.receive_line(), "hello\r\n");
}

// A crowd larger than the server's limits connects and says nothing; a client that connects
// after them is answered once the timeout has shed the crowd ahead of it.
void crowd_cannot_lock_the_speaker_out(int max_connections, int free_descriptors) {
    rill_test::rill_echo echo({"127.0.0.1:0", "--mode", "persistent", "--reader-timeout", "200ms",
                               "--max-connections", std::to_string(max_connections)});
    const int port = echo.port();
    ASSERT_GT(port, 0);
    const int held = rill_test::open_fds_of(echo.pid());
    ASSERT_GT(held, 0);
    ASSERT_TRUE(rill_test::limit_child(echo.pid(), RLIMIT_NOFILE,
                                       static_cast<rlim_t>(held + free_descriptors)));
    // Several times what the limits let in: the rest wait in the listen backlog.
    constexpr int crowd_size = 60;
    auto silent = silent_crowd(port, crowd_size);
    raw_client speaker(port);
    const auto start = std::chrono::steady_clock::now();
    speaker.send("let me in\n");
    EXPECT_EQ(speaker.receive_line(), "let me in\r\n");
    const auto waited = std::chrono::steady_clock::now() - start;
    // The limits held it back (a server without them answers at once) ...
    EXPECT_GE(waited, 200ms);
    // ... for at most crowd_size / min(limits) rounds of the 200 ms timeout.
    const int per_round = std::min(max_connections, free_descriptors);
    EXPECT_LT(waited, 200ms * (crowd_size / per_round + 2) + 2s);
    EXPECT_EQ(shed_count(silent), crowd_size);
    // The server is alive: it serves again and is still the same process.
    raw_client later(port);
    later.send("again\n");
    EXPECT_EQ(later.receive_line(), "again\r\n");
}

TEST(SilentPeers, CannotLockOutAClientBelowTheDescriptorLimit) {
    // max_connections keeps the server below its descriptor limit.
    crowd_cannot_lock_the_speaker_out(8, 32);
}

TEST(SilentPeers, CannotLockOutAClientAtTheDescriptorLimit) {
    // The descriptor limit comes first: accept fails (EMFILE) and backs off until the
    // timeout frees descriptors.
    crowd_cannot_lock_the_speaker_out(64, 8);
}

}  // namespace
