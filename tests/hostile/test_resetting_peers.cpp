// Peers that reset their connection (SO_LINGER {1, 0}, then close: an RST instead of a FIN)
// at every stage of an exchange: right after connecting, in the middle of a line or of a
// character, after a whole line but before reading its answer, and while the server is
// writing a large answer. After each batch, a well-behaved client sharing the server's only
// worker still gets every answer right and promptly, every descriptor the peers cost the
// server is given back, and no connection ended with anything but a peer-gone error.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "hostile/hostile_support.hpp"

namespace {

using namespace rill_hostile_test;

// Peers in one batch (all connected at once, so their resets reach the server together), and
// batches per stage.
constexpr int peers_per_batch = 16;
constexpr int batches_per_stage = 3;
// What a peer that fills the buffers sends at most (it stops earlier, once the connection
// stops taking bytes).
constexpr std::size_t flood_limit_bytes = 64u << 20;

enum class reset_stage {
    right_after_connect,
    mid_line,  // part of a line, no line end
    mid_character,  // a line that ends inside a 4-byte UTF-8 character
    after_full_line,  // a whole line; the answer is never read (half reset before it arrives)
    while_server_writes_large_answer,  // long lines until the server's writes wait on us
};

const char* name_of(reset_stage s) {
    switch (s) {
    case reset_stage::right_after_connect: return "right after connect";
    case reset_stage::mid_line: return "mid-line";
    case reset_stage::mid_character: return "mid-character";
    case reset_stage::after_full_line: return "after a full line";
    case reset_stage::while_server_writes_large_answer: return "while the server writes";
    }
    return "?";
}

// Brings `peer` to `stage` (the reset itself comes after, for the whole batch at once).
void reach(reset_stage stage, rill_test::raw_client& peer, const std::string& tag, int index) {
    switch (stage) {
    case reset_stage::right_after_connect: return;
    case reset_stage::mid_line: peer.send(tagged_line(tag, 100).substr(0, 37 + index)); return;
    case reset_stage::mid_character:
        // U+1F600 is F0 9F 98 80: the peer stops after its first two bytes.
        peer.send(tagged_line(tag, 20) + "\xF0\x9F");
        return;
    case reset_stage::after_full_line: {
        const std::string line = tagged_line(tag, index % 4 == 0 ? long_line_bytes : 40);
        peer.send(line + "\n");
        if (index % 2 == 1) {
            // The answer is in our receive buffer, unread: the server's task is back in its
            // read when the reset arrives. (Otherwise it may be writing to a peer already gone.)
            pollfd p{peer.fd(), POLLIN, 0};
            rill_test::retry_interrupted([&] { return ::poll(&p, 1, 2000); });
        }
        return;
    }
    case reset_stage::while_server_writes_large_answer:
        return;  // the whole batch floods at once: see flood_batch
    }
}

// The while-the-server-writes stage for a whole batch at once: each peer sends long lines and
// reads none of the echo, so the server's writes fill the peer's receive buffer and its own
// send buffer, then wait; it stops reading and the peer's sends stop too. Half the peers then
// take a little of the answer, so the server's write resumes just before their reset.
void flood_batch(std::vector<std::unique_ptr<rill_test::raw_client>>& peers,
                 const std::string& tag) {
    std::vector<int> fds;
    for (auto& p : peers) fds.push_back(p->fd());
    EXPECT_TRUE(send_until_stuck(fds, tagged_line(tag, long_line_bytes) + "\n", flood_limit_bytes))
        << tag << ": the server never stopped taking a peer's lines";
    for (std::size_t i = 1; i < peers.size(); i += 2) peers[i]->receive_exactly(4096);
}

// Runs `batches_per_stage` batches of `peers_per_batch` peers that reset at `stage`, checking
// after each what the issue asks: a well-behaved client (a fresh one and one connected all
// along) is served correctly and promptly, the descriptors come back, nothing unexpected.
void check_resets(reset_stage stage, hostile_server_settings settings = {}) {
    SCOPED_TRACE(name_of(stage));
    hostile_echo_server server(std::move(settings));
    rill_test::raw_client veteran(server.port());
    {
        const round_trips warm = time_round_trips(veteran, "warm-up", 2);
        ASSERT_EQ(warm.answered, 2) << warm.first_wrong;
    }
    // Descriptors now: the runtime's, the server's, the veteran's two ends.
    ASSERT_TRUE(server.wait_until_open(1));
    const int baseline_fds = rill_test::count_open_fds();

    for (int batch = 0; batch < batches_per_stage; ++batch) {
        const std::string tag = std::string(name_of(stage)) + " batch " + std::to_string(batch);
        std::vector<std::unique_ptr<rill_test::raw_client>> peers;
        for (int i = 0; i < peers_per_batch; ++i)
            peers.push_back(std::make_unique<rill_test::raw_client>(server.port()));
        for (int i = 0; i < peers_per_batch; ++i)
            reach(stage, *peers[i], "peer" + std::to_string(batch) + "." + std::to_string(i), i);
        if (stage == reset_stage::while_server_writes_large_answer) flood_batch(peers, tag);
        for (auto& p : peers) p->reset();
        peers.clear();

        expect_good_client_served(server.port(), tag, &veteran);

        // Every connection but the veteran's has ended, and its descriptors are back.
        EXPECT_TRUE(server.wait_until_open(1))
            << tag << ": " << server.accepted() - server.ended() - 1
            << " connection tasks still running after their peers reset";
        EXPECT_TRUE(rill_test::thread_wait_until(
            [&] { return rill_test::count_open_fds() == baseline_fds; }, cleanup_limit))
            << tag << ": " << rill_test::count_open_fds() << " descriptors open, " << baseline_fds
            << " before the batch";
        const auto unexpected = server.unexpected();
        EXPECT_TRUE(unexpected.empty())
            << tag << ": a connection ended with: " << (unexpected.empty() ? "" : unexpected[0]);
    }
    std::printf("%s: %ld connections, %ld ended by a peer-gone error\n", name_of(stage),
                server.accepted(), server.peer_gone());
}

TEST(HostileResettingPeers, RightAfterConnect) { check_resets(reset_stage::right_after_connect); }

TEST(HostileResettingPeers, MidLine) { check_resets(reset_stage::mid_line); }

TEST(HostileResettingPeers, MidCharacterOnATranscodedStream) {
    hostile_server_settings s;
    s.server.transcoder = rill::transcoder(rill::codec::utf_8);
    check_resets(reset_stage::mid_character, s);
}

TEST(HostileResettingPeers, AfterAFullLineBeforeReadingTheAnswer) {
    check_resets(reset_stage::after_full_line);
}

TEST(HostileResettingPeers, WhileTheServerWritesALargeAnswer) {
    check_resets(reset_stage::while_server_writes_large_answer);
}

TEST(HostileResettingPeers, WhileATranscodingServerWritesALargeAnswer) {
    hostile_server_settings s;
    s.server.transcoder = rill::transcoder(rill::codec::utf_8);
    check_resets(reset_stage::while_server_writes_large_answer, s);
}

}  // namespace
