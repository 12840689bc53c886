// Character input on a stream without transcoder: read_char, peek_char, read_n_chars,
// read_all_chars. Text is UTF-8; a byte that is not valid UTF-8 reads as U+DC80 + byte (and
// write_char gives it back); CR, LF, CR LF and LF CR each read as one '\n'.
#include <gtest/gtest.h>

#include <rill/rill.hpp>

#include "stream/stream_test_support.hpp"

namespace {

using namespace rill_stream_test;
using chars = std::vector<char32_t>;

chars all_chars(rill::stream& s) {
    chars got;
    for (int i = 0; i < 10000; ++i) {
        auto c = rill::read_char(s);
        if (!c) break;
        got.push_back(*c);
    }
    return got;
}

chars chars_from(std::vector<std::string> segments) {
    chars got;
    serve_memory_peer([&](rill::stream& s) { got = all_chars(s); },
                      memory_sends(std::move(segments)));
    return got;
}

TEST(ReadChar, Utf8MultiByteCharacters) {
    EXPECT_EQ(chars_from({"a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z"}),
              (chars{U'a', U'\u00E9', U'\u20AC', U'\U0001F600', U'z'}));
}

TEST(ReadChar, CharacterSplitAcrossSegmentsWaitsForItsEnd) {
    EXPECT_EQ(chars_from({"\xF0\x9F", "\x98\x80", "\xC3", "\xA9"}),
              (chars{U'\U0001F600', U'\u00E9'}));
}

TEST(ReadChar, PeekDoesNotConsume) {
    serve_memory_peer(
        [](rill::stream& s) {
            EXPECT_EQ(rill::peek_char(s), U'\U0001F600');
            EXPECT_EQ(rill::peek_char(s), U'\U0001F600');
            EXPECT_EQ(rill::read_char(s), U'\U0001F600');
            EXPECT_EQ(rill::peek_char(s), U'x');
            EXPECT_EQ(rill::read_char(s), U'x');
            EXPECT_EQ(rill::peek_char(s), std::nullopt);
            EXPECT_EQ(rill::read_char(s), std::nullopt);
            EXPECT_EQ(rill::peek_char(s), std::nullopt);
        },
        memory_sends({"\xF0\x9F\x98\x80x"}));
}

TEST(ReadChar, InvalidBytesReadAsDC80PlusByte) {
    EXPECT_EQ(chars_from({"\xFF\xFE"
                          "A"}),
              (chars{0xDCFF, 0xDCFE, U'A'}));
    // A lead byte not followed by a continuation is one invalid byte; its neighbour survives.
    EXPECT_EQ(chars_from({"\xC3"
                          "A\xE2\x82"
                          "B"}),
              (chars{0xDCC3, U'A', 0xDCE2, 0xDC82, U'B'}));
    // A character cut by the end of the stream reads as its bytes.
    EXPECT_EQ(chars_from({"A\xF0\x9F\x98"}), (chars{U'A', 0xDCF0, 0xDC9F, 0xDC98}));
    // Encoded surrogates and overlongs are not characters.
    EXPECT_EQ(chars_from({"\xED\xA0\x80\xC0\xAF"}),
              (chars{0xDCED, 0xDCA0, 0xDC80, 0xDCC0, 0xDCAF}));
}

TEST(ReadChar, WriteCharOfAnInvalidByteWritesTheByteBack) {
    const std::string sent = "ok\xFF\xFE\xC3\xA9\xC3\xF0\x9F\x98\x80\xED\xA0\x80!";
    serve_memory_peer(
        [&](rill::stream& s) {
            for (int i = 0; i < 100; ++i) {
                auto c = rill::read_char(s);
                if (!c) break;
                rill::write_char(s, *c);
            }
            rill::close_stream(s);
        },
        [&](memory_peer& c) {
            c.send(sent);
            c.shutdown_write();
            EXPECT_EQ(c.receive_all(), sent);
        });
}

TEST(ReadChar, EachLineEndReadsAsOneNewline) {
    EXPECT_EQ(chars_from({"a\r\nb"}), (chars{U'a', U'\n', U'b'}));
    EXPECT_EQ(chars_from({"a\n\rb"}), (chars{U'a', U'\n', U'b'}));
    EXPECT_EQ(chars_from({"\r\r\n\n"}), (chars{U'\n', U'\n', U'\n'}));
    EXPECT_EQ(chars_from({"a\r", "\nb"}), (chars{U'a', U'\n', U'b'}));
    EXPECT_EQ(chars_from({"a\n", "\rb"}), (chars{U'a', U'\n', U'b'}));
    EXPECT_EQ(chars_from({"a\r", "\rb"}), (chars{U'a', U'\n', U'\n', U'b'}));
}

TEST(ReadChar, PeekAtACarriageReturnSeesNewline) {
    serve_memory_peer(
        [](rill::stream& s) {
            EXPECT_EQ(rill::peek_char(s), U'\n');
            EXPECT_EQ(rill::read_char(s), U'\n');
            EXPECT_EQ(rill::peek_char(s), U'b');
            EXPECT_EQ(rill::read_line(s), "b");
            EXPECT_EQ(rill::peek_char(s), U'\n');  // the lone CR of the next (empty) line
            EXPECT_EQ(rill::read_line(s), "");
            EXPECT_EQ(rill::read_char(s), std::nullopt);
        },
        memory_sends({"\r\nb\r\n\r"}));
}

TEST(ReadNChars, CountsCharactersNotBytes) {
    serve_memory_peer(
        [](rill::stream& s) {
            EXPECT_EQ(rill::read_n_chars(s, 3), "h\xC3\xA9l");
            EXPECT_EQ(rill::read_n_chars(s, 2), "lo");
            EXPECT_EQ(rill::read_n_chars(s, 0), "");
            EXPECT_EQ(rill::read_n_chars(s, 3), "\n\xF0\x9F\x98\x80\xFF");  // CR LF is one '\n'
            EXPECT_EQ(rill::read_n_chars(s, 100), "tail");  // fewer at end of stream
            EXPECT_EQ(rill::read_n_chars(s, 1), std::nullopt);
        },
        memory_sends({"h\xC3\xA9llo\r\n\xF0\x9F\x98\x80\xFFtail"}));
}

TEST(ReadNChars, ManyMoreThanOneLine) {
    std::string body;
    for (int i = 0; i < 2000; ++i) body += "line " + std::to_string(i) + "\n";
    serve_memory_peer(
        [&](rill::stream& s) {
            // A count larger than max_line_length is not a line: no line_too_long.
            rill::max_line_length(s, 16);
            auto text = rill::read_n_chars(s, body.size());
            ASSERT_TRUE(text);
            EXPECT_TRUE(*text == body);
            EXPECT_EQ(rill::read_line(s), "more");
        },
        memory_sends({body, "more"}));
}

TEST(ReadAllChars, EverythingUntilEndOfStream) {
    serve_memory_peer(
        [](rill::stream& s) {
            EXPECT_EQ(rill::read_char(s), U'x');
            EXPECT_EQ(rill::read_all_chars(s), "y\n\xC3\xA9\n\xFEz");
            EXPECT_EQ(rill::read_all_chars(s), std::nullopt);
            EXPECT_EQ(rill::read_char(s), std::nullopt);
        },
        memory_sends({"xy\r\n\xC3", "\xA9\n\r\xFEz"}));
}

TEST(ReadAllChars, EmptyStream) {
    serve_memory_peer(
        [](rill::stream& s) {
            EXPECT_EQ(rill::read_all_chars(s), std::nullopt);
            EXPECT_EQ(rill::read_n_chars(s, 5), std::nullopt);
            EXPECT_EQ(rill::read_char(s), std::nullopt);
            EXPECT_EQ(rill::peek_char(s), std::nullopt);
        },
        memory_sends({}));
}

}  // namespace
