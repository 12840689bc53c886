// The non-blocking system calls both backends start from, and the few steps they share.
#include "io/socket_calls.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

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
            r = ::send(h.fd, op.buffer, op.length,
                       MSG_DONTWAIT | MSG_NOSIGNAL | (op.more ? MSG_MORE : 0));
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
}  // namespace

std::uint64_t provided_buffer_shortfalls() noexcept {
    return shortfalls.load(std::memory_order_relaxed);
}
void count_provided_buffer_shortfall() noexcept {
    shortfalls.fetch_add(1, std::memory_order_relaxed);
}

void note_receive(io_handle& h, const io_op& op, long r) noexcept {
    // Edge-triggered epoll and io_uring both report data that arrives after this point, so
    // the wait that follows a drained socket cannot miss it.
    h.recv_drained =
        r == -EAGAIN || (h.byte_stream && r > 0 && static_cast<std::size_t>(r) < op.length);
}

long receive_attempt(io_handle& h, io_op& op) noexcept {
    long r = try_io(h, op);
    note_receive(h, op, r);
    return r;
}

task_control* task_to_wait() {
    task_control& t = current_task("I/O");
    if (t.cancelled) return nullptr;
    if (t.deferred) {
        run_deferred(t);
        if (t.cancelled) return nullptr;
    }
    return &t;
}

void close_socket(io_handle& h) noexcept {
    if (h.fd < 0) return;
    // close() also takes the descriptor out of any epoll set.
    ::close(h.fd);
    h.fd = -1;
    h.registered = nullptr;
    h.recv_drained = false;
}

long send_without_waiting(const io_handle& h, const char* p, std::size_t n) noexcept {
    io_op op{io_kind::send, const_cast<char*>(p), n, nullptr, std::nullopt};
    return try_io(h, op);
}

}  // namespace rill::detail
