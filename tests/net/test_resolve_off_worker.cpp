// A host name is looked up on a helper thread: while getaddrinfo waits (for a name server,
// say), the other tasks of the worker run, and the waiting task can be cancelled. The slow
// name server is simulated by a lookup function that sleeps before calling getaddrinfo.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <rill/rill.hpp>

#include "net/resolve.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr auto lookup_delay = 300ms;
std::atomic<int> slow_lookups{0};  // started
std::atomic<int> slow_lookups_finished{0};  // returned to the resolver

int slow_getaddrinfo(const char* host, const char* service, const addrinfo* hints,
                     addrinfo** results) {
    if (hints->ai_flags & AI_NUMERICHOST) return ::getaddrinfo(host, service, hints, results);
    // A name: the part that may reach DNS.
    slow_lookups.fetch_add(1);
    std::this_thread::sleep_for(lookup_delay);
    const int r = ::getaddrinfo(host, service, hints, results);
    slow_lookups_finished.fetch_add(1);
    return r;
}

// Installs the slow lookup for one test.
struct ResolveOffWorker : ::testing::Test {
    void SetUp() override {
        slow_lookups = 0;
        slow_lookups_finished = 0;
        rill::detail::name_lookup = &slow_getaddrinfo;
    }
    void TearDown() override { rill::detail::name_lookup = &::getaddrinfo; }
};

TEST_F(ResolveOffWorker, OtherTasksOfTheWorkerRunDuringALookup) {
    int ticks_during_lookup = 0;
    std::string reply;
    rill::run(
        [&] {
            rill::tcp_server_stream server(0);
            const int port = rill::tcp_server_socket_info(server).port_number;
            rill::task echo = rill::spawn([&] {
                auto c = rill::read(server);
                if (!c) return;
                if (auto line = rill::read_line(*c)) rill::showln(*c, *line);
                rill::close_stream(*c);
            });
            std::atomic<bool> looked_up{false};
            rill::task ticker = rill::spawn([&] {
                while (!looked_up) {
                    rill::task_sleep(5ms);
                    ++ticks_during_lookup;
                }
            });
            rill::tcp_client_stream client("localhost:" + std::to_string(port));
            looked_up = true;
            rill::showln(client, "hello");
            rill::flush_writer(client);
            reply = rill::read_line(client).value_or("<eof>");
            ticker.join();
            echo.join();
        },
        {.workers = 1});
    EXPECT_GE(slow_lookups.load(), 1);
    EXPECT_EQ(reply, "hello");
    // 300 ms of lookup at 5 ms a tick: a worker held up by the lookup would tick about once.
    EXPECT_GE(ticks_during_lookup, 10);
}

TEST_F(ResolveOffWorker, ACancelledLookupDoesNotHoldUpTheEndOfRun) {
    std::atomic<bool> connected{false};
    const auto start = steady::now();
    rill::run(
        [&] {
            rill::spawn([&] {
                rill::tcp_client_stream client("localhost:9");  // cancelled while it resolves
                connected = true;
            });
            // Once the lookup is under way main returns, and the task is cancelled.
            ASSERT_TRUE(rill_test::task_wait_until([] { return slow_lookups.load() == 1; }));
        },
        {.workers = 1});
    const auto took = steady::now() - start;
    EXPECT_FALSE(connected.load());
    EXPECT_LT(took, lookup_delay);
    // The helper thread still finishes its lookup, touching only what it owns.
    EXPECT_TRUE(rill_test::thread_wait_until([] { return slow_lookups_finished.load() == 1; }));
    EXPECT_EQ(slow_lookups.load(), 1);
}

TEST_F(ResolveOffWorker, ManyLookupsAtOnceAllComplete) {
    constexpr int clients = 20;  // more than the helper threads: the rest queue
    std::atomic<int> answered{0};
    rill::run([&] {
        rill::tcp_server_stream server(0);
        const int port = rill::tcp_server_socket_info(server).port_number;
        rill::task acceptor = rill::spawn([&] {
            for (int i = 0; i < clients; ++i) {
                auto c = rill::read(server);
                if (!c) return;
                rill::spawn([c = std::move(*c)]() mutable {
                    rill::call_with_stream(c, [](rill::tcp_client_stream& s) {
                        if (auto line = rill::read_line(s)) rill::showln(s, *line);
                    });
                });
            }
        });
        std::vector<rill::task> tasks;
        for (int i = 0; i < clients; ++i)
            tasks.push_back(rill::spawn([&, i] {
                rill::tcp_client_stream c("localhost:" + std::to_string(port));
                rill::showln(c, i);
                rill::flush_writer(c);
                if (rill::read_line(c) == std::to_string(i)) ++answered;
            }));
        for (auto& t : tasks) t.join();
        acceptor.join();
    });
    EXPECT_EQ(answered.load(), clients);
    EXPECT_EQ(slow_lookups.load(), clients);
}

TEST_F(ResolveOffWorker, NumericHostsNeverWaitForTheResolver) {
    rill::run([&] {
        rill::tcp_server_stream server("127.0.0.1:0");
        const int port = rill::tcp_server_socket_info(server).port_number;
        rill::tcp_client_stream client("127.0.0.1:" + std::to_string(port));
        rill::tcp_client_stream client6;
        try {
            rill::tcp_server_stream server6("[::1]:0");
            client6 = rill::tcp_client_stream(
                "[::1]:" + std::to_string(rill::tcp_server_socket_info(server6).port_number));
        } catch (const rill::os_error&) {
            // no IPv6 loopback here: the IPv4 half still checks the rule
        }
    });
    EXPECT_EQ(slow_lookups.load(), 0);
}

}  // namespace
