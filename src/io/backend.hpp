// The I/O layer: how bytes move between a socket and a stream's buffers. Each worker has one
// backend, which is also its scheduler's poller; one file per backend (uring_backend.cpp,
// epoll_backend.cpp), chosen at run time (choose_backend.cpp). The backend alone decides how
// an operation runs: tried first or handed straight to the kernel, readiness or completion,
// provided buffers, sends batched or sent with the next receive.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "io/byte_buffer.hpp"
#include "runtime/poller.hpp"
#include "runtime/scheduler.hpp"

namespace rill::detail {

class backend;

// A socket as the backends see it. Movable: it holds no pointer into itself. Only the I/O
// layer reads or changes what it holds besides the descriptor.
struct io_handle {
    int fd = -1;
    // The last receive got less than it asked for (or would have blocked), so the socket was
    // drained: the next receive waits without a non-blocking attempt first.
    bool recv_drained = false;
    // A byte stream (TCP): a short receive means the socket is empty. Not so for message
    // sockets (SOCK_SEQPACKET hands out one message per receive).
    bool byte_stream = false;
    backend* registered = nullptr;  // epoll: the set this descriptor was added to
};

// Output that flush_writer accepted and put off until its task next waits (`flush`, a
// deferred_work of that task). A receive about to wait may take it: the backend then sends it
// together with the receive (io_uring: one park and one kernel entry for both), takes the
// bytes sent out of `bytes` as the send completes, and reports the send's result. A backend
// that leaves it (taken stays false) lets it go out as every deferred item does, just before
// the task waits.
struct pending_output {
    byte_buffer& bytes;
    std::optional<time_point> deadline;  // the writer timeout
    deferred_work& flush;  // registered with the running task
    bool taken = false;  // the backend took it and unregistered `flush`
    long sent = 0;  // when taken: the send's result, as send() returns it
};

// Every operation is called from a task (the stream's) and returns a count or -errno;
// -ETIMEDOUT when `deadline` passed first; -ECANCELED when the task was cancelled. A result
// the kernel produced is never dropped: an accepted descriptor or received bytes that race
// with a timeout or cancellation are returned.
class backend : public poller {
public:
    virtual const char* name() const noexcept = 0;

    // Appends at least one byte to `in`: how many, 0 at end of stream. While it waits with
    // nothing buffered it holds no buffer of the stream's (`in` is released).
    virtual long receive(io_handle& h, byte_buffer& in, const std::optional<time_point>& deadline,
                         pending_output* flushed) = 0;
    // Sends up to n bytes: how many went. `closing`: the descriptor is closed (or its writer
    // shut down) right after, so the kernel may hold a short tail back and let the FIN leave
    // in the same segment (MSG_MORE).
    virtual long send(io_handle& h, const char* p, std::size_t n,
                      const std::optional<time_point>& deadline, bool closing) = 0;
    // The next connection of a listening socket: its descriptor (non-blocking, close-on-exec).
    virtual long accept(io_handle& h, sockaddr* peer, socklen_t* peer_length) = 0;
    // Completes a connect() that said EINPROGRESS: 0 or -errno.
    virtual long connect(io_handle& h) = 0;
    // Before the descriptor is closed, or moves to another worker's backend.
    virtual void forget(io_handle& h) noexcept = 0;
    // Waiting receives take a buffer only when their data arrives (io_uring's provided
    // buffers, Linux 5.19+); for tests and diagnostics.
    virtual bool receives_into_provided_buffers() const noexcept { return false; }
};

// The backend of the running task's worker (every scheduler's poller is one). Throws
// rill::error naming `operation` outside a task.
inline backend& task_backend(const char* operation) {
    return static_cast<backend&>(current_task(operation).owner->poller());
}

// `automatic`'s probe: io_uring when this kernel (and seccomp profile) lets the process set
// up a ring, else epoll (a refusal that will not change is remembered for the process).
rill::backend probe_io_uring();
// The errno of the last probe that found io_uring refused (0: none did).
int io_uring_probe_error() noexcept;

// Closes the descriptor (once; later calls do nothing).
void close_socket(io_handle& h) noexcept;
// A send that never waits (closing after an exception): bytes sent, -EAGAIN when the socket's
// buffer is full, -errno.
long send_without_waiting(const io_handle& h, const char* p, std::size_t n) noexcept;

// Waiting receives that found every provided buffer taken (io_uring: -ENOBUFS) and received
// into their stream's own buffer instead; process-wide, for tests and diagnostics.
std::uint64_t provided_buffer_shortfalls() noexcept;
// Tests: io_uring backends created from now on get `count` provided buffers (a power of two;
// 0: the default), so that a test can run out of them on purpose.
void set_provided_buffer_count_for_tests(unsigned count) noexcept;
// Tests: io_uring rings created from now on get these queue sizes (0: the default), so that
// a test can overflow the completion queue on purpose.
void set_ring_sizes_for_tests(unsigned submission_entries, unsigned completion_entries) noexcept;
// Tests: while `error` is not 0, the io_uring backend's submits that make room in a full
// submission queue fail with -error, as a kernel short of memory refuses them.
void set_submit_failure_for_tests(int error) noexcept;
// Tests: io_uring ring setups fail with `error` once `setups_first` more have succeeded
// (error 0: never), as RLIMIT_MEMLOCK or ENOMEM fail them after choose_backend's probe passed.
void set_ring_setup_failure_for_tests(int error, int setups_first) noexcept;
// Loop turns that found completions kept aside by the kernel (io_uring's completion queue
// overflowed) and flushed them; and completions the kernel lost. Process-wide, for tests.
std::uint64_t completion_queue_overflows() noexcept;
std::uint64_t dropped_completions() noexcept;

}  // namespace rill::detail
