// What a stream holds: its descriptor, an input buffer, an output buffer and a transcoder.
// The stream layer knows nothing of TCP: the net layer builds a stream_state for a socket.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include <rill/stream.hpp>
#include <rill/transcoder.hpp>

#include "io/backend.hpp"
#include "text/codec.hpp"

namespace rill::detail {

// Smallest buffer allocated for either direction; buffers start at this size when first
// needed and grow by doubling (input up to what the longest line needs, output to its cap).
inline constexpr std::size_t initial_buffer_bytes = 4096;

// Buffers of initial_buffer_bytes (one page) come from a per-thread pool: a stream gives its
// buffers back whenever they run empty, so an idle connection holds none, and a busy one gets
// a recently used (cache-warm, already committed) block back at once.
char* acquire_buffer_block();
void release_buffer_block(char* block) noexcept;

// A contiguous byte queue: [begin, end) holds data. Memory is taken when bytes arrive and
// given back as soon as the queue is empty.
class byte_buffer {
public:
    byte_buffer() = default;
    byte_buffer(const byte_buffer&) = delete;
    byte_buffer& operator=(const byte_buffer&) = delete;
    ~byte_buffer() { release(); }

    char* head() noexcept { return data_ + begin_; }
    const char* head() const noexcept { return data_ + begin_; }
    std::size_t size() const noexcept { return end_ - begin_; }
    bool empty() const noexcept { return begin_ == end_; }
    std::size_t capacity() const noexcept { return capacity_; }

    // A one-page buffer goes back to the pool as soon as it runs empty; a larger one (a long
    // line, a big write) is kept while the stream is busy, so it is not regrown on every
    // flush, and given back when the stream next waits for input (release_idle_buffers).
    void consume(std::size_t n) noexcept {
        begin_ += n;
        if (begin_ == end_) {
            if (capacity_ == initial_buffer_bytes) release();
            else begin_ = end_ = 0;
        }
    }
    // Room for at least `min_free` more bytes at the tail (compacting or growing).
    char* tail(std::size_t min_free) {
        if (capacity_ - end_ < min_free) make_room(min_free);
        return data_ + end_;
    }
    std::size_t tail_room() const noexcept { return capacity_ - end_; }
    void commit(std::size_t n) noexcept { end_ += n; }
    void append(const char* p, std::size_t n) {
        if (n == 0) return;  // an empty span's data() may be null: memcpy UB
        std::memcpy(tail(n), p, n);
        end_ += n;
    }
    void clear() noexcept { release(); }
    void release() noexcept {
        if (data_) {
            if (capacity_ == initial_buffer_bytes) release_buffer_block(data_);
            else delete[] data_;
        }
        data_ = nullptr;
        begin_ = end_ = capacity_ = 0;
    }

private:
    void make_room(std::size_t min_free);
    char* data_ = nullptr;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    std::size_t capacity_ = 0;
};

// Outcome of waiting for more input.
enum class fill_result { more, end_of_stream, timed_out };

struct transcoding_state {
    explicit transcoding_state(const transcoder& t) : dec(t), enc(t) {}
    decoder dec;                     // in -> decoded
    std::string decoded;             // UTF-8 text not yet read
    std::size_t decoded_pos = 0;
    std::size_t bytes_decoded = 0;   // stream position, for error messages
    std::size_t pending_bad_bytes = 0;  // raise mode: a decoding error waits at the text's end
    encoder enc;                     // UTF-8 -> out
    std::string encode_scratch;      // eol-translated text on its way to the encoder
};

struct stream_state : small_block_allocated {
    explicit stream_state(int fd, const stream_options& o, const std::optional<transcoder>& t);
    ~stream_state();
    stream_state(const stream_state&) = delete;
    stream_state& operator=(const stream_state&) = delete;

    io_handle io;
    stream_options options;
    eol_style eol = eol_style::crlf;  // the reference's default for a stream without transcoder

    byte_buffer in;                  // bytes as received
    // A transcoded stream's codec state; null for the default byte-transparent stream (kept
    // out of line: an idle connection of the default kind does not pay for it).
    std::unique_ptr<transcoding_state> codec;
    byte_buffer out;

    deferred_work pending_flush;     // flush_writer's send, run before the task next waits

    char skip_next = 0;              // crlf: the CR after an LF (or LF after CR) still to skip
    bool discarding_line = false;    // after line_too_long: skip to the next line end
    bool end_of_input = false;       // the peer closed (or reset), or close_reader
    bool writer_closed = false;
    int write_error = 0;             // errno of a failed send: every later write reports it

    // "the stream to 127.0.0.1:2020" for messages; set by the layer that made the stream.
    std::string (*describe)(int fd) = nullptr;
    std::string name() const;

    // ---- text view: the UTF-8 text available to character reads ------------------------
    const char* text() const noexcept {
        return codec ? codec->decoded.data() + codec->decoded_pos : in.head();
    }
    std::size_t text_size() const noexcept {
        return codec ? codec->decoded.size() - codec->decoded_pos : in.size();
    }
    void consume_text(std::size_t n) noexcept {
        if (!codec) {
            in.consume(n);
            return;
        }
        codec->decoded_pos += n;
        if (codec->decoded_pos == codec->decoded.size()) {
            codec->decoded.clear();
            codec->decoded_pos = 0;
        }
    }
    // Makes more text available (receiving and decoding). Throws decoding_error when the
    // reader reaches a raise-mode error, os_error for a receive error other than a reset.
    fill_result fill_text(const char* operation);
    // Receives more bytes into `in`.
    fill_result fill_bytes(const char* operation);

    // ---- output -------------------------------------------------------------------------
    void write_raw(const char* p, std::size_t n, const char* operation);
    void write_text(std::string_view utf8, const char* operation);
    // write_text(utf8) then the line end.
    void write_line(std::string_view utf8, const char* operation);
    // write_line when its one-append fast path does not apply.
    [[gnu::noinline]] void write_line_slowly(std::string_view utf8, const char* operation);
    // closing: the stream is closed (or its writer shut down) right after, so the last bytes
    // are sent with MSG_MORE and the FIN joins their segment.
    void flush(const char* operation, bool closing = false);
    // One send of at most n bytes; throws timeout_error past the deadline, task_cancelled,
    // or os_error (recording write_error) when the connection is broken.
    std::size_t send_some(const char* p, std::size_t n, const std::optional<time_point>& deadline,
                          const char* operation, bool more = false);
    // Before waiting for input: give back buffers that hold nothing.
    void release_idle_buffers() noexcept {
        if (in.empty()) in.release();
        if (out.empty()) out.release();
    }
    // flush_writer: the send happens at the task's next scheduling point (before it waits on
    // anything, yields, closes the stream or ends): the answers to pipelined requests go out
    // as one send, and an answer followed by close leaves with the FIN in one segment.
    void flush_before_wait(const char* operation);
    // A receive that must wait (io_uring, provided buffers) while flush_writer's send is put
    // off (by `running`, the task doing the receive): both are handed to the kernel together;
    // returns the receive's result.
    long receive_after_flush(io_op& receive, task_control& running);
    // Throws when nothing more may be written (closed, or an earlier send failed).
    void check_writable(const char* operation) {
        if (!writable()) [[unlikely]]
            refuse_write(operation);
    }
    bool writable() const noexcept { return io.fd >= 0 && !write_error && !writer_closed; }
    [[noreturn]] void refuse_write(const char* operation);
    void close_fd() noexcept;
};

} // namespace rill::detail
