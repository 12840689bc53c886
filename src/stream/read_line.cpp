// read_line: the one-pass fast path for a whole buffered line, the path that waits for more
// input (and enforces max_line_length), and read_text, the character-at-a-time reader behind
// custom separators, max_length and read_n_chars.
#include <rill/stream.hpp>

#include "runtime/worker_stats.hpp"
#include "stream/text_reading.hpp"

namespace rill {
namespace detail {

namespace {
// Throws line_too_long after dropping the buffered part of the line (`cap` bytes long at most).
[[noreturn]] void too_long(stream_state& st, std::size_t cap, std::size_t length,
                           bool line_end_seen) {
    if (!line_end_seen) st.discarding_line = true;
    count_event(&worker_counters::lines_too_long);
    throw line_too_long("read_line: line longer than max_line_length (" + std::to_string(cap) +
                        " bytes) from " + st.name() + "; " + std::to_string(length) +
                        " bytes skipped so far");
}
}  // namespace

// After line_too_long: drop text up to and including the next line end.
bool skip_rest_of_line(stream_state& st) {
    while (st.discarding_line) {
        apply_skip(st);
        if (const char* end = find_line_end(st.text(), st.text_size(), st.eol)) {
            consume_through_line_end(st, end);
            st.discarding_line = false;
            break;
        }
        st.consume_text(st.text_size());
        if (st.fill_text("read_line") != fill_result::more) return false;
    }
    return true;
}

// It scans the buffered text and consumes it only when the read is complete, so a read_line
// that times out leaves its partial line in the stream for the next read, as the fast path
// does. read_n_chars (keep_on_timeout = false) consumes as it goes and returns what it got.
bool read_text(stream_state& st, std::string& line, const text_read& r) {
    const bool keep_on_timeout = r.keep_on_timeout;
    apply_skip(st);
    char skip_at_start = st.skip_next;
    char skip = std::exchange(st.skip_next, 0);  // crlf: a line end's second half, skipped if next
    std::size_t pos = 0;  // bytes of text taken so far (not yet consumed)
    std::size_t count = 0;  // characters taken
    // Consumes what was taken; a line end's second half not seen yet is skipped later.
    auto consume_taken = [&] {
        st.consume_text(pos);
        pos = 0;
        st.skip_next = skip;
    };
    char utf8[4];
    for (;;) {
        if (r.max_chars && count >= *r.max_chars) {
            consume_taken();
            return true;
        }
        if (pos < st.text_size()) {
            const char* p = st.text() + pos;
            if (skip) {
                if (*p == skip) {
                    if (pos == 0) {
                        // The second half of a line end already consumed (the last read's, when
                        // it arrives only now): it is no part of this read and is not counted.
                        st.consume_text(1);
                        skip_at_start = 0;
                    } else {
                        ++pos;
                    }
                }
                skip = 0;
                continue;
            }
            char32_t c;
            // At the end of the stream a cut character reads as its bytes, one at a time.
            const std::size_t len = next_char(p, st.text_size() - pos, st.end_of_input, c);
            if (len > 0) {
                pos += len;
                ++count;
                if ((c == U'\r' || c == U'\n') && cr_ends_lines(st.eol)) {
                    skip = second_half_after(static_cast<char>(c), st.eol);
                    c = U'\n';
                }
                if (r.separator && c == *r.separator) {
                    if (r.include_separator) {
                        auto* end = encode_utf8(c, reinterpret_cast<unsigned char*>(utf8));
                        line.append(utf8,
                                    static_cast<std::size_t>(reinterpret_cast<char*>(end) - utf8));
                    }
                    consume_taken();
                    return true;
                }
                if (c >= 0xDC80 && c <= 0xDCFF) {
                    line.push_back(
                        static_cast<char>(c - 0xDC00));  // an invalid byte, passed through
                } else {
                    auto* end = encode_utf8(c, reinterpret_cast<unsigned char*>(utf8));
                    line.append(utf8,
                                static_cast<std::size_t>(reinterpret_cast<char*>(end) - utf8));
                }
                // The cap counts the text taken, as the fast path does: the second half of
                // each CR LF (skipped under a custom separator) counts too, so that what the
                // stream buffers stays within max_line_length plus one receive.
                if (r.max_bytes && pos > r.max_bytes) {
                    const std::size_t taken = pos;
                    consume_taken();
                    // A line end taken last ended the line: the next read starts after it.
                    too_long(st, r.max_bytes, taken, c == U'\n');
                }
                continue;
            }
        }
        if (!keep_on_timeout) consume_taken();
        fill_result f;
        try {
            f = st.fill_text("read_line");
        } catch (const decoding_error&) {
            consume_taken();  // the part of the line before the bad bytes, as the fast path does
            throw;
        } catch (...) {
            if (keep_on_timeout) st.skip_next = skip_at_start;  // nothing consumed
            throw;
        }
        if (f == fill_result::timed_out) {
            if (!keep_on_timeout) return false;
            st.skip_next = skip_at_start;  // nothing consumed: the next read starts over
            line.clear();
            return false;
        }
        if (f == fill_result::end_of_stream && pos >= st.text_size()) {
            skip = 0;
            consume_taken();
            return count > 0;
        }
    }
}

// read_line's common case in one pass: a stream without transcoder, default options, and a
// whole line already in the input buffer. Exactly what the loop below does for that case:
// a pending line end half is skipped first, and the next one is looked at if it is there.
namespace {
bool read_buffered_line(stream_state& st, std::string& line, const read_line_options& o) {
    const char* text = st.in.head();
    const std::size_t size = st.in.size();
    std::size_t start = 0;
    if (st.skip_next && size > 0) start = text[0] == st.skip_next;
    const char* end = find_line_end(text + start, size - start, st.eol);
    if (!end) return false;
    const std::size_t length = static_cast<std::size_t>(end - text) - start;
    if (st.options.max_line_length && length > st.options.max_line_length) return false;
    // resize (a no-op when the last line had this length) and a plain copy: assign's
    // overlap and growth checks cost more than the copy of a short line.
    line.resize(length);
    if (length) std::memcpy(line.data(), text + start, length);
    if (o.include_separator) line.push_back('\n');
    std::size_t used = start + length + 1;
    st.skip_next = 0;
    if (const char second = second_half_after(*end, st.eol)) {
        if (used == size)
            st.skip_next = second;
        else
            used += text[used] == second;
    }
    st.in.consume(used);
    return true;
}

}  // namespace

bool read_line_waiting(stream_state& st, std::string& line, const read_line_options& o);

bool read_line_into(stream_state& st, std::string& line, const read_line_options& o) {
    if (!st.codec && !st.discarding_line && o.separator == U'\n' && !o.max_length &&
        read_buffered_line(st, line, o)) [[likely]] {
        count_event(&worker_counters::lines_in);
        return true;
    }
    if (!read_line_waiting(st, line, o)) return false;
    count_event(&worker_counters::lines_in);
    return true;
}

// read_line_into when no whole line is buffered (or the stream is not the plain kind): receives
// and decodes as needed. Out of line, so that the common case above stays small.
[[gnu::noinline]] bool read_line_waiting(stream_state& st, std::string& line,
                                         const read_line_options& o) {
    line.clear();
    if (st.discarding_line && !skip_rest_of_line(st)) return false;
    const std::size_t cap = st.options.max_line_length;
    if (o.separator != U'\n' || o.max_length)
        return read_text(st, line, {o.separator, o.include_separator, o.max_length, cap, true});
    std::size_t scanned = 0;
    for (;;) {
        apply_skip(st);
        const char* text = st.text();
        const std::size_t size = st.text_size();
        if (!st.skip_next && size > scanned) {
            if (const char* end = find_line_end(text + scanned, size - scanned, st.eol)) {
                const std::size_t length = static_cast<std::size_t>(end - text);
                if (cap && length > cap) {
                    consume_through_line_end(st, end);  // the line end goes with the line
                    too_long(st, cap, length, true);
                }
                line.assign(text, length);
                if (o.include_separator) line.push_back('\n');
                consume_through_line_end(st, end);
                return true;
            }
            scanned = size;
            if (cap && size > cap) {
                st.consume_text(size);
                too_long(st, cap, size, false);
            }
        }
        fill_result f;
        try {
            f = st.fill_text("read_line");
        } catch (const decoding_error&) {
            st.consume_text(st.text_size());  // the part of the line before the bad bytes
            throw;
        }
        if (f == fill_result::more) continue;
        if (f == fill_result::timed_out || st.text_size() == 0) return false;
        // End of stream: the last line has no line end.
        line.assign(st.text(), st.text_size());
        st.consume_text(st.text_size());
        return true;
    }
}

}  // namespace detail

std::optional<std::string> read_line(stream& s, const read_line_options& options) {
    std::string line;
    if (!detail::read_line_into(detail::open_for_reading(s, "read_line"), line, options))
        return std::nullopt;
    return line;
}

bool read_line(stream& s, std::string& line, const read_line_options& options) {
    return detail::read_line_into(detail::open_for_reading(s, "read_line"), line, options);
}

}  // namespace rill
