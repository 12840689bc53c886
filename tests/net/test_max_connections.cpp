// server_options::max_connections: with N clients open, read(server) accepts the next one
// only once one of them closes (the newcomer waits in the backlog, nothing spins meanwhile);
// closing the server while read waits at the limit makes it return empty; it holds when the
// clients are served, and closed, on other workers.
#include <sys/resource.h>
#include <sys/time.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "net/net_test_support.hpp"

namespace {

using namespace std::chrono_literals;

// Long enough for a server that ignored the cap to have answered a newcomer on loopback.
constexpr auto unserved_for = 300ms;

double cpu_seconds_of_process() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    auto seconds = [](const timeval& tv) {
        return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
    };
    return seconds(u.ru_utime) + seconds(u.ru_stime);
}

// `cap` clients are served; the next one is answered only after one of them closes.
void newcomer_waits_for_a_close(int workers) {
    constexpr int cap = 3;
    rill_test::echo_server_thread server(
        {.server = {.max_connections = cap}, .runtime = {.workers = workers}, .persistent = true});
    std::vector<std::unique_ptr<rill_test::raw_client>> open;
    for (int i = 0; i < cap; ++i) {
        open.push_back(std::make_unique<rill_test::raw_client>(server.port()));
        open.back()->send("first " + std::to_string(i) + "\n");
        ASSERT_EQ(open.back()->receive_line(), "first " + std::to_string(i) + "\r\n");
    }
    // The newcomer's handshake completes in the backlog; its line waits there unanswered.
    rill_test::raw_client newcomer(server.port());
    newcomer.send("newcomer\n");
    const double cpu_before = cpu_seconds_of_process();
    EXPECT_TRUE(newcomer.quiet_for(unserved_for)) << "served beyond max_connections";
    const double cpu_waiting = cpu_seconds_of_process() - cpu_before;
    EXPECT_LT(cpu_waiting, 0.1) << "the server spins at its limit";
    EXPECT_EQ(server.clients_served(), cap);
    // The open clients are still served meanwhile.
    for (auto& c : open) {
        c->send("still\n");
        EXPECT_EQ(c->receive_line(), "still\r\n");
    }
    // One leaves: the newcomer is accepted and answered.
    open.front()->close();
    EXPECT_EQ(newcomer.receive_line(), "newcomer\r\n");
    EXPECT_EQ(server.clients_served(), cap + 1);
    open.clear();  // every slot free again, so the server's stop can get in
}

TEST(MaxConnections, NewcomerIsAcceptedOnlyAfterOneCloses) { newcomer_waits_for_a_close(1); }

TEST(MaxConnections, ClientsServedOnOtherWorkers) { newcomer_waits_for_a_close(3); }

TEST(MaxConnections, SlotsComeBackRoundAfterRound) {
    // Clients on several workers close in every round; each close lets exactly one waiting
    // newcomer in, whichever worker the close happened on.
    constexpr int cap = 4;
    constexpr int rounds = 5;
    rill_test::echo_server_thread server(
        {.server = {.max_connections = cap}, .runtime = {.workers = 2}, .persistent = true});
    std::vector<std::unique_ptr<rill_test::raw_client>> open;
    for (int i = 0; i < cap; ++i) {
        open.push_back(std::make_unique<rill_test::raw_client>(server.port()));
        open.back()->send("hello\n");
        ASSERT_EQ(open.back()->receive_line(), "hello\r\n");
    }
    for (int round = 0; round < rounds; ++round) {
        SCOPED_TRACE(round);
        auto waiting = std::make_unique<rill_test::raw_client>(server.port());
        waiting->send("round " + std::to_string(round) + "\n");
        EXPECT_TRUE(waiting->quiet_for(50ms));
        open.erase(open.begin());  // closes the oldest client
        EXPECT_EQ(waiting->receive_line(), "round " + std::to_string(round) + "\r\n");
        open.push_back(std::move(waiting));
    }
    EXPECT_EQ(server.clients_served(), cap + rounds);
    open.clear();
}

TEST(MaxConnections, ClosingTheServerWakesAReadWaitingAtTheLimit) {
    for (int workers : {1, 2}) {
        SCOPED_TRACE(workers);
        bool second_read_returned_client = true;
        std::chrono::steady_clock::duration woke_after{};
        rill::run(
            [&] {
                rill::tcp_server_stream server("127.0.0.1:0", {.max_connections = 1});
                const int port = rill::tcp_server_socket_info(server).port_number;
                rill::tcp_client_stream first_peer(port);
                rill::tcp_client_stream second_peer(port);  // waits in the backlog
                auto first = rill::read(server);
                ASSERT_TRUE(first);
                rill::channel<int> reading(1);
                auto reader = rill::spawn([&] {
                    reading.send(1);
                    auto c = rill::read(server);  // at the limit: waits for a slot
                    second_read_returned_client = c.has_value();
                });
                (void)reading.receive();
                // The reader is waiting at the limit now (one worker: it ran until it parked;
                // several: it may still be on its way, and then finds the server closed).
                rill::task_yield();
                const auto closed_at = std::chrono::steady_clock::now();
                rill::close_stream(server);
                reader.join();
                woke_after = std::chrono::steady_clock::now() - closed_at;
                EXPECT_FALSE(rill::read(server));  // and stays empty
            },
            {.workers = workers});
        EXPECT_FALSE(second_read_returned_client);
        EXPECT_LT(woke_after, 1s);
    }
}

TEST(MaxConnections, AClientMayOutliveItsServer) {
    // Clients may outlive their server: the slots' count is shared, and the last one out
    // frees it (ASan would see a use after free otherwise).
    rill::run([] {
        std::optional<rill::tcp_client_stream> kept;
        int port = 0;
        {
            rill::tcp_server_stream server("127.0.0.1:0", {.max_connections = 2});
            port = rill::tcp_server_socket_info(server).port_number;
            rill::tcp_client_stream peer(port);
            kept = rill::read(server);
            ASSERT_TRUE(kept);
            rill::showln(peer, "after the server");
            rill::flush_writer(peer);
            EXPECT_EQ(rill::read_line(*kept), "after the server");
        }
        rill::close_stream(*kept);  // gives its slot back to a limit only it still holds
        EXPECT_FALSE(kept->is_open());
    });
}

}  // namespace
