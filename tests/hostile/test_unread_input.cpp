// Nothing the peer did is lost by closing: the seed's once-echo (read one line, answer, close)
// answering a client that sent more than that line must still deliver its answer. Closing a
// socket with unread input makes the kernel reset the connection, and the reset destroys an
// answer the peer had not read yet; close_stream lingers instead (include/rill/stream.hpp).
// The lingering is bounded: a peer that sends its extra bytes and never closes holds a close
// no longer than lingering_close_time, and other clients are served meanwhile.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <rill/rill.hpp>

#include "stream/stream_state.hpp"
#include "stream/stream_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using rill_stream_test::thread_wait_until;
using steady = std::chrono::steady_clock;

// Tries per size: each lost its answer before close_stream lingered (200 of 200).
constexpr int tries = 200;
// ... within this time at most (a slow, shared machine runs fewer).
constexpr auto tries_time_limit = 30s;

// The seed's once-echo: one line, its answer, then close (call_with_stream's close_stream).
void once_echo(rill::tcp_client_stream& c) {
    if (auto line = rill::read_line(c)) rill::showln(c, *line);
    rill::flush_writer(c);
}

// A server of once-echoes on 127.0.0.1: `client(port)` runs on a thread of its own; the server
// stops when it returns.
template <class Client>
void with_once_echo_server(Client client, rill::server_options options = {}) {
    std::atomic<int> port{0};
    std::atomic<bool> client_done{false};
    std::exception_ptr client_error;
    std::thread client_thread([&] {
        try {
            if (thread_wait_until([&] { return port.load() != 0; })) client(port.load());
        } catch (...) {
            client_error = std::current_exception();
        }
        client_done = true;
    });
    rill::run([&] {
        rill::tcp_server_stream server("127.0.0.1:0", options);
        auto acceptor = rill::spawn([&] {
            while (auto c = rill::read(server))
                rill::spawn(
                    [c = std::move(*c)]() mutable { rill::call_with_stream(c, once_echo); });
        });
        port = rill::tcp_server_socket_info(server).port_number;
        rill_test::task_wait_until([&] { return client_done.load(); }, 120s);
        rill::close_stream(server);
        acceptor.join();
    });
    client_thread.join();
    if (client_error) std::rethrow_exception(client_error);
}

class HostileUnreadInput : public testing::TestWithParam<std::size_t> {};

TEST_P(HostileUnreadInput, TheOnceEchoAnswersAClientThatSentMoreThanALine) {
    const std::size_t extra_bytes = GetParam();
    int answered = 0, tried = 0;
    std::string first_wrong;
    with_once_echo_server([&](int port) {
        const auto limit = steady::now() + tries_time_limit;
        for (; tried < tries && steady::now() < limit; ++tried) {
            rill_test::raw_client c(port);
            // One send: the line and the extra bytes arrive together, as a pipelining or
            // misbehaving client sends them.
            c.send("hello " + std::to_string(tried) + "\n" + std::string(extra_bytes, 'x'));
            const std::string got = c.receive_all();  // "" when a reset destroyed the answer
            if (got == "hello " + std::to_string(tried) + "\r\n")
                ++answered;
            else if (first_wrong.empty())
                first_wrong = "try " + std::to_string(tried) + " got \"" + got + "\"";
        }
    });
    EXPECT_GE(tried, 20) << "too few tries in the time limit to mean anything";
    EXPECT_EQ(answered, tried) << first_wrong;
}

INSTANTIATE_TEST_SUITE_P(ExtraBytes, HostileUnreadInput, testing::Values(8 * 1024, 64 * 1024),
                         [](const testing::TestParamInfo<std::size_t>& info) {
                             return "LinePlus" + std::to_string(info.param / 1024) + "KiB";
                         });

// A client that sends its extra bytes and then neither reads to the end nor closes: the
// close lingers for lingering_close_time, no longer, and other clients are answered meanwhile.
TEST(HostileUnreadInputBound, ACloseOverAPeerThatNeverClosesEndsWithinTheBound) {
    constexpr auto bound = 1000ms;
    rill::server_options options;
    options.stream.lingering_close_time = bound;
    std::atomic<int> port{0};
    std::atomic<bool> stubborn_answered{false}, others_done{false};
    std::string stubborn_answer;
    std::atomic<bool> close_done{false};
    std::chrono::milliseconds close_took{0};
    std::chrono::milliseconds slowest_other{0};
    steady::time_point close_ended{}, others_ended{};
    std::thread stubborn([&] {
        if (!thread_wait_until([&] { return port.load() != 0; })) return;
        try {
            rill_test::raw_client c(port.load());
            c.send("stubborn\n" + std::string(16 * 1024, 'x'));
            stubborn_answer = c.receive_line();
            stubborn_answered = true;
            // Neither closes nor reads on until the server closed.
            thread_wait_until([&] { return close_done.load(); }, 20s);
        } catch (const std::exception& e) {
            stubborn_answer = e.what();  // a reset destroyed the answer
            stubborn_answered = true;
        }
    });
    std::thread others([&] {
        if (!thread_wait_until([&] { return stubborn_answered.load(); })) return;
        for (int i = 0; i < 5; ++i) {
            const auto start = steady::now();
            rill_test::raw_client c(port.load());
            c.send("other\n");
            if (c.receive_all() != "other\r\n") ADD_FAILURE() << "other client " << i;
            slowest_other = std::max(
                slowest_other,
                std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start));
        }
        others_ended = steady::now();
        others_done = true;
    });
    rill::run([&] {
        rill::tcp_server_stream server("127.0.0.1:0", options);
        port = rill::tcp_server_socket_info(server).port_number;
        auto first = rill::read(server);
        ASSERT_TRUE(first);
        auto lingering = rill::spawn([&, c = std::move(*first)]() mutable {
            once_echo(c);
            const auto start = steady::now();
            rill::close_stream(c);
            close_ended = steady::now();
            close_took = std::chrono::duration_cast<std::chrono::milliseconds>(close_ended - start);
            close_done = true;
        });
        for (int i = 0; i < 5; ++i) {
            auto c = rill::read(server);
            ASSERT_TRUE(c);
            rill::spawn([c = std::move(*c)]() mutable { rill::call_with_stream(c, once_echo); });
        }
        lingering.join();
        rill_test::task_wait_until([&] { return others_done.load(); });
    });
    stubborn.join();
    others.join();
    EXPECT_EQ(stubborn_answer, "stubborn\r\n");
    EXPECT_GE(close_took, bound - 50ms);  // it did linger: the peer never closed
    EXPECT_LE(close_took, bound + 1000ms);
    EXPECT_LT(slowest_other, 500ms);
    EXPECT_LT(others_ended, close_ended) << "the other clients waited for the lingering close";
}

// The same over the memory transport: the peer keeps its end open, the close returns after
// the bound, and what the peer sent was drained, not left behind.
TEST(HostileUnreadInputBound, MemoryTransportCloseLingersWithinTheBound) {
    constexpr auto bound = 300ms;
    rill::stream_options options;
    options.lingering_close_time = bound;
    std::atomic<bool> closed{false};
    std::string answer;
    std::chrono::milliseconds close_took{0};
    rill_stream_test::serve_memory_peer(
        [&](rill::stream& s) {
            if (auto line = rill::read_line(s)) rill::showln(s, *line);
            const auto start = steady::now();
            rill::close_stream(s);
            close_took =
                std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
            closed = true;
        },
        [&](rill_stream_test::memory_peer& peer) {
            peer.send("hello\n" + std::string(8 * 1024, 'x'));
            peer.send(std::string(8 * 1024, 'y'));
            answer = peer.receive_all();  // ends at the half-close, before the close
            rill_test::task_wait_until([&] { return closed.load(); });
        },
        options);
    EXPECT_EQ(answer, "hello\r\n");
    EXPECT_GE(close_took, bound - 20ms);
    EXPECT_LE(close_took, bound + 1000ms);
}

// A task cancelled while its close lingers (run's end cancels every task) still closes: run
// returns long before the bound, and the peer sees the connection end.
TEST(HostileUnreadInputBound, CancellationDuringTheLingerStillCloses) {
    rill::server_options options;
    options.stream.lingering_close_time = 20s;
    std::atomic<int> port{0};
    std::atomic<bool> answered{false}, run_returned{false};
    std::string answer;
    std::thread peer([&] {
        if (!thread_wait_until([&] { return port.load() != 0; })) return;
        try {
            rill_test::raw_client c(port.load());
            c.send("hello\n" + std::string(16 * 1024, 'x'));
            answer = c.receive_line();
            answered = true;
            // Keeps its end open (the close cannot end by the peer's end) until run returned.
            thread_wait_until([&] { return run_returned.load(); }, 30s);
        } catch (const std::exception& e) {
            answer = e.what();
            answered = true;
        }
    });
    const auto start = steady::now();
    bool cancelled = false;
    rill::run([&] {
        rill::tcp_server_stream server("127.0.0.1:0", options);
        port = rill::tcp_server_socket_info(server).port_number;
        auto c = rill::read(server);
        ASSERT_TRUE(c);
        auto lingering = rill::spawn([&, c = std::move(*c)]() mutable {
            try {
                rill::call_with_stream(c, once_echo);
            } catch (const rill::task_cancelled&) {
                cancelled = true;
                EXPECT_FALSE(c.is_open());
            }
        });
        rill_test::task_wait_until([&] { return answered.load(); });
        rill::task_sleep(50ms);  // the close is lingering by now
    });  // returning cancels the lingering task
    const auto took = steady::now() - start;
    run_returned = true;
    peer.join();
    EXPECT_EQ(answer, "hello\r\n");
    EXPECT_TRUE(cancelled);
    EXPECT_LT(took, 5s);
}

}  // namespace
