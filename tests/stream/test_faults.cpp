// A peer that resets never kills the process (no SIGPIPE): a write throws os_error, a read
// sees end of stream, and the other tasks carry on.
#include <gtest/gtest.h>

#include <cerrno>

#include <rill/rill.hpp>

#include "stream/stream_test_support.hpp"
#include "support/in_process_server.hpp"

namespace {

using namespace rill_stream_test;

// An echo conversation on its own server, running beside the test's faulty connection:
// `rounds` request/answer exchanges, one every few milliseconds. Returns the answers seen.
struct bystander {
    rill::tcp_server_stream server{0};
    int answered = 0;
    rill::task echo_task;
    rill::task client_task;

    explicit bystander(int rounds) {
        const int port = rill::tcp_server_socket_info(server).port_number;
        echo_task = rill::spawn([this] {
            auto c = rill::read(server);
            ASSERT_TRUE(c);
            rill_test::echo_lines(*c);
        });
        client_task = rill::spawn([this, port, rounds] {
            rill::tcp_client_stream c(port);
            for (int i = 0; i < rounds; ++i) {
                rill::showln(c, "round ", i);
                rill::flush_writer(c);
                if (rill::read_line(c) != "round " + std::to_string(i)) break;
                ++answered;
                rill::task_sleep(std::chrono::milliseconds(5));
            }
            rill::close_stream(c);
        });
    }
    void join() {
        client_task.join();
        echo_task.join();
    }
};

bool is_reset_or_broken_pipe(const rill::os_error& e) {
    return e.code().value() == ECONNRESET || e.code().value() == EPIPE;
}

TEST(StreamFaults, PeerResetsBeforeReadingItsEcho) {
    for (bool read_first : {true, false}) {
        SCOPED_TRACE(read_first ? "the server reads the reset first" : "the server writes first");
        std::atomic<bool> line_read{false};
        std::atomic<bool> reset_done{false};
        constexpr int rounds = 20;
        int answered = 0;
        serve_raw_peer(
            [&](rill::tcp_client_stream& s) {
                bystander other(rounds);
                EXPECT_EQ(rill::read_line(s), "hello");
                line_read = true;
                if (read_first) {
                    EXPECT_EQ(rill::read_line(s), std::nullopt);  // the reset is end of stream
                } else {
                    ASSERT_TRUE(task_wait_until([&] { return reset_done.load(); }));
                    rill::task_sleep(settle_time);
                }
                try {
                    // flush_writer's send happens at the task's next scheduling point (here
                    // the yield); its error is thrown by the next write.
                    rill::showln(s, "hello");
                    rill::flush_writer(s);
                    rill::task_yield();
                    rill::showln(s, "hello");
                    ADD_FAILURE() << "writing to a reset connection did not throw";
                } catch (const rill::os_error& e) {
                    EXPECT_TRUE(is_reset_or_broken_pipe(e)) << e.what();
                }
                // Every later write reports the failure too; closing does not throw.
                EXPECT_THROW(rill::showln(s, "again"), rill::os_error);
                EXPECT_THROW(rill::flush_writer(s), rill::os_error);
                rill::close_stream(s);
                other.join();
                answered = other.answered;
            },
            [&](rill_test::raw_client& c) {
                c.send("hello\r\n");
                ASSERT_TRUE(thread_wait_until([&] { return line_read.load(); }));
                c.reset();
                reset_done = true;
            });
        EXPECT_EQ(answered, rounds);
    }
}

TEST(StreamFaults, PeerResetsWhileAWriteIsBlocked) {
    serve_raw_peer(
        [&](rill::tcp_client_stream& s) {
            bystander other(10);
            const std::vector<std::uint8_t> block(1 << 20, 'z');
            try {
                for (int i = 0; i < 256; ++i) rill::write_bytes(s, block);
                rill::flush_writer(s);
                ADD_FAILURE() << "256 MiB written to a peer that reads nothing";
            } catch (const rill::os_error& e) {
                EXPECT_TRUE(is_reset_or_broken_pipe(e)) << e.what();
            }
            other.join();
            EXPECT_EQ(other.answered, 10);
        },
        [](rill_test::raw_client& c) {
            // By then the writer has filled the socket buffers (a few MiB) and blocked.
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            c.reset();
        });
}

TEST(StreamFaults, ResetDuringAReadIsEndOfStream) {
    std::atomic<bool> waiting{false};
    serve_raw_peer(
        [&](rill::tcp_client_stream& s) {
            EXPECT_EQ(rill::read_line(s), "first");
            waiting = true;
            EXPECT_EQ(rill::read_line(s),
                      "partial");  // what arrived before the reset is a last line
            EXPECT_EQ(rill::read_line(s), std::nullopt);
            EXPECT_EQ(rill::read_char(s), std::nullopt);
            EXPECT_EQ(rill::read_byte(s), std::nullopt);
            std::byte buffer[4];
            EXPECT_EQ(rill::read_some(s, buffer), 0u);
        },
        [&](rill_test::raw_client& c) {
            c.send("first\r\npartial");
            ASSERT_TRUE(thread_wait_until([&] { return waiting.load(); }));
            std::this_thread::sleep_for(settle_time);  // the server is blocked in read_line
            c.reset();
        });
}

TEST(StreamFaults, ResetDuringByteAndCharacterReads) {
    for (int which = 0; which < 3; ++which) {
        std::atomic<bool> waiting{false};
        serve_raw_peer(
            [&](rill::tcp_client_stream& s) {
                waiting = true;
                std::byte buffer[4];
                switch (which) {
                case 0: EXPECT_EQ(rill::read_byte(s), std::nullopt); break;
                case 1: EXPECT_EQ(rill::read_some(s, buffer), 0u); break;
                case 2: EXPECT_EQ(rill::read_char(s), std::nullopt); break;
                }
            },
            [&](rill_test::raw_client& c) {
                ASSERT_TRUE(thread_wait_until([&] { return waiting.load(); }));
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
                c.reset();
            });
    }
}

}  // namespace
