// Output on a stream without transcoder: write_byte, write_bytes, write_char, write_chars,
// show, showln, newline, flush_writer. Output is buffered until flush_writer; '\n' goes out as
// CR LF; a writer to a peer that reads nothing blocks instead of growing memory.
#include <gtest/gtest.h>

#include <cstddef>
#include <ostream>

#include <rill/rill.hpp>

#include "stream/stream_test_support.hpp"

namespace {

using namespace rill_stream_test;

// What the peer receives when the server runs `write` and then closes the stream.
std::string wire_bytes(const std::function<void(rill::tcp_client_stream&)>& write) {
    std::string got;
    serve_raw_peer(
        [&](rill::tcp_client_stream& s) {
            write(s);
            rill::close_stream(s);
        },
        [&](rill_test::raw_client& c) { got = c.receive_all(); });
    return got;
}

struct point {
    int x, y;
};
std::ostream& operator<<(std::ostream& o, const point& p) {
    return o << '(' << p.x << ", " << p.y << ')';
}

struct named {
    std::string to_string() const { return "<named>"; }
};

TEST(Write, BytesGoOutUntranslated) {
    using namespace std::string_literals;
    const std::vector<std::uint8_t> some{'\r', '\n', 0, 0xFF};
    const std::byte more[] = {std::byte{'\n'}, std::byte{0xC3}};
    EXPECT_EQ(wire_bytes([&](rill::tcp_client_stream& s) {
                  rill::write_byte(s, 'a');
                  rill::write_byte(s, '\n');
                  rill::write_bytes(s, some);
                  rill::write_bytes(s, std::span<const std::byte>(more));
                  rill::write_bytes(s, std::span<const std::uint8_t>());
              }),
              "a\n\r\n\0\xFF\n\xC3"s);
}

TEST(Write, CharsAreUtf8AndNewlineIsCrLf) {
    EXPECT_EQ(wire_bytes([](rill::tcp_client_stream& s) {
                  rill::write_char(s, U'a');
                  rill::write_char(s, U'\u00E9');
                  rill::write_char(s, U'\u20AC');
                  rill::write_char(s, U'\U0001F600');
                  rill::write_char(s, U'\n');
                  rill::write_char(s, U'\r');  // only '\n' is a line end on output
                  rill::write_char(s, 0xDCFF);  // an invalid byte as read_char gives it
              }),
              "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\r\n\r\xFF");
    EXPECT_EQ(wire_bytes([](rill::tcp_client_stream& s) {
                  rill::write_chars(s, "one\ntwo\n\nthree\r\n");
                  rill::write_chars(s, "");
                  rill::write_chars(s, "\xFF\xC3 raw\n");  // invalid UTF-8 passes through unchanged
                  rill::newline(s);
              }),
              "one\r\ntwo\r\n\r\nthree\r\r\n\xFF\xC3 raw\r\n\r\n");
}

TEST(Write, WriteCharRejectsWhatIsNotACharacter) {
    EXPECT_EQ(wire_bytes([](rill::tcp_client_stream& s) {
                  EXPECT_THROW(rill::write_char(s, 0x110000), rill::argument_error);
                  EXPECT_THROW(rill::write_char(s, 0xD800), rill::argument_error);
                  EXPECT_THROW(rill::write_char(s, 0xDFFF), rill::argument_error);
                  rill::write_char(s, U'k');
              }),
              "k");
}

TEST(Write, ShowAndShowlnDisplayForms) {
    const std::string text = "str";
    const std::string_view view = "view";
    EXPECT_EQ(wire_bytes([&](rill::tcp_client_stream& s) {
                  rill::show(s, "lit", text, view);
                  rill::showln(s);
                  rill::showln(s, 42, -7, 0, 18446744073709551615ull, -9223372036854775807ll - 1);
                  rill::showln(s, 0.5, -2.25, 1e100, 3.0, 0.1f);
                  rill::showln(s, true, false);
                  rill::showln(s, 'c', U'\u00E9', U'\n');
                  rill::showln(s, point{1, -2}, named{});
                  rill::show(s, "a", 1, 'b', 2.5, true, "\n");
              }),
              "litstrview\r\n"
              "42-7018446744073709551615-9223372036854775808\r\n"
              "0.5-2.251e+10030.1\r\n"
              "truefalse\r\n"
              "c\xC3\xA9\r\n\r\n"
              "(1, -2)<named>\r\n"
              "a1b2.5true\r\n");
}

TEST(Write, NothingIsSentBeforeFlushWriter) {
    std::atomic<int> step{0};
    serve_raw_peer(
        [&](rill::tcp_client_stream& s) {
            rill::showln(s, "buffered");
            rill::write_bytes(s, std::vector<std::uint8_t>(1000, 'b'));
            step = 1;
            ASSERT_TRUE(task_wait_until([&] { return step.load() == 2; }));
            rill::flush_writer(s);
            rill::flush_writer(s);  // nothing left: harmless
            ASSERT_TRUE(task_wait_until([&] { return step.load() == 3; }));
        },
        [&](rill_test::raw_client& c) {
            ASSERT_TRUE(thread_wait_until([&] { return step.load() == 1; }));
            EXPECT_TRUE(c.quiet_for(std::chrono::milliseconds(200)))
                << "output sent before flush_writer";
            step = 2;
            EXPECT_EQ(c.receive_exactly(10 + 1000), "buffered\r\n" + std::string(1000, 'b'));
            step = 3;
        });
}

TEST(Write, BigOutputArrivesInOrder) {
    std::string expected;
    const auto got = wire_bytes([&](rill::tcp_client_stream& s) {
        for (int i = 0; i < 50000; ++i) {
            rill::showln(s, i);
            expected += std::to_string(i) + "\r\n";
        }
        std::vector<std::uint8_t> block(200000);
        for (std::size_t i = 0; i < block.size(); ++i)
            block[i] = static_cast<std::uint8_t>(i % 251);
        rill::write_bytes(s, block);
        expected.append(block.begin(), block.end());
        rill::write_chars(s, "end");
        expected += "end";
    });
    EXPECT_EQ(got.size(), expected.size());
    EXPECT_TRUE(got == expected);
}

// 64 MiB to a peer that reads nothing: the writer blocks (another task sees it blocked and
// the process no bigger), then the peer reads everything, in order.
void blocked_writer_keeps_memory_bounded(bool one_big_write) {
    constexpr std::size_t chunk_bytes = 251 * 16;  // every chunk continues the i % 251 pattern
    constexpr std::size_t chunks = (64u << 20) / chunk_bytes;
    constexpr std::size_t total = chunk_bytes * chunks;
    std::vector<std::uint8_t> data(one_big_write ? total : chunk_bytes);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i % 251);

    std::atomic<bool> let_peer_read{false};
    std::atomic<std::size_t> received{0};
    serve_raw_peer(
        [&](rill::tcp_client_stream& s) {
            std::atomic<std::size_t> written{0};
            std::atomic<bool> writer_done{false};
            const std::size_t rss_before = resident_bytes();
            auto writer = rill::spawn([&] {
                if (one_big_write) {
                    rill::write_bytes(s, data);
                    written = total;
                } else {
                    for (std::size_t i = 0; i < chunks; ++i) {
                        rill::write_bytes(s, data);
                        written += chunk_bytes;
                    }
                }
                rill::flush_writer(s);
                writer_done = true;
            });
            rill::task_sleep(std::chrono::milliseconds(250));
            const std::size_t written_then = written.load();
            rill::task_sleep(std::chrono::milliseconds(100));
            EXPECT_FALSE(writer_done.load()) << "the writer did not block";
            EXPECT_EQ(written.load(), written_then) << "the writer made progress with no reader";
            EXPECT_LT(written.load(), total);
            const std::size_t rss_after = resident_bytes();
            EXPECT_LT(rss_after, rss_before + (4u << 20))
                << "RSS grew from " << rss_before << " to " << rss_after
                << " while the writer was blocked";
            let_peer_read = true;
            writer.join();
            EXPECT_TRUE(writer_done.load());
            rill::close_stream(s);
        },
        [&](rill_test::raw_client& c) {
            ASSERT_TRUE(thread_wait_until([&] { return let_peer_read.load(); }));
            std::vector<char> buffer(1 << 16);
            std::size_t at = 0;
            std::size_t first_wrong = total;
            for (;;) {
                ssize_t n = rill_test::retry_interrupted(
                    [&] { return ::recv(c.fd(), buffer.data(), buffer.size(), 0); });
                ASSERT_GE(n, 0) << std::strerror(errno);
                if (n == 0) break;
                for (ssize_t i = 0; i < n; ++i, ++at)
                    if (first_wrong == total && static_cast<std::uint8_t>(buffer[i]) != at % 251)
                        first_wrong = at;
            }
            received = at;
            EXPECT_EQ(first_wrong, total) << "wrong byte at " << first_wrong;
        });
    EXPECT_EQ(received.load(), total);
}

TEST(Write, BlockedWriterOfSmallWritesKeepsMemoryBounded) {
    blocked_writer_keeps_memory_bounded(false);
}

TEST(Write, BlockedWriterOfOneBigWriteKeepsMemoryBounded) {
    blocked_writer_keeps_memory_bounded(true);
}

}  // namespace
