// Many clients at once through the seed's echo server (a task per client, one line each):
// every client gets its own line back, silent clients hold up nobody, and every descriptor is
// given back at the end.
#include <gtest/gtest.h>

#include <atomic>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "net/net_test_support.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using rill::tcp_client_stream;
using rill::tcp_server_stream;

constexpr int many_clients = 1000;
// A client and its server-side stream each take a descriptor; the rest is headroom.
constexpr rlim_t descriptors_needed = 2 * many_clients + 256;

// The seed's echo handler.
void echo(tcp_client_stream& client) {
    if (auto line = rill::read_line(client)) rill::showln(client, *line);
    rill::flush_writer(client);
}

TEST(Concurrency, ThousandRillClientsAtOnce) {
    rill_test::descriptor_limit_at_least limit(descriptors_needed);
    if (!limit.ok()) GTEST_SKIP() << "RLIMIT_NOFILE's hard limit is below " << descriptors_needed;
    const int fds_before = rill_test::count_open_fds();
    std::atomic<int> answered{0};  // client tasks run on every worker
    rill::run([&] {
        // A backlog as large as the crowd: the clients all connect before the server task
        // runs, and a full backlog would make the kernel drop SYNs (a retry costs 1 s).
        tcp_server_stream server(0, {.backlog = many_clients});
        const int port = rill::tcp_server_socket_info(server).port_number;
        auto acceptor = rill::spawn([&] {
            while (auto client = rill::read(server))
                rill::spawn(
                    [c = std::move(*client)]() mutable { rill::call_with_stream(c, echo); });
        });
        std::vector<rill::task> clients;
        clients.reserve(many_clients);
        for (int i = 0; i < many_clients; ++i) {
            clients.push_back(rill::spawn([&, i] {
                tcp_client_stream c(port);
                const std::string line = "client " + std::to_string(i);
                rill::showln(c, line);
                rill::flush_writer(c);
                if (rill::read_line(c) == line) ++answered;
                EXPECT_FALSE(rill::read_line(c)) << "once: the server closes after the echo";
            }));
        }
        for (auto& t : clients) t.join();
        rill::close_stream(server);
        acceptor.join();
    });
    EXPECT_EQ(answered.load(), many_clients);
    EXPECT_EQ(rill_test::count_open_fds(), fds_before);
}

TEST(Concurrency, ThousandRawClientsAtOnceAgainstTwoWorkers) {
    rill_test::descriptor_limit_at_least limit(descriptors_needed);
    if (!limit.ok()) GTEST_SKIP() << "RLIMIT_NOFILE's hard limit is below " << descriptors_needed;
    const int fds_before = rill_test::count_open_fds();
    {
        rill_test::echo_server_thread server(
            {.server = {.backlog = many_clients}, .runtime = {.workers = 2}});
        // Every connection is open (and its task waiting for a line) before any line is sent.
        std::vector<std::unique_ptr<rill_test::raw_client>> clients;
        clients.reserve(many_clients);
        for (int i = 0; i < many_clients; ++i)
            clients.push_back(std::make_unique<rill_test::raw_client>(server.port()));
        for (int i = 0; i < many_clients; ++i) clients[i]->send("line " + std::to_string(i) + "\n");
        int answered = 0;
        for (int i = 0; i < many_clients; ++i) {
            if (clients[i]->receive_all() == "line " + std::to_string(i) + "\r\n") ++answered;
        }
        EXPECT_EQ(answered, many_clients);
        clients.clear();
        server.stop();
        EXPECT_EQ(server.clients_served(), many_clients);
    }
    EXPECT_EQ(rill_test::count_open_fds(), fds_before);
}

TEST(Concurrency, SilentClientsDoNotDelayOthers) {
    constexpr int silent_clients = 200;
    const int fds_before = rill_test::count_open_fds();
    {
        // The silent clients connect as fast as one thread can: a backlog that holds them all
        // keeps a momentarily busy acceptor from making the kernel drop a SYN (whose retry
        // costs the client 1 s and the test its speed).
        rill_test::echo_server_thread server({.server = {.backlog = 2 * silent_clients}});
        std::vector<std::unique_ptr<rill_test::raw_client>> silent;
        for (int i = 0; i < silent_clients; ++i)
            silent.push_back(std::make_unique<rill_test::raw_client>(server.port()));
        // Let the server accept them all and park a task on each.
        EXPECT_TRUE(rill_test::thread_wait_until(
            [&] { return server.clients_served() == silent_clients; }, 1s));
        EXPECT_EQ(server.clients_served(), silent_clients);

        std::chrono::steady_clock::duration slowest{};
        for (int round = 0; round < 5; ++round) {
            const auto start = std::chrono::steady_clock::now();
            rill_test::raw_client active(server.port());
            active.send("are you there\n");
            EXPECT_EQ(active.receive_line(), "are you there\r\n");
            slowest = std::max(slowest, std::chrono::steady_clock::now() - start);
        }
        std::printf("slowest round trip beside %d silent clients: %.3f ms\n", silent_clients,
                    std::chrono::duration<double, std::milli>(slowest).count());
        EXPECT_LT(slowest, 1s);
        // The silent ones are still connected and still get their echo when they speak.
        silent.front()->send("late\n");
        EXPECT_EQ(silent.front()->receive_all(), "late\r\n");
        silent.clear();
        server.stop();
    }
    EXPECT_EQ(rill_test::count_open_fds(), fds_before);
}

}  // namespace
