// What both backends share: the non-blocking system calls, the bookkeeping of a receive, and
// the step every wait starts with. Private to io/.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "io/backend.hpp"

namespace rill::detail {

// connect: the socket's non-blocking connect() already said EINPROGRESS; complete it (wait
// until writable, then read SO_ERROR).
// readable: wait until the socket has something to receive (or an error, or end of stream),
// without holding a buffer meanwhile; 0 when it has.
// recv_provided: receive into a buffer the backend picks when the data arrives (io_uring's
// provided buffers), so a waiting receive holds no memory of the stream's. The backend sets
// op.length to the most it asked for; on success op.buffer points at the data until the
// backend takes it back.
enum class io_kind : std::uint8_t { recv, send, accept, connect, readable, recv_provided };

struct io_op {
    io_kind kind;
    void* buffer = nullptr;  // recv/send data; accept: sockaddr out
    std::size_t length = 0;  // recv/send bytes
    socklen_t* address_length = nullptr;  // accept: in/out
    std::optional<time_point> deadline;
    std::uint16_t buffer_id = 0;  // recv_provided: which provided buffer holds the data
    bool more = false;  // send: MSG_MORE
    // A send handed over with a receive: called with the send's result as soon as it arrives,
    // on the task's thread while the task may still be parked (so the sent bytes' buffer can
    // be given back at once, not when the task next runs).
    void (*completed)(void* context, long result) = nullptr;
    void* context = nullptr;
};

// One non-blocking attempt of `op`; -EAGAIN when it would block.
long try_io(const io_handle& h, io_op& op) noexcept;
// The outcome of a connect that said EINPROGRESS, once the socket is writable.
long connect_result(int fd) noexcept;

// After a receive's result: a receive that got less than it asked for (or nothing) drained
// the socket, so the next one need not try before waiting.
void note_receive(io_handle& h, const io_op& op, long r) noexcept;
// try_io of a receive, noting whether it drained the socket.
long receive_attempt(io_handle& h, io_op& op) noexcept;
// A receive's result: bytes appended to `in` are committed.
inline long committed(byte_buffer& in, long r) noexcept {
    if (r > 0) in.commit(static_cast<std::size_t>(r));
    return r;
}
// Points op at `in`'s free room: at least a buffer's worth at a time, more for a line longer
// than that (the buffer grows).
inline void receive_into(io_op& op, byte_buffer& in) {
    op.buffer = room_for_receive(in);
    op.length = in.tail_room();
}

// The running task, about to wait in its backend: output it put off leaves first. Null when
// it is cancelled (before, or while that output was sent).
task_control* task_to_wait();

void count_provided_buffer_shortfall() noexcept;

// What a task dump shows of a wait on `fd`: the kind of wait of an operation, and the address
// it is on: the peer's ("127.0.0.1:40522", also while a connect is in progress), the
// listening address for accept ("on 127.0.0.1:2020"); nothing when the socket has none.
wait_kind wait_kind_of(io_kind kind) noexcept;
void describe_socket_wait(int fd, wait_kind kind, std::string& out);

}  // namespace rill::detail
