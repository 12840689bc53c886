// What a stream reads from and writes to. A transport sits between a stream's buffers and the
// backend: the TCP socket (net/socket_transport.hpp), an in-memory pair
// (stream/memory_transport.hpp), and later TLS or a PROXY-protocol reader, each wrapping the
// one below it. Stream operations never ask which one they run on, nor which backend moves
// the bytes.
#pragma once

#include <cerrno>
#include <cstddef>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>

#include <rill/runtime.hpp>

#include "io/backend.hpp"

namespace rill::detail {

// What a transport's call returns when the protocol it speaks failed (TLS: a handshake or
// record the peer got wrong, or one this side refused): the connection is unusable, and
// throw_protocol_failure tells why. EPROTO, as the kernel says for a protocol error.
inline constexpr long transport_protocol_failure = -EPROTO;

// Every call comes from the task using the stream. Results follow the backends' convention:
// a count or -errno; -ETIMEDOUT once `deadline` passed; -ECANCELED when the task was
// cancelled. A transport never throws for what the peer did.
class transport : public small_block_allocated {
public:
    virtual ~transport() = default;

    // Appends at least one byte to `in`: how many, 0 at end of stream. `flushed`, when not
    // null, is output flush_writer put off that may go out with this receive (pending_output).
    virtual long receive(byte_buffer& in, const std::optional<time_point>& deadline,
                         pending_output* flushed) = 0;
    // Sends up to n bytes: how many went. `closing`: the stream closes or half-closes next.
    virtual long send(const char* p, std::size_t n, const std::optional<time_point>& deadline,
                      bool closing) = 0;
    // Sends what it can without waiting (closing after an exception): bytes sent, -EAGAIN.
    virtual long send_without_waiting(const char* p, std::size_t n) noexcept = 0;
    // After the last write: the peer reads end of stream; reading stays possible.
    virtual void shutdown_writer() noexcept = 0;
    // No more reading: what the peer still sends is dropped.
    virtual void shutdown_reader() noexcept = 0;
    // Bytes from the peer wait to be received (without waiting, without taking them):
    // close_stream lingers then, since closing a socket with unread input resets the
    // connection. False after close or shutdown_reader.
    virtual bool input_pending() const noexcept = 0;
    // close_stream and close_writer, after the last send: this side's orderly end of output
    // (TLS: close_notify), sent within `deadline`. A socket has none (the FIN comes with
    // shutdown_writer or close). A close for an exception, or a stream dropped, skips it.
    virtual long finish_output(const std::optional<time_point>&) { return 0; }
    // Releases everything; later calls fail with -EBADF.
    virtual void close() noexcept = 0;
    // A graceful shutdown (request_shutdown) and this stream's task waits for input with
    // nothing buffered: a waiting receive returns the bytes that have arrived, then end of
    // stream; sending stays possible. On the stream's own thread. Nothing for a transport
    // with no socket underneath.
    virtual void stop_input() noexcept {}
    // From any thread, while the stream's task may be waiting in receive or send: both
    // directions end (the peer reads end of stream), a waiting receive returns 0 and a waiting
    // send fails (-EPIPE). Releases nothing: the stream's task closes later.
    virtual void shut_down_from_any_thread() noexcept = 0;

    // A call returned transport_protocol_failure: throws the error saying why, its message
    // `operation` followed by the transport's account ("read_line: tls handshake with
    // 127.0.0.1:40522: certificate verify failed: self-signed certificate").
    [[noreturn]] virtual void throw_protocol_failure(const std::string& operation) const;

    // Who is at the other end, for messages: "127.0.0.1:2020".
    virtual std::string peer_name() const = 0;
    // The socket underneath, for socket info and options; -1 when there is none.
    virtual int native_handle() const noexcept = 0;
};

// Room in a stream's own block for its transport: the socket transport fits.
inline constexpr std::size_t in_place_transport_bytes = 24;

// A stream's transport, in the stream's own block when it fits: no allocation of its own,
// and at many connections one cache line less to fetch per operation (pingpong C=1000 on
// epoll spent 5% more server CPU per request with the transport in a block of its own).
class transport_slot {
public:
    transport_slot() noexcept = default;
    transport_slot(const transport_slot&) = delete;
    transport_slot& operator=(const transport_slot&) = delete;
    ~transport_slot() { reset(); }

    template <class T, class... Args>
    T& emplace(Args&&... args) {
        reset();
        T* made;
        static_assert(alignof(T) <= alignof(void*), "transport_slot's storage is pointer-aligned");
        if constexpr (sizeof(T) <= in_place_transport_bytes)
            made = ::new (static_cast<void*>(storage_)) T(std::forward<Args>(args)...);
        else
            made = new T(std::forward<Args>(args)...);
        t_ = made;
        return *made;
    }
    // A transport made on its own (one that does not fit, or made elsewhere).
    void adopt(std::unique_ptr<transport> t) noexcept {
        reset();
        t_ = t.release();
    }
    void reset() noexcept {
        if (!t_) return;
        if (static_cast<const void*>(t_) == storage_)
            t_->~transport();
        else
            delete t_;
        t_ = nullptr;
    }

    transport* operator->() const noexcept { return t_; }
    transport& operator*() const noexcept { return *t_; }

private:
    transport* t_ = nullptr;
    alignas(void*) unsigned char storage_[in_place_transport_bytes];
};

}  // namespace rill::detail
