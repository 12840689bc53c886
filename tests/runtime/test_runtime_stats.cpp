// runtime_stats_snapshot: the counters match what the test did, exactly. A server on two
// workers (max_connections 4, one injected accept error) serves plain POSIX clients from the
// test's thread, which takes the snapshots meanwhile: so every byte and line counted is the
// server's, and the snapshot is read from a thread that is not a worker while run runs.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <rill/rill.hpp>
#include <rill/stats.hpp>

#include "net/accept_faults.hpp"
#include "support/loopback.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;

constexpr int server_workers = 2;
constexpr std::size_t server_max_connections = 4;
constexpr std::size_t server_max_line_length = 64;
constexpr int talk_clients = 3;
constexpr int lines_per_talk_client = 4;
// The timeout client's reader timeout: short, the test waits for it.
constexpr auto short_reader_timeout = 50ms;

// The server's side of one connection: echoes each line; "wait" sets a short reader timeout
// (the next read times out and the task ends), "quit" closes the server.
void answer(rill::tcp_client_stream& c, const std::string& line) {
    rill::showln(c, line);
    rill::flush_writer(c);
}

void serve_client(rill::tcp_client_stream c, rill::tcp_server_stream& server) {
    for (;;) {
        std::optional<std::string> line;
        try {
            line = rill::read_line(c);
        } catch (const rill::line_too_long&) {
            answer(c, "too long");
            continue;
        } catch (const rill::decoding_error&) {
            answer(c, "bad bytes");
            continue;
        }
        if (!line) return;
        if (*line == "wait") {
            rill::reader_timeout(c, short_reader_timeout);
            if (!rill::read_line(c)) answer(c, "timed out");
            return;
        }
        if (*line == "quit") {
            rill::close_stream(server);
            continue;  // until the client closes
        }
        answer(c, *line);
    }
}

// rill::run on its own thread, serving until a client says "quit".
class stats_server {
public:
    stats_server() {
        thread_ = std::thread([this] {
            rill::run(
                [this] {
                    // A task that never ends by itself: run's end cancels it (one cancellation).
                    rill::spawn([] { rill::task_sleep(24h); });
                    rill::tcp_server_stream server(
                        "127.0.0.1:0",
                        {.transcoder = rill::transcoder(rill::codec::utf_8, rill::eol_style::lf,
                                                        rill::error_handling_mode::raise),
                         .stream = {.max_line_length = server_max_line_length},
                         .max_connections = server_max_connections});
                    // The first accept fails (EMFILE): retried after a back-off, and counted.
                    rill::detail::inject_accept_errors_for_tests(EMFILE, 1);
                    port_.store(rill::tcp_server_socket_info(server).port_number);
                    std::vector<rill::task> handlers;
                    while (auto c = rill::read(server))
                        handlers.push_back(rill::spawn([c = std::move(*c), &server]() mutable {
                            serve_client(std::move(c), server);
                        }));
                    for (auto& h : handlers) h.join();
                },
                {.workers = server_workers});
            finished_.store(true);
        });
        EXPECT_TRUE(rill_test::thread_wait_until([&] { return port_.load() != 0; }));
    }
    // A test that failed half way leaves clients and the server open: the process ends
    // instead of waiting for a run that cannot end.
    ~stats_server() {
        if (!rill_test::thread_wait_until([&] { return finished(); })) std::_Exit(1);
        thread_.join();
    }
    int port() const { return port_.load(); }
    std::string address() const { return "127.0.0.1:" + std::to_string(port()); }
    bool finished() const { return finished_.load(); }

private:
    std::atomic<int> port_{0};
    std::atomic<bool> finished_{false};
    std::thread thread_;
};

std::optional<rill::server_stats> server_named(const rill::runtime_stats& s,
                                               const std::string& address) {
    for (const auto& server : s.servers)
        if (server.address == address) return server;
    return std::nullopt;
}

std::uint64_t sum_over_workers(const rill::runtime_stats& s,
                               std::uint64_t rill::worker_stats::*field) {
    std::uint64_t n = 0;
    for (const auto& w : s.workers) n += w.*field;
    return n;
}

TEST(RuntimeStats, OutsideRunThereIsNoRuntime) {
    const rill::runtime_stats s = rill::runtime_stats_snapshot();
    EXPECT_FALSE(s.running);
    EXPECT_TRUE(s.workers.empty());
}

TEST(RuntimeStats, CountersMatchWhatTheServerDid) {
    const rill::runtime_stats before = rill::runtime_stats_snapshot();
    std::size_t bytes_sent = 0;
    std::size_t bytes_answered = 0;
    auto send = [&](rill_test::raw_client& c, const std::string& bytes) {
        c.send(bytes);
        bytes_sent += bytes.size();
    };
    auto expect_answer = [&](rill_test::raw_client& c, const std::string& line) {
        EXPECT_EQ(c.receive_line(), line + "\n");
        bytes_answered += line.size() + 1;
    };

    stats_server server;
    ASSERT_NE(server.port(), 0);

    // Three clients talk; the fourth will time out. With four open, read(server) pauses.
    std::vector<std::unique_ptr<rill_test::raw_client>> talkers;
    for (int i = 0; i < talk_clients; ++i)
        talkers.push_back(std::make_unique<rill_test::raw_client>(server.port()));
    rill_test::raw_client waiter(server.port());
    for (int j = 0; j < lines_per_talk_client; ++j)
        for (int i = 0; i < talk_clients; ++i) {
            const std::string line = "line " + std::to_string(i) + "." + std::to_string(j);
            send(*talkers[i], line + "\n");
            expect_answer(*talkers[i], line);
        }
    send(*talkers[0], std::string(server_max_line_length + 36, 'x') + "\n");
    expect_answer(*talkers[0], "too long");
    send(*talkers[1], "\xffok\n");  // one byte that is not UTF-8, then a line
    expect_answer(*talkers[1], "bad bytes");
    expect_answer(*talkers[1], "ok");

    // Taken from this thread (no worker) while run runs.
    rill::runtime_stats during;
    ASSERT_TRUE(rill_test::thread_wait_until([&] {
        during = rill::runtime_stats_snapshot();
        auto s = server_named(during, server.address());
        return s && s->connections_accepted == 4 && s->accepting_paused_at_limit == 1 &&
               sum_over_workers(during, &rill::worker_stats::tasks_spawned) == 6;
    })) << "four clients accepted, their tasks started, and read(server) paused at "
           "max_connections";
    EXPECT_TRUE(during.running);
    ASSERT_EQ(during.workers.size(), static_cast<std::size_t>(server_workers));
    if (const char* env = std::getenv("RILL_BACKEND"); env && *env) {
        EXPECT_EQ(during.backend_reason, rill::backend_choice::asked_by_environment);
        EXPECT_EQ(std::string(rill::to_string(during.backend)),
                  std::string(env) == "epoll" ? "epoll" : "io_uring");
    }
    EXPECT_TRUE(during.backend == rill::backend::io_uring ||
                during.backend == rill::backend::epoll);
    const auto open_server = server_named(during, server.address());
    ASSERT_TRUE(open_server);
    EXPECT_EQ(open_server->connections_open, 4u);
    EXPECT_EQ(open_server->accept_errors, 1u);
    // main, the sleeper and four handlers; every one of them alive.
    EXPECT_EQ(sum_over_workers(during, &rill::worker_stats::tasks_spawned), 6u);
    EXPECT_EQ(sum_over_workers(during, &rill::worker_stats::tasks_alive), 6u);
    for (const auto& w : during.workers) {
        EXPECT_GT(w.loop_turns, 0u);
        EXPECT_GT(w.time_waiting.count(), 0);  // every worker has been idle
        EXPECT_EQ(w.run_queue_length, 0u);  // nothing to do while the clients are quiet
    }

    // The waiter times out; the talkers leave; the server pauses no more.
    send(waiter, "wait\n");
    expect_answer(waiter, "timed out");
    waiter.close();
    talkers.clear();
    // A connection counts as closed when its socket closes, its task ends just after.
    rill::runtime_stats idle;
    EXPECT_TRUE(rill_test::thread_wait_until([&] {
        idle = rill::runtime_stats_snapshot();
        auto s = server_named(idle, server.address());
        return s && s->connections_open == 0 &&
               sum_over_workers(idle, &rill::worker_stats::tasks_alive) == 2;
    })) << "every client closed and its task ended";
    EXPECT_EQ(sum_over_workers(idle, &rill::worker_stats::tasks_alive), 2u);  // main, sleeper

    rill_test::raw_client quitter(server.port());
    send(quitter, "quit\n");
    ASSERT_TRUE(rill_test::thread_wait_until([&] {
        return !server_named(rill::runtime_stats_snapshot(), server.address());
    })) << "a closed server leaves the snapshot";
    quitter.close();
    ASSERT_TRUE(rill_test::thread_wait_until([&] { return server.finished(); }));

    const rill::runtime_stats after = rill::runtime_stats_snapshot();
    EXPECT_FALSE(after.running);
    EXPECT_TRUE(after.workers.empty());
    const rill::stream_totals& a = after.streams;
    const rill::stream_totals& b = before.streams;
    EXPECT_EQ(a.bytes_in - b.bytes_in, bytes_sent);
    EXPECT_EQ(a.bytes_out - b.bytes_out, bytes_answered);
    // 12 echoed lines, "ok", "wait", "quit"; the over-long line is not one.
    EXPECT_EQ(a.lines_in - b.lines_in, 15u);
    // 12 echoes, "too long", "bad bytes", "ok", "timed out".
    EXPECT_EQ(a.lines_out - b.lines_out, 16u);
    EXPECT_EQ(a.lines_too_long - b.lines_too_long, 1u);
    EXPECT_EQ(a.decoding_errors - b.decoding_errors, 1u);
    EXPECT_EQ(a.timeouts - b.timeouts, 1u);
    EXPECT_EQ(a.cancellations - b.cancellations, 1u);  // the sleeper, at run's end
    EXPECT_EQ(after.events.accept_errors_retried - before.events.accept_errors_retried, 1u);
}

}  // namespace
