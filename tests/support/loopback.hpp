// A plain-POSIX loopback peer for rill's tests: blocking sockets, usable from a std::thread
// while rill runs in the test's thread. Every wait here is bounded, so a broken server fails
// a test instead of hanging.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace rill_test {

inline constexpr auto default_io_limit = std::chrono::seconds(10);

// A thread that ran an io_uring runtime gets a task-work notification when its ring is torn
// down after run() returns (the kernel's "fake signal"); a blocking call with a timeout
// (SO_RCVTIMEO, SO_SNDTIMEO) that it interrupts fails with EINTR. The peer's calls retry
// (a few times: the notification comes once per ring).
template <class Call>
auto retry_interrupted(Call call) {
    auto r = call();
    for (int retries = 0; r < 0 && errno == EINTR && retries < 100; ++retries) r = call();
    return r;
}

// connect() interrupted by such a notification goes on in the background: wait for it.
inline int finish_interrupted_connect(int fd) {
    pollfd p{fd, POLLOUT, 0};
    const int waited = retry_interrupted([&] {
        return ::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(default_io_limit).count()));
    });
    if (waited <= 0) {
        errno = waited == 0 ? ETIMEDOUT : errno;
        return -1;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -1;
    errno = err;
    return err ? -1 : 0;
}

// 127.0.0.1:port, or [::1]:port when ipv6, for bind or connect.
struct loopback_sockaddr {
    sockaddr_storage storage{};
    socklen_t length = 0;

    loopback_sockaddr(int port, bool ipv6) {
        if (ipv6) {
            auto* a = reinterpret_cast<sockaddr_in6*>(&storage);
            a->sin6_family = AF_INET6;
            a->sin6_port = htons(static_cast<uint16_t>(port));
            a->sin6_addr = in6addr_loopback;
            length = sizeof *a;
        } else {
            auto* a = reinterpret_cast<sockaddr_in*>(&storage);
            a->sin_family = AF_INET;
            a->sin_port = htons(static_cast<uint16_t>(port));
            a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            length = sizeof *a;
        }
    }
    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// A blocking TCP connection to 127.0.0.1:port (or ::1 when ipv6), with receive and send
// timeouts so no test waits forever.
class raw_client {
public:
    explicit raw_client(int port, bool ipv6 = false) {
        fd_ = ::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
        timeval tv{static_cast<time_t>(default_io_limit.count()), 0};
        setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        const loopback_sockaddr to(port, ipv6);
        int r = ::connect(fd_, to.get(), to.length);
        if (r != 0 && errno == EINTR) r = finish_interrupted_connect(fd_);
        if (r != 0) {
            int err = errno;
            ::close(fd_);
            throw std::runtime_error("connect: " + std::string(std::strerror(err)));
        }
    }
    raw_client(const raw_client&) = delete;
    raw_client& operator=(const raw_client&) = delete;
    ~raw_client() { close(); }

    int fd() const { return fd_; }
    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    void send(const std::string& bytes) {
        std::size_t done = 0;
        while (done < bytes.size()) {
            ssize_t n = retry_interrupted([&] {
                return ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
            });
            if (n <= 0) throw std::runtime_error("send: " + std::string(std::strerror(errno)));
            done += static_cast<std::size_t>(n);
        }
    }
    void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
    // Close with RST instead of FIN.
    void reset() {
        linger l{1, 0};
        setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close();
    }
    // Everything until the peer closes (or the time limit: then throws).
    // Buffers live on the heap: these helpers may run inside a task's small stack.
    std::string receive_all() {
        std::string out;
        std::vector<char> storage(65536);
        char* buf = storage.data();
        const std::size_t buf_size = storage.size();
        for (;;) {
            ssize_t n = retry_interrupted([&] { return ::recv(fd_, buf, buf_size, 0); });
            if (n == 0) return out;
            if (n < 0) {
                if (errno == ECONNRESET) return out;
                throw std::runtime_error("recv: " + std::string(std::strerror(errno)) + " after " +
                                         std::to_string(out.size()) +
                                         " bytes: " + out.substr(0, 200));
            }
            out.append(buf, static_cast<std::size_t>(n));
        }
    }
    // Exactly n bytes (throws on end of stream or time limit).
    std::string receive_exactly(std::size_t n) {
        std::string out;
        std::vector<char> storage(65536);
        while (out.size() < n) {
            ssize_t got = retry_interrupted([&] {
                return ::recv(fd_, storage.data(), std::min(storage.size(), n - out.size()), 0);
            });
            if (got <= 0)
                throw std::runtime_error(
                    "recv: " + std::string(got == 0 ? "end of stream" : std::strerror(errno)) +
                    " after " + std::to_string(out.size()) + " of " + std::to_string(n) + " bytes");
            out.append(storage.data(), static_cast<std::size_t>(got));
        }
        return out;
    }
    // Up to and including the first "\n".
    std::string receive_line() {
        std::string out;
        char c;
        for (;;) {
            ssize_t n = retry_interrupted([&] { return ::recv(fd_, &c, 1, 0); });
            if (n <= 0)
                throw std::runtime_error(
                    "recv line: " + std::string(n == 0 ? "end of stream" : std::strerror(errno)) +
                    " after \"" + out + "\"");
            out.push_back(c);
            if (c == '\n') return out;
        }
    }
    // True if nothing arrives within `wait`.
    bool quiet_for(std::chrono::milliseconds wait) {
        pollfd p{fd_, POLLIN, 0};
        return retry_interrupted([&] { return ::poll(&p, 1, static_cast<int>(wait.count())); }) ==
               0;
    }

private:
    int fd_ = -1;
};

}  // namespace rill_test
