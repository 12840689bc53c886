// read_line on a stream without transcoder: byte-transparent UTF-8, and on input CR, LF,
// CR LF and LF CR each end one line (the reference's crlf eol style), whatever the segments.
#include <gtest/gtest.h>

#include <rill/rill.hpp>

#include "stream/stream_test_support.hpp"

namespace {

using namespace rill_stream_test;
using lines = std::vector<std::string>;

// The lines the stream reads when the peer sends `segments` (each arrives as one receive)
// and then half-closes.
lines lines_from(const std::vector<std::string>& segments, const rill::read_line_options& o = {}) {
    lines got;
    serve_memory_peer([&](rill::stream& s) { got = read_all_lines(s, o); },
                      [&](memory_peer& c) {
                          for (const std::string& segment : segments) c.send(segment);
                          c.shutdown_write();
                          c.receive_all();  // until the stream closes
                      });
    return got;
}

TEST(ReadLine, EmptyLines) {
    EXPECT_EQ(lines_from({"\r\n\r\nx\r\n\r\n"}), (lines{"", "", "x", ""}));
}

TEST(ReadLine, LastLineWithoutLineEndIsALine) {
    EXPECT_EQ(lines_from({"first\r\nlast"}), (lines{"first", "last"}));
    EXPECT_EQ(lines_from({"only"}), (lines{"only"}));
}

TEST(ReadLine, EndOfStreamIsEmptyEveryTime) {
    serve_raw_peer(
        [](rill::tcp_client_stream& s) {
            EXPECT_EQ(rill::read_line(s), std::nullopt);
            EXPECT_EQ(rill::read_line(s), std::nullopt);
            std::string into = "stale";
            EXPECT_FALSE(rill::read_line(s, into));
        },
        [](rill_test::raw_client& c) {
            c.shutdown_write();
            c.receive_all();
        });
}

TEST(ReadLine, EachLineEndEndsOneLine) {
    EXPECT_EQ(lines_from({"a\r\nb"}), (lines{"a", "b"}));
    EXPECT_EQ(lines_from({"a\n\rb"}), (lines{"a", "b"}));
    EXPECT_EQ(lines_from({"a\r\rb"}), (lines{"a", "", "b"}));
    EXPECT_EQ(lines_from({"a\n\nb"}), (lines{"a", "", "b"}));
    EXPECT_EQ(lines_from({"a\rb\nc"}), (lines{"a", "b", "c"}));
    EXPECT_EQ(lines_from({"a\r\n\r\nb"}), (lines{"a", "", "b"}));
    EXPECT_EQ(lines_from({"a\n\r\n\rb"}), (lines{"a", "", "b"}));
    EXPECT_EQ(lines_from({"a\r\n"}), (lines{"a"}));
    EXPECT_EQ(lines_from({"a\r"}), (lines{"a"}));
}

TEST(ReadLine, LineEndSplitAcrossSegments) {
    EXPECT_EQ(lines_from({"a\r", "\nb"}), (lines{"a", "b"}));
    EXPECT_EQ(lines_from({"a\n", "\rb"}), (lines{"a", "b"}));
    EXPECT_EQ(lines_from({"a\r", "\rb"}), (lines{"a", "", "b"}));
    EXPECT_EQ(lines_from({"a\n", "\nb"}), (lines{"a", "", "b"}));
    EXPECT_EQ(lines_from({"a\r", "\n", "\r\n", "b\r", "\n"}), (lines{"a", "", "b"}));
}

TEST(ReadLine, IncludeSeparatorGivesOneNewline) {
    const rill::read_line_options keep{.include_separator = true};
    EXPECT_EQ(lines_from({"a\r\nb\nc\rd\n\re"}, keep), (lines{"a\n", "b\n", "c\n", "d\n", "e"}));
    EXPECT_EQ(lines_from({"a\r", "\nb"}, keep), (lines{"a\n", "b"}));
}

TEST(ReadLine, CustomSeparator) {
    const rill::read_line_options semicolon{.separator = U';'};
    EXPECT_EQ(lines_from({"k=v;x=y;rest"}, semicolon), (lines{"k=v", "x=y", "rest"}));
    // Line ends are still translated inside such a line: CR LF reads as one '\n'.
    EXPECT_EQ(lines_from({"a\r\nb;c\rd\n\re;"}, semicolon), (lines{"a\nb", "c\nd\ne"}));
    EXPECT_EQ(lines_from({"a\r", "\nb;"}, semicolon), (lines{"a\nb"}));
    const rill::read_line_options keep{.separator = U';', .include_separator = true};
    EXPECT_EQ(lines_from({"a;b;c"}, keep), (lines{"a;", "b;", "c"}));
    const rill::read_line_options e_acute{.separator = U'\u00E9', .include_separator = false};
    EXPECT_EQ(lines_from({"x\xC3\xA9y\xC3\xA9"}, e_acute), (lines{"x", "y"}));
    const rill::read_line_options smiley{.separator = U'\U0001F600', .include_separator = true};
    EXPECT_EQ(lines_from({"hi\xF0\x9F\x98\x80", "there"}, smiley),
              (lines{"hi\xF0\x9F\x98\x80", "there"}));
}

TEST(ReadLine, MaxLengthLeavesTheRestInTheStream) {
    serve_raw_peer(
        [](rill::tcp_client_stream& s) {
            EXPECT_EQ(rill::read_line(s, {.max_length = 4}), "abcd");
            EXPECT_EQ(rill::read_line(s), "ef");
            // Characters, not bytes: é is two bytes, one character.
            EXPECT_EQ(rill::read_line(s, {.max_length = 2}), "h\xC3\xA9");
            EXPECT_EQ(rill::read_char(s), U'l');
            EXPECT_EQ(rill::read_line(s), "lo");
            // A line shorter than max_length ends at its line end, as usual.
            EXPECT_EQ(rill::read_line(s, {.max_length = 100}), "short");
            EXPECT_EQ(rill::read_line(s, {.max_length = 3}), "end");
            EXPECT_EQ(rill::read_line(s, {.max_length = 3}), std::nullopt);
        },
        [](rill_test::raw_client& c) {
            c.send("abcdef\r\nh\xC3\xA9llo\r\nshort\r\nend");
            c.shutdown_write();
            c.receive_all();
        });
}

TEST(ReadLine, IntoAStringReusesItsCapacity) {
    serve_raw_peer(
        [](rill::tcp_client_stream& s) {
            std::string line;
            line.reserve(256);
            const char* storage = line.data();
            std::vector<std::string> got;
            while (rill::read_line(s, line)) {
                got.push_back(line);
                EXPECT_EQ(line.data(), storage) << "read_line reallocated for \"" << line << "\"";
            }
            EXPECT_EQ(got, (lines{"one", "", "three", std::string(200, 'x'), "tail"}));
            EXPECT_TRUE(line.empty());
            EXPECT_FALSE(rill::read_line(s, line));
        },
        [](rill_test::raw_client& c) {
            c.send("one\r\n\r\nthree\n" + std::string(200, 'x') + "\r\ntail");
            c.shutdown_write();
            c.receive_all();
        });
}

TEST(ReadLine, NulBytesAreOrdinaryCharacters) {
    using namespace std::string_literals;
    EXPECT_EQ(lines_from({"a\0b\r\n\0\r\n\0"s}), (lines{"a\0b"s, "\0"s, "\0"s}));
}

TEST(ReadLine, InvalidUtf8PassesThroughReadLineAndShowln) {
    const std::string odd[] = {"\xFF\xFE\xC3",     "ok\xC3\xA9\x80",    "\xED\xA0\x80 surrogate",
                               "\xF4\x90\x80\x80", "\xC0\xAF overlong", "\xF0\x9F\x98"};
    std::string sent;
    std::string expected_echo;
    for (const auto& line : odd) {
        sent += line + "\n";
        expected_echo += line + "\r\n";
    }
    serve_raw_peer(
        [&](rill::tcp_client_stream& s) {
            for (const auto& line : odd) {
                auto got = rill::read_line(s);
                ASSERT_TRUE(got);
                EXPECT_EQ(*got, line);
                rill::showln(s, *got);
            }
            rill::flush_writer(s);
        },
        [&](rill_test::raw_client& c) {
            c.send(sent);
            EXPECT_EQ(c.receive_exactly(expected_echo.size()), expected_echo);
        });
}

TEST(ReadLine, SeedEchoServerWithRillClient) {
    std::optional<std::string> reply;
    serve_rill_peer(
        [](rill::tcp_client_stream& s) {
            rill::call_with_stream(s, [](rill::tcp_client_stream& c) {
                if (auto line = rill::read_line(c)) rill::showln(c, *line);
                rill::flush_writer(c);
            });
        },
        [&](rill::tcp_client_stream& c) {
            rill::showln(c, "hello");
            rill::flush_writer(c);
            reply = rill::read_line(c);
            EXPECT_EQ(rill::read_line(c), std::nullopt);
        });
    EXPECT_EQ(reply, "hello");
}

TEST(ReadLine, LongLinesAcrossManySegments) {
    // Lines longer than the initial buffer, arriving in odd-sized pieces.
    std::string all;
    lines expected;
    for (int i = 0; i < 20; ++i) {
        std::string line(static_cast<std::size_t>(1000 * i + 7), static_cast<char>('a' + i));
        expected.push_back(line);
        all += line + (i % 2 ? "\r\n" : "\n");
    }
    lines got;
    serve_raw_peer([&](rill::tcp_client_stream& s) { got = read_all_lines(s); },
                   [&](rill_test::raw_client& c) {
                       for (std::size_t at = 0; at < all.size(); at += 3001)
                           c.send(all.substr(at, 3001));
                       c.shutdown_write();
                       c.receive_all();
                   });
    EXPECT_EQ(got, expected);
}

}  // namespace
