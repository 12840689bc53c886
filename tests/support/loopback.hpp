// Shared helpers for rill's tests: a plain-POSIX peer (blocking sockets, usable from a
// std::thread while rill runs in the test's thread), descriptor counting, and paths to the
// built tools. Every wait here is bounded, so a broken server fails a test instead of hanging.
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
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
    const int waited = retry_interrupted(
        [&] { return ::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(default_io_limit).count())); });
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
        int r;
        if (ipv6) {
            sockaddr_in6 a{};
            a.sin6_family = AF_INET6;
            a.sin6_port = htons(static_cast<uint16_t>(port));
            a.sin6_addr = in6addr_loopback;
            r = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        } else {
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(static_cast<uint16_t>(port));
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            r = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        }
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
            ssize_t n = retry_interrupted(
                [&] { return ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL); });
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
                                         std::to_string(out.size()) + " bytes: " + out.substr(0, 200));
            }
            out.append(buf, static_cast<std::size_t>(n));
        }
    }
    // Exactly n bytes (throws on end of stream or time limit).
    std::string receive_exactly(std::size_t n) {
        std::string out;
        std::vector<char> storage(65536);
        while (out.size() < n) {
            ssize_t got = retry_interrupted(
                [&] { return ::recv(fd_, storage.data(), std::min(storage.size(), n - out.size()), 0); });
            if (got <= 0)
                throw std::runtime_error("recv: " + std::string(got == 0 ? "end of stream" : std::strerror(errno)) +
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
            if (n <= 0) throw std::runtime_error("recv line: " + std::string(n == 0 ? "end of stream" : std::strerror(errno)) + " after \"" + out + "\"");
            out.push_back(c);
            if (c == '\n') return out;
        }
    }
    // True if nothing arrives within `wait`.
    bool quiet_for(std::chrono::milliseconds wait) {
        pollfd p{fd_, POLLIN, 0};
        return retry_interrupted([&] { return ::poll(&p, 1, static_cast<int>(wait.count())); }) == 0;
    }

private:
    int fd_ = -1;
};

// Descriptors open in this process right now.
inline int count_open_fds() {
    int n = 0;
    if (DIR* d = opendir("/proc/self/fd")) {
        while (dirent* e = readdir(d))
            if (e->d_name[0] != '.') ++n;
        closedir(d);
        --n;  // the DIR's own descriptor
    }
    return n;
}

// Built tools and examples (the test binary knows the build directory).
inline std::string built(const std::string& relative) { return std::string(RILL_BINARY_DIR) + "/" + relative; }
inline std::string source(const std::string& relative) { return std::string(RILL_SOURCE_DIR) + "/" + relative; }

} // namespace rill_test
