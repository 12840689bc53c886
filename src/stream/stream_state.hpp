// What a stream holds: its transport, an input buffer, an output buffer and a transcoder.
// The stream layer knows nothing of TCP: the net layer builds a stream_state over a socket.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include <rill/stream.hpp>
#include <rill/transcoder.hpp>

#include "stream/transport.hpp"
#include "text/codec.hpp"

namespace rill::detail {

// Outcome of waiting for more input.
enum class fill_result { more, end_of_stream, timed_out };

struct transcoding_state {
    explicit transcoding_state(const transcoder& t) : dec(t), enc(t) {}
    decoder dec;  // in -> decoded
    // UTF-8 text: [decoded_pos, size) not yet read. What was read is dropped before more is
    // decoded (fill_text), so a peer that never lets the text run empty (every segment ends
    // inside a line) cannot make it grow (decoded_text_cap_bytes).
    std::string decoded;
    std::size_t decoded_pos = 0;
    std::size_t bytes_decoded = 0;  // stream position, for error messages
    // Raise mode: a decoding error waits at the text's end; these many bytes at the head of
    // `in` are the ill-formed ones. Whatever takes bytes from `in` keeps it in step
    // (consume_input, close_reader).
    std::size_t pending_bad_bytes = 0;
    encoder enc;  // UTF-8 -> out
};

// stream_state::sharing bits.
inline constexpr std::uint8_t sharing_close_requested = 1;  // another task closed the stream
inline constexpr std::uint8_t sharing_shutting_down = 2;  // ... and is in its shutdown() now
inline constexpr std::uint8_t sharing_transport_closed = 4;  // close_transport ran

struct stream_state : small_block_allocated {
    // The transport is put in place afterwards (io.emplace), or given here.
    stream_state(const stream_options& o, const std::optional<transcoder>& t);
    stream_state(std::unique_ptr<transport> io, const stream_options& o,
                 const std::optional<transcoder>& t);
    ~stream_state();
    stream_state(const stream_state&) = delete;
    stream_state& operator=(const stream_state&) = delete;

    transport_slot io;
    stream_options options;

    byte_buffer in;  // bytes as received
    // A transcoded stream's codec state; null for the default byte-transparent stream (kept
    // out of line: an idle connection of the default kind does not pay for it).
    std::unique_ptr<transcoding_state> codec;
    byte_buffer out;

    deferred_work pending_flush;  // flush_writer's send, run before the task next waits

    // The task that last received or sent on the stream (compared, never followed: it may have
    // ended). close_stream from another task only shuts the stream down (close_from_other_task).
    std::atomic<task_control*> last_user{nullptr};
    // close_from_other_task's handshake with close_transport (sharing_* bits).
    std::atomic<std::uint8_t> sharing{0};
    eol_style eol = eol_style::crlf;  // the reference's default for a stream without transcoder
    char skip_next = 0;  // crlf: the CR after an LF (or LF after CR) still to skip
    bool discarding_line = false;  // after line_too_long: skip to the next line end
    bool end_of_input = false;  // the peer closed (or reset), or close_reader
    bool reader_shut = false;  // close_reader: input may still arrive (and wait unread)
    bool writer_closed = false;
    bool closed = false;  // close_stream: the transport is gone
    // A client read(server) handed out: a graceful shutdown ends its input when it is idle.
    bool ends_at_shutdown = false;
    int write_error = 0;  // errno of a failed send: every later write reports it

    // Who is at the other end, for messages ("127.0.0.1:2020").
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
    // A byte read takes n bytes from `in`: a pending decoding error's bad bytes among them go
    // with them (read as bytes, they are no longer the text's to report).
    void consume_input(std::size_t n) noexcept {
        in.consume(n);
        if (codec) [[unlikely]]
            codec->pending_bad_bytes -= std::min(codec->pending_bad_bytes, n);
    }
    // Makes more text available (receiving and decoding). Throws decoding_error when the
    // reader reaches a raise-mode error, os_error for a receive error other than a reset.
    fill_result fill_text(const char* operation);
    // Receives more bytes into `in`.
    fill_result fill_bytes(const char* operation);

    // ---- output -------------------------------------------------------------------------
    void write_raw(const char* p, std::size_t n, const char* operation);
    void write_text(std::string_view utf8, const char* operation);
    // Appends utf8's encoding to `bytes` (a transcoded stream); on an encoding error under
    // raise, writes what came before it and throws encoding_error.
    void encode_whole(std::string_view utf8, std::string& bytes, const char* operation);
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
    // flush_writer: the send happens at the task's next scheduling point (before it waits on
    // anything, yields, closes the stream or ends): the answers to pipelined requests go out
    // as one send, and an answer followed by close leaves with the FIN in one segment.
    void flush_before_wait(const char* operation);
    // After a receive that took flush_writer's put-off send (pending_output): what the send
    // did, as flush would have recorded it.
    void note_flush_taken(const pending_output& flushed, task_control& running) noexcept;
    // Throws when nothing more may be written (closed, or an earlier send failed).
    void check_writable(const char* operation) {
        if (!writable()) [[unlikely]]
            refuse_write(operation);
    }
    bool writable() const noexcept {
        return !closed && !write_error && !writer_closed &&
               !(sharing.load(std::memory_order_relaxed) & sharing_close_requested);
    }
    [[noreturn]] void refuse_write(const char* operation);
    void close_transport() noexcept;

    // ---- closing from another task --------------------------------------------------------
    // Before each receive and send: the running task becomes the stream's user (a load and a
    // compare when it already is).
    static task_control* running_task() noexcept {
        scheduler* here = scheduler::current();
        return here ? here->running() : nullptr;
    }
    void note_user(task_control* running) noexcept {
        if (last_user.load(std::memory_order_relaxed) != running) [[unlikely]]
            last_user.store(running, std::memory_order_relaxed);
    }
    // Another task than the one calling has used the stream (it may be parked on it now).
    bool used_by_other_task() const noexcept {
        task_control* user = last_user.load(std::memory_order_relaxed);
        return user && user != running_task();
    }
    bool close_requested() const noexcept {
        return sharing.load(std::memory_order_acquire) & sharing_close_requested;
    }
    // close_stream from a task other than the stream's user, on any worker: shuts the
    // connection down both ways (thread-safe, and it wakes the user's receive or send in either
    // backend) and leaves the descriptor and the buffers to the user, who may be using them
    // right now: its close_stream, or the stream's destruction, releases them.
    void close_from_other_task() noexcept;
};

// The library's way in to a stream's state (stream's members are private).
struct stream_access {
    static stream_state& state(const stream& s) {
        if (!s.state_) [[unlikely]]
            throw error("stream: operation on a closed or moved-from stream");
        return *s.state_;
    }
    static stream make(std::unique_ptr<stream_state> state) noexcept {
        return stream(std::move(state));
    }
};

// The state behind a stream; throws error for a moved-from one. (Tests use it too.)
inline stream_state& state_of(const stream& s) { return stream_access::state(s); }

// A stream over any transport: a socket (net/), one end of a memory pair, later TLS.
inline stream make_stream(std::unique_ptr<transport> over, const stream_options& options = {},
                          const std::optional<transcoder>& coding = {}) {
    return stream_access::make(std::make_unique<stream_state>(std::move(over), options, coding));
}

// The state of a stream about to be read. A closed stream has no end of stream to report:
// reading it is an error, as writing it is (close_reader leaves the stream open, and its reads
// see end of stream instead).
inline stream_state& open_for_reading(stream& s, const char* operation) {
    stream_state& st = state_of(s);
    if (st.closed) [[unlikely]]
        throw error(std::string(operation) + ": the stream is closed");
    return st;
}

// `d` from now, or none.
inline std::optional<time_point>
optional_deadline(const std::optional<std::chrono::milliseconds>& d) {
    if (!d) return std::nullopt;
    return deadline_after(*d);
}

}  // namespace rill::detail
