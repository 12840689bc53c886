// Peers that send requests but never read the answers: the server's writes to them fill the
// socket buffers and wait. With a writer timeout the server ends those connections once it
// passes (the peers see a close or a reset); with or without one, a well-behaved client on the
// same (only) worker is answered within milliseconds meanwhile, and when the peers are gone
// every descriptor they cost the server is given back.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "hostile/hostile_support.hpp"

namespace {

using namespace rill_hostile_test;

constexpr int never_reading_peer_count = 4;
// Long enough for every peer to fill its buffers (0.2-0.8 s in a debug build, up to 1.6 s under
// ASan) and for the well-behaved client's round trips to happen while all of them are still
// stuck; the test waits this long once.
constexpr auto writer_timeout_in_test = sanitized_build ? 5000ms : 3000ms;
// Time the well-behaved client needs for its round trips once the peers are stuck, with room.
constexpr auto round_trips_allowance = 1000ms;
// What a peer sends at most before its connection stops taking bytes (it stops at that point).
constexpr std::size_t flood_limit_bytes = 256u << 20;
// A small receive buffer: the server's answers fill it after a few kilobytes.
constexpr int peer_receive_buffer_bytes = 4096;

struct stuck_peer {
    std::unique_ptr<rill_test::raw_client> connection;
    steady::time_point connected;
};

// Connects `count` peers that send long lines and never read, until each one's connection
// stops taking bytes: by then the server's write to it waits and its task has stopped reading.
std::vector<stuck_peer> never_reading_peers(int port, int count) {
    std::vector<stuck_peer> peers;
    std::vector<int> fds;
    for (int i = 0; i < count; ++i) {
        stuck_peer p{std::make_unique<rill_test::raw_client>(port), steady::now()};
        setsockopt(p.connection->fd(), SOL_SOCKET, SO_RCVBUF, &peer_receive_buffer_bytes,
                   sizeof peer_receive_buffer_bytes);
        fds.push_back(p.connection->fd());
        peers.push_back(std::move(p));
    }
    const std::string line = tagged_line("never reads", long_line_bytes) + "\n";
    EXPECT_TRUE(send_until_stuck(fds, line, flood_limit_bytes))
        << "the server never stopped taking a peer's lines";
    return peers;
}

// A server with settings `s`, a veteran well-behaved client connected and answered, and the
// descriptor count at that point (the baseline the peers' descriptors must return to).
struct served_setup {
    hostile_echo_server server;
    rill_test::raw_client veteran;
    int baseline_fds = 0;

    explicit served_setup(hostile_server_settings s)
        : server(std::move(s)), veteran(server.port()) {
        const round_trips warm = time_round_trips(veteran, "warm-up", 2);
        EXPECT_EQ(warm.answered, 2) << warm.first_wrong;
        EXPECT_TRUE(server.wait_until_open(1));
        baseline_fds = rill_test::count_open_fds();
    }
};

void check_writer_timeout_ends_them(hostile_server_settings settings) {
    settings.server.stream.writer_timeout = writer_timeout_in_test;
    served_setup setup(std::move(settings));
    hostile_echo_server& server = setup.server;
    const auto start = steady::now();
    std::vector<stuck_peer> peers = never_reading_peers(server.port(), never_reading_peer_count);
    const auto all_stuck = steady::now() - start;
    std::printf("%d never-reading peers stuck after %lld ms\n", never_reading_peer_count,
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(all_stuck).count()));
    // The round trips below must happen while the peers' writes wait, before any timeout.
    ASSERT_LT(all_stuck, writer_timeout_in_test - round_trips_allowance)
        << "the peers took too long to get stuck";
    EXPECT_EQ(server.writer_timeouts(), 0);

    expect_good_client_served(server.port(), "while never-reading peers wait", &setup.veteran);
    EXPECT_EQ(server.writer_timeouts(), 0) << "a writer timeout passed before its time";

    // Each peer sees its connection closed (a FIN, or an RST: the server had unread lines of
    // it), no earlier than the writer timeout after it started sending.
    for (std::size_t i = 0; i < peers.size(); ++i) {
        steady::time_point closed_at;
        ASSERT_TRUE(wait_closed_by_server(peers[i].connection->fd(),
                                          writer_timeout_in_test + cleanup_limit, &closed_at))
            << "peer " << i << " is still connected past the writer timeout";
        EXPECT_GE(closed_at - peers[i].connected, writer_timeout_in_test - 10ms) << "peer " << i;
        std::printf("peer %zu closed by the server %lld ms after connecting\n", i,
                    static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                               closed_at - peers[i].connected)
                                               .count()));
    }
    EXPECT_TRUE(server.wait_until_open(1));
    EXPECT_EQ(server.writer_timeouts(), never_reading_peer_count);

    // The server has let go of them: once the peers close too, their descriptors are back.
    peers.clear();
    EXPECT_TRUE(rill_test::thread_wait_until(
        [&] { return rill_test::count_open_fds() == setup.baseline_fds; }, cleanup_limit))
        << rill_test::count_open_fds() << " descriptors open, " << setup.baseline_fds << " before";
    expect_good_client_served(server.port(), "after the writer timeouts", &setup.veteran);
    const auto unexpected = server.unexpected();
    EXPECT_TRUE(unexpected.empty()) << "a connection ended with: " << unexpected.front();
}

TEST(HostileNeverReadingPeers, WriterTimeoutEndsThemWhileOthersAreServed) {
    check_writer_timeout_ends_them({});
}

TEST(HostileNeverReadingPeers, WriterTimeoutEndsThemOnATranscodingServer) {
    hostile_server_settings s;
    s.server.transcoder = rill::transcoder(rill::codec::utf_8);
    check_writer_timeout_ends_them(s);
}

TEST(HostileNeverReadingPeers, WithoutWriterTimeoutTheyStallNobodyElse) {
    served_setup setup(hostile_server_settings{});
    hostile_echo_server& server = setup.server;
    std::vector<stuck_peer> peers = never_reading_peers(server.port(), never_reading_peer_count);

    // Rounds of well-behaved traffic while the peers' tasks wait in their writes, which stay
    // waiting: nothing ends those connections but the peers.
    for (int round = 0; round < 3; ++round) {
        expect_good_client_served(server.port(), "round " + std::to_string(round), &setup.veteran);
        EXPECT_FALSE(wait_closed_by_server(peers[0].connection->fd(), 100ms))
            << "the server closed a connection it has no reason to close";
    }
    EXPECT_EQ(server.accepted() - server.ended(), never_reading_peer_count + 1)
        << "the stuck connections' tasks should still be waiting";

    // The peers give up with a reset: their tasks' writes fail and end, descriptors come back.
    for (auto& p : peers) p.connection->reset();
    peers.clear();
    EXPECT_TRUE(server.wait_until_open(1))
        << server.accepted() - server.ended() - 1 << " tasks still waiting on peers that reset";
    EXPECT_TRUE(rill_test::thread_wait_until(
        [&] { return rill_test::count_open_fds() == setup.baseline_fds; }, cleanup_limit))
        << rill_test::count_open_fds() << " descriptors open, " << setup.baseline_fds << " before";
    expect_good_client_served(server.port(), "after the resets", &setup.veteran);
    const auto unexpected = server.unexpected();
    EXPECT_TRUE(unexpected.empty()) << "a connection ended with: " << unexpected.front();
}

}  // namespace
