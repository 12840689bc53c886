// request_shutdown, end_drain and runtime_options::shutdown_signals: the server closes, an
// idle client sees a clean end of stream at once, a client in the middle of a request is
// answered during the drain (a partial line finished later, lines the kernel had received but
// the server had not read yet, a large answer its client reads only later), a client that
// never reads is cut at the drain's end, and nothing is left afterwards (no task, no
// descriptor). Clients are plain blocking sockets on the test's thread.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <future>
#include <string>
#include <thread>

#include <rill/rill.hpp>

#include "net/net_test_support.hpp"
#include "support/clean_end.hpp"
#include "support/descriptors.hpp"
#include "support/errors.hpp"
#include "support/in_process_server.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

// What a client asks for with "big": more than the loopback socket buffers hold, so the
// server's write waits until its client reads.
constexpr std::size_t big_answer_bytes = 8 << 20;

// The echo the shutdown tests serve: every line back; "big" answers big_answer_bytes of 'x'
// then a line end; "wait-for-shutdown" makes the task read nothing more until the shutdown
// has begun (the kernel holds what its client sends meanwhile).
void serve(rill::tcp_client_stream& c) {
    std::string line;
    while (rill::read_line(c, line)) {
        if (line == "big") {
            rill::write_chars(c, std::string(big_answer_bytes, 'x'));
            rill::showln(c, "");
        } else if (line == "wait-for-shutdown") {
            rill::showln(c, "waiting");
            rill::flush_writer(c);
            ASSERT_TRUE(rill_test::task_wait_until([] { return rill::shutdown_requested(); }));
            continue;
        } else {
            rill::showln(c, line);
        }
        rill::flush_writer(c);
    }
}

// An echo server run by rill on its own thread until a shutdown ends the run.
class shutdown_server {
public:
    explicit shutdown_server(rill::runtime_options runtime) {
        std::promise<int> bound;
        std::future<int> port = bound.get_future();
        thread_ = std::thread([this, runtime, bound = std::move(bound)]() mutable {
            try {
                rill::run(
                    [&] {
                        rill::tcp_server_stream server("127.0.0.1:0");
                        bound.set_value(rill::tcp_server_socket_info(server).port_number);
                        while (auto client = rill::read(server))
                            rill::spawn([c = std::move(*client)]() mutable {
                                rill::call_with_stream(c, serve);
                            });
                        accept_loop_ended_ = true;
                    },
                    runtime);
            } catch (...) {
                error_ = std::current_exception();
            }
            returned_at_ = clock_type::now();
            returned_ = true;
        });
        if (port.wait_for(10s) != std::future_status::ready) {
            ADD_FAILURE() << "the server did not start";
            std::terminate();  // a thread we cannot stop
        }
        port_ = port.get();
    }
    shutdown_server(const shutdown_server&) = delete;
    shutdown_server& operator=(const shutdown_server&) = delete;
    ~shutdown_server() {
        if (!thread_.joinable()) return;
        rill::end_drain();
        thread_.join();
    }

    int port() const { return port_; }
    bool returned() const { return returned_.load(); }
    bool accept_loop_ended() const { return accept_loop_ended_.load(); }
    // Joins the run's thread (it must have ended within `limit`); how long after `since`.
    std::chrono::milliseconds join(clock_type::time_point since,
                                   std::chrono::milliseconds limit = 10s) {
        EXPECT_TRUE(rill_test::thread_wait_until([this] { return returned(); }, limit))
            << "run did not return";
        if (!returned()) rill::end_drain();
        thread_.join();
        rill_test::expect_run_ended_cleanly(error_, "run");
        return std::chrono::duration_cast<std::chrono::milliseconds>(returned_at_ - since);
    }

private:
    std::thread thread_;
    int port_ = 0;
    std::atomic<bool> returned_{false};
    std::atomic<bool> accept_loop_ended_{false};
    clock_type::time_point returned_at_{};
    std::exception_ptr error_;
};

bool connect_refused(int port) {
    try {
        rill_test::raw_client late(port);
        return false;
    } catch (const std::runtime_error& e) {
        return std::string(e.what()).find("refused") != std::string::npos;
    }
}

void idle_clients_end_and_requests_in_flight_are_answered(int workers) {
    const int fds_before = rill_test::count_open_fds();
    clock_type::time_point requested;
    {
        shutdown_server server({.workers = workers, .drain_timeout = 20s});
        rill_test::raw_client idle(server.port());
        idle.send("hello\n");
        ASSERT_EQ(idle.receive_line(), "hello\r\n");
        // Its answer to the first line shows the server has read the partial line too.
        rill_test::raw_client mid_line(server.port());
        mid_line.send("first\npart");
        ASSERT_EQ(mid_line.receive_line(), "first\r\n");
        // The server reads nothing more until the shutdown: these lines wait in the kernel.
        rill_test::raw_client unread(server.port());
        unread.send("wait-for-shutdown\n");
        ASSERT_EQ(unread.receive_line(), "waiting\r\n");
        unread.send("queued 1\nqueued 2\n");
        // Its answer does not fit in the socket buffers: the server waits to write it.
        rill_test::raw_client mid_write(server.port());
        mid_write.send("big\n");
        ASSERT_FALSE(mid_write.quiet_for(2000ms)) << "the big answer did not start";

        requested = clock_type::now();
        rill::request_shutdown();
        rill_test::expect_clean_end(idle, "the idle client");
        ASSERT_TRUE(rill_test::thread_wait_until([&] { return server.accept_loop_ended(); }))
            << "read(server) did not return empty";
        EXPECT_TRUE(connect_refused(server.port())) << "the server still accepts";
        EXPECT_EQ(unread.receive_line(), "queued 1\r\n");
        EXPECT_EQ(unread.receive_line(), "queued 2\r\n");
        rill_test::expect_clean_end(unread, "the client whose lines were queued");
        mid_line.send(" and rest\n");
        EXPECT_EQ(mid_line.receive_line(), "part and rest\r\n");
        rill_test::expect_clean_end(mid_line, "the mid-line client");
        const std::string answer = mid_write.receive_all();
        EXPECT_EQ(answer.size(), big_answer_bytes + 2);
        EXPECT_EQ(answer.find_first_not_of('x'), big_answer_bytes);
        // Every task has ended: run returns long before the drain's 20 s.
        EXPECT_LT(server.join(requested), 10s);
    }
    EXPECT_EQ(rill_test::count_open_fds(), fds_before) << "descriptors left after the drain";
}

// With one worker the last task's end is noticed by the worker it ran on, with two by the
// other one too.
TEST(GracefulShutdown, IdleClientsEndAtOnceAndRequestsInFlightAreAnsweredOneWorker) {
    idle_clients_end_and_requests_in_flight_are_answered(1);
}
TEST(GracefulShutdown, IdleClientsEndAtOnceAndRequestsInFlightAreAnsweredTwoWorkers) {
    idle_clients_end_and_requests_in_flight_are_answered(2);
}

TEST(GracefulShutdown, ATaskStillWritingIsCancelledWhenTheDrainEnds) {
    const int fds_before = rill_test::count_open_fds();
    {
        shutdown_server server({.workers = 2, .drain_timeout = 300ms});
        rill_test::raw_client never_reads(server.port());
        never_reads.send("big\n");
        ASSERT_FALSE(never_reads.quiet_for(2000ms));
        const auto requested = clock_type::now();
        rill::request_shutdown();
        const auto took = server.join(requested);
        EXPECT_GE(took, 300ms) << "the drain ended early";
        EXPECT_LT(took, 5000ms);
    }
    EXPECT_EQ(rill_test::count_open_fds(), fds_before) << "descriptors left after the drain";
}

TEST(GracefulShutdown, EndDrainCancelsAtOnce) {
    shutdown_server server({.workers = 1, .drain_timeout = 60s});
    rill_test::raw_client never_reads(server.port());
    never_reads.send("big\n");
    ASSERT_FALSE(never_reads.quiet_for(2000ms));
    rill::end_drain();  // before any shutdown: nothing happens
    rill::request_shutdown();
    EXPECT_FALSE(rill_test::thread_wait_until([&] { return server.returned(); }, 200ms))
        << "the drain ended by itself";
    const auto ended = clock_type::now();
    rill::end_drain();
    EXPECT_LT(server.join(ended), 5000ms);
}

TEST(GracefulShutdown, MainStillRunningWhenTheDrainEndsIsCancelled) {
    const auto started = clock_type::now();
    EXPECT_THROW(rill::run(
                     [] {
                         rill::request_shutdown();
                         EXPECT_TRUE(rill::shutdown_requested());
                         rill::task_sleep(1h);
                     },
                     {.workers = 1, .drain_timeout = 100ms}),
                 rill::task_cancelled);
    EXPECT_LT(clock_type::now() - started, 5s);
    EXPECT_FALSE(rill::shutdown_requested()) << "a later run inherits the shutdown";
}

TEST(GracefulShutdown, AServerMadeDuringTheDrainIsClosed) {
    rill::run(
        [] {
            rill::request_shutdown();
            rill::tcp_server_stream server("127.0.0.1:0");
            EXPECT_FALSE(server.is_open());
            EXPECT_FALSE(rill::read(server).has_value());
        },
        {.workers = 1});
}

// SIGUSR2 stands for SIGTERM: the test process must survive a mistake.
TEST(GracefulShutdown, SignalsStartTheShutdownThenEndTheDrain) {
    struct sigaction mine {};
    mine.sa_handler = [](int) {};
    sigemptyset(&mine.sa_mask);
    struct sigaction before {};
    ASSERT_EQ(::sigaction(SIGUSR2, &mine, &before), 0);
    {
        shutdown_server server({.workers = 2, .drain_timeout = 60s, .shutdown_signals = {SIGUSR2}});
        rill_test::raw_client idle(server.port());
        idle.send("hello\n");
        ASSERT_EQ(idle.receive_line(), "hello\r\n");
        rill_test::raw_client never_reads(server.port());
        never_reads.send("big\n");
        ASSERT_FALSE(never_reads.quiet_for(2000ms));
        ASSERT_EQ(::kill(::getpid(), SIGUSR2), 0);
        rill_test::expect_clean_end(idle, "the idle client");
        ASSERT_TRUE(rill_test::thread_wait_until([&] { return server.accept_loop_ended(); }));
        EXPECT_FALSE(server.returned()) << "the drain ended without the second signal";
        const auto second = clock_type::now();
        ASSERT_EQ(::kill(::getpid(), SIGUSR2), 0);
        EXPECT_LT(server.join(second), 5000ms);
    }
    struct sigaction after {};
    ASSERT_EQ(::sigaction(SIGUSR2, nullptr, &after), 0);
    EXPECT_EQ(after.sa_handler, mine.sa_handler) << "the previous disposition was not restored";
    ASSERT_EQ(::sigaction(SIGUSR2, &before, nullptr), 0);
}

TEST(GracefulShutdown, BadShutdownOptionsAreArgumentErrors) {
    EXPECT_EQ(rill_test::message_of<rill::argument_error>(
                  [] { rill::run([] {}, {.shutdown_signals = {SIGKILL}}); }),
              "shutdown_signals: 9 (Killed) cannot be caught");
    EXPECT_EQ(rill_test::message_of<rill::argument_error>(
                  [] { rill::run([] {}, {.shutdown_signals = {0}}); }),
              "shutdown_signals: 0 is not a signal number");
    EXPECT_EQ(rill_test::message_of<rill::argument_error>(
                  [] { rill::run([] {}, {.drain_timeout = -1ms}); }),
              "drain_timeout must not be negative, got -1 ms");
    // One run at a time takes signals.
    rill::run(
        [] {
            std::exception_ptr second;
            std::thread other([&] {
                try {
                    rill::run([] {}, {.workers = 1, .shutdown_signals = {SIGUSR2}});
                } catch (...) {
                    second = std::current_exception();
                }
            });
            other.join();
            ASSERT_TRUE(second);
            try {
                std::rethrow_exception(second);
            } catch (const rill::argument_error& e) {
                EXPECT_STREQ(e.what(), "run: another run in this process already takes signals "
                                       "(shutdown_signals, task_dump_signal)");
            }
        },
        {.workers = 1, .shutdown_signals = {SIGUSR2}});
}

}  // namespace
