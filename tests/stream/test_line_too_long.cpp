// The stream-wide cap on read_line (max_line_length, default 64 KiB): past it read_line
// throws line_too_long, drops the rest of that line and carries on from the next line end.
#include <gtest/gtest.h>

#include <rill/rill.hpp>

#include "stream/stream_test_support.hpp"

namespace {

using namespace rill_stream_test;

constexpr std::size_t cap = rill::default_max_line_length_bytes;

// Sends `bytes` in pieces of `piece` bytes, then half-closes and waits for the server to close.
void send_in_pieces(memory_peer& c, const std::string& bytes, std::size_t piece) {
    for (std::size_t at = 0; at < bytes.size(); at += piece) c.send(bytes.substr(at, piece));
    c.shutdown_write();
    c.receive_all();
}

TEST(LineTooLong, DefaultCapIs64KiB) { EXPECT_EQ(cap, 64u * 1024u); }

TEST(LineTooLong, ExactlyTheCapIsFine) {
    const std::string line(cap, 'x');
    serve_memory_peer(
        [&](rill::stream& s) {
            EXPECT_EQ(rill::read_line(s), line);
            EXPECT_EQ(rill::read_line(s), "next");
            EXPECT_EQ(rill::read_line(s), line);  // the last line, ended by end of stream
            EXPECT_EQ(rill::read_line(s), std::nullopt);
        },
        [&](memory_peer& c) { send_in_pieces(c, line + "\r\nnext\r\n" + line, 10000); });
}

// One byte over the cap, for each kind of line end; the next line reads fine.
TEST(LineTooLong, OneByteOverThrowsAndTheNextLineReadsFine) {
    for (const std::string line_end : {"\r\n", "\n", "\r", "\n\r"}) {
        SCOPED_TRACE("line end " + std::to_string(line_end.size()) + " bytes, first " +
                     std::to_string(int(line_end[0])));
        const std::string too_long(cap + 1, 'y');
        serve_memory_peer(
            [&](rill::stream& s) {
                EXPECT_EQ(rill::read_line(s), "before");
                EXPECT_THROW(rill::read_line(s), rill::line_too_long);
                EXPECT_EQ(rill::read_line(s), "next");
                EXPECT_EQ(rill::read_line(s), "");
                EXPECT_EQ(rill::read_line(s), "last");
                EXPECT_EQ(rill::read_line(s), std::nullopt);
            },
            [&](memory_peer& c) {
                send_in_pieces(c,
                               "before" + line_end + too_long + line_end + "next" + line_end +
                                   line_end + "last",
                               100000);
            });
    }
}

// The same when the over-long line arrives in small pieces (the cap is hit before its end is
// seen, so the rest is skipped as it arrives), and when its line end is split in two.
TEST(LineTooLong, OverLongLineInPiecesIsSkippedToItsEnd) {
    const std::string too_long(3 * cap + 17, 'z');
    serve_memory_peer(
        [&](rill::stream& s) {
            try {
                (void)rill::read_line(s);
                ADD_FAILURE() << "no line_too_long";
            } catch (const rill::line_too_long& e) {
                EXPECT_NE(std::string(e.what()).find("65536"), std::string::npos) << e.what();
            }
            EXPECT_EQ(rill::read_line(s), "next");
            EXPECT_EQ(rill::read_line(s), std::nullopt);
        },
        [&](memory_peer& c) {
            c.send(too_long.substr(0, 1000));  // each send is one receive of the stream's
            c.send(too_long.substr(1000) + "\r");
            send_in_pieces(c, "\nnext\r\n", 100);
        });
}

TEST(LineTooLong, ThrownFromCustomSeparatorAndIntoStringFormsToo) {
    const std::string too_long(cap + 1, 'q');
    serve_memory_peer(
        [&](rill::stream& s) {
            EXPECT_THROW(rill::read_line(s, {.separator = U';'}), rill::line_too_long);
            EXPECT_EQ(rill::read_line(s), "a;b");
            std::string into;
            EXPECT_THROW(rill::read_line(s, into), rill::line_too_long);
            EXPECT_TRUE(rill::read_line(s, into));
            EXPECT_EQ(into, "c");
        },
        [&](memory_peer& c) {
            send_in_pieces(c, too_long + "\r\na;b\r\n" + too_long + "\r\nc\r\n", 50000);
        });
}

// The rest of the over-long line is skipped by whatever read comes next, not only read_line.
TEST(LineTooLong, NextReadOfAnyKindStartsAfterTheLine) {
    const std::string too_long(cap + 1, 'x');
    for (int which = 0; which < 6; ++which) {
        SCOPED_TRACE("read kind " + std::to_string(which));
        rill::channel<int> thrown(1);
        serve_memory_peer(
            [&](rill::stream& s) {
                EXPECT_THROW(rill::read_line(s), rill::line_too_long);
                thrown.send(1);
                std::byte buffer[2];
                switch (which) {
                case 0: EXPECT_EQ(rill::read_char(s), U'n'); break;
                case 1: EXPECT_EQ(rill::peek_char(s), U'n'); break;
                case 2: EXPECT_EQ(rill::read_byte(s), 'n'); break;
                case 3:
                    EXPECT_EQ(rill::read_n_bytes(s, 2), (std::vector<std::uint8_t>{'n', 'e'}));
                    break;
                case 4:
                    EXPECT_EQ(rill::read_some(s, buffer), 2u);
                    EXPECT_EQ(char(buffer[0]), 'n');
                    break;
                case 5: EXPECT_EQ(rill::read_n_chars(s, 2), "ne"); break;
                }
            },
            [&](memory_peer& c) {
                // The line end has not arrived when the cap is reached.
                c.send(too_long + "xxxx");
                ASSERT_TRUE(thrown.receive());  // the line's end comes after the throw
                send_in_pieces(c, "xxxx\r\nnext\r\n", 1000);
            });
    }
}

TEST(LineTooLong, MaxLineLengthZeroMeansNoCap) {
    const std::string huge(1024 * 1024, 'm');
    rill::stream_options no_cap;
    no_cap.max_line_length = 0;
    serve_memory_peer(
        [&](rill::stream& s) {
            auto line = rill::read_line(s);
            ASSERT_TRUE(line);
            EXPECT_EQ(line->size(), huge.size());
            EXPECT_TRUE(*line == huge);
            EXPECT_EQ(rill::read_line(s), "after");
        },
        [&](memory_peer& c) { send_in_pieces(c, huge + "\r\nafter\r\n", 65536); }, no_cap);
}

TEST(LineTooLong, PerStreamSetting) {
    serve_memory_peer(
        [&](rill::stream& s) {
            rill::max_line_length(s, 4);
            EXPECT_EQ(rill::read_line(s), "1234");
            EXPECT_THROW(rill::read_line(s), rill::line_too_long);
            EXPECT_EQ(rill::read_line(s), "ok");
            rill::max_line_length(s, 0);
            EXPECT_EQ(rill::read_line(s), "123456789");
        },
        [&](memory_peer& c) { send_in_pieces(c, "1234\r\n12345\r\nok\r\n123456789\r\n", 3); });
}

}  // namespace
