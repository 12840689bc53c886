// Byte reads: read_byte, read_some, read_n_bytes, read_all_bytes. Bytes are never
// translated, but the second half of a line end a text read left pending is skipped first.
#include <algorithm>

#include <rill/stream.hpp>

#include "stream/text_reading.hpp"

namespace rill {
namespace detail {

// Waits until `in` holds a byte for a byte read. The second half of a CR LF (or LF CR) whose
// first half ended a text read belongs to that line end: it is skipped here as the next text
// read would skip it, so what a byte read sees does not depend on how the bytes were split
// into segments. (A transcoded stream's line ends live in its decoded text, not in `in`.)
fill_result await_bytes(stream_state& st, const char* operation) {
    // After line_too_long the next read of any kind starts after that line's end.
    if (st.discarding_line && !skip_rest_of_line(st))
        return st.end_of_input ? fill_result::end_of_stream : fill_result::timed_out;
    for (;;) {
        if (st.codec)
            st.skip_next = 0;
        else
            apply_skip(st);
        if (!st.in.empty()) return fill_result::more;
        const fill_result f = st.fill_bytes(operation);
        if (f != fill_result::more) return f;
    }
}

}  // namespace detail

std::optional<std::uint8_t> read_byte(stream& s) {
    detail::stream_state& st = detail::open_for_reading(s, "read_byte");
    if (detail::await_bytes(st, "read_byte") != detail::fill_result::more) return std::nullopt;
    auto b = static_cast<std::uint8_t>(st.in.head()[0]);
    st.consume_input(1);
    return b;
}

std::size_t read_some(stream& s, std::span<std::byte> buffer) {
    detail::stream_state& st = detail::open_for_reading(s, "read_some");
    if (buffer.empty()) return 0;
    if (detail::await_bytes(st, "read_some") != detail::fill_result::more) return 0;
    const std::size_t n = std::min(buffer.size(), st.in.size());
    std::memcpy(buffer.data(), st.in.head(), n);
    st.consume_input(n);
    return n;
}

std::optional<std::vector<std::uint8_t>> read_n_bytes(stream& s, std::size_t n) {
    detail::stream_state& st = detail::open_for_reading(s, "read_n_bytes");
    std::vector<std::uint8_t> bytes;
    while (bytes.size() < n) {
        if (detail::await_bytes(st, "read_n_bytes") != detail::fill_result::more) break;
        const std::size_t take = std::min(n - bytes.size(), st.in.size());
        bytes.insert(bytes.end(), st.in.head(), st.in.head() + take);
        st.consume_input(take);
    }
    if (bytes.empty() && n > 0) return std::nullopt;
    return bytes;
}

std::optional<std::vector<std::uint8_t>> read_all_bytes(stream& s) {
    return read_n_bytes(s, static_cast<std::size_t>(-1));
}

}  // namespace rill
