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

// Flushes and closes both directions; closing twice is harmless. Throws what flush_writer
// throws (the stream is closed all the same).
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
