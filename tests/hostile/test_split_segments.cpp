// A peer that cuts every segment in the middle of a line, and in the middle of a character,
// must not make a connection's memory grow: each buffer a peer can fill has a cap
// (include/rill/stream.hpp, "Memory per connection"), whatever the transcoder. A persistent
// echo answers megabytes of such segments, over the memory transport (each segment one
// receive, exactly as cut) and over a real socket; after every line it notes its buffers'
// capacities, and the peer checks every answer.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "stream/stream_state.hpp"
#include "stream/stream_test_support.hpp"

namespace {

using rill::codec;
using rill::eol_style;
using rill::error_handling_mode;

// Bytes the peers send in all, per case: far more than any cap, so that growth shows.
constexpr std::size_t megabytes_sent = 3;
constexpr std::size_t bytes_sent = megabytes_sent * 1024 * 1024;

// The largest capacity each buffer reached while the echo served.
struct buffer_peaks {
    std::size_t input = 0;
    std::size_t decoded = 0;
    std::size_t output = 0;

    void note(rill::stream& s) {
        const rill::detail::stream_state& st = rill::detail::state_of(s);
        input = std::max(input, st.in.capacity());
        output = std::max(output, st.out.capacity());
        if (st.codec) {
            decoded = std::max(decoded, st.codec->decoded.capacity());
        }
    }
};

// The caps stream.hpp documents, for a stream with max_line_length `line_cap` whose one
// receive is at most `receive` bytes.
void expect_under_documented_caps(const buffer_peaks& peaks, std::size_t line_cap,
                                  std::size_t receive) {
    EXPECT_LE(peaks.input, rill::input_buffer_cap_bytes(line_cap, receive));
    EXPECT_LE(peaks.decoded, rill::decoded_text_cap_bytes(line_cap, receive));
    EXPECT_LE(peaks.output, rill::output_buffer_cap_bytes);
}

// The seed's persistent echo, noting the buffers after every line it reads and answers.
std::size_t echo_noting_buffers(rill::stream& s, buffer_peaks& peaks) {
    std::size_t lines = 0;
    std::string line;
    while (rill::read_line(s, line)) {
        peaks.note(s);
        rill::showln(s, line);
        rill::flush_writer(s);
        peaks.note(s);
        ++lines;
    }
    return lines;
}

// How a case spells its lines on the wire.
struct wire_case {
    const char* name;
    std::optional<rill::transcoder> coding;
    // A line of text (UTF-8) with its line end as the peer sends it, and as the echo answers.
    std::string (*sent)(const std::string& utf8_line);
    std::string (*answered)(const std::string& utf8_line);
    // Offsets into a sent line that cut a character in two.
    std::vector<std::size_t> (*mid_character_cuts)(const std::string& sent_line);
};

std::string utf8_line_lf(const std::string& line) { return line + "\n"; }
std::string utf8_line_crlf(const std::string& line) { return line + "\r\n"; }
// UTF-16LE of valid UTF-8 (the lines here are).
std::string utf16le_line_lf(const std::string& line) {
    const std::string utf8 = line + "\n";
    std::string out;
    auto unit = [&](char32_t u) {
        out.push_back(static_cast<char>(u & 0xFF));
        out.push_back(static_cast<char>(u >> 8));
    };
    for (std::size_t i = 0; i < utf8.size();) {
        const auto b = static_cast<unsigned char>(utf8[i]);
        const std::size_t len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
        char32_t c = len == 1 ? b : len == 2 ? b & 0x1F : len == 3 ? b & 0x0F : b & 0x07;
        for (std::size_t k = 1; k < len; ++k)
            c = (c << 6) | (static_cast<unsigned char>(utf8[i + k]) & 0x3F);
        i += len;
        if (c < 0x10000) {
            unit(c);
        } else {
            unit(0xD800 + ((c - 0x10000) >> 10));
            unit(0xDC00 + ((c - 0x10000) & 0x3FF));
        }
    }
    return out;
}

// UTF-8: the byte after each lead byte of a multi-byte character.
std::vector<std::size_t> utf8_cuts(const std::string& sent) {
    std::vector<std::size_t> cuts;
    for (std::size_t i = 0; i + 1 < sent.size(); ++i)
        if ((static_cast<unsigned char>(sent[i]) & 0xC0) == 0xC0) cuts.push_back(i + 1);
    return cuts;
}
// UTF-16: between the two bytes of a code unit, away from the line end.
std::vector<std::size_t> utf16_cuts(const std::string& sent) {
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i + 4 < sent.size(); i += 2) cuts.push_back(i);
    return cuts;
}

const wire_case wire_cases[] = {
    {"UTF-8,lf", rill::transcoder(codec::utf_8, eol_style::lf, error_handling_mode::raise),
     utf8_line_lf, utf8_line_lf, utf8_cuts},
    {"UTF-16LE,lf", rill::transcoder(codec::utf_16le, eol_style::lf, error_handling_mode::raise),
     utf16le_line_lf, utf16le_line_lf, utf16_cuts},
    {"no transcoder", std::nullopt, utf8_line_lf, utf8_line_crlf, utf8_cuts},
};

// Line i's text: a few hundred bytes of mixed one- to four-byte characters, its length
// varying with i so that cuts drift.
std::string line_text(std::size_t i) {
    static const char* const pieces[] = {"plain ascii ", "\u00E9t\u00E9 ", "\u20AC20 ",
                                         "\U0001D11E clef ", "\u4E2D\u6587 "};
    std::string text = "line " + std::to_string(i) + ": ";
    for (std::size_t k = 0; k < 20 + i % 17; ++k) text += pieces[(i + k) % 5];
    return text;
}

// The peer's plan: lines, and segments each of which ends inside a line, inside a character.
// After segment k the echo can answer exactly answers_after[k] bytes in all.
struct segment_plan {
    std::vector<std::string> segments;
    std::vector<std::size_t> answers_after;
    std::string answers;
    std::size_t lines = 0;
};

segment_plan plan_for(const wire_case& w, std::size_t total_bytes) {
    segment_plan plan;
    std::string pending;  // sent bytes not yet in a segment
    std::size_t answered = 0;
    for (std::size_t i = 0; answered < total_bytes || i < 3; ++i) {
        const std::string text = line_text(i);
        const std::string sent = w.sent(text);
        const std::vector<std::size_t> cuts = w.mid_character_cuts(sent);
        const std::size_t cut = cuts.at((i * 7) % cuts.size());
        // The segment: the rest of the line before, and this line up to the middle of one
        // of its characters.
        pending += sent.substr(0, cut);
        plan.segments.push_back(pending);
        plan.answers_after.push_back(plan.answers.size());  // lines before this one
        pending = sent.substr(cut);
        plan.answers += w.answered(text);
        answered += sent.size();
        ++plan.lines;
    }
    plan.segments.push_back(pending);  // the last line's rest
    plan.answers_after.push_back(plan.answers.size());
    return plan;
}

void PrintTo(const wire_case& w, std::ostream* os) { *os << w.name; }

class HostileSplitSegments : public testing::TestWithParam<wire_case> {};

TEST_P(HostileSplitSegments, MemoryTransportBuffersStayUnderTheirCaps) {
    const wire_case& w = GetParam();
    const segment_plan plan = plan_for(w, bytes_sent);
    buffer_peaks peaks;
    std::size_t lines_echoed = 0;
    std::size_t largest_segment = 0;
    for (const std::string& segment : plan.segments)
        largest_segment = std::max(largest_segment, segment.size());
    std::string received;
    rill_stream_test::serve_memory_peer(
        [&](rill::stream& s) { lines_echoed = echo_noting_buffers(s, peaks); },
        [&](rill_stream_test::memory_peer& peer) {
            for (std::size_t k = 0; k < plan.segments.size(); ++k) {
                peer.send(plan.segments[k]);
                while (received.size() < plan.answers_after[k]) {
                    const std::string some = peer.receive_some();
                    if (some.empty()) break;
                    received += some;
                }
                if (received.size() != plan.answers_after[k]) break;
            }
            peer.shutdown_write();
            received += peer.receive_all();
        },
        {}, w.coding);
    EXPECT_EQ(lines_echoed, plan.lines);
    EXPECT_EQ(received.size(), plan.answers.size());
    EXPECT_TRUE(received == plan.answers) << "the answers differ from the lines sent";
    expect_under_documented_caps(peaks, rill::default_max_line_length_bytes, largest_segment);
}

TEST_P(HostileSplitSegments, SocketBuffersStayUnderTheirCaps) {
    const wire_case& w = GetParam();
    const segment_plan plan = plan_for(w, bytes_sent);
    buffer_peaks peaks;
    std::size_t lines_echoed = 0;
    std::string received;
    rill::server_options options;
    options.transcoder = w.coding;
    rill_stream_test::serve_raw_peer(
        [&](rill::tcp_client_stream& s) { lines_echoed = echo_noting_buffers(s, peaks); },
        [&](rill_test::raw_client& peer) {
            // Each segment leaves in a packet of its own.
            const int one = 1;
            setsockopt(peer.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            for (std::size_t k = 0; k < plan.segments.size(); ++k) {
                peer.send(plan.segments[k]);
                const std::size_t due = plan.answers_after[k] - received.size();
                if (due) received += peer.receive_exactly(due);
            }
            peer.shutdown_write();
            received += peer.receive_all();
        },
        options);
    EXPECT_EQ(lines_echoed, plan.lines);
    EXPECT_EQ(received.size(), plan.answers.size());
    EXPECT_TRUE(received == plan.answers) << "the answers differ from the lines sent";
    expect_under_documented_caps(
        peaks, rill::default_max_line_length_bytes,
        rill::socket_receive_cap_bytes(rill::default_max_line_length_bytes, w.coding.has_value()));
}

INSTANTIATE_TEST_SUITE_P(EveryWireForm, HostileSplitSegments, testing::ValuesIn(wire_cases),
                         [](const testing::TestParamInfo<wire_case>& info) {
                             std::string name;
                             for (const char* p = info.param.name; *p; ++p)
                                 if (std::isalnum(static_cast<unsigned char>(*p))) name += *p;
                             return name;
                         });

}  // namespace
