// Line ends of a stream without transcoder, the reference's crlf style: on input CR, LF,
// CR LF and LF CR each end one line, however the bytes are split into segments; on output
// '\n' is written as CR LF by every text operation (bytes are never translated).
#include <gtest/gtest.h>

#include <rill/rill.hpp>

#include "stream/stream_test_support.hpp"

namespace {

using namespace rill_stream_test;
using lines = std::vector<std::string>;

// What the reference reads: a CR or LF ends a line, and the other one right after it
// belongs to the same line end. A last line without line end counts if it is not empty.
lines reference_lines(const std::string& bytes) {
    lines out;
    std::string line;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        const char c = bytes[i];
        if (c == '\r' || c == '\n') {
            out.push_back(line);
            line.clear();
            if (i + 1 < bytes.size() && bytes[i + 1] == (c == '\r' ? '\n' : '\r')) ++i;
        } else {
            line.push_back(c);
        }
    }
    if (!line.empty()) out.push_back(line);
    return out;
}

// The same text as read_char gives it: each line end one '\n'.
std::string reference_chars(const std::string& bytes) {
    std::string out;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        const char c = bytes[i];
        if (c == '\r' || c == '\n') {
            out.push_back('\n');
            if (i + 1 < bytes.size() && bytes[i + 1] == (c == '\r' ? '\n' : '\r')) ++i;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

const std::string every_kind = "a\r\nb\n\rc\r\rd\n\ne\r\n\r\nf\n\r\n\rg\r\n\n\rh\r";

// Serves one connection per way of cutting `bytes` in two (and one with every byte on its
// own), collecting what `read` makes of each.
template <class Result, class Read>
void for_every_split(const std::string& bytes, Read read, const Result& expected) {
    std::vector<std::vector<std::string>> splits;
    for (std::size_t cut = 0; cut <= bytes.size(); ++cut)
        splits.push_back({bytes.substr(0, cut), bytes.substr(cut)});
    std::vector<std::string> one_by_one;
    for (char c : bytes) one_by_one.emplace_back(1, c);
    splits.push_back(one_by_one);

    std::atomic<int> port{0};
    std::exception_ptr peer_error;
    std::thread peer([&] {
        try {
            if (!thread_wait_until([&] { return port.load() != 0; }) || port.load() < 0) return;
            for (const auto& segments : splits) {
                rill_test::raw_client c(port.load());
                for (std::size_t i = 0; i < segments.size(); ++i) {
                    if (i > 0)
                        std::this_thread::sleep_for(
                            std::chrono::milliseconds(segments.size() > 2 ? 2 : 10));
                    if (!segments[i].empty()) c.send(segments[i]);
                }
                c.shutdown_write();
                c.receive_all();
            }
        } catch (...) {
            peer_error = std::current_exception();
        }
    });
    try {
        rill::run([&] {
            rill::tcp_server_stream server(0);
            port = rill::tcp_server_socket_info(server).port_number;
            for (std::size_t i = 0; i < splits.size(); ++i) {
                auto client = rill::read(server);
                ASSERT_TRUE(client);
                SCOPED_TRACE(i < bytes.size() + 1 ? "cut at " + std::to_string(i)
                                                  : std::string("byte by byte"));
                EXPECT_EQ(read(*client), expected);
            }
        });
    } catch (...) {
        port = -1;
        peer.join();
        throw;
    }
    int unknown = 0;
    port.compare_exchange_strong(unknown, -1);
    peer.join();
    if (peer_error) std::rethrow_exception(peer_error);
}

TEST(LineEnds, ReferenceModelAgreesWithTheSpec) {
    EXPECT_EQ(reference_lines("a\r\nb"), (lines{"a", "b"}));
    EXPECT_EQ(reference_lines("a\n\rb"), (lines{"a", "b"}));
    EXPECT_EQ(reference_lines("a\r\rb"), (lines{"a", "", "b"}));
    EXPECT_EQ(reference_lines("a\n\nb"), (lines{"a", "", "b"}));
}

TEST(LineEnds, ReadLineWhereverTheSegmentsAreCut) {
    for_every_split(
        every_kind, [](rill::tcp_client_stream& s) { return read_all_lines(s); },
        reference_lines(every_kind));
}

TEST(LineEnds, ReadCharWhereverTheSegmentsAreCut) {
    for_every_split(
        every_kind,
        [](rill::tcp_client_stream& s) {
            std::string text;
            for (int i = 0; i < 1000; ++i) {
                auto c = rill::read_char(s);
                if (!c) break;
                text.push_back(static_cast<char>(*c));
            }
            return text;
        },
        reference_chars(every_kind));
}

TEST(LineEnds, CustomSeparatorLinesWhereverTheSegmentsAreCut) {
    // With another separator the line ends are text: each one '\n'.
    for_every_split(
        every_kind,
        [](rill::tcp_client_stream& s) { return read_all_lines(s, {.separator = U'h'}); },
        lines{reference_chars(every_kind).substr(0, reference_chars(every_kind).size() - 2), "\n"});
}

TEST(LineEnds, ByteReadsAfterALineWhereverTheSegmentsAreCut) {
    // The second half of the first line end is part of it, whether or not it had arrived.
    for_every_split(
        every_kind,
        [](rill::tcp_client_stream& s) {
            std::string got = rill::read_line(s).value_or("<eof>") + "|";
            return got + as_string(rill::read_all_bytes(s).value_or(std::vector<std::uint8_t>{}));
        },
        "a|" + every_kind.substr(3));
}

TEST(LineEnds, OutputWritesCrLfForEveryNewline) {
    std::string got;
    serve_raw_peer(
        [](rill::tcp_client_stream& s) {
            rill::write_chars(s, "a\nb");
            rill::write_char(s, U'\n');
            rill::show(s, "c\n", std::string("d\n"), '\n', U'\n');
            rill::showln(s, "e");
            rill::newline(s);
            rill::write_chars(s, "\r|\r\n|\n\r");  // a CR is written as it is
            rill::write_byte(s, '\n');  // bytes are never translated
            rill::close_stream(s);
        },
        [&](rill_test::raw_client& c) { got = c.receive_all(); });
    EXPECT_EQ(got, "a\r\nb\r\nc\r\nd\r\n\r\n\r\ne\r\n\r\n\r|\r\r\n|\r\n\r\n");
}

// showln of one string copies it in 16-byte steps while it looks for '\n': a '\n' anywhere
// (first step, a later step, the overlapping last step, the bytewise short case) still
// becomes CR LF, and text without one arrives unchanged.
TEST(LineEnds, ShowlnOfAStringTranslatesANewlineAtEveryPosition) {
    std::vector<std::string> texts;
    for (std::size_t length = 0; length <= 40; ++length) {
        std::string plain;
        for (std::size_t i = 0; i < length; ++i) plain.push_back(static_cast<char>('a' + i % 26));
        texts.push_back(plain);
        for (std::size_t at = 0; at < length; ++at) {
            std::string with_lf = plain;
            with_lf[at] = '\n';
            texts.push_back(with_lf);
        }
    }
    std::string got;
    serve_raw_peer(
        [&](rill::tcp_client_stream& s) {
            for (const auto& text : texts) rill::showln(s, text);
            rill::close_stream(s);
        },
        [&](rill_test::raw_client& c) { got = c.receive_all(); });
    std::string expected;
    for (const auto& text : texts) {
        for (char c : text) expected += c == '\n' ? std::string("\r\n") : std::string(1, c);
        expected += "\r\n";
    }
    EXPECT_EQ(got, expected);
}

TEST(LineEnds, EchoNormalisesEveryLineEndToCrLf) {
    std::string got;
    serve_raw_peer(
        [](rill::tcp_client_stream& s) {
            for (const auto& line : read_all_lines(s)) rill::showln(s, line);
            rill::close_stream(s);
        },
        [&](rill_test::raw_client& c) {
            c.send(every_kind);
            c.shutdown_write();
            got = c.receive_all();
        });
    std::string expected;
    for (const auto& line : reference_lines(every_kind)) expected += line + "\r\n";
    EXPECT_EQ(got, expected);
}

}  // namespace
