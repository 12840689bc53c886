// Helpers for the hostile-client tests: a persistent echo server run by rill on its own thread
// (one worker by default, so hostile peers and the well-behaved client share it) that accounts
// for how each connection ended, plain-POSIX peers that misbehave on purpose (fill the socket
// buffers without reading, reset), and a well-behaved client that times its round trips.
// Every wait is bounded, so a server that stalls fails a test instead of hanging it.
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <rill/rill.hpp>

#include "support/descriptors.hpp"
#include "support/in_process_server.hpp"
#include "support/loopback.hpp"
#include "support/wait.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define RILL_HOSTILE_TEST_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define RILL_HOSTILE_TEST_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RILL_HOSTILE_TEST_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define RILL_HOSTILE_TEST_TSAN 1
#endif
#endif

namespace rill_hostile_test {

#ifdef RILL_HOSTILE_TEST_TSAN
inline constexpr bool thread_sanitized_build = true;
#else
inline constexpr bool thread_sanitized_build = false;
#endif
#if defined(RILL_HOSTILE_TEST_ASAN) || defined(RILL_HOSTILE_TEST_TSAN)
inline constexpr bool sanitized_build = true;  // the server echoes several times slower
#else
inline constexpr bool sanitized_build = false;
#endif

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// A well-behaved client's round trip (a line and its echo) on a server that hostile peers
// share: generous next to the ~0.05 ms it takes in a debug build (10-20 ms at worst under ASan),
// so a loaded CI machine stays under it, but far below the seconds a frozen worker or a server
// stuck behind a peer's full socket buffer would take. Under TSan, where every line costs ten
// times more, a transcoding task working through a never-reading peer's buffered lines holds
// the worker for up to ~0.4 s before it waits (on today's main, without a fairness budget).
inline constexpr auto prompt_answer_limit = thread_sanitized_build ? 1500ms : 500ms;
// How long the server may take to notice that peers are gone and free their descriptors.
inline constexpr auto cleanup_limit = 10s;
// Longest line the tests send: under the server's default max_line_length (64 KiB).
inline constexpr std::size_t long_line_bytes = 60000;

// How the server's connection tasks ended, counted by the tasks themselves.
struct connection_tally {
    std::atomic<long> ended{0};
    std::atomic<long> peer_gone{0};  // os_error ECONNRESET / EPIPE: the peer reset
    std::atomic<long> writer_timeouts{0};  // timeout_error: a write waited past writer_timeout
    std::atomic<long> cancelled{0};  // still running when the server stopped
    std::mutex mutex;
    std::vector<std::string> unexpected;  // anything else: each one fails the test
};

struct hostile_server_settings {
    rill::server_options server;  // on 127.0.0.1, port picked by the kernel
    rill::runtime_options runtime{.workers = 1};  // one worker: every connection shares it
};

// The persistent echo server (every line echoed until end of stream), on its own thread
// (support/in_process_server.hpp). A connection task catches what ended it and counts it in
// the tally; a reset peer is expected, anything else is recorded as unexpected. stop() (also
// the destructor) ends the server; run() cancels the connections still open.
class hostile_echo_server {
public:
    explicit hostile_echo_server(hostile_server_settings s = {})
        : server_({.name = "hostile_echo_server",
                   .server = std::move(s.server),
                   .runtime = std::move(s.runtime)},
                  [this](rill::tcp_client_stream& c) { serve(c); }) {}

    int port() const { return server_.port(); }
    long accepted() const { return server_.accepted(); }
    long ended() const { return tally_.ended.load(); }
    long peer_gone() const { return tally_.peer_gone.load(); }
    long writer_timeouts() const { return tally_.writer_timeouts.load(); }
    std::vector<std::string> unexpected() {
        std::lock_guard<std::mutex> lock(tally_.mutex);
        return tally_.unexpected;
    }
    // True once all but `still_open` of the accepted connections' tasks have ended (bounded).
    bool wait_until_open(long still_open, std::chrono::milliseconds limit = cleanup_limit) {
        return rill_test::thread_wait_until([&] { return accepted() - ended() == still_open; },
                                            limit);
    }

    void stop() { server_.stop(); }

private:
    void serve(rill::tcp_client_stream& c) {
        try {
            rill_test::echo_lines(c);
        } catch (const rill::task_cancelled&) {
            tally_.cancelled.fetch_add(1);
        } catch (const rill::timeout_error&) {
            tally_.writer_timeouts.fetch_add(1);
        } catch (const rill::os_error& e) {
            if (e.code() == std::errc::connection_reset || e.code() == std::errc::broken_pipe) {
                tally_.peer_gone.fetch_add(1);
            } else {
                std::lock_guard<std::mutex> lock(tally_.mutex);
                tally_.unexpected.push_back(e.what());
            }
        } catch (const std::exception& e) {
            std::lock_guard<std::mutex> lock(tally_.mutex);
            tally_.unexpected.push_back(e.what());
        }
        tally_.ended.fetch_add(1);
    }

    connection_tally tally_;  // before server_: the connection tasks count in it until they end
    rill_test::in_process_server server_;
};

// A line of `bytes` printable ASCII characters that says which peer sent it (no line end).
inline std::string tagged_line(const std::string& tag, std::size_t bytes) {
    std::string line = tag + ":";
    for (std::size_t i = 0; line.size() < bytes; ++i)
        line.push_back(static_cast<char>('a' + (i * 7 + tag.size()) % 26));
    line.resize(bytes);
    return line;
}

// Sends as much of `bytes` as the socket takes without blocking; the count sent (0 when the
// buffers are full), or -1 with errno set when the connection failed.
inline long send_what_fits(int fd, const char* bytes, std::size_t n) {
    const ssize_t sent = ::send(fd, bytes, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent >= 0) return sent;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    return -1;
}

// Sends lines from `line` (repeated) on every connection in `fds` at once until each stops
// taking bytes for `stuck_after` (its socket buffers are full because the server stopped
// reading), each at most `max_bytes`, all for at most `limit`. True when every one got stuck;
// false if one sent everything or the time ran out. Throws on a connection error.
// stuck_after is long enough that a server task only held up does not pass for one that
// stopped reading: with 100 ms, on a KVM VM (epoll, one worker serving four floods, the kernel
// still growing the server's send buffer towards 4 MiB), a peer passed for stuck whose task
// then wrote every answer into the socket without waiting (2 of 6 runs of
// HostileNeverReadingPeers; with 500 ms none in 24).
inline bool send_until_stuck(const std::vector<int>& fds, const std::string& line,
                             std::size_t max_bytes, std::chrono::milliseconds stuck_after = 500ms,
                             std::chrono::milliseconds limit = rill_test::default_io_limit) {
    struct flood {
        int fd = -1;
        std::size_t total = 0, offset = 0;
        std::optional<steady::time_point> full_since;
    };
    std::vector<flood> floods(fds.size());
    for (std::size_t i = 0; i < fds.size(); ++i) floods[i].fd = fds[i];
    const auto deadline = steady::now() + limit;
    for (;;) {
        bool all_stuck = true;
        std::vector<pollfd> waiting;
        for (flood& f : floods) {
            if (f.total >= max_bytes) return false;
            if (f.full_since && steady::now() - *f.full_since >= stuck_after) continue;
            all_stuck = false;
            const long n = send_what_fits(f.fd, line.data() + f.offset, line.size() - f.offset);
            if (n < 0) throw std::runtime_error("send: " + std::string(std::strerror(errno)));
            if (n == 0) {
                if (!f.full_since) f.full_since = steady::now();
                waiting.push_back({f.fd, POLLOUT, 0});
                continue;
            }
            f.full_since.reset();
            f.total += static_cast<std::size_t>(n);
            f.offset = (f.offset + static_cast<std::size_t>(n)) % line.size();
        }
        if (all_stuck) return true;
        if (steady::now() >= deadline) return false;
        if (waiting.size() == floods.size())  // nothing moves: wait a little for room
            rill_test::retry_interrupted(
                [&] { return ::poll(waiting.data(), waiting.size(), 10); });
    }
}

// Waits (without reading) until the peer has closed or reset the connection: true with the
// time it was seen, false if it stays open for `limit`.
inline bool wait_closed_by_server(int fd, std::chrono::milliseconds limit,
                                  steady::time_point* seen = nullptr) {
    pollfd p{fd, POLLRDHUP, 0};
    const auto deadline = steady::now() + limit;
    for (int rounds = 0; rounds < 1000; ++rounds) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
        if (left.count() <= 0) return false;
        const int ready = rill_test::retry_interrupted(
            [&] { return ::poll(&p, 1, static_cast<int>(left.count())); });
        if (ready > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            if (seen) *seen = steady::now();
            return true;
        }
        if (ready < 0) return false;
    }
    return false;
}

// Round trips of a well-behaved client: the slowest, and how many came back wrong.
struct round_trips {
    int answered = 0;
    int wrong = 0;
    std::chrono::microseconds slowest{0};
    std::chrono::microseconds median{0};
    std::string first_wrong;  // what the first wrong answer was instead
};

// `rounds` lines on `client`, each sent and its echo ("line\r\n") read before the next, with
// `long_every` > 0 making every such round a long line (a large answer).
inline round_trips time_round_trips(rill_test::raw_client& client, const std::string& tag,
                                    int rounds, int long_every = 0) {
    round_trips r;
    std::vector<std::chrono::microseconds> took;
    for (int i = 0; i < rounds; ++i) {
        const std::size_t bytes = long_every > 0 && i % long_every == long_every - 1
                                      ? long_line_bytes
                                      : 16 + static_cast<std::size_t>(i % 48);
        const std::string line = tagged_line(tag + "-" + std::to_string(i), bytes);
        const auto start = steady::now();
        std::string answer;
        try {
            client.send(line + "\n");
            answer = client.receive_exactly(line.size() + 2);
        } catch (const std::exception& e) {
            answer = std::string("(") + e.what() + ")";
        }
        took.push_back(
            std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - start));
        if (answer == line + "\r\n") {
            ++r.answered;
        } else {
            if (!r.wrong) r.first_wrong = answer.substr(0, 200);
            ++r.wrong;
            break;  // the connection is out of step
        }
    }
    if (!took.empty()) {
        std::sort(took.begin(), took.end());
        r.slowest = took.back();
        r.median = took[took.size() / 2];
    }
    return r;
}

// The checks after a batch of hostile peers: a well-behaved client (a new connection, and
// `veteran` if given: one that was open all along) gets every answer right and promptly.
inline void expect_good_client_served(int port, const std::string& tag,
                                      rill_test::raw_client* veteran = nullptr) {
    rill_test::raw_client fresh(port);
    for (rill_test::raw_client* c : {&fresh, veteran}) {
        if (!c) continue;
        const round_trips r =
            time_round_trips(*c, tag + (c == veteran ? "-veteran" : "-fresh"), 20, 10);
        EXPECT_EQ(r.wrong, 0) << tag << ": a wrong answer: \"" << r.first_wrong << "\"";
        EXPECT_EQ(r.answered, 20) << tag;
        EXPECT_LT(r.slowest, prompt_answer_limit)
            << tag << ": the slowest round trip of a well-behaved client";
        std::printf("%s: %d round trips, median %lld us, slowest %lld us\n", tag.c_str(),
                    r.answered, static_cast<long long>(r.median.count()),
                    static_cast<long long>(r.slowest.count()));
    }
}

}  // namespace rill_hostile_test
