// Peers that send lines longer than the stream's cap (max_line_length, 64 KiB by default),
// or one line that never ends: each such connection ends with line_too_long after a bounded
// amount of input, the server's memory stays bounded, and the other clients of the same
// worker keep getting their answers.
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "support/child_process.hpp"
#include "support/loopback.hpp"
#include "support/rill_tool.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int endless_line_clients = 16;
// What one endless-line client may push before the server ends its connection: the line cap,
// the server's buffers and both sockets' kernel buffers (loopback autotuning reaches a few
// MiB each way). Far below what the client would send if nothing stopped it.
constexpr std::size_t max_bytes_before_cut = 32u << 20;
constexpr std::size_t bytes_offered_per_client = 256u << 20;
// Server RSS growth allowed while the endless lines arrive: 16 connections' worth of line
// caps and buffers, with room to spare; without a cap it would grow by gigabytes.
constexpr long max_rss_growth_kib = 48 * 1024;

long resident_kib(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string key;
    while (status >> key) {
        if (key == "VmRSS:") {
            long kib = 0;
            status >> kib;
            return kib;
        }
        status.ignore(1 << 20, '\n');
    }
    return -1;
}

// Sends one line that never ends until the server cuts the connection (or the offer runs
// out); returns how many bytes the kernel accepted.
std::size_t send_endless_line(int port) {
    rill_test::raw_client c(port);
    const std::string chunk(64 * 1024, 'x');
    std::size_t sent = 0;
    while (sent < bytes_offered_per_client) {
        const ssize_t n = ::send(c.fd(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
        if (n <= 0) break;  // EPIPE / ECONNRESET: the server ended the connection
        sent += static_cast<std::size_t>(n);
    }
    return sent;
}

void serve_endless_lines_while_probing(const std::vector<std::string>& extra_args,
                                       const std::string& probe_line,
                                       const std::string& probe_answer) {
    std::vector<std::string> argv = {
        rill_test::rill_tool, "echo", "127.0.0.1:0", "--workers", "1", "--mode", "persistent"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    rill_test::child_process echo(argv);
    const int port = rill_test::start_rill_echo(echo);
    ASSERT_NE(port, 0);
    const long rss_before = resident_kib(echo.pid());
    ASSERT_GT(rss_before, 0);

    std::atomic<bool> flooding{true};
    std::atomic<long> rss_max{rss_before};
    std::thread sampler([&] {
        while (flooding) {
            const long now = resident_kib(echo.pid());
            long seen = rss_max.load();
            while (now > seen && !rss_max.compare_exchange_weak(seen, now)) {}
            std::this_thread::sleep_for(5ms);
        }
    });
    std::vector<std::size_t> sent(endless_line_clients);
    std::vector<std::thread> floods;
    for (int i = 0; i < endless_line_clients; ++i)
        floods.emplace_back(
            [&, i] { sent[static_cast<std::size_t>(i)] = send_endless_line(port); });

    // A good client of the same worker, answered while the endless lines arrive.
    rill_test::raw_client probe(port);
    std::chrono::steady_clock::duration worst{};
    for (int i = 0; i < 50; ++i) {
        const auto asked = std::chrono::steady_clock::now();
        probe.send(probe_line);
        ASSERT_EQ(probe.receive_exactly(probe_answer.size()), probe_answer) << "probe " << i;
        worst = std::max(worst, std::chrono::steady_clock::now() - asked);
    }
    for (auto& t : floods) t.join();
    flooding = false;
    sampler.join();

    EXPECT_LT(worst, 1s) << "a probe waited "
                         << std::chrono::duration_cast<std::chrono::milliseconds>(worst).count()
                         << " ms";
    for (int i = 0; i < endless_line_clients; ++i)
        EXPECT_LT(sent[static_cast<std::size_t>(i)], max_bytes_before_cut)
            << "client " << i << ": the server kept reading an endless line";
    EXPECT_LT(rss_max.load() - rss_before, max_rss_growth_kib)
        << "server RSS went from " << rss_before << " KiB to " << rss_max.load() << " KiB";

    // And the server still serves a new client afterwards.
    rill_test::raw_client after(port);
    after.send(probe_line);
    EXPECT_EQ(after.receive_exactly(probe_answer.size()), probe_answer);
}

}  // namespace

TEST(HostileOverlongLines, EndlessLinesAreCutAndOthersAreServed) {
    serve_endless_lines_while_probing({}, "probe\n", "probe\r\n");
}

TEST(HostileOverlongLines, EndlessLinesAreCutOnATranscodedStream) {
    // UTF-8 in, LF line ends: the decoded text is what the cap counts.
    serve_endless_lines_while_probing({"--transcoder", "UTF-8,lf"}, "probe\n", "probe\n");
}

// A line over the cap ends that connection (rill echo lets line_too_long end the task): the
// lines before it were answered, nothing after it is, and the connection closes; a
// neighbour on the same worker is still answered.
TEST(HostileOverlongLines, ALineOverTheCapEndsOnlyThatConnection) {
    rill_test::rill_echo echo({"127.0.0.1:0", "--workers", "1", "--mode", "persistent"});
    const int port = echo.port();
    ASSERT_NE(port, 0);
    rill_test::raw_client neighbour(port);
    rill_test::raw_client c(port);
    c.send("before\n" + std::string(70 * 1024, 'y') + "\nafter\n");
    const std::string got = c.receive_all();
    EXPECT_EQ(got, "before\r\n");
    neighbour.send("neighbour\n");
    EXPECT_EQ(neighbour.receive_line(), "neighbour\r\n");
}
