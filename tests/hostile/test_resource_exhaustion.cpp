// `rill echo` squeezed for resources while it serves: an address-space limit (no stack can be
// mapped for a new client's task) and a descriptor limit (no descriptor for a new client).
// The clients beyond the resources are dropped or wait in the backlog, the ones it has keep
// being served, the server survives and serves again once the others close, and what it rode
// out shows (its stderr, or rill::counters_snapshot in the process).
#include <sys/resource.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "net/net_test_support.hpp"
#include "runtime/runtime_test_support.hpp"
#include "support/child_limits.hpp"
#include "support/child_process.hpp"
#include "support/loopback.hpp"
#include "support/process_limits.hpp"
#include "support/rill_tool.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using rill_test::raw_client;
using testing::HasSubstr;

using clients = std::vector<std::unique_ptr<raw_client>>;

// Connects `n` clients that each say `line` and get it back.
clients served_clients(int port, int n, const std::string& line) {
    clients c;
    for (int i = 0; i < n; ++i) {
        c.push_back(std::make_unique<raw_client>(port));
        c.back()->send(line + "\n");
        EXPECT_EQ(c.back()->receive_line(), line + "\r\n");
    }
    return c;
}

// True when a new client is answered within a few attempts (each attempt that is dropped
// is one more client the server could not take yet).
bool new_client_served(int port) {
    for (int attempt = 0; attempt < 50; ++attempt) {
        raw_client c(port);
        c.send("back\n");
        try {
            if (c.receive_line() == "back\r\n") return true;
        } catch (const std::exception&) {
            // dropped: its task could not start yet
        }
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

// Task stacks come 16 to a mapping (src/runtime/fiber.cpp): with one worker, the echo's main
// task and 15 clients fill the first one.
constexpr int clients_filling_first_slab = 15;

TEST(ResourceExhaustion, AddressSpaceLimitDropsNewClientsOnly) {
    if (rill_test::under_asan || rill_test::under_tsan)
        GTEST_SKIP() << "a sanitized rill reserves address space an RLIMIT_AS cannot allow";
    rill_test::rill_echo echo({"127.0.0.1:0", "--workers", "1", "--mode", "persistent"});
    const int port = echo.port();
    ASSERT_GT(port, 0);
    // rill reports a detached task's failure from a thread it starts at the first report (and
    // that cannot start under the limit): a client whose line is too long ends its task with
    // line_too_long, and that report starts it now. (Its stack is free again
    // afterwards: the kept clients below take it.)
    const int threads_before = rill_test::threads_of(echo.pid());
    {
        raw_client rude(port);
        rude.send(std::string(70 * 1024, 'x') + "\n");
        EXPECT_EQ(rude.receive_all(), "");
    }
    ASSERT_TRUE(rill_test::thread_wait_until(
        [&] { return rill_test::threads_of(echo.pid()) > threads_before; }));
    clients kept = served_clients(port, clients_filling_first_slab, "kept");
    // From now on no new mapping of task stacks fits.
    const rlim_t mapped = rill_test::mapped_bytes_of(echo.pid());
    ASSERT_GT(mapped, 0u);
    ASSERT_TRUE(rill_test::limit_child(echo.pid(), RLIMIT_AS, mapped + 256 * 1024));

    constexpr int newcomers = 8;
    int dropped = 0;
    for (int i = 0; i < newcomers; ++i) {
        raw_client c(port);
        c.send("newcomer\n");
        // Dropped: closed (or reset) without an answer.
        if (c.receive_all().empty()) ++dropped;
    }
    EXPECT_EQ(dropped, newcomers);
    // The clients it has are still served.
    for (auto& c : kept) {
        c->send("still\n");
        EXPECT_EQ(c->receive_line(), "still\r\n");
    }
    // Some leave: their stacks are free again, and a new client is served.
    kept.resize(kept.size() - 4);
    EXPECT_TRUE(new_client_served(port));
    kept.clear();

    auto o = echo.wait(100ms);  // stopped by the test: the server never ended by itself
    EXPECT_THAT(o.err, HasSubstr("read_line: line longer than max_line_length"));
    EXPECT_THAT(o.err, HasSubstr("spawn: mmap task stacks: Cannot allocate memory"));
}

TEST(ResourceExhaustion, DescriptorLimitKeepsNewClientsWaiting) {
    rill_test::rill_echo echo({"127.0.0.1:0", "--workers", "2", "--mode", "persistent"});
    const int port = echo.port();
    ASSERT_GT(port, 0);
    const int held = rill_test::open_fds_of(echo.pid());
    ASSERT_GT(held, 0);
    constexpr int room = 4;
    ASSERT_TRUE(
        rill_test::limit_child(echo.pid(), RLIMIT_NOFILE, static_cast<rlim_t>(held + room)));
    clients kept = served_clients(port, room, "kept");
    // Beyond the descriptors: they wait in the backlog, unanswered, not dropped.
    constexpr int waiting_count = 6;
    clients waiting;
    for (int i = 0; i < waiting_count; ++i) {
        waiting.push_back(std::make_unique<raw_client>(port));
        waiting.back()->send("waiting " + std::to_string(i) + "\n");
    }
    EXPECT_TRUE(waiting.back()->quiet_for(300ms));
    for (auto& c : kept) {
        c->send("still\n");
        EXPECT_EQ(c->receive_line(), "still\r\n");
    }
    // The others close: every waiting client is answered in turn.
    kept.clear();
    for (int i = 0; i < waiting_count; ++i) {
        EXPECT_EQ(waiting[static_cast<std::size_t>(i)]->receive_line(),
                  "waiting " + std::to_string(i) + "\r\n");
        waiting[static_cast<std::size_t>(i)]->close();
    }
    EXPECT_TRUE(new_client_served(port));
}

// In the process: the same descriptor squeeze, its accept retries counted.
TEST(ResourceExhaustion, AcceptRetriesOutOfDescriptorsAreCounted) {
    rill_test::echo_server_thread server({.persistent = true});
    raw_client newcomer_socket_holder(server.port());  // warms the server up
    newcomer_socket_holder.send("warm\n");
    ASSERT_EQ(newcomer_socket_holder.receive_line(), "warm\r\n");
    // A socket made before the squeeze connects during it.
    int newcomer = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(newcomer, 0);
    timeval tv{10, 0};
    setsockopt(newcomer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const auto before = rill::counters_snapshot();
    rill_test::descriptor_starvation starvation;
    ASSERT_TRUE(starvation.active());
    const rill_test::loopback_sockaddr to(server.port(), false);
    const bool connected = ::connect(newcomer, to.get(), to.length) == 0;
    const bool counted = rill_test::thread_wait_until([&] {
        return rill::counters_snapshot().accept_errors_retried > before.accept_errors_retried;
    });
    starvation.end();
    ASSERT_TRUE(connected);
    EXPECT_TRUE(counted) << "no accept retry was counted out of descriptors";
    ASSERT_EQ(::send(newcomer, "late\n", 5, MSG_NOSIGNAL), 5);
    char reply[16] = {};
    std::string got;
    while (got.find('\n') == std::string::npos) {
        ssize_t n =
            rill_test::retry_interrupted([&] { return ::recv(newcomer, reply, sizeof reply, 0); });
        if (n <= 0) break;
        got.append(reply, static_cast<std::size_t>(n));
    }
    ::close(newcomer);
    EXPECT_EQ(got, "late\r\n");
}

}  // namespace
