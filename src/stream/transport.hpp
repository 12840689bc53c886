// What a stream reads from and writes to. A transport sits between a stream's buffers and the
// backend: the TCP socket (net/socket_transport.hpp), an in-memory pair
// (stream/memory_transport.hpp), and later TLS or a PROXY-protocol reader, each wrapping the
// one below it. Stream operations never ask which one they run on, nor which backend moves
// the bytes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include <rill/runtime.hpp>

#include "io/backend.hpp"

namespace rill::detail {

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
    // Releases everything; later calls fail with -EBADF.
    virtual void close() noexcept = 0;

    // Who is at the other end, for messages: "127.0.0.1:2020".
    virtual std::string peer_name() const = 0;
    // The socket underneath, for socket info and options; -1 when there is none.
    virtual int native_handle() const noexcept = 0;
};

}  // namespace rill::detail
