// Buffered stream operations over a stream_state.
#include "stream/stream_state.hpp"


#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ostream>
#include <sstream>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <rill/stream.hpp>

#include "text/utf8.hpp"

namespace rill {
namespace detail {

namespace {

std::optional<time_point> optional_deadline(const std::optional<std::chrono::milliseconds>& d) {
    if (!d) return std::nullopt;
    return deadline_after(*d);
}


std::string hex_bytes(const char* p, std::size_t n) {
    std::string s;
    char buf[4];
    for (std::size_t i = 0; i < n; ++i) {
        std::snprintf(buf, sizeof buf, "%s%02X", i ? " " : "", static_cast<unsigned char>(p[i]));
        s += buf;
    }
    return s;
}

// The next character of UTF-8 text that may hold invalid bytes (a stream without
// transcoder passes them through): returns its length, 0 if the text ends inside it.
// An invalid byte reads as U+DC80 + byte, so write_char gives it back unchanged.
std::size_t next_char(const char* text, std::size_t n, bool at_end, char32_t& c) noexcept {
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

} // namespace

stream_state::stream_state(std::unique_ptr<transport> transport, const stream_options& o,
                           const std::optional<transcoder>& t)
    : io(std::move(transport)), options(o) {
    pending_flush.run = [](deferred_work* w) {
        auto* st = static_cast<stream_state*>(w->context);
        try {
            st->flush("flush_writer");
        } catch (const timeout_error&) {
            st->write_error = ETIMEDOUT;  // reported by the stream's next write
        } catch (const os_error&) {
            // flush recorded the errno: the stream's next write reports it.
        }
    };
    pending_flush.context = this;
    if (t) {
        eol = t->eol_style();
        codec = std::make_unique<transcoding_state>(*t);
    }
}

stream_state::~stream_state() {
    if (pending_flush.owner) {
        // Output flush_writer promised is sent even when the stream is dropped without
        // close_stream, as long as we are still on the task that flushed it.
        scheduler* here = scheduler::current();
        if (here && here->running() == pending_flush.owner) {
            try {
                flush("flush_writer", true);  // the descriptor is closed right after
            } catch (...) {
            }
        }
    }
    close_transport();
}

void stream_state::close_transport() noexcept {
    undefer(pending_flush);
    io->close();
    closed = true;
    in.release();
    out.release();
    end_of_input = true;
    writer_closed = true;
}

std::string stream_state::name() const { return io->peer_name(); }

fill_result stream_state::fill_bytes(const char* operation) {
    if (end_of_input) return fill_result::end_of_stream;
    const auto deadline = optional_deadline(options.reader_timeout);
    // A stream about to wait with nothing buffered holds no buffer meanwhile (the transport
    // releases `in` when it waits).
    if (in.empty() && out.empty()) out.release();
    long r;
    scheduler* here = pending_flush.owner && !out.empty() ? scheduler::current() : nullptr;
    task_control* running = here ? here->running() : nullptr;
    if (running && pending_flush.owner == running) {
        // flush_writer's put-off send may go to the kernel with this receive.
        pending_output flushed{out, optional_deadline(options.writer_timeout), pending_flush};
        r = io->receive(in, deadline, &flushed);
        if (flushed.taken) note_flush_taken(flushed, *running);
    } else {
        r = io->receive(in, deadline, nullptr);
    }
    if (r > 0) return fill_result::more;
    // The backend reports a passed deadline as -ETIMEDOUT, the errno TCP also uses for a
    // connection that timed out (retransmissions, keepalive): only the first is a timeout.
    if (r == -ETIMEDOUT && deadline) return fill_result::timed_out;
    if (r == -ECANCELED) throw task_cancelled();
    if (r == 0 || r == -ECONNRESET || r == -EPIPE || r == -ETIMEDOUT || r == -EHOSTUNREACH ||
        r == -ENETUNREACH || r == -ECONNABORTED) {
        // The peer closed or vanished: that is the end of this stream, not an error.
        end_of_input = true;
        return fill_result::end_of_stream;
    }
    throw_os_error(static_cast<int>(-r), std::string(operation) + ": receive from " + name());
}

fill_result stream_state::fill_text(const char* operation) {
    if (!codec) return fill_bytes(operation);
    transcoding_state& tc = *codec;
    if (tc.pending_bad_bytes) {
        // The reader has reached the ill-formed bytes: report them, then move past them.
        const std::size_t bad = tc.pending_bad_bytes;
        tc.pending_bad_bytes = 0;
        std::string what = std::string(operation) + ": " +
                           std::string(to_string(tc.dec.settings().codec())) +
                           " cannot decode bytes " + hex_bytes(in.head(), bad) + " at byte " +
                           std::to_string(tc.bytes_decoded) + " of " + name();
        in.consume(bad);
        tc.bytes_decoded += bad;
        throw decoding_error(what);
    }
    for (;;) {
        if (!in.empty() || end_of_input) {
            const std::size_t before = tc.decoded.size();
            decode_result r = tc.dec.decode(std::string_view(in.head(), in.size()), tc.decoded, end_of_input);
            in.consume(r.consumed);
            tc.bytes_decoded += r.consumed;
            if (r.error) tc.pending_bad_bytes = r.bad_length;
            if (tc.decoded.size() > before) return fill_result::more;
            if (r.error) return fill_text(operation);
            if (end_of_input) return fill_result::end_of_stream;
        }
        fill_result f = fill_bytes(operation);
        if (f == fill_result::timed_out) return f;
    }
}

void stream_state::refuse_write(const char* operation) {
    if (closed) throw error(std::string(operation) + ": the stream is closed");
    if (write_error == ETIMEDOUT)
        throw timeout_error(std::string(operation) + ": an earlier flush to " + name() +
                            " passed the writer timeout");
    if (write_error) throw_os_error(write_error, std::string(operation) + ": send to " + name());
    throw error(std::string(operation) + ": the stream is closed for writing");
}

std::size_t stream_state::send_some(const char* p, std::size_t n,
                                    const std::optional<time_point>& deadline, const char* operation,
                                    bool more) {
    const long r = io->send(p, n, deadline, more);
    if (r >= 0) return static_cast<std::size_t>(r);
    if (r == -ETIMEDOUT && deadline)  // else the connection itself timed out: os_error
        throw timeout_error(std::string(operation) + ": writer timeout of " +
                            std::to_string(options.writer_timeout->count()) +
                            " ms passed sending to " + name());
    if (r == -ECANCELED) throw task_cancelled();
    write_error = static_cast<int>(-r);
    throw_os_error(write_error, std::string(operation) + ": send to " + name());
}

void stream_state::flush(const char* operation, bool closing) {
    undefer(pending_flush);
    check_writable(operation);
    const auto deadline = optional_deadline(options.writer_timeout);
    try {
        while (!out.empty()) out.consume(send_some(out.head(), out.size(), deadline, operation, closing));
    } catch (const os_error&) {
        out.release();  // the connection is broken: nothing more of it will leave
        throw;
    }
}

void stream_state::note_flush_taken(const pending_output& flushed, task_control& running) noexcept {
    if (flushed.sent < 0 && flushed.sent != -ECANCELED) {  // the next write reports it
        write_error = flushed.sent == -ETIMEDOUT ? ETIMEDOUT : static_cast<int>(-flushed.sent);
        out.release();
    }
    // A short send: the rest leaves at the task's next scheduling point, as flush_writer said.
    if (!out.empty() && !write_error) defer(running, pending_flush);
}

void stream_state::flush_before_wait(const char* operation) {
    check_writable(operation);
    if (out.empty() || pending_flush.owner) return;  // nothing to send, or already put off
    // The send waits for the task's next scheduling point: a pipelining peer's answers then
    // go out together, and an answer followed by close_stream leaves with the FIN. A send
    // error is thrown by the stream's next write, flush or close.
    scheduler* here = scheduler::current();
    if (!here || !here->running()) return flush(operation);
    defer(*here->running(), pending_flush);
}

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
    {{'\n', 0}, 1, false},   // lf
    {{'\r', 0}, 1, true},    // cr
    {{'\r', '\n'}, 2, true}, // crlf
    {{'\n', 0}, 1, false},   // none
};
static_assert(static_cast<int>(eol_style::lf) == 0 && static_cast<int>(eol_style::cr) == 1 &&
              static_cast<int>(eol_style::crlf) == 2 && static_cast<int>(eol_style::none) == 3);

const line_end_form& line_end_of(eol_style eol) noexcept { return line_end_forms[static_cast<int>(eol)]; }

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
    std::string_view source = text;
    if (translate && text.find('\n') != std::string_view::npos) {
        codec->encode_scratch.clear();
        for (char c : text) {
            if (c == '\n') codec->encode_scratch.append(line_end);
            else codec->encode_scratch.push_back(c);
        }
        source = codec->encode_scratch;
    }
    std::string bytes;
    while (!source.empty()) {
        // The text is whole: a UTF-8 sequence cut at its end is invalid UTF-8 for the mode to
        // handle, not something to hold back for a later write.
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
    write_raw(bytes.data(), bytes.size(), operation);
}

namespace {
// Copies text to `to` unless it holds a '\n' (which an eol style other than lf must
// translate): one pass where memchr and memcpy would take two. 32 bytes a step (two 16-byte
// halves), the last step overlapping the one before; short texts 16 bytes or bytewise.
[[gnu::always_inline]] inline bool copy_without_lf(char* to, const char* p, std::size_t n) noexcept {
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
} // namespace

void stream_state::write_line(std::string_view text, const char* operation) {
    const line_end_form& end = line_end_of(eol);
    const std::size_t n = text.size() + end.size;
    // The common case in one append: no transcoder, room under the output cap, nothing that
    // refuses writes, and no '\n' in the text that the eol style would have to translate.
    if (!codec && out.size() + n <= default_output_buffer_bytes && writable()) [[likely]] {
        char* to = out.tail(n + 1);  // a byte more: the line end is stored as two bytes
        bool copied = true;
        if (end.translates_newline) copied = copy_without_lf(to, text.data(), text.size());
        else if (!text.empty()) std::memcpy(to, text.data(), text.size());
        if (copied) [[likely]] {
            std::memcpy(to + text.size(), end.bytes, 2);
            out.commit(n);
            return;
        }
    }
    write_line_slowly(text, operation);
}

void stream_state::write_line_slowly(std::string_view text, const char* operation) {
    // A transcoder, a '\n' in the text to translate, output past its cap, or a stream that
    // refuses writes (write_raw's check throws): write_text handles each.
    write_text(text, operation);
    if (codec) return write_text("\n", operation);
    const std::string_view line_end = line_end_bytes(eol);
    write_raw(line_end.data(), line_end.size(), operation);  // no scan for LF needed
}

// Skips the second half of a two-character line end (crlf style) once the next character
// is there to look at.
[[gnu::always_inline]] inline void apply_skip(stream_state& st) noexcept {
    if (st.skip_next && st.text_size() > 0) {
        if (st.text()[0] == st.skip_next) st.consume_text(1);
        st.skip_next = 0;
    }
}

bool skip_rest_of_line(stream_state& st);

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
                if ((c == U'\r' || c == U'\n') &&
                    (st.eol == eol_style::crlf || st.eol == eol_style::cr)) {
                    if (consume && st.eol == eol_style::crlf) st.skip_next = c == U'\r' ? '\n' : '\r';
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

// Line end search for read_line's fast path: the first CR or LF (cr and crlf styles) or
// the first LF (lf and none).
namespace {
// CR or LF, in one pass: two memchr calls cost more than the scan for a short line.
const char* find_cr_or_lf(const char* p, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i)
        if (p[i] == '\n' || p[i] == '\r') return p + i;
    return nullptr;
}

#if defined(__x86_64__)
// 16 bytes a step; the tail goes bytewise.
const char* find_cr_or_lf_sse2(const char* p, std::size_t n) noexcept {
    std::size_t i = 0;
    const __m128i lf = _mm_set1_epi8('\n');
    const __m128i cr = _mm_set1_epi8('\r');
    for (; i + 16 <= n; i += 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        const auto hits = static_cast<unsigned>(
            _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, cr))));
        if (hits) return p + i + __builtin_ctz(hits);
    }
    return find_cr_or_lf(p + i, n - i);
}

// 32 bytes a step where the processor has AVX2 (a 64-byte line in two steps); the tail goes
// to the 16-byte scan.
[[gnu::target("avx2")]] const char* find_cr_or_lf_avx2(const char* p, std::size_t n) noexcept {
    std::size_t i = 0;
    const __m256i lf = _mm256_set1_epi8('\n');
    const __m256i cr = _mm256_set1_epi8('\r');
    for (; i + 32 <= n; i += 32) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
        const auto hits = static_cast<unsigned>(
            _mm256_movemask_epi8(_mm256_or_si256(_mm256_cmpeq_epi8(v, lf), _mm256_cmpeq_epi8(v, cr))));
        if (hits) return p + i + __builtin_ctz(hits);
    }
    return find_cr_or_lf_sse2(p + i, n - i);
}

const bool cpu_has_avx2 = [] {
    __builtin_cpu_init();  // static initialisation may run before the library's own
    return __builtin_cpu_supports("avx2") != 0;
}();
#endif

const char* find_first_cr_or_lf(const char* p, std::size_t n) noexcept {
#if defined(__x86_64__)
    return cpu_has_avx2 ? find_cr_or_lf_avx2(p, n) : find_cr_or_lf_sse2(p, n);
#else
    return find_cr_or_lf(p, n);
#endif
}
} // namespace

[[gnu::always_inline]] inline const char* find_line_end(const char* p, std::size_t n, eol_style eol) noexcept {
    if (n == 0) return nullptr;  // an empty buffer holds no memory: memchr(nullptr, ...) is UB
    if (eol == eol_style::lf || eol == eol_style::none)
        return static_cast<const char*>(std::memchr(p, '\n', n));
    return find_first_cr_or_lf(p, n);
}

// Throws line_too_long after dropping the buffered part of the line.
[[noreturn]] void too_long(stream_state& st, std::size_t length, bool line_end_seen) {
    if (!line_end_seen) st.discarding_line = true;
    throw line_too_long("read_line: line longer than max_line_length (" +
                        std::to_string(st.options.max_line_length) + " bytes) from " + st.name() +
                        "; " + std::to_string(length) + " bytes skipped so far");
}

// After line_too_long: drop text up to and including the next line end.
bool skip_rest_of_line(stream_state& st) {
    while (st.discarding_line) {
        apply_skip(st);
        if (const char* end = find_line_end(st.text(), st.text_size(), st.eol)) {
            const bool is_cr = *end == '\r';
            st.consume_text(static_cast<std::size_t>(end - st.text()) + 1);
            if (st.eol == eol_style::crlf) st.skip_next = is_cr ? '\n' : '\r';
            st.discarding_line = false;
            break;
        }
        st.consume_text(st.text_size());
        if (st.fill_text("read_line") != fill_result::more) return false;
    }
    return true;
}

// The general read_line: any separator, a max_length; character at a time. It scans the
// buffered text and consumes it only when the line is complete, so a read that times out
// leaves its partial line in the stream for the next read, as the fast path does.
// read_n_chars passes keep_on_timeout = false: it consumes as it goes and returns what it got.
bool read_line_general(stream_state& st, std::string& line, const read_line_options& o,
                       bool keep_on_timeout = true) {
    apply_skip(st);
    const char skip_at_start = st.skip_next;
    char skip = std::exchange(st.skip_next, 0);  // crlf: a line end's second half, skipped if next
    std::size_t pos = 0;    // bytes of text taken so far (not yet consumed)
    std::size_t count = 0;  // characters taken
    // Consumes what was taken; a line end's second half not seen yet is skipped later.
    auto consume_taken = [&] {
        st.consume_text(pos);
        pos = 0;
        st.skip_next = skip;
    };
    char utf8[4];
    for (;;) {
        if (o.max_length && count >= *o.max_length) {
            consume_taken();
            return true;
        }
        if (pos < st.text_size()) {
            const char* p = st.text() + pos;
            if (skip) {
                if (*p == skip) ++pos;
                skip = 0;
                continue;
            }
            char32_t c;
            // At the end of the stream a cut character reads as its bytes, one at a time.
            const std::size_t len = next_char(p, st.text_size() - pos, st.end_of_input, c);
            if (len > 0) {
                pos += len;
                ++count;
                if ((c == U'\r' || c == U'\n') &&
                    (st.eol == eol_style::crlf || st.eol == eol_style::cr)) {
                    if (st.eol == eol_style::crlf) skip = c == U'\r' ? '\n' : '\r';
                    c = U'\n';
                }
                if (c == o.separator) {
                    if (o.include_separator) {
                        auto* end = encode_utf8(c, reinterpret_cast<unsigned char*>(utf8));
                        line.append(utf8, static_cast<std::size_t>(reinterpret_cast<char*>(end) - utf8));
                    }
                    consume_taken();
                    return true;
                }
                if (c >= 0xDC80 && c <= 0xDCFF) {
                    line.push_back(static_cast<char>(c - 0xDC00));  // an invalid byte, passed through
                } else {
                    auto* end = encode_utf8(c, reinterpret_cast<unsigned char*>(utf8));
                    line.append(utf8, static_cast<std::size_t>(reinterpret_cast<char*>(end) - utf8));
                }
                if (st.options.max_line_length && line.size() > st.options.max_line_length) {
                    consume_taken();
                    too_long(st, line.size(), false);
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
    if (st.eol == eol_style::crlf) {
        const char pair = *end == '\r' ? '\n' : '\r';
        if (used == size) st.skip_next = pair;
        else used += text[used] == pair;
    }
    st.in.consume(used);
    return true;
}

} // namespace

bool read_line_waiting(stream_state& st, std::string& line, const read_line_options& o);

bool read_line_into(stream_state& st, std::string& line, const read_line_options& o) {
    if (!st.codec && !st.discarding_line && o.separator == U'\n' && !o.max_length &&
        read_buffered_line(st, line, o)) [[likely]]
        return true;
    return read_line_waiting(st, line, o);
}

// read_line_into when no whole line is buffered (or the stream is not the plain kind): receives
// and decodes as needed. Out of line, so that the common case above stays small.
[[gnu::noinline]] bool read_line_waiting(stream_state& st, std::string& line, const read_line_options& o) {
    line.clear();
    if (st.discarding_line && !skip_rest_of_line(st)) return false;
    if (o.separator != U'\n' || o.max_length) return read_line_general(st, line, o);
    const std::size_t cap = st.options.max_line_length;
    std::size_t scanned = 0;
    for (;;) {
        apply_skip(st);
        const char* text = st.text();
        const std::size_t size = st.text_size();
        if (!st.skip_next && size > scanned) {
            if (const char* end = find_line_end(text + scanned, size - scanned, st.eol)) {
                const std::size_t length = static_cast<std::size_t>(end - text);
                const bool is_cr = *end == '\r';
                if (cap && length > cap) {
                    // The line end is consumed with the line: its second half (crlf) too.
                    st.consume_text(length + 1);
                    if (st.eol == eol_style::crlf) {
                        st.skip_next = is_cr ? '\n' : '\r';
                        apply_skip(st);
                    }
                    too_long(st, length, true);
                }
                line.assign(text, length);
                if (o.include_separator) line.push_back('\n');
                st.consume_text(length + 1);
                if (st.eol == eol_style::crlf) {
                    st.skip_next = is_cr ? '\n' : '\r';
                    apply_skip(st);
                }
                return true;
            }
            scanned = size;
            if (cap && size > cap) {
                st.consume_text(size);
                too_long(st, size, false);
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

// Waits until `in` holds a byte for a byte read. The second half of a CR LF (or LF CR) whose
// first half ended a text read belongs to that line end: it is skipped here as the next text
// read would skip it, so what a byte read sees does not depend on how the bytes were split
// into segments. (A transcoded stream's line ends live in its decoded text, not in `in`.)
fill_result await_bytes(stream_state& st, const char* operation) {
    // After line_too_long the next read of any kind starts after that line's end.
    if (st.discarding_line && !skip_rest_of_line(st))
        return st.end_of_input ? fill_result::end_of_stream : fill_result::timed_out;
    for (;;) {
        if (st.codec) st.skip_next = 0;
        else apply_skip(st);
        if (!st.in.empty()) return fill_result::more;
        const fill_result f = st.fill_bytes(operation);
        if (f != fill_result::more) return f;
    }
}

void show_via_ostream(stream& s, const void* value, void (*print)(std::ostream&, const void*)) {
    std::ostringstream text;
    print(text, value);
    write_chars(s, text.str());
}

void abort_stream(stream& s) noexcept {
    if (!s.is_open()) return;
    stream_state& st = detail::state_of(s);
    if (st.pending_flush.owner && !st.write_error) {
        // flush_writer accepted this output and put its send off until the task waits
        // (flush_before_wait); an exception before that wait (a decoding_error from the next
        // read_line, say, ending call_with_stream) must not lose it. Non-blocking sends only:
        // aborting never waits.
        while (!st.out.empty()) {
            const long n = st.io->send_without_waiting(st.out.head(), st.out.size());
            if (n <= 0) break;
            st.out.consume(static_cast<std::size_t>(n));
        }
    }
    st.close_transport();
}

} // namespace detail

// ---- stream ---------------------------------------------------------------------------------

stream::stream() noexcept = default;
stream::stream(std::unique_ptr<detail::stream_state> state) noexcept : state_(std::move(state)) {}
stream::stream(stream&&) noexcept = default;
stream& stream::operator=(stream&&) noexcept = default;
stream::~stream() = default;

bool stream::is_open() const noexcept { return state_ && !state_->closed; }

std::optional<rill::transcoder> stream::transcoder() const {
    if (!state_ || !state_->codec) return std::nullopt;
    return state_->codec->dec.settings();
}

detail::stream_state& detail::state_of(const stream& s) {
    if (!s.state_) throw error("stream: operation on a closed or moved-from stream");
    return *s.state_;
}

// ---- input ----------------------------------------------------------------------------------

namespace {
// A closed stream has no end of stream to report: reading it is an error, as writing it is
// (close_reader leaves the stream open, and its reads see end of stream instead).
detail::stream_state& open_for_reading(stream& s, const char* operation) {
    detail::stream_state& st = detail::state_of(s);
    if (st.closed) throw error(std::string(operation) + ": the stream is closed");
    return st;
}
} // namespace

std::optional<std::string> read_line(stream& s, const read_line_options& options) {
    std::string line;
    if (!detail::read_line_into(open_for_reading(s, "read_line"), line, options)) return std::nullopt;
    return line;
}

bool read_line(stream& s, std::string& line, const read_line_options& options) {
    return detail::read_line_into(open_for_reading(s, "read_line"), line, options);
}

std::optional<char32_t> read_char(stream& s) {
    return detail::take_char(open_for_reading(s, "read_char"), true, "read_char");
}
std::optional<char32_t> peek_char(stream& s) {
    return detail::take_char(open_for_reading(s, "peek_char"), false, "peek_char");
}

std::optional<std::string> read_n_chars(stream& s, std::size_t n) {
    detail::stream_state& st = open_for_reading(s, "read_n_chars");
    if (n == 0) return std::string();
    read_line_options o;
    o.separator = static_cast<char32_t>(-1);  // no character ends this read
    o.max_length = n;
    std::string text;
    if (st.discarding_line) detail::skip_rest_of_line(st);
    const std::size_t cap = std::exchange(st.options.max_line_length, 0);
    try {
        detail::read_line_general(st, text, o, false);
    } catch (...) {
        st.options.max_line_length = cap;
        throw;
    }
    st.options.max_line_length = cap;
    if (text.empty()) return std::nullopt;
    return text;
}

std::optional<std::string> read_all_chars(stream& s) {
    return read_n_chars(s, static_cast<std::size_t>(-1));
}

std::optional<std::uint8_t> read_byte(stream& s) {
    detail::stream_state& st = open_for_reading(s, "read_byte");
    if (detail::await_bytes(st, "read_byte") != detail::fill_result::more) return std::nullopt;
    auto b = static_cast<std::uint8_t>(st.in.head()[0]);
    st.in.consume(1);
    return b;
}

std::size_t read_some(stream& s, std::span<std::byte> buffer) {
    detail::stream_state& st = open_for_reading(s, "read_some");
    if (buffer.empty()) return 0;
    if (detail::await_bytes(st, "read_some") != detail::fill_result::more) return 0;
    const std::size_t n = std::min(buffer.size(), st.in.size());
    std::memcpy(buffer.data(), st.in.head(), n);
    st.in.consume(n);
    return n;
}

std::optional<std::vector<std::uint8_t>> read_n_bytes(stream& s, std::size_t n) {
    detail::stream_state& st = open_for_reading(s, "read_n_bytes");
    std::vector<std::uint8_t> bytes;
    while (bytes.size() < n) {
        if (detail::await_bytes(st, "read_n_bytes") != detail::fill_result::more) break;
        const std::size_t take = std::min(n - bytes.size(), st.in.size());
        bytes.insert(bytes.end(), st.in.head(), st.in.head() + take);
        st.in.consume(take);
    }
    if (bytes.empty() && n > 0) return std::nullopt;
    return bytes;
}

std::optional<std::vector<std::uint8_t>> read_all_bytes(stream& s) {
    return read_n_bytes(s, static_cast<std::size_t>(-1));
}

// ---- output ---------------------------------------------------------------------------------

void write_byte(stream& s, std::uint8_t byte) {
    char c = static_cast<char>(byte);
    detail::state_of(s).write_raw(&c, 1, "write_byte");
}

void write_bytes(stream& s, std::span<const std::byte> bytes) {
    detail::state_of(s).write_raw(reinterpret_cast<const char*>(bytes.data()), bytes.size(), "write_bytes");
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
        throw argument_error("write_char: not a Unicode character: " + std::to_string(static_cast<unsigned long>(c)));
    unsigned char utf8[4];
    auto* end = detail::encode_utf8(c, utf8);
    st.write_text(std::string_view(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(end - utf8)), "write_char");
}

void write_chars(stream& s, std::string_view text) { detail::state_of(s).write_text(text, "write_chars"); }

void newline(stream& s) { detail::state_of(s).write_line({}, "newline"); }

void detail::write_line(stream& s, std::string_view text) { detail::state_of(s).write_line(text, "showln"); }

void flush_writer(stream& s) { detail::state_of(s).flush_before_wait("flush_writer"); }

// ---- closing and settings ---------------------------------------------------------------------

void close_stream(stream& s) {
    if (!s.is_open()) return;
    detail::stream_state& st = detail::state_of(s);
    try {
        if (!st.writer_closed && !st.write_error) st.flush("close_stream", true);
    } catch (...) {
        st.close_transport();
        throw;
    }
    st.close_transport();
}

void close_writer(stream& s) {
    if (!s.is_open()) return;
    detail::stream_state& st = detail::state_of(s);
    if (st.writer_closed) return;
    st.flush("close_writer", true);
    st.io->shutdown_writer();
    st.writer_closed = true;
}

void close_reader(stream& s) {
    if (!s.is_open()) return;
    detail::stream_state& st = detail::state_of(s);
    st.io->shutdown_reader();
    st.end_of_input = true;
    st.in.release();
    if (st.codec) {
        st.codec->decoded.clear();
        st.codec->decoded_pos = 0;
    }
}

void reader_timeout(stream& s, std::optional<std::chrono::milliseconds> timeout) {
    detail::state_of(s).options.reader_timeout = timeout;
}

void writer_timeout(stream& s, std::optional<std::chrono::milliseconds> timeout) {
    detail::state_of(s).options.writer_timeout = timeout;
}

void max_line_length(stream& s, std::size_t bytes) { detail::state_of(s).options.max_line_length = bytes; }

} // namespace rill
