// Buffered stream operations, Slogan style: the stream first, then Slogan's arguments.
// Input returns an empty optional at end of stream (Slogan's eof object); output is buffered
// until flush_writer. A stream is used by one task at a time.
#pragma once

#include <charconv>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <rill/error.hpp>
#include <rill/transcoder.hpp>

namespace rill {

// Longest line read_line buffers before throwing line_too_long (as Go's bufio.Scanner,
// Python's asyncio and Redis cap lines); 0 means no cap.
inline constexpr std::size_t default_max_line_length_bytes = 64 * 1024;
// Output buffered before a write sends on its own; a peer that does not read makes the writer
// block at this point rather than grow memory.
inline constexpr std::size_t default_output_buffer_bytes = 64 * 1024;

// ---- Memory per connection ------------------------------------------------------------------
// What a stream holds is bounded whatever its transcoder and however the peer splits its
// bytes, as long as max_line_length is not 0 (no cap: read_line then buffers a line of any
// length) and the program's own reads are bounded: read_all_chars, read_all_bytes and
// read_n_chars / read_n_bytes with a large n return everything they are asked for, so they
// are unbounded by nature (their result, not the stream's buffers, grows: the buffers stay
// under the caps below, since these reads consume as they go). read_line with a max_length or
// a separator of its own counts toward max_line_length as plain read_line does, and
// read_char / peek_char hold at most one receive. "One receive" is what one receive from the
// transport appends: on a socket at most socket_receive_cap_bytes, on a memory transport one
// segment as sent. Measured by tests/hostile/test_split_segments.cpp.

// The most one receive from a socket appends. Without a transcoder: the input buffer's free
// room, which read_line's growth keeps under 4 × max_line_length (it starts at 4 KiB, at most
// doubled for a partial line). A transcoded stream decodes each receive at once, so its input
// buffer holds a partial character and one receive of at most 8 KiB.
inline constexpr std::size_t transcoded_socket_receive_cap_bytes = 8 * 1024;
constexpr std::size_t socket_receive_cap_bytes(std::size_t max_line_length,
                                               bool transcoded) noexcept {
    if (transcoded || 4 * max_line_length < transcoded_socket_receive_cap_bytes)
        return transcoded_socket_receive_cap_bytes;
    return 4 * max_line_length;
}
// Input bytes as received: read_line waits for more only while at most max_line_length bytes
// of the line are unread (past that it throws line_too_long and drops them, and discarding the
// rest of the line holds one receive at a time), so the buffer holds max_line_length plus one
// receive; it grows by doubling, hence the factor. A transcoded stream decodes each receive
// at once and holds one receive and a partial character.
constexpr std::size_t input_buffer_cap_bytes(std::size_t max_line_length,
                                             std::size_t receive_bytes) noexcept {
    return 4 * (max_line_length + receive_bytes);
}
// A transcoded stream's decoded text (UTF-8): text already read is dropped before more is
// decoded, so it holds at most max_line_length unread bytes plus one receive decoded (3 bytes
// of UTF-8 per input byte at most: U+FFFD for a bad byte); doubling growth, hence the 2.
constexpr std::size_t decoded_text_cap_bytes(std::size_t max_line_length,
                                             std::size_t receive_bytes) noexcept {
    return 2 * (max_line_length + 3 * receive_bytes);
}
// Output: a write that would take the buffer past default_output_buffer_bytes sends first (and
// a large write goes straight from the caller's memory), so the buffer never holds more; its
// capacity at most doubles that. A peer that does not read blocks the writer instead (bound it
// with writer_timeout). Encoding (a transcoded stream) goes through a temporary of about 4
// bytes per byte of the text written, released when the write returns.
inline constexpr std::size_t output_buffer_cap_bytes = 2 * default_output_buffer_bytes;

// close_stream with input the stream has not read waits at most this long for the peer to
// finish sending, discarding what comes (nginx's lingering_time), so that the answer written
// before it is not lost to the reset a close with unread input makes.
inline constexpr std::chrono::milliseconds default_lingering_close_time{5000};
// ... and discards at most this many bytes before closing anyway.
inline constexpr std::size_t lingering_close_discard_cap_bytes = 1024 * 1024;

namespace detail {
struct stream_state;
struct stream_access;
}  // namespace detail

// Settings every stream has (server_options::stream and client_options::stream).
struct stream_options {
    std::size_t max_line_length = default_max_line_length_bytes;  // read_line's cap; 0 = none
    std::optional<std::chrono::milliseconds>
        reader_timeout;  // a read waiting longer sees end of stream
    std::optional<std::chrono::milliseconds>
        writer_timeout;  // a write waiting longer throws timeout_error
    // close_stream with unread input: how long at most it lingers, draining the peer's bytes
    // so that the answer reaches it (see close_stream); 0: close at once. Default 5 s.
    std::chrono::milliseconds lingering_close_time = default_lingering_close_time;
};

class stream {
public:
    stream(stream&&) noexcept;
    stream& operator=(stream&&) noexcept;
    stream(const stream&) = delete;
    stream& operator=(const stream&) = delete;
    // Closes without flushing what is still buffered (use close_stream to flush).
    virtual ~stream();

    // False once close_stream ran, or for a moved-from stream.
    bool is_open() const noexcept;
    // The stream's transcoder, if it has one; a stream without one is byte-transparent.
    std::optional<rill::transcoder> transcoder() const;

protected:
    stream() noexcept;
    explicit stream(std::unique_ptr<detail::stream_state> state) noexcept;

private:
    friend struct detail::stream_access;
    std::unique_ptr<detail::stream_state> state_;
};

struct read_line_options {
    char32_t separator = U'\n';  // the character that ends a line (after eol translation)
    bool include_separator = false;  // keep the separator at the end of the line
    std::optional<std::size_t> max_length;  // at most this many characters; the rest stays
};

// ---- Input. Each returns an empty optional at end of stream. --------------------------------

// The next line, without its line end. A last line without a line end is still a line.
// Throws line_too_long past the stream's max_line_length (the rest of that line is then
// skipped: the next read starts after its line end), decoding_error (raise mode), os_error.
std::optional<std::string> read_line(stream& s, const read_line_options& options = {});
// The same into `line` (its capacity is reused): false at end of stream.
bool read_line(stream& s, std::string& line, const read_line_options& options = {});
std::optional<char32_t> read_char(stream& s);
std::optional<char32_t> peek_char(stream& s);
// Up to n characters (fewer at end of stream); empty at end of stream.
std::optional<std::string> read_n_chars(stream& s, std::size_t n);
// Everything up to end of stream; empty if the stream was already at its end.
std::optional<std::string> read_all_chars(stream& s);
std::optional<std::uint8_t> read_byte(stream& s);
std::optional<std::vector<std::uint8_t>> read_n_bytes(stream& s, std::size_t n);
std::optional<std::vector<std::uint8_t>> read_all_bytes(stream& s);
// Whatever is available, at least one byte, at most buffer.size(); 0 at end of stream.
std::size_t read_some(stream& s, std::span<std::byte> buffer);

// ---- Output (buffered; flush_writer sends). Throws os_error when the peer is gone,
// timeout_error past the writer timeout, encoding_error (raise mode). ------------------------

void write_byte(stream& s, std::uint8_t byte);
void write_bytes(stream& s, std::span<const std::byte> bytes);
void write_bytes(stream& s, std::span<const std::uint8_t> bytes);
void write_char(stream& s, char32_t c);
// UTF-8 text; '\n' is written as the stream's line end.
void write_chars(stream& s, std::string_view text);
void newline(stream& s);
void flush_writer(stream& s);

// Flushes and closes both directions; closing twice is harmless. Throws what the flush
// throws (os_error, timeout_error, task_cancelled), after closing.
//
// Closing a TCP connection whose input was not all read makes the kernel send a reset, which
// can destroy the answer written just before (the peer's kernel drops what it had not yet
// handed over). So when input may be unread (bytes the stream has not read, or bytes waiting
// in the transport) close_stream lingers, as nginx's lingering_close does: it sends the
// output, half-closes (the peer reads end of stream after the answer), then reads and
// discards until the peer closes, for at most lingering_close_time and
// lingering_close_discard_cap_bytes, and closes. Cancellation during that wait still closes
// (then throws task_cancelled). With nothing unread, the last output and the close leave
// together at once.
//
// Another task may close a stream while the task using it waits in a read or a write on it
// (on the same worker or another), as Go's net.Conn.Close unblocks a pending Read: the
// connection is shut down at once (the peer reads end of stream), the waiting read returns
// what was buffered and then end of stream, a waiting or later write throws rill::error
// "the stream was closed by another task", and unsent output is dropped. The descriptor and
// the buffers stay with the stream's user until its own close_stream (harmless then, and
// throwing nothing) or the stream's destruction, so the user never touches freed memory nor
// a reused descriptor. "The user" is the task that last read or wrote the stream: a stream
// handed to a task that has not used it yet is best closed by that task. Only close_stream
// (and destruction by the owner) is safe from another task; other operations stay with one
// task at a time.
void close_stream(stream& s);
// Stops reading (shutdown SHUT_RD); later reads see end of stream.
void close_reader(stream& s);
// Flushes, then half-closes (shutdown SHUT_WR): the peer reads end of stream.
void close_writer(stream& s);

void reader_timeout(stream& s, std::optional<std::chrono::milliseconds> timeout);
void writer_timeout(stream& s, std::optional<std::chrono::milliseconds> timeout);
// read_line's cap for this stream; 0 = none.
void max_line_length(stream& s, std::size_t bytes);

// ---- Display form: show / showln -----------------------------------------------------------

namespace detail {
template <class T>
concept text_like = std::convertible_to<const T&, std::string_view>;
template <class T>
concept has_to_string = requires(const T& v) {
    { v.to_string() } -> std::convertible_to<std::string>;
};
template <class T>
concept streamable = requires(std::ostream& o, const T& v) {
    o << v;
};
// Closes at once, dropping unsent output; never blocks or throws.
void abort_stream(stream& s) noexcept;
// write_chars(s, text) then newline(s), as one append when the line fits the output buffer.
void write_line(stream& s, std::string_view text);
void show_via_ostream(stream& s, const void* value, void (*print)(std::ostream&, const void*));

template <class T>
void show_one(stream& s, const T& value) {
    if constexpr (text_like<T>) {
        write_chars(s, std::string_view(value));
    } else if constexpr (std::is_same_v<T, bool>) {
        write_chars(s, value ? "true" : "false");
    } else if constexpr (std::is_same_v<T, char>) {
        write_chars(s, std::string_view(&value, 1));
    } else if constexpr (std::is_same_v<T, char32_t>) {
        write_char(s, value);
    } else if constexpr (std::is_arithmetic_v<T>) {
        char digits[64];
        auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
        write_chars(s, std::string_view(digits, static_cast<std::size_t>(end - digits)));
    } else if constexpr (has_to_string<T>) {
        write_chars(s, value.to_string());
    } else {
        static_assert(streamable<T>, "show: no display form for this type (give it operator<<)");
        show_via_ostream(s, &value,
                         [](std::ostream& o, const void* v) { o << *static_cast<const T*>(v); });
    }
}
}  // namespace detail

// The display form of each object, one after the other, no separators.
template <class... Objects>
void show(stream& s, const Objects&... objects) {
    (detail::show_one(s, objects), ...);
}
// show, then a line end.
template <class... Objects>
void showln(stream& s, const Objects&... objects) {
    if constexpr (sizeof...(Objects) == 1 && (detail::text_like<Objects> && ...)) {
        (detail::write_line(s, std::string_view(objects)), ...);  // an echo's answer: one append
    } else {
        (detail::show_one(s, objects), ...);
        newline(s);
    }
}

// Calls fn(s), closes s when fn returns or throws (rethrowing), and returns fn's value.
template <class Stream, class F>
requires std::derived_from<Stream, stream>
decltype(auto) call_with_stream(Stream& s, F&& fn) {
    struct closer {
        Stream& s;
        int exceptions = std::uncaught_exceptions();
        ~closer() noexcept(false) {
            if (std::uncaught_exceptions() > exceptions) {
                detail::abort_stream(s);  // unwinding: close without flushing, never throw
            } else {
                close_stream(s);
            }
        }
    } guard{s};
    return std::forward<F>(fn)(s);
}

}  // namespace rill
