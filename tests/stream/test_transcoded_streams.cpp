// Streams with a transcoder, over loopback TCP (on both backends, as the whole suite runs):
// server_options.transcoder on every client stream the server hands out and
// client_options.transcoder on the client; read_line, read_char, peek_char and the writes
// through every codec family (the utf family sniffing each BOM), every eol style on input and
// output, every error mode (ignore drops, replace gives U+FFFD, raise throws decoding_error /
// encoding_error naming the codec, the bytes or character and the position, and the next read
// carries on after them).
//
// Every input is sent whole, one byte per TCP segment and in random segments (fixed seed).
// Segments really arrive apart: the peer sends with TCP_NODELAY and sends the next segment only
// once the rill side's socket has received everything sent so far (TCP_INFO's
// tcpi_bytes_received) and rill has read all of it (FIONREAD is 0).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <rill/rill.hpp>

#include "stream/stream_state.hpp"
#include "stream/stream_test_support.hpp"
#include "support/codecs.hpp"
#include "support/text_model.hpp"
#include "text/codec.hpp"
#include "text/utf8.hpp"

namespace {

using namespace rill_stream_test;
using namespace std::string_view_literals;
using rill::codec;
using rill::eol_style;
using rill::error_handling_mode;
using rill::transcoder;
using rill_test::codec_test_name;
using rill_test::every_codec;
using rill_test::every_eol_style;
using rill_test::every_error_mode;
using rill_test::hex;
using testing::HasSubstr;

constexpr std::uint32_t split_seed = 20240601;  // fixed so a failure reproduces
constexpr auto handshake_poll = std::chrono::microseconds(20);

// ---- Segments and the handshake that keeps them apart ------------------------------------------

enum class split { whole, one_byte_per_segment, random_segments };
constexpr std::array all_splits{split::whole, split::one_byte_per_segment, split::random_segments};

std::string_view split_name(split s) {
    constexpr std::string_view names[] = {"whole", "one byte per segment", "random segments"};
    return names[static_cast<std::size_t>(s)];
}

std::vector<std::string> segments_of(std::string_view bytes, split s) {
    std::vector<std::string> segments;
    if (s == split::whole || bytes.empty()) return {std::string(bytes)};
    std::mt19937 rng(split_seed + static_cast<std::uint32_t>(bytes.size()));
    for (std::size_t at = 0; at < bytes.size();) {
        const std::size_t length = s == split::one_byte_per_segment ? 1 : 1 + rng() % 5;
        segments.emplace_back(bytes.substr(at, length));
        at += segments.back().size();
    }
    return segments;
}

// The rill side of one connection, as the peer's handshake sees it.
struct reader_link {
    std::atomic<int> fd{-1};  // a dup of the rill side's socket; the peer takes and closes it
    std::atomic<bool> done{false};  // the rill side stopped reading
};

// glibc's tcp_info stops at tcpi_total_retrans; Linux 4.1+ appends these after it.
struct tcp_info_with_byte_counts {
    tcp_info base;
    std::uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
};
static_assert(offsetof(tcp_info_with_byte_counts, bytes_received) == 128,
              "where Linux puts tcpi_bytes_received");

// Payload bytes that arrived at the socket, read or not.
std::uint64_t bytes_received(int fd) {
    tcp_info_with_byte_counts info{};
    socklen_t length = sizeof info;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0 || length < sizeof info)
        throw std::runtime_error("TCP_INFO without tcpi_bytes_received (Linux 4.1+ has it)");
    return info.bytes_received;
}

std::size_t unread_bytes(int fd) {
    int n = 0;
    ioctl(fd, FIONREAD, &n);
    return static_cast<std::size_t>(n);
}

// Sends each segment in its own TCP segment, and the next one only after rill has read it.
void send_segments(rill_test::raw_client& c, const std::vector<std::string>& segments,
                   reader_link& link) {
    int one = 1;
    setsockopt(c.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!thread_wait_until([&] { return link.fd.load() >= 0 || link.done.load(); }))
        throw std::runtime_error("the rill side never published its socket");
    struct owned_fd {
        int fd;
        ~owned_fd() {
            if (fd >= 0) ::close(fd);
        }
    } reader{link.fd.exchange(-1)};
    std::uint64_t sent = 0;
    for (std::size_t i = 0; i < segments.size(); ++i) {
        if (!segments[i].empty()) c.send(segments[i]);
        sent += segments[i].size();
        if (i + 1 == segments.size() || reader.fd < 0) continue;
        const auto limit = std::chrono::steady_clock::now() + wait_limit;
        while (!link.done.load() &&
               !(bytes_received(reader.fd) >= sent && unread_bytes(reader.fd) == 0)) {
            if (std::chrono::steady_clock::now() > limit)
                throw std::runtime_error("the rill side did not read segment " + std::to_string(i));
            std::this_thread::sleep_for(handshake_poll);
        }
    }
}

// Serves `count` connections one after the other on a server with `options` (port 0): for
// each, `serve(stream, i)` runs in rill on the accepted stream, which is then closed (flushing
// what it wrote), while `peer(client, link, i)` drives the other end from a thread. An
// exception on the peer's side is rethrown here; the connections it did not make are made
// empty, so the rill side never waits for them.
template <class Serve, class Peer>
void serve_connections(const rill::server_options& options, std::size_t count, Serve serve,
                       Peer peer) {
    std::vector<reader_link> links(count);
    std::atomic<int> port{0};  // 0: not yet known; -1: the rill side gave up
    std::exception_ptr peer_error;
    std::thread peer_thread([&] {
        std::size_t made = 0;
        try {
            if (!thread_wait_until([&] { return port.load() != 0; }))
                throw std::runtime_error("the server never published its port");
            for (; made < count && port.load() > 0; ++made) {
                rill_test::raw_client client(port.load());
                peer(client, links[made], made);
            }
        } catch (...) {
            peer_error = std::current_exception();
            for (++made; made < count && port.load() > 0; ++made) {
                try {
                    rill_test::raw_client unblock(port.load());
                } catch (...) {}
            }
        }
    });
    const auto finish = [&] {
        int unknown = 0;
        port.compare_exchange_strong(unknown, -1);
        peer_thread.join();
        for (reader_link& link : links)
            if (const int fd = link.fd.exchange(-1); fd >= 0) ::close(fd);
    };
    try {
        rill::run([&] {
            rill::tcp_server_stream server(0, options);
            port = rill::tcp_server_socket_info(server).port_number;
            for (std::size_t i = 0; i < count; ++i) {
                auto client = rill::read(server);
                ASSERT_TRUE(client) << "no connection accepted";
                links[i].fd = ::dup(rill::detail::state_of(*client).io->native_handle());
                try {
                    serve(*client, i);
                } catch (...) {
                    links[i].done = true;
                    if (const int fd = links[i].fd.exchange(-1); fd >= 0) ::close(fd);
                    throw;
                }
                links[i].done = true;
                // A socket the peer did not take for a handshake: its copy would keep the
                // connection open after close_stream.
                if (const int fd = links[i].fd.exchange(-1); fd >= 0) ::close(fd);
                rill::close_stream(*client);
            }
        });
    } catch (...) {
        finish();
        throw;
    }
    finish();
    if (peer_error) std::rethrow_exception(peer_error);
}

rill::server_options with(const transcoder& t) {
    rill::server_options o;
    o.transcoder = t;
    return o;
}

// ---- Codecs: the bytes of a text, and what reading it must give ----------------------------------

// `utf8` in a codec (rill's encoder in raise mode, eol none: tests/text checked its bytes
// against Gambit); its BOM first where it writes one.
std::string encoded(codec c, std::string_view utf8) {
    rill::detail::encoder e(transcoder(c, eol_style::none, error_handling_mode::raise));
    std::string bytes;
    const rill::detail::encode_result r = e.encode(utf8, bytes);
    EXPECT_TRUE(!r.error && r.consumed == utf8.size())
        << "cannot encode the test text in " << rill::to_string(c);
    return bytes;
}

char32_t largest_character(codec c) {
    switch (c) {
    case codec::ascii: return 0x7F;
    case codec::iso_8859_1: return 0xFF;
    case codec::ucs_2:
    case codec::ucs_2le:
    case codec::ucs_2be: return 0xFFFF;
    default: return 0x10FFFF;
    }
}

// The characters of `utf8` that `c` can hold.
std::string within(codec c, std::string_view utf8) {
    return rill_test::characters_up_to(utf8, largest_character(c));
}

// One way a codec's input can start: a BOM it honours (and the codec of what follows), or none.
struct reading {
    std::string_view name;
    std::string_view bom;
    codec rest;
};

std::vector<reading> readings_of(codec c) {
    const auto utf_family = [](codec fallback) {
        return std::vector<reading>{{"no BOM"sv, ""sv, fallback},
                                    {"UTF-8 BOM"sv, "\xEF\xBB\xBF"sv, codec::utf_8},
                                    {"UTF-16LE BOM"sv, "\xFF\xFE"sv, codec::utf_16le},
                                    {"UTF-16BE BOM"sv, "\xFE\xFF"sv, codec::utf_16be}};
    };
    switch (c) {
    case codec::utf_16:
        return {{"no BOM"sv, ""sv, codec::utf_16le},
                {"LE BOM"sv, "\xFF\xFE"sv, codec::utf_16le},
                {"BE BOM"sv, "\xFE\xFF"sv, codec::utf_16be}};
    case codec::ucs_2:
        return {{"no BOM"sv, ""sv, codec::ucs_2le},
                {"LE BOM"sv, "\xFF\xFE"sv, codec::ucs_2le},
                {"BE BOM"sv, "\xFE\xFF"sv, codec::ucs_2be}};
    case codec::ucs_4:
        return {{"no BOM"sv, ""sv, codec::ucs_4le},
                {"LE BOM"sv, "\xFF\xFE\x00\x00"sv, codec::ucs_4le},
                {"BE BOM"sv, "\x00\x00\xFE\xFF"sv, codec::ucs_4be}};
    case codec::utf: return utf_family(codec::utf_8);
    case codec::utf_fallback_ascii: return utf_family(codec::ascii);
    case codec::utf_fallback_iso_8859_1: return utf_family(codec::iso_8859_1);
    case codec::utf_fallback_utf_16:
    case codec::utf_fallback_utf_16le: return utf_family(codec::utf_16le);
    case codec::utf_fallback_utf_16be: return utf_family(codec::utf_16be);
    default: return {{""sv, ""sv, c}};
    }
}

// Every line end (LF, CR LF, CR, LF CR, CR CR, LF LF), 1- to 4-byte characters, and a last line
// without line end.
constexpr std::string_view sample_text =
    "a\u00E9\u20AC\U0001F600\r\nb\rc\n\rd\r\re\n\nf\u00FF \u4E2D\U00010000"sv;

// The lines read_line gives for `text` under `eol`.
using rill_test::lines_of;

// The characters read_char gives: under cr and crlf each line end reads as one '\n'.
std::string chars_of(std::string_view text, eol_style eol) {
    if (eol == eol_style::lf || eol == eol_style::none) return std::string(text);
    std::string out;
    for (const std::string& line : lines_of(text, eol)) out.append(line).push_back('\n');
    const char last = text.empty() ? '\0' : text.back();
    if (last != '\n' && last != '\r' && !out.empty())
        out.pop_back();  // the last line has no line end
    return out;
}

std::string utf8_of(char32_t c) {
    unsigned char buf[4];
    auto* end = rill::detail::encode_utf8(c, buf);
    return std::string(reinterpret_cast<char*>(buf), static_cast<std::size_t>(end - buf));
}

// ---- The transcoder reaches the streams ------------------------------------------------------------

TEST(TranscodedStreams, TheServerTranscoderIsOnEveryClientStreamItHandsOut) {
    const transcoder t(codec::utf_16le, eol_style::lf, error_handling_mode::replace);
    std::vector<std::vector<std::string>> lines(3);
    serve_connections(
        with(t), 3,
        [&](rill::tcp_client_stream& s, std::size_t i) {
            EXPECT_EQ(s.transcoder(), t);
            lines[i] = read_all_lines(s);
        },
        [&](rill_test::raw_client& c, reader_link&, std::size_t i) {
            c.send(encoded(codec::utf_16le, "caf\u00E9 " + std::to_string(i) + "\n\U0001F600\n"));
            c.shutdown_write();
            c.receive_all();
        });
    for (std::size_t i = 0; i < lines.size(); ++i)
        EXPECT_EQ(lines[i],
                  (std::vector<std::string>{"caf\u00E9 " + std::to_string(i), "\U0001F600"}));
}

TEST(TranscodedStreams, AStreamWithoutTranscoderHasNone) {
    serve_rill_peer([](rill::tcp_client_stream& s) { EXPECT_FALSE(s.transcoder()); },
                    [](rill::tcp_client_stream& c) { EXPECT_FALSE(c.transcoder()); });
}

TEST(TranscodedStreams, TheClientTranscoderIsOnTheClient) {
    const transcoder t(codec::utf_16, eol_style::crlf, error_handling_mode::raise);
    std::string received;
    std::optional<std::string> reply;
    rill::run([&] {
        rill::tcp_server_stream server(0);
        const int port = rill::tcp_server_socket_info(server).port_number;
        auto client_task = rill::spawn([&, port] {
            rill::client_options o;
            o.transcoder = t;
            rill::tcp_client_stream c(port, o);
            EXPECT_EQ(c.transcoder(), t);
            rill::showln(c, "h\u00E9llo \U0001F600");
            rill::flush_writer(c);
            reply = rill::read_line(c);
            rill::close_stream(c);
        });
        auto accepted = rill::read(server);
        ASSERT_TRUE(accepted);
        // The accepted stream has no transcoder: it sees the client's bytes as they are, and
        // answers in UTF-16BE with a BOM, which the client's utf_16 must honour.
        auto bytes = rill::read_n_bytes(*accepted, 22);
        ASSERT_TRUE(bytes);
        received = as_string(*bytes);
        const std::string answer = "\xFE\xFF" + encoded(codec::utf_16be, "\u00E0 bient\u00F4t\r\n");
        rill::write_bytes(*accepted, std::span(reinterpret_cast<const std::uint8_t*>(answer.data()),
                                               answer.size()));
        rill::flush_writer(*accepted);
        client_task.join();
    });
    EXPECT_EQ(hex(received),
              hex("\xFF\xFE" + encoded(codec::utf_16le, "h\u00E9llo \U0001F600\r\n")));
    EXPECT_EQ(reply, "\u00E0 bient\u00F4t");
}

class TranscodedStreamsPerCodec : public testing::TestWithParam<codec> {};

// rill to rill: the same transcoder on both ends (client_options and server_options) carries
// every character the codec holds, both ways.
TEST_P(TranscodedStreamsPerCodec, RoundTripsBetweenRillClientAndServer) {
    const codec c = GetParam();
    const std::string text = within(c, "ASCII \u00E9\u00FF \u20AC\u4E2D \U0001F600\U0010FFFF");
    for (eol_style eol : every_eol_style) {
        SCOPED_TRACE(std::string(rill::to_string(eol)));
        const transcoder t(c, eol, error_handling_mode::raise);
        std::vector<std::string> server_got;
        std::vector<std::string> client_got;
        rill::run([&] {
            rill::tcp_server_stream server(0, with(t));
            const int port = rill::tcp_server_socket_info(server).port_number;
            auto client_task = rill::spawn([&, port] {
                rill::client_options o;
                o.transcoder = t;
                rill::tcp_client_stream client(port, o);
                rill::showln(client, text);
                rill::showln(client, "second");
                rill::close_writer(client);
                client_got = read_all_lines(client);
            });
            auto accepted = rill::read(server);
            ASSERT_TRUE(accepted);
            server_got = read_all_lines(*accepted);
            for (const std::string& line : server_got) rill::showln(*accepted, "echo ", line);
            rill::close_stream(*accepted);
            client_task.join();
        });
        EXPECT_EQ(server_got, (std::vector<std::string>{text, "second"}));
        EXPECT_EQ(client_got, (std::vector<std::string>{"echo " + text, "echo second"}));
    }
}

// Every codec, BOM, eol style and split: read_line gives the lines, read_char (with peek_char
// before each) the characters.
TEST_P(TranscodedStreamsPerCodec, ReadsLinesAndCharactersHoweverTheInputIsSplit) {
    const codec c = GetParam();
    struct plan {
        reading r;
        split s;
        bool by_char;
        std::string text;  // what the input decodes to
    };
    std::vector<plan> plans;
    for (const reading& r : readings_of(c))
        for (split s : all_splits)
            for (bool by_char : {false, true})
                plans.push_back({r, s, by_char, within(r.rest, sample_text)});
    for (eol_style eol : every_eol_style) {
        std::vector<std::vector<std::string>> got(plans.size());
        serve_connections(
            with(transcoder(c, eol, error_handling_mode::raise)), plans.size(),
            [&](rill::tcp_client_stream& s, std::size_t i) {
                if (!plans[i].by_char) {
                    got[i] = read_all_lines(s);
                    return;
                }
                std::string chars;
                for (int n = 0; n < 1000; ++n) {
                    const auto peeked = rill::peek_char(s);
                    const auto ch = rill::read_char(s);
                    EXPECT_EQ(peeked, ch);
                    if (!ch) break;
                    chars += utf8_of(*ch);
                }
                got[i] = {chars};
            },
            [&](rill_test::raw_client& client, reader_link& link, std::size_t i) {
                const std::string bytes =
                    std::string(plans[i].r.bom) + encoded(plans[i].r.rest, plans[i].text);
                send_segments(client, segments_of(bytes, plans[i].s), link);
                client.shutdown_write();
                client.receive_all();
            });
        for (std::size_t i = 0; i < plans.size(); ++i) {
            SCOPED_TRACE(std::string(rill::to_string(eol)) + ", " + std::string(plans[i].r.name) +
                         ", " + std::string(split_name(plans[i].s)));
            if (plans[i].by_char)
                EXPECT_EQ(got[i], std::vector<std::string>{chars_of(plans[i].text, eol)})
                    << "read_char";
            else
                EXPECT_EQ(got[i], lines_of(plans[i].text, eol)) << "read_line";
        }
    }
}

// Output: '\n' becomes the eol style's line end, then everything goes through the codec, its
// BOM once before the first character, however the text is cut into writes and flushes.
TEST_P(TranscodedStreamsPerCodec, WritesLineEndsThenEncodes) {
    const codec c = GetParam();
    const std::string first = within(c, "caf\u00E9 \U0001F600\n");
    const char32_t last_char = largest_character(c) >= 0x20AC ? U'\u20AC' : U'z';
    for (eol_style eol : every_eol_style) {
        SCOPED_TRACE(std::string(rill::to_string(eol)));
        std::string received;
        serve_connections(
            with(transcoder(c, eol, error_handling_mode::raise)), 1,
            [&](rill::tcp_client_stream& s, std::size_t) {
                rill::write_chars(s, first);
                rill::flush_writer(s);
                rill::write_char(s, U'\n');
                rill::write_char(s, last_char);
                rill::newline(s);
                rill::showln(s, "n=", 42, ' ', true);
                rill::write_chars(s, "x\ny");
            },
            [&](rill_test::raw_client& client, reader_link&, std::size_t) {
                client.shutdown_write();
                received = client.receive_all();
            });
        const std::string_view line_end = eol == eol_style::crlf ? "\r\n"sv
                                          : eol == eol_style::cr ? "\r"sv
                                                                 : "\n"sv;
        std::string text = first + "\n" + utf8_of(last_char) + "\nn=42 true\nx\ny";
        std::string translated;
        for (char ch : text) {
            if (ch == '\n')
                translated += line_end;
            else
                translated.push_back(ch);
        }
        EXPECT_EQ(hex(received), hex(encoded(c, translated)));
    }
}

INSTANTIATE_TEST_SUITE_P(EveryCodec, TranscodedStreamsPerCodec, testing::ValuesIn(every_codec()),
                         codec_test_name);

// A few outputs spelled out byte for byte (the rows above compare with rill's own encoder).
TEST(TranscodedStreams, OutputBytesSpelledOut) {
    struct row {
        transcoder t;
        std::string_view bytes;
    };
    const row rows[] = {
        {transcoder(codec::utf_16, eol_style::crlf), "\xFF\xFE"
                                                     "A\x00\xE9\x00\r\x00\n\x00"sv},
        {transcoder(codec::utf_16be, eol_style::cr), "\x00"
                                                     "A\x00\xE9\x00\r"sv},
        {transcoder(codec::ucs_4be, eol_style::lf), "\x00\x00\x00"
                                                    "A\x00\x00\x00\xE9\x00\x00\x00\n"sv},
        {transcoder(codec::utf_fallback_utf_16be, eol_style::crlf), "\xEF\xBB\xBF"
                                                                    "A\xC3\xA9\r\n"sv},
        {transcoder(codec::iso_8859_1, eol_style::none), "A\xE9\n"sv},
    };
    for (const row& r : rows) {
        SCOPED_TRACE(std::string(rill::to_string(r.t.codec())));
        std::string received;
        serve_connections(
            with(r.t), 1,
            [](rill::tcp_client_stream& s, std::size_t) { rill::showln(s, "A\u00E9"); },
            [&](rill_test::raw_client& client, reader_link&, std::size_t) {
                client.shutdown_write();
                received = client.receive_all();
            });
        EXPECT_EQ(hex(received), hex(r.bytes));
    }
}

// A character or a line end cut between two segments at any byte boundary reads as if whole.
TEST(TranscodedStreams, EveryTwoSegmentCutReadsAsWhole) {
    struct row {
        codec c;
        std::string_view bom;
        codec rest;
    };
    const row rows[] = {{codec::utf_8, ""sv, codec::utf_8},
                        {codec::utf_16be, ""sv, codec::utf_16be},
                        {codec::ucs_4, "\x00\x00\xFE\xFF"sv, codec::ucs_4be},
                        {codec::utf, "\xFF\xFE"sv, codec::utf_16le}};
    const std::string_view text = "\u00E9\r\n\U0001F600\n\rz"sv;
    for (const row& r : rows) {
        SCOPED_TRACE(std::string(rill::to_string(r.c)));
        const std::string bytes = std::string(r.bom) + encoded(r.rest, text);
        std::vector<std::vector<std::string>> got(bytes.size() + 1);
        serve_connections(
            with(transcoder(r.c, eol_style::crlf, error_handling_mode::raise)), got.size(),
            [&](rill::tcp_client_stream& s, std::size_t cut) { got[cut] = read_all_lines(s); },
            [&](rill_test::raw_client& client, reader_link& link, std::size_t cut) {
                send_segments(client, {bytes.substr(0, cut), bytes.substr(cut)}, link);
                client.shutdown_write();
                client.receive_all();
            });
        for (std::size_t cut = 0; cut < got.size(); ++cut)
            EXPECT_EQ(got[cut], (std::vector<std::string>{"\u00E9", "\U0001F600", "z"}))
                << "cut at byte " << cut;
    }
}

// ---- Error modes ---------------------------------------------------------------------------------

// Ill-formed input and what each mode makes of it. In `raised`, "!HEX@N" is a decoding_error
// for the bytes HEX at stream byte N (which its message must name, with the codec); every other
// entry is a line. The text of a line before its bad bytes goes with the failed read (as in
// Gambit); the next read starts right after them.
struct bad_input {
    codec c;
    std::string_view bytes;
    std::vector<std::string> ignored, replaced, raised;
};

std::ostream& operator<<(std::ostream& os, const bad_input& row) {
    return os << rill::to_string(row.c) << " " << hex(row.bytes);
}

const bad_input bad_inputs[] = {
    {codec::utf_8,
     "A\nxy\xC3z\nB\n"sv,
     {"A", "xyz", "B"},
     {"A", "xy\uFFFDz", "B"},
     {"A", "!C3@4", "z", "B"}},
    {codec::utf_8,
     "\xC0\x80"
     "B\n"sv,
     {"B"},
     {"\uFFFD\uFFFD"
      "B"},
     {"!C0@0", "!80@1", "B"}},
    {codec::utf_8, "A\n\xE2\x82"sv, {"A"}, {"A", "\uFFFD"}, {"A", "!E2 82@2"}},
    {codec::utf_8, "\xF0\x9F\xC3\xA9\n"sv, {"\u00E9"}, {"\uFFFD\u00E9"}, {"!F0 9F@0", "\u00E9"}},
    {codec::ascii,
     "A\n\xE9"
     "B\n"sv,
     {"A", "B"},
     {"A", "\uFFFD"
           "B"},
     {"A", "!E9@2", "B"}},
    {codec::utf_fallback_ascii, "A\n\x80\n"sv, {"A", ""}, {"A", "\uFFFD"}, {"A", "!80@2", ""}},
    {codec::utf_16le,
     "A\x00\x00\xD8"
     "B\x00\n\x00"sv,
     {"AB"},
     {"A\uFFFD"
      "B"},
     {"!00 D8@2", "B"}},
    {codec::utf_16be,
     "\x00"
     "A\x00\n\xDC\x00\x00"
     "B"sv,
     {"A", "B"},
     {"A", "\uFFFD"
           "B"},
     {"A", "!DC 00@4", "B"}},
    {codec::utf_16,
     "\xFE\xFF\x00"
     "A\xDC\x00\x00\n\x00"
     "B"sv,
     {"A", "B"},
     {"A\uFFFD", "B"},
     {"!DC 00@4", "", "B"}},
    {codec::utf_16,
     "\xFF\xFE"
     "A\x00\n\x00"
     "B"sv,
     {"A"},
     {"A", "\uFFFD"},
     {"A", "!42@6"}},
    {codec::ucs_2le,
     "\x3D\xD8\x00\xDE\n\x00"
     "A\x00"sv,
     {"", "A"},
     {"\uFFFD\uFFFD", "A"},
     {"!3D D8@0", "!00 DE@2", "", "A"}},
    {codec::ucs_2be, "\xD8\x00\x00\n"sv, {""}, {"\uFFFD"}, {"!D8 00@0", ""}},
    {codec::ucs_4be,
     "\x00\x11\x00\x00\x00\x00\x00"
     "A"sv,
     {"A"},
     {"\uFFFD"
      "A"},
     {"!00 11 00 00@0", "A"}},
    {codec::ucs_4,
     "\xFF\xFE\x00\x00\x00\xD8\x00\x00\n\x00\x00\x00"
     "A\x00\x00\x00"sv,
     {"", "A"},
     {"\uFFFD", "A"},
     {"!00 D8 00 00@4", "", "A"}},
    {codec::utf,
     "\xEF\xBB"
     "A\n"sv,
     {"A"},
     {"\uFFFD"
      "A"},
     {"!EF BB@0", "A"}},
    {codec::utf_fallback_iso_8859_1,
     "\xEF\xBB\xBF\xFFok\n"sv,
     {"ok"},
     {"\uFFFDok"},
     {"!FF@3", "ok"}},
    {codec::utf_fallback_utf_16be,
     "\xFF\xFE\x00\xDC"
     "A\x00"sv,
     {"A"},
     {"\uFFFD"
      "A"},
     {"!00 DC@2", "A"}},
};

class TranscodedStreamsDecodingErrors : public testing::TestWithParam<bad_input> {};

TEST_P(TranscodedStreamsDecodingErrors, EachModeHandlesThemHoweverTheInputIsSplit) {
    const bad_input& row = GetParam();
    for (error_handling_mode mode : every_error_mode) {
        const std::vector<std::string>& expected = mode == error_handling_mode::ignore ? row.ignored
                                                   : mode == error_handling_mode::replace
                                                       ? row.replaced
                                                       : row.raised;
        std::vector<std::vector<std::string>> got(all_splits.size());
        std::vector<std::string> messages;
        serve_connections(
            with(transcoder(row.c, eol_style::crlf, mode)), all_splits.size(),
            [&](rill::tcp_client_stream& s, std::size_t i) {
                for (int n = 0; n < 100; ++n) {
                    try {
                        auto line = rill::read_line(s);
                        if (!line) break;
                        got[i].push_back(*line);
                    } catch (const rill::decoding_error& e) {
                        messages.push_back(e.what());
                        got[i].push_back("!error");
                    }
                }
            },
            [&](rill_test::raw_client& client, reader_link& link, std::size_t i) {
                send_segments(client, segments_of(row.bytes, all_splits[i]), link);
                client.shutdown_write();
                client.receive_all();
            });
        std::vector<std::string> lines = expected;
        std::vector<std::pair<std::string, std::string>> errors;  // bytes, position
        for (std::string& line : lines) {
            if (!line.starts_with("!")) continue;
            errors.emplace_back(line.substr(1, line.find('@') - 1),
                                line.substr(line.find('@') + 1));
            line = "!error";
        }
        for (std::size_t i = 0; i < all_splits.size(); ++i)
            EXPECT_EQ(got[i], lines) << rill::to_string(mode) << ", " << split_name(all_splits[i]);
        ASSERT_EQ(messages.size(), errors.size() * all_splits.size());
        for (std::size_t k = 0; k < messages.size(); ++k) {
            const auto& [bytes, position] = errors[k % errors.size()];
            EXPECT_THAT(messages[k],
                        HasSubstr(std::string(rill::to_string(row.c)) + " cannot decode bytes " +
                                  bytes + " at byte " + position + " of 127.0.0.1:"));
        }
    }
}

INSTANTIATE_TEST_SUITE_P(EveryFamily, TranscodedStreamsDecodingErrors,
                         testing::ValuesIn(bad_inputs));

// read_char and peek_char report a decoding error once, and the next read carries on after the
// bad bytes.
TEST(TranscodedStreams, CharacterReadsContinueAfterADecodingError) {
    for (split s : all_splits) {
        SCOPED_TRACE(std::string(split_name(s)));
        std::vector<std::string> got;
        serve_connections(
            with(transcoder(codec::utf_8, eol_style::crlf, error_handling_mode::raise)), 1,
            [&](rill::tcp_client_stream& stream, std::size_t) {
                for (int n = 0; n < 20; ++n) {
                    try {
                        const auto peeked = rill::peek_char(stream);
                        if (!peeked) break;
                        got.push_back("peek " + utf8_of(*peeked));
                        got.push_back("read " + utf8_of(rill::read_char(stream).value()));
                    } catch (const rill::decoding_error& e) {
                        const bool named = std::string_view(e.what()).find(
                                               "utf_8 cannot decode bytes E2 82 at byte 3") !=
                                           std::string_view::npos;
                        got.push_back("error " + (named ? std::string("E2 82 at byte 3")
                                                        : std::string(e.what())));
                    }
                }
            },
            [&](rill_test::raw_client& client, reader_link& link, std::size_t) {
                send_segments(client,
                              segments_of("\u00E9\r\xE2\x82\n"
                                          "B"sv,
                                          s),
                              link);
                client.shutdown_write();
                client.receive_all();
            });
        // The LF after the bad bytes is still the second half of the CR LF (an error is not a
        // character, as under ignore).
        EXPECT_EQ(got, (std::vector<std::string>{"peek \u00E9", "read \u00E9", "peek \n", "read \n",
                                                 "error E2 82 at byte 3", "peek B", "read B"}));
    }
}

// What flush_writer accepted reaches the peer even when the task then ends with an exception:
// the seed's echo under raise answers the lines before the bad bytes, then the decoding_error
// ends call_with_stream (which aborts the stream).
TEST(TranscodedStreams, FlushedOutputSurvivesADecodingErrorThatEndsTheTask) {
    std::string received;
    serve_connections(
        with(transcoder(codec::utf_8, eol_style::crlf, error_handling_mode::raise)), 1,
        [&](rill::tcp_client_stream& s, std::size_t) {
            EXPECT_THROW(rill::call_with_stream(s,
                                                [](rill::tcp_client_stream& c) {
                                                    std::string line;
                                                    while (rill::read_line(c, line)) {
                                                        rill::showln(c, line);
                                                        rill::flush_writer(c);
                                                    }
                                                }),
                         rill::decoding_error);
        },
        [&](rill_test::raw_client& client, reader_link&, std::size_t) {
            client.send("one\r\ntwo\r\nthree \xC3(\r\nfour\r\n");  // all in one segment
            client.shutdown_write();
            received = client.receive_all();
        });
    EXPECT_EQ(received, "one\r\ntwo\r\n");
}

// Output: a character the codec cannot encode follows the mode; under raise the characters
// before it are written, and the stream stays usable.
TEST(TranscodedStreams, UnencodableCharactersFollowTheMode) {
    struct row {
        codec c;
        std::string_view bad;  // UTF-8
        std::string_view code_point;
    };
    const row rows[] = {
        {codec::ascii, "\u00E9"sv, "U+00E9"sv},
        {codec::iso_8859_1, "\u20AC"sv, "U+20AC"sv},
        {codec::ucs_2le, "\U0001F600"sv, "U+1F600"sv},
        {codec::ucs_2, "\U0001F600"sv, "U+1F600"sv},
    };
    for (const row& r : rows) {
        // U+4E2D: unencodable in ascii and iso_8859_1 too, written by write_char.
        const bool bmp = largest_character(r.c) == 0xFFFF;
        const std::string replacement = bmp ? "\uFFFD" : "?";
        for (error_handling_mode mode : every_error_mode) {
            SCOPED_TRACE(std::string(rill::to_string(r.c)) + ", " +
                         std::string(rill::to_string(mode)));
            std::string received;
            std::vector<std::string> errors;
            serve_connections(
                with(transcoder(r.c, eol_style::lf, mode)), 1,
                [&](rill::tcp_client_stream& s, std::size_t) {
                    try {
                        rill::write_chars(s, "A" + std::string(r.bad) + "B");
                    } catch (const rill::encoding_error& e) {
                        errors.push_back(e.what());
                        rill::write_chars(s, "B");  // the stream is still usable
                    }
                    try {
                        rill::write_char(s, U'\u4E2D');
                    } catch (const rill::encoding_error& e) {
                        errors.push_back(e.what());
                    }
                    rill::newline(s);
                },
                [&](rill_test::raw_client& client, reader_link&, std::size_t) {
                    client.shutdown_write();
                    received = client.receive_all();
                });
            const std::string han = bmp                                    ? "\u4E2D"
                                    : mode == error_handling_mode::replace ? replacement
                                                                           : "";
            const std::string text = mode == error_handling_mode::replace
                                         ? "A" + replacement + "B" + han + "\n"
                                         : "AB" + han + "\n";
            EXPECT_EQ(hex(received), hex(encoded(r.c, text)));
            if (mode != error_handling_mode::raise) {
                EXPECT_TRUE(errors.empty());
                continue;
            }
            ASSERT_EQ(errors.size(), bmp ? 1u : 2u);
            EXPECT_THAT(errors[0], HasSubstr("write_chars: " + std::string(rill::to_string(r.c)) +
                                             " cannot encode " + std::string(r.code_point) +
                                             " for 127.0.0.1:"));
            if (!bmp) {  // braced: EXPECT_THAT is an if/else inside (g++ -Wdangling-else)
                EXPECT_THAT(errors[1],
                            HasSubstr("write_char: " + std::string(rill::to_string(r.c)) +
                                      " cannot encode U+4E2D"));
            }
        }
    }
}

// Invalid UTF-8 from the program is an encoding error handled by the mode, also when the text
// ends inside a character.
TEST(TranscodedStreams, InvalidUtf8FromTheProgramFollowsTheMode) {
    for (error_handling_mode mode : every_error_mode) {
        SCOPED_TRACE(std::string(rill::to_string(mode)));
        std::string received;
        std::vector<std::string> errors;
        serve_connections(
            with(transcoder(codec::utf_16le, eol_style::lf, mode)), 1,
            [&](rill::tcp_client_stream& s, std::size_t) {
                for (std::string_view text : {"A\x80"
                                              "B"sv,
                                              "C\xE2\x82"sv, "D\n"sv}) {
                    try {
                        rill::write_chars(s, text);
                    } catch (const rill::encoding_error& e) {
                        errors.push_back(e.what());
                    }
                }
            },
            [&](rill_test::raw_client& client, reader_link&, std::size_t) {
                client.shutdown_write();
                received = client.receive_all();
            });
        const std::string_view expected = mode == error_handling_mode::replace  ? "A\uFFFD"
                                                                                  "BC\uFFFD"
                                                                                  "D\n"sv
                                          : mode == error_handling_mode::ignore ? "ABCD\n"sv
                                                                                : "ACD\n"sv;
        EXPECT_EQ(hex(received), hex(encoded(codec::utf_16le, expected)));
        if (mode == error_handling_mode::raise) {
            ASSERT_EQ(errors.size(), 2u);
            EXPECT_THAT(errors[0], HasSubstr("utf_16le cannot encode U+DC80"));
            EXPECT_THAT(errors[1], HasSubstr("utf_16le cannot encode U+DCE2"));
        } else {
            EXPECT_TRUE(errors.empty());
        }
    }
}

}  // namespace
