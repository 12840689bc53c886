// reader_timeout: a read that waits longer sees end of stream, but nothing is lost (a partial
// line stays buffered and the stream keeps working). writer_timeout: a write blocked longer on
// a peer that does not read throws timeout_error.
#include <gtest/gtest.h>

#include <rill/rill.hpp>

#include "stream/stream_test_support.hpp"

namespace {

using namespace rill_stream_test;
using steady = std::chrono::steady_clock;

constexpr auto short_timeout = std::chrono::milliseconds(100);

// Runs `serve` with the peer sending `first`, waiting until the server sets `timed_out`, then
// sending `rest`, half-closing and reading until the server closes.
void first_then_rest(const std::function<void(rill::tcp_client_stream&, std::atomic<bool>&)>& serve,
                     const std::string& first, const std::string& rest) {
    std::atomic<bool> timed_out{false};
    serve_raw_peer([&](rill::tcp_client_stream& s) { serve(s, timed_out); },
                   [&](rill_test::raw_client& c) {
                       c.send(first);
                       ASSERT_TRUE(thread_wait_until([&] { return timed_out.load(); }));
                       c.send(rest);
                       c.shutdown_write();
                       c.receive_all();
                   });
}

// Expects `read()` to come back empty after about short_timeout.
template <class Read>
void expect_times_out(Read read) {
    const auto start = steady::now();
    EXPECT_FALSE(read());
    const auto waited = steady::now() - start;
    EXPECT_GE(waited, short_timeout - 10ms);
    EXPECT_LT(waited, short_timeout + 2s);
}

TEST(ReaderTimeout, ReadLineSeesEndOfStreamThenCarriesOn) {
    first_then_rest(
        [](rill::tcp_client_stream& s, std::atomic<bool>& timed_out) {
            rill::reader_timeout(s, short_timeout);
            expect_times_out([&] { return rill::read_line(s).has_value(); });
            timed_out = true;
            EXPECT_EQ(rill::read_line(s), "hello");
            EXPECT_EQ(rill::read_line(s), std::nullopt);  // the real end of stream
        },
        "", "hello\r\n");
}

TEST(ReaderTimeout, PartialLineIsKept) {
    first_then_rest(
        [](rill::tcp_client_stream& s, std::atomic<bool>& timed_out) {
            rill::reader_timeout(s, short_timeout);
            expect_times_out([&] { return rill::read_line(s).has_value(); });
            timed_out = true;
            EXPECT_EQ(rill::read_line(s), "hello");
            EXPECT_EQ(rill::read_line(s), "world");
        },
        "hel", "lo\r\nworld");
}

TEST(ReaderTimeout, PartialLineIsKeptByTheIntoStringForm) {
    first_then_rest(
        [](rill::tcp_client_stream& s, std::atomic<bool>& timed_out) {
            rill::reader_timeout(s, short_timeout);
            std::string line;
            expect_times_out([&] { return rill::read_line(s, line); });
            timed_out = true;
            EXPECT_TRUE(rill::read_line(s, line));
            EXPECT_EQ(line, "hello");
        },
        "hel", "lo\r\n");
}

TEST(ReaderTimeout, PartialLineIsKeptWithCustomSeparatorAndMaxLength) {
    first_then_rest(
        [](rill::tcp_client_stream& s, std::atomic<bool>& timed_out) {
            rill::reader_timeout(s, short_timeout);
            expect_times_out([&] { return rill::read_line(s, {.separator = U';'}).has_value(); });
            expect_times_out([&] {
                return rill::read_line(s, {.separator = U';', .max_length = 10}).has_value();
            });
            timed_out = true;
            EXPECT_EQ(rill::read_line(s, {.separator = U';'}), "he\nllo");
            EXPECT_EQ(rill::read_line(s), "");
        },
        "he\r", "\nllo;\r\n");
}

TEST(ReaderTimeout, LineEndSplitByATimeout) {
    // "a\r" ends a line at once; the LF that follows after the timeout still belongs to it.
    for (bool general : {false, true}) {
        SCOPED_TRACE(general ? "custom separator" : "default separator");
        first_then_rest(
            [&](rill::tcp_client_stream& s, std::atomic<bool>& timed_out) {
                rill::reader_timeout(s, short_timeout);
                EXPECT_EQ(rill::read_line(s), "a");
                if (general) {
                    expect_times_out(
                        [&] { return rill::read_line(s, {.separator = U';'}).has_value(); });
                } else {
                    expect_times_out([&] { return rill::read_line(s).has_value(); });
                }
                timed_out = true;
                EXPECT_EQ(rill::read_line(s), "b");
                EXPECT_EQ(rill::read_line(s), std::nullopt);
            },
            "a\r", "\nb");
    }
}

TEST(ReaderTimeout, CharacterAndByteReads) {
    first_then_rest(
        [](rill::tcp_client_stream& s, std::atomic<bool>& timed_out) {
            rill::reader_timeout(s, short_timeout);
            // Half a character is not a character yet: the read times out, keeping the bytes.
            expect_times_out([&] { return rill::read_char(s).has_value(); });
            expect_times_out([&] { return rill::peek_char(s).has_value(); });
            timed_out = true;
            EXPECT_EQ(rill::read_char(s), U'\U0001F600');
            rill::reader_timeout(s, std::nullopt);
            EXPECT_EQ(rill::read_all_chars(s), "rest");
        },
        "\xF0\x9F", "\x98\x80rest");
    first_then_rest(
        [](rill::tcp_client_stream& s, std::atomic<bool>& timed_out) {
            rill::reader_timeout(s, short_timeout);
            std::byte buffer[4];
            expect_times_out([&] { return rill::read_byte(s).has_value(); });
            expect_times_out([&] { return rill::read_some(s, buffer) > 0; });
            expect_times_out([&] { return rill::read_n_bytes(s, 2).has_value(); });
            timed_out = true;
            EXPECT_EQ(rill::read_n_bytes(s, 2), (std::vector<std::uint8_t>{'o', 'k'}));
        },
        "", "ok");
}

TEST(ReaderTimeout, FromServerOptions) {
    rill::server_options o;
    o.stream.reader_timeout = short_timeout;
    std::atomic<bool> timed_out{false};
    serve_raw_peer(
        [&](rill::tcp_client_stream& s) {
            expect_times_out([&] { return rill::read_line(s).has_value(); });
            timed_out = true;
        },
        [&](rill_test::raw_client& c) {
            ASSERT_TRUE(thread_wait_until([&] { return timed_out.load(); }));
            c.receive_all();
        },
        o);
}

TEST(ReaderTimeout, OnARillClientStream) {
    rill::run([] {
        rill::tcp_server_stream server(0);
        const int port = rill::tcp_server_socket_info(server).port_number;
        rill::client_options o;
        o.stream.reader_timeout = short_timeout;
        rill::tcp_client_stream c(port, o);
        auto accepted = rill::read(server);
        ASSERT_TRUE(accepted);
        expect_times_out([&] { return rill::read_line(c).has_value(); });
        rill::showln(*accepted, "late");
        rill::flush_writer(*accepted);
        EXPECT_EQ(rill::read_line(c), "late");
    });
}

// Writes to a peer that reads nothing until the write blocks longer than the writer timeout.
// Returns how many bytes were written before timeout_error; -1 if it never came.
template <class Write>
long long write_until_timeout(rill::stream& s, Write write_some) {
    long long written = 0;
    try {
        for (int i = 0; i < 20000; ++i) written += write_some(s);  // far beyond any socket buffer
        rill::flush_writer(s);
    } catch (const rill::timeout_error& e) {
        EXPECT_NE(std::string(e.what()).find("timeout"), std::string::npos) << e.what();
        return written;
    }
    return -1;
}

TEST(WriterTimeout, BlockedWriteThrowsTimeoutError) {
    const std::string chunk(4000, 'w');
    const std::vector<std::uint8_t> block(1 << 20, 'B');
    for (int big = 0; big < 2; ++big) {
        SCOPED_TRACE(big ? "1 MiB write_bytes" : "4000-byte write_chars");
        std::atomic<bool> done{false};
        serve_raw_peer(
            [&](rill::tcp_client_stream& s) {
                rill::writer_timeout(s, short_timeout);
                const auto start = steady::now();
                long long written = big ? write_until_timeout(s,
                                                              [&](rill::stream& st) {
                                                                  rill::write_bytes(st, block);
                                                                  return block.size();
                                                              })
                                        : write_until_timeout(s, [&](rill::stream& st) {
                                              rill::write_chars(st, chunk);
                                              return chunk.size();
                                          });
                EXPECT_GE(written, 0) << "no timeout_error";
                EXPECT_LT(steady::now() - start, 5s);
                done = true;
            },
            [&](rill_test::raw_client&) {
                ASSERT_TRUE(thread_wait_until([&] { return done.load(); }));
            });
    }
}

TEST(WriterTimeout, FromServerOptionsAndFlushWriter) {
    rill::server_options o;
    o.stream.writer_timeout = short_timeout;
    std::atomic<bool> done{false};
    serve_raw_peer(
        [&](rill::tcp_client_stream& s) {
            const std::string chunk(60000, 'f');
            bool thrown = false;
            // flush_writer's send happens at the next scheduling point, so the timeout is
            // thrown by whichever call sends next: a write that fills the buffer, or a flush
            // after the yield.
            for (int i = 0; i < 2000 && !thrown; ++i) {
                try {
                    rill::write_chars(s, chunk);
                    rill::flush_writer(s);
                    rill::task_yield();
                } catch (const rill::timeout_error&) {
                    thrown = true;
                }
            }
            EXPECT_TRUE(thrown);
            done = true;
        },
        [&](rill_test::raw_client&) {
            ASSERT_TRUE(thread_wait_until([&] { return done.load(); }));
        },
        o);
}

// An echo to a peer that keeps sending but never reads: the answer's send blocks while the
// next request arrives. With another task ready, io_uring hands the send to the kernel
// together with the receive; the task must not wait for that send past the writer timeout,
// and the next write reports it.
TEST(WriterTimeout, EchoToAPeerThatSendsButNeverReads) {
    std::atomic<bool> done{false};
    serve_raw_peer(
        [&](rill::tcp_client_stream& s) {
            rill::writer_timeout(s, short_timeout);
            std::atomic<bool> stop{false};
            // Keeps a task ready, so that the echo's sends share kernel entries.
            rill::task busy = rill::spawn([&] {
                const auto limit = steady::now() + 20s;
                while (!stop.load() && steady::now() < limit) rill::task_yield();
            });
            const auto start = steady::now();
            bool thrown = false;
            std::string line;
            try {
                for (int i = 0; i < 100000 && rill::read_line(s, line); ++i) {
                    rill::showln(s, line);
                    rill::flush_writer(s);
                }
            } catch (const rill::timeout_error& e) {
                thrown = true;
                EXPECT_NE(std::string(e.what()).find("writer timeout"), std::string::npos)
                    << e.what();
            }
            EXPECT_TRUE(thrown) << "no timeout_error";
            EXPECT_LT(steady::now() - start, 10s);
            stop = true;
            busy.join();
            done = true;
        },
        [&](rill_test::raw_client& c) {
            // A line at a time with a pause, so that the server waits for each (its answer's
            // send goes with that wait), until the echoes fill both socket buffers; never
            // blocking, so it stops once the server gave up (it stops reading then).
            const std::string line = std::string(30000, 'p') + "\n";
            std::size_t sent_in_line = 0;
            const auto limit = steady::now() + 20s;
            while (!done.load() && steady::now() < limit) {
                const ssize_t n = ::send(c.fd(), line.data() + sent_in_line,
                                         line.size() - sent_in_line, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0 && errno != EAGAIN && errno != EINTR) break;
                if (n > 0)
                    sent_in_line = (sent_in_line + static_cast<std::size_t>(n)) % line.size();
                if (n <= 0 || sent_in_line == 0) std::this_thread::sleep_for(1ms);
            }
        });
}

}  // namespace
