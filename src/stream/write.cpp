// Output: bytes and text into the output buffer (eol translation, encoding), the one-append
// fast path of showln, and the public write operations.
#include <cstdio>
#include <ostream>
#include <sstream>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <rill/stream.hpp>

#include "runtime/worker_stats.hpp"
#include "stream/stream_state.hpp"
#include "text/utf8.hpp"

namespace rill {
namespace detail {

void stream_state::write_raw(const char* p, std::size_t n, const char* operation) {
    check_writable(operation);
    if (out.size() + n > default_output_buffer_bytes) {
        flush(operation);
        if (n >= default_output_buffer_bytes / 2) {
            // Large writes go straight from the caller's memory.
            const auto deadline = optional_deadline(options.writer_timeout);
            while (n > 0) {
                const std::size_t sent = send_some(p, n, deadline, operation);
                p += sent;
                n -= sent;
            }
            return;
        }
    }
    out.append(p, n);
}

// A line end's bytes for each eol style, padded to two so that it is stored in one move.
struct line_end_form {
    char bytes[2];
    std::uint8_t size;
    bool translates_newline;  // '\n' in the text must become these bytes
};
constexpr line_end_form line_end_forms[] = {
    {{'\n', 0}, 1, false},  // lf
    {{'\r', 0}, 1, true},  // cr
    {{'\r', '\n'}, 2, true},  // crlf
    {{'\n', 0}, 1, false},  // none
};
static_assert(static_cast<int>(eol_style::lf) == 0 && static_cast<int>(eol_style::cr) == 1 &&
              static_cast<int>(eol_style::crlf) == 2 && static_cast<int>(eol_style::none) == 3);

const line_end_form& line_end_of(eol_style eol) noexcept {
    return line_end_forms[static_cast<int>(eol)];
}

// Whether '\n' leaves as something else (CR LF or CR) under `eol`.
bool translates_newline(eol_style eol) noexcept { return line_end_of(eol).translates_newline; }

std::string_view line_end_bytes(eol_style eol) noexcept {
    const line_end_form& form = line_end_of(eol);
    return {form.bytes, form.size};
}

void stream_state::write_text(std::string_view text, const char* operation) {
    const bool translate = translates_newline(eol);
    const std::string_view line_end = line_end_bytes(eol);
    if (!codec) {
        if (!translate) return write_raw(text.data(), text.size(), operation);
        while (!text.empty()) {
            auto* nl = static_cast<const char*>(std::memchr(text.data(), '\n', text.size()));
            const std::size_t plain = nl ? static_cast<std::size_t>(nl - text.data()) : text.size();
            write_raw(text.data(), plain, operation);
            if (!nl) break;
            write_raw(line_end.data(), line_end.size(), operation);
            text.remove_prefix(plain + 1);
        }
        return;
    }
    check_writable(operation);
    // Line by line when '\n' becomes a line end of another form: each piece and each line end
    // is encoded as it comes, with no translated copy of the whole text.
    std::string bytes;
    while (!text.empty()) {
        const std::size_t nl = translate ? text.find('\n') : std::string_view::npos;
        std::string_view piece = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        encode_whole(piece, bytes, operation);
        if (nl != std::string_view::npos) encode_whole(line_end, bytes, operation);
    }
    write_raw(bytes.data(), bytes.size(), operation);
}

void stream_state::encode_whole(std::string_view source, std::string& bytes,
                                const char* operation) {
    while (!source.empty()) {
        // The text is whole: a UTF-8 sequence cut at its end is invalid UTF-8 for the mode to
        // handle, not something to hold back for a later write. (A piece ends at a '\n', so a
        // cut there is the program's, not ours.)
        encode_result r = codec->enc.encode(source, bytes, true);
        source.remove_prefix(r.consumed);
        if (r.error) {
            write_raw(bytes.data(), bytes.size(), operation);
            char cp[16];
            std::snprintf(cp, sizeof cp, "U+%04X", static_cast<unsigned>(r.bad_char));
            throw encoding_error(std::string(operation) + ": " +
                                 std::string(to_string(codec->enc.settings().codec())) +
                                 " cannot encode " + cp + " for " + name());
        }
        if (r.consumed == 0) break;  // nothing left that the encoder could take: never loop
    }
}

namespace {
// Copies text to `to` unless it holds a '\n' (which an eol style other than lf must
// translate): one pass where memchr and memcpy would take two. 32 bytes a step (two 16-byte
// halves), the last step overlapping the one before; short texts 16 bytes or bytewise.
[[gnu::always_inline]] inline bool copy_without_lf(char* to, const char* p,
                                                   std::size_t n) noexcept {
#if defined(__x86_64__)
    const __m128i lf = _mm_set1_epi8('\n');
    auto copy16 = [&](std::size_t i) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(to + i), v);
        return _mm_cmpeq_epi8(v, lf);
    };
    if (n >= 32) {
        for (std::size_t i = 0;; i += 32) {
            if (i + 32 > n) i = n - 32;
            if (_mm_movemask_epi8(_mm_or_si128(copy16(i), copy16(i + 16)))) return false;
            if (i + 32 == n) return true;
        }
    }
    if (n >= 16) return !_mm_movemask_epi8(_mm_or_si128(copy16(0), copy16(n - 16)));
#endif
    for (std::size_t i = 0; i < n; ++i) {
        if (p[i] == '\n') return false;
        to[i] = p[i];
    }
    return true;
}
}  // namespace

void stream_state::write_line(std::string_view text, const char* operation) {
    const line_end_form& end = line_end_of(eol);
    const std::size_t n = text.size() + end.size;
    // The common case in one append: no transcoder, room under the output cap, nothing that
    // refuses writes, and no '\n' in the text that the eol style would have to translate.
    if (!codec && out.size() + n <= default_output_buffer_bytes && writable()) [[likely]] {
        char* to = out.tail(n + 1);  // a byte more: the line end is stored as two bytes
        bool copied = true;
        if (end.translates_newline)
            copied = copy_without_lf(to, text.data(), text.size());
        else if (!text.empty())
            std::memcpy(to, text.data(), text.size());
        if (copied) [[likely]] {
            std::memcpy(to + text.size(), end.bytes, 2);
            out.commit(n);
            count_event(&worker_counters::lines_out);
            return;
        }
    }
    write_line_slowly(text, operation);
    count_event(&worker_counters::lines_out);
}

void stream_state::write_line_slowly(std::string_view text, const char* operation) {
    // A transcoder, a '\n' in the text to translate, output past its cap, or a stream that
    // refuses writes (write_raw's check throws): write_text handles each.
    write_text(text, operation);
    if (codec) return write_text("\n", operation);
    const std::string_view line_end = line_end_bytes(eol);
    write_raw(line_end.data(), line_end.size(), operation);  // no scan for LF needed
}

void show_via_ostream(stream& s, const void* value, void (*print)(std::ostream&, const void*)) {
    std::ostringstream text;
    print(text, value);
    write_chars(s, text.str());
}

}  // namespace detail

// ---- output ---------------------------------------------------------------------------------

void write_byte(stream& s, std::uint8_t byte) {
    char c = static_cast<char>(byte);
    detail::state_of(s).write_raw(&c, 1, "write_byte");
}

void write_bytes(stream& s, std::span<const std::byte> bytes) {
    detail::state_of(s).write_raw(reinterpret_cast<const char*>(bytes.data()), bytes.size(),
                                  "write_bytes");
}

void write_bytes(stream& s, std::span<const std::uint8_t> bytes) {
    write_bytes(s, std::as_bytes(bytes));
}

void write_char(stream& s, char32_t c) {
    detail::stream_state& st = detail::state_of(s);
    if (c >= 0xDC80 && c <= 0xDCFF && !st.codec) {
        // An invalid byte read by read_char goes back out as that byte.
        char b = static_cast<char>(c - 0xDC00);
        return st.write_raw(&b, 1, "write_char");
    }
    // Without a transcoder nothing would catch a surrogate's UTF-8 form on its way out: it
    // would reach the peer as bytes no valid UTF-8 text contains.
    if (c > detail::max_code_point || (!st.codec && detail::is_surrogate(c)))
        throw argument_error("write_char: not a Unicode character: " +
                             std::to_string(static_cast<unsigned long>(c)));
    unsigned char utf8[4];
    auto* end = detail::encode_utf8(c, utf8);
    st.write_text(
        std::string_view(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(end - utf8)),
        "write_char");
}

void write_chars(stream& s, std::string_view text) {
    detail::state_of(s).write_text(text, "write_chars");
}

void newline(stream& s) { detail::state_of(s).write_line({}, "newline"); }

void detail::write_line(stream& s, std::string_view text) {
    detail::state_of(s).write_line(text, "showln");
}

void flush_writer(stream& s) { detail::state_of(s).flush_before_wait("flush_writer"); }

}  // namespace rill
