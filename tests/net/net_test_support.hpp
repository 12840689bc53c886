// Helpers shared by the tests of tests/net/: loopback availability, a port that nothing
// listens on, and a seed-shaped rill echo server on its own thread (so a test can drive it
// with plain blocking sockets). Every wait is bounded.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <future>
#include <string>
#include <thread>

#include <rill/rill.hpp>

#include "support/descriptors.hpp"
#include "support/errors.hpp"
#include "support/in_process_server.hpp"
#include "support/loopback.hpp"

namespace rill_test {

// raw_client::receive_all for use inside a rill task: the helper's 64 KiB buffer would not fit
// on a task's default 64 KiB stack. Everything until the peer closes or resets.
inline std::string receive_all_in_task(raw_client& c) {
    std::string out;
    char buf[512];
    for (int i = 0; i < 100000; ++i) {
        ssize_t n = retry_interrupted([&] { return ::recv(c.fd(), buf, sizeof buf, 0); });
        if (n == 0 || (n < 0 && errno == ECONNRESET)) return out;
        if (n < 0) throw std::runtime_error("recv: " + std::string(std::strerror(errno)));
        out.append(buf, static_cast<std::size_t>(n));
    }
    throw std::runtime_error("recv: no end of stream");
}

// True when this machine has an IPv6 loopback (::1 can be bound).
inline bool ipv6_loopback_available() {
    int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

// A loopback port that nothing listens on: bound once by the kernel's choice, then released.
inline int unused_loopback_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        throw std::runtime_error("unused_loopback_port: " + std::string(std::strerror(errno)));
    ::close(fd);
    return ntohs(a.sin_port);
}

// The seed's echo server (a task per client; one line, or every line when persistent) run by
// rill on its own thread (support/in_process_server.hpp). The destructor stops it; an
// exception that ended the server fails the test.
struct echo_server_settings {
    rill::server_options server;  // the server is on 127.0.0.1, port picked by the kernel
    rill::runtime_options runtime;
    bool persistent = false;  // false: one line per connection (the seed); true: every line
};

class echo_server_thread {
public:
    using settings = echo_server_settings;

    explicit echo_server_thread(settings s = {})
        : server_({.name = "echo server",
                   .server = std::move(s.server),
                   .runtime = std::move(s.runtime)},
                  [persistent = s.persistent](rill::tcp_client_stream& c) {
                      echo_lines(c, persistent);
                  }) {}

    int port() const { return server_.port(); }
    long clients_served() const { return server_.accepted(); }

    void stop() { server_.stop(); }

private:
    in_process_server server_;
};

}  // namespace rill_test
