// The non-blocking system calls both backends start from, and the few steps they share.
#include "io/socket_calls.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

namespace rill::detail {

wait_kind wait_kind_of(io_kind kind) noexcept {
    switch (kind) {
    case io_kind::recv:
    case io_kind::readable:
    case io_kind::recv_provided: return wait_kind::read;
    case io_kind::send: return wait_kind::write;
    case io_kind::accept: return wait_kind::accept;
    case io_kind::connect: return wait_kind::connect;
    }
    return wait_kind::other;
}

void describe_socket_wait(int fd, wait_kind kind, std::string& out) {
    sockaddr_storage ss{};
    socklen_t length = sizeof ss;
    auto* sa = reinterpret_cast<sockaddr*>(&ss);
    bool named;
    if (kind == wait_kind::accept) {
        named = getsockname(fd, sa, &length) == 0;
    } else if (kind == wait_kind::connect) {
        // getpeername says ENOTCONN until the handshake completes; SO_PEERNAME answers, but
        // only when asked for no more than the family's address size (else EINVAL).
        named = getsockname(fd, sa, &length) == 0 &&
                (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
        if (named) {
            length = ss.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
            named = getsockopt(fd, SOL_SOCKET, SO_PEERNAME, sa, &length) == 0;
        }
    } else {
        named = getpeername(fd, sa, &length) == 0;
    }
    if (!named) return;
    char host[INET6_ADDRSTRLEN] = "";
    int port = 0;
    if (ss.ss_family == AF_INET) {
        const auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
        if (!inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host)) return;
        port = ntohs(in4->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        if (!inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host)) return;
        port = ntohs(in6->sin6_port);
    } else {
        return;  // not an IP socket (a socketpair in tests): no address to show
    }
    // As rill::socket_info::to_string writes it.
    if (ss.ss_family == AF_INET6) out += '[';
    out += host;
    if (ss.ss_family == AF_INET6) out += ']';
    out += ':';
    out += std::to_string(port);
}

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
