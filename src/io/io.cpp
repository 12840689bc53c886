// The part of every blocking socket call that is the same on both backends: try the system
// call first, and only when it would block hand it to the backend.
#include <sys/socket.h>

#include <atomic>
#include <cerrno>

#include "io/backend.hpp"

namespace rill::detail {

long connect_result(int fd) noexcept {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
    return err ? -err : 0;
}

long try_io(const io_handle& h, io_op& op) noexcept {
    for (;;) {
        long r = -EINVAL;
        switch (op.kind) {
        case io_kind::recv: r = ::recv(h.fd, op.buffer, op.length, MSG_DONTWAIT); break;
        case io_kind::send:
            r = ::send(h.fd, op.buffer, op.length, MSG_DONTWAIT | MSG_NOSIGNAL | (op.more ? MSG_MORE : 0));
            break;
        case io_kind::accept:
            r = ::accept4(h.fd, static_cast<sockaddr*>(op.buffer), op.address_length,
                          SOCK_NONBLOCK | SOCK_CLOEXEC);
            break;
        case io_kind::readable:
        case io_kind::recv_provided: return -EAGAIN;
        case io_kind::connect: {
            // Still in progress unless the socket already reports an outcome.
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(h.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
            if (err) return -err;
            sockaddr_storage peer;
            socklen_t peer_len = sizeof peer;
            if (getpeername(h.fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0) return 0;
            return -EAGAIN;
        }
        }
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

namespace {
std::atomic<std::uint64_t> shortfalls{0};
} // namespace

std::uint64_t provided_buffer_shortfalls() noexcept { return shortfalls.load(std::memory_order_relaxed); }
void count_provided_buffer_shortfall() noexcept { shortfalls.fetch_add(1, std::memory_order_relaxed); }

namespace {
// A receive that got less than it asked for (or nothing) drained the socket: the next one
// need not try before waiting. Edge-triggered epoll and io_uring both report data that
// arrives after this point, so the wait cannot miss it.
void note_receive(io_handle& h, const io_op& op, long r) noexcept {
    h.recv_drained = r == -EAGAIN || (h.byte_stream && r > 0 && static_cast<std::size_t>(r) < op.length);
}

// The running task, about to wait in its backend: output it put off leaves first. Null when
// it is cancelled (before, or while that output was sent).
task_control* task_to_wait() {
    task_control& t = current_task("I/O");
    if (t.cancelled) return nullptr;
    if (t.deferred) {
        run_deferred(t);
        if (t.cancelled) return nullptr;
    }
    return &t;
}

bool is_receive(const io_op& op) noexcept {
    return op.kind == io_kind::recv || op.kind == io_kind::recv_provided;
}
} // namespace

long receive_attempt(io_handle& h, io_op& op) noexcept {
    long r = try_io(h, op);
    note_receive(h, op, r);
    return r;
}

long perform_io(io_handle& h, io_op& op) {
    // A receive that found the socket drained last time goes straight to the backend: the
    // attempt here would most likely be a wasted system call.
    // With io_uring, a send while other tasks are about to run goes into the ring: the loop's
    // next kernel entry carries it with theirs (one entry for a whole batch of answers, and
    // the peers are woken once, not once per send). The last task of a batch sends at once:
    // nothing would share the entry, and it saves a switch.
    bool skip_attempt = false;
    switch (op.kind) {
    case io_kind::recv: skip_attempt = h.recv_drained; break;
    case io_kind::send: {
        const scheduler* here = scheduler::current();
        skip_attempt = here && here->batches_sends();
        break;
    }
    case io_kind::accept: skip_attempt = false; break;
    case io_kind::connect:
    case io_kind::readable:
    case io_kind::recv_provided: skip_attempt = true; break;
    }
    if (!skip_attempt) {
        long r = op.kind == io_kind::recv ? receive_attempt(h, op) : try_io(h, op);
        if (r != -EAGAIN) return r;
    }
    task_control* t = task_to_wait();
    if (!t) return -ECANCELED;
    const long r = t->owner->io().perform(h, op);
    if (is_receive(op)) note_receive(h, op, r);
    return r;
}

long perform_io_with_send(io_handle& h, io_op& send, long& sent, io_op& op) {
    sent = 0;
    task_control* t = task_to_wait();
    if (!t) return -ECANCELED;
    const long r = t->owner->io().perform_with_send(h, send, sent, op);
    if (is_receive(op)) note_receive(h, op, r);
    return r;
}

std::unique_ptr<backend> make_epoll_backend(scheduler& owner);
std::unique_ptr<backend> make_uring_backend(scheduler& owner);

std::unique_ptr<backend> make_backend(rill::backend kind, scheduler& owner) {
    if (kind == rill::backend::epoll) return make_epoll_backend(owner);
    return make_uring_backend(owner);
}

} // namespace rill::detail
