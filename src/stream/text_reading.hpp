// What every text read shares (read_line, read_char, peek_char, read_n_chars, and the byte
// reads that follow a text read): the next character of the stream's text, and the line-end
// state machine. Under eol styles cr and crlf, CR and LF each end a line and read as '\n';
// under crlf the other one right after (CR LF, LF CR) belongs to the same line end. When the
// first half ends a read and the second has not arrived yet, skip_next remembers it, and the
// next read of any kind skips it once it is there to look at.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "stream/line_scan.hpp"
#include "stream/stream_state.hpp"
#include "text/utf8.hpp"

namespace rill::detail {

// The next character of UTF-8 text that may hold invalid bytes (a stream without
// transcoder passes them through): returns its length, 0 if the text ends inside it.
// An invalid byte reads as U+DC80 + byte, so write_char gives it back unchanged.
inline std::size_t next_char(const char* text, std::size_t n, bool at_end, char32_t& c) noexcept {
    auto* p = reinterpret_cast<const unsigned char*>(text);
    if (p[0] < 0x80) {
        c = p[0];
        return 1;
    }
    scan_step step = scan_utf8(p, n);
    switch (step.status) {
    case scan_status::character: c = step.code_point; return step.length;
    case scan_status::incomplete:
        if (!at_end) return 0;
        [[fallthrough]];
    case scan_status::ill_formed: break;
    }
    c = invalid_utf8_byte_marker(p[0]);
    return 1;
}

// CR and LF each end a line under `eol` (cr and crlf), not only LF.
inline bool cr_ends_lines(eol_style eol) noexcept {
    return eol == eol_style::crlf || eol == eol_style::cr;
}

// The byte that, right after line-end byte `end`, belongs to the same line end: the other half
// of CR LF or LF CR under crlf; 0 under the other styles.
inline char second_half_after(char end, eol_style eol) noexcept {
    return eol == eol_style::crlf ? (end == '\r' ? '\n' : '\r') : '\0';
}

// Skips a pending second half of a line end (skip_next) once the next byte is there to look
// at.
[[gnu::always_inline]] inline void apply_skip(stream_state& st) noexcept {
    if (st.skip_next && st.text_size() > 0) {
        if (st.text()[0] == st.skip_next) st.consume_text(1);
        st.skip_next = 0;
    }
}

bool skip_rest_of_line(stream_state& st);

// Consumes the line end at `end` (its first byte, and under crlf its second half as soon as
// it is there) and everything before it.
inline void consume_through_line_end(stream_state& st, const char* end) noexcept {
    const char second = second_half_after(*end, st.eol);
    st.consume_text(static_cast<std::size_t>(end - st.text()) + 1);
    st.skip_next = second;
    apply_skip(st);
}

// After line_too_long: drops text up to and including the next line end. False when the
// stream ended (or timed out) first.
bool skip_rest_of_line(stream_state& st);

// What read_text reads up to.
struct text_read {
    std::optional<char32_t>
        separator;  // ends the read (after eol translation); none: only the count
    bool include_separator = false;  // keep it at the end of the text
    std::optional<std::size_t> max_chars;  // at most this many characters; the rest stays
    std::size_t max_bytes = 0;  // line_too_long past this many bytes of text; 0 = none
    // A timeout leaves what was read in the stream for the next read (read_line), or returns
    // it (read_n_chars).
    bool keep_on_timeout = true;
};
// Character at a time, any separator and count. False at end of stream (nothing read) or on
// a timeout that kept the text.
bool read_text(stream_state& st, std::string& text, const text_read& r);

}  // namespace rill::detail
