// Character reads: read_char, peek_char, read_n_chars, read_all_chars.
#include <rill/stream.hpp>

#include "stream/text_reading.hpp"

namespace rill {
namespace detail {

// Reads one character with eol translation. Empty at end of stream or timeout.
std::optional<char32_t> take_char(stream_state& st, bool consume, const char* operation) {
    // After line_too_long the next read of any kind starts after that line's end.
    if (st.discarding_line && !skip_rest_of_line(st)) return std::nullopt;
    for (;;) {
        apply_skip(st);
        if (st.text_size() > 0) {
            char32_t c;
            // At the end of the stream a cut character reads as its bytes, one at a time.
            std::size_t len = next_char(st.text(), st.text_size(), st.end_of_input, c);
            if (len > 0) {
                if ((c == U'\r' || c == U'\n') && cr_ends_lines(st.eol)) {
                    if (consume) st.skip_next = second_half_after(static_cast<char>(c), st.eol);
                    c = U'\n';
                }
                if (consume) st.consume_text(len);
                return c;
            }
        }
        fill_result f = st.fill_text(operation);
        if (f == fill_result::timed_out) return std::nullopt;
        if (f == fill_result::end_of_stream) {
            st.skip_next = 0;
            if (st.text_size() == 0) return std::nullopt;
        }
    }
}

}  // namespace detail

std::optional<char32_t> read_char(stream& s) {
    return detail::take_char(detail::open_for_reading(s, "read_char"), true, "read_char");
}
std::optional<char32_t> peek_char(stream& s) {
    return detail::take_char(detail::open_for_reading(s, "peek_char"), false, "peek_char");
}

std::optional<std::string> read_n_chars(stream& s, std::size_t n) {
    detail::stream_state& st = detail::open_for_reading(s, "read_n_chars");
    if (n == 0) return std::string();
    std::string text;
    if (st.discarding_line) detail::skip_rest_of_line(st);
    // No separator and no line cap: only the count, the end of the stream or a timeout (which
    // returns what came) ends it.
    detail::text_read up_to_n;
    up_to_n.max_chars = n;
    up_to_n.keep_on_timeout = false;
    detail::read_text(st, text, up_to_n);
    if (text.empty()) return std::nullopt;
    return text;
}

std::optional<std::string> read_all_chars(stream& s) {
    return read_n_chars(s, static_cast<std::size_t>(-1));
}

}  // namespace rill
