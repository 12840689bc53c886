// The seam between the scheduler and the kernel: one small interface, one file per backend
// (uring_backend.cpp, epoll_backend.cpp), chosen at run time.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <optional>

#include "runtime/scheduler.hpp"

namespace rill::detail {

class backend;

// A socket as the backends see it. Movable: it holds no pointer into itself.
struct io_handle {
    int fd = -1;
    // The last receive got less than it asked for (or would have blocked), so the socket was
    // drained: the next receive waits without a non-blocking attempt first.
    bool recv_drained = false;
    // A byte stream (TCP): a short receive means the socket is empty. Not so for message
    // sockets (SOCK_SEQPACKET hands out one message per receive).
    bool byte_stream = false;
    backend* registered = nullptr;  // epoll: the set this fd was added to
};

// connect: the socket's non-blocking connect() already said EINPROGRESS; complete it (wait
// until writable, then read SO_ERROR).
// readable: wait until the socket has something to receive (or an error, or end of stream),
// without holding a buffer meanwhile; 0 when it has.
// recv_provided: receive into a buffer the backend picks when the data arrives (io_uring's
// provided buffers), so a waiting receive holds no memory of the stream's. The backend sets
// op.length to the most it asked for; on success op.buffer points at the data until the
// caller hands it back with backend::recycle.
enum class io_kind : std::uint8_t { recv, send, accept, connect, readable, recv_provided };

struct io_op {
    io_kind kind;
    void* buffer = nullptr;          // recv/send data; accept: sockaddr out
    std::size_t length = 0;          // recv/send bytes
    socklen_t* address_length = nullptr;  // accept: in/out
    std::optional<time_point> deadline;
    std::uint16_t buffer_id = 0;          // recv_provided: which provided buffer holds the data
    // send: more follows at once (the stream is being closed): the kernel holds a short tail
    // back so that the FIN leaves in the same segment as the last bytes.
    bool more = false;
    // The send of perform_with_send: called with the completion's result as soon as it
    // arrives, on the task's thread while the task may still be parked (so the sent bytes'
    // buffer can be given back at once, not when the task next runs).
    void (*completed)(void* context, long result) = nullptr;
    void* context = nullptr;
};

class backend {
public:
    virtual ~backend() = default;
    virtual const char* name() const noexcept = 0;
    virtual detail::receive_mode receive_mode() const noexcept = 0;
    // Hands back the provided buffer a recv_provided returned.
    virtual void recycle(const io_op& op) noexcept { (void)op; }

    // From a task, after a non-blocking attempt said EAGAIN (or EINPROGRESS for connect):
    // completes `op`, parking the task meanwhile. Returns the system call's result, -errno,
    // -ETIMEDOUT when the deadline passed first, -ECANCELED when the task was cancelled. A
    // result the kernel produced is never dropped: an accepted descriptor or received bytes
    // that race with a timeout or cancellation are returned.
    virtual long perform(io_handle& h, io_op& op) = 0;

    // perform(op), with `send` (on the same socket) handed to the kernel just before it and
    // not waited for on its own: an answer and the wait for the next request in one park.
    // Returns op's result; `sent` gets the send's (-errno, or -ETIMEDOUT past send.deadline
    // when op completed first). Both have completed when it returns.
    virtual long perform_with_send(io_handle& h, io_op& send, long& sent, io_op& op) {
        sent = perform(h, send);
        if (send.completed) send.completed(send.context, sent);
        return perform(h, op);
    }

    // From the scheduler loop: submits what is queued and waits up to `timeout` (none: no
    // limit; zero: just poll) for completions, making their tasks ready.
    virtual void wait(std::optional<std::chrono::nanoseconds> timeout) = 0;

    // From any thread: makes a concurrent or next wait() return.
    virtual void wake() noexcept = 0;

    // Operations are queued that only the next wait() hands to the kernel (io_uring's
    // submission queue): the loop puts that off by one turn at most.
    virtual bool has_unsubmitted() const noexcept { return false; }

    // Before the descriptor is closed.
    virtual void forget(io_handle& h) noexcept = 0;
};

// One non-blocking attempt of `op`; -EAGAIN when it would block.
long try_io(const io_handle& h, io_op& op) noexcept;
// The outcome of a connect that said EINPROGRESS, once the socket is writable.
long connect_result(int fd) noexcept;

// Waiting receives that found every provided buffer taken (io_uring: -ENOBUFS) and received
// into their stream's own buffer instead; process-wide, for tests and diagnostics.
std::uint64_t provided_buffer_shortfalls() noexcept;
void count_provided_buffer_shortfall() noexcept;
// Tests: io_uring backends created from now on get `count` provided buffers (a power of two;
// 0: the default), so that a test can run out of them on purpose.
void set_provided_buffer_count_for_tests(unsigned count) noexcept;

// try_io of a receive, noting in `h` whether it drained the socket.
long receive_attempt(io_handle& h, io_op& op) noexcept;

// try_io, then the current scheduler's backend when it would block. Returns as backend::perform.
long perform_io(io_handle& h, io_op& op);
// The wait of perform_io (no attempt first), with `send` handed over as it starts: see
// backend::perform_with_send. When the task is cancelled before it waits, nothing is sent
// (sent = 0) and the result is -ECANCELED.
long perform_io_with_send(io_handle& h, io_op& send, long& sent, io_op& op);

} // namespace rill::detail
