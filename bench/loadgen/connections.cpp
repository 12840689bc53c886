// The load generator's mechanics: connects (a bounded number at once, from spread source
// addresses), sends, edge-triggered receives, the check of every echoed byte against the line
// pattern, and failures.

#include "loadgen/load_generator.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "loadgen/clock.hpp"
#include "loadgen/loopback.hpp"
#include "loadgen/report.hpp"

namespace loadgen {

namespace {

// Connects in progress at once: below the servers' listen backlog (128, the seed's default), so
// a burst of SYNs never overflows it and stalls on the kernel's 1 s SYN retransmit.
constexpr int max_connects_in_flight = 64;
// Descriptors the client keeps for itself beyond its sockets (stdio, epoll, /proc reads).
constexpr int reserved_descriptors = 16;

}  // namespace

load_generator::load_generator(const bench_options& o)
    : o_(o), target_(resolve_loopback(o.address)), pattern_(std::size_t(o.line_size_bytes)) {
    raise_descriptor_limit();
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    if (target_.ss_family != AF_INET) source_addresses_ = 0;
    table_.resize(std::size_t(o.connections));
    for (u32 i = 0; i < table_.size(); ++i) {
        table_[i].id = i;
        table_[i].sent_ns.resize(std::size_t(lines_in_flight(table_[i])));
    }
    progress_ = isatty(STDOUT_FILENO) == 1;
    if (o.tls) create_tls_client();
}

load_generator::~load_generator() {
    for (auto& c : table_) close_connection(c);
    if (o_.tls) destroy_tls_client();
    close(epoll_fd_);
}

void load_generator::raise_descriptor_limit() {
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    if (rlim_t(o_.connections) + reserved_descriptors > limit.rlim_cur)
        throw usage_error("--connections " + std::to_string(o_.connections) + " needs " +
                          std::to_string(o_.connections + reserved_descriptors) +
                          " descriptors; the limit is " + std::to_string(limit.rlim_cur));
}

void load_generator::queue_connect(connection& c) {
    c.state = connection_state::waiting;
    connect_queue_.push_back(&c);
}

void load_generator::start_queued_connects() {
    // At most one pass over the queue: a connect that fails at once re-queues itself (churn).
    for (std::size_t n = connect_queue_.size();
         n > 0 && !stopping_ && connecting_ < max_connects_in_flight; --n) {
        connection& c = *connect_queue_.front();
        connect_queue_.pop_front();
        open_connection(c);
    }
}

void load_generator::open_connection(connection& c) {
    c.sent = c.echoed = 0;
    c.rx_pos = 0;
    c.rx_tag = line_pattern::tag(c.id, 0);
    c.out.clear();
    c.out_sent = 0;
    c.opened_ns = now_ns();
    c.fd = socket(target_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) return fail(c, false, std::string("socket: ") + std::strerror(errno));
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // lines must leave at once
    if (source_addresses_ > 0) {
        // IP_BIND_ADDRESS_NO_PORT defers the port choice to connect(), so ports are unique per
        // 4-tuple, not per source address.
        setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        sockaddr_in source{};
        source.sin_family = AF_INET;
        source.sin_addr.s_addr = htonl((127u << 24) | (2 + c.id % u32(source_addresses_)));
        if (bind(c.fd, reinterpret_cast<sockaddr*>(&source), sizeof source) != 0)
            return fail(c, false, std::string("bind: ") + std::strerror(errno));
    }
    // Register after connect(): an unconnected socket polls as EPOLLOUT|EPOLLHUP, which would
    // look like a finished connect.
    int rc = connect(c.fd, reinterpret_cast<sockaddr*>(&target_),
                     target_.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6));
    if (rc != 0 && errno != EINPROGRESS)
        return fail(c, false, std::string("connect: ") + std::strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;  // edge-triggered: never re-armed
    ev.data.ptr = &c;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev) != 0)
        return fail(c, false, std::string("epoll_ctl: ") + std::strerror(errno));
    c.state = connection_state::connecting;
    ++connecting_;
    if (rc == 0) on_connected(c);
}

void load_generator::on_connected(connection& c) {
    if (o_.tls) return start_tls(c);  // it counts as connecting until its handshake is done
    --connecting_;
    c.state = connection_state::open;
    ++established_;
    queue_lines(c, lines_in_flight(c), now_ns());
    flush(c);
}

void load_generator::queue_lines(connection& c, int count, u64 sent_ns) {
    for (int i = 0; i < count; ++i) {
        c.sent_ns[c.sent % c.sent_ns.size()] = sent_ns;
        pattern_.append_line(c.out, c.id, c.sent++);
    }
}

void load_generator::flush(connection& c) {
    while (c.out_sent < c.out.size()) {
        ssize_t n = send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
        if (n > 0) {
            c.out_sent += std::size_t(n);
        } else if (errno == EAGAIN) {
            return;  // the EPOLLOUT edge brings us back
        } else if (errno != EINTR) {
            return fail(c, false, std::string("send: ") + std::strerror(errno));
        }
    }
    c.out.clear();
    c.out_sent = 0;
}

void load_generator::on_event(connection& c, u32 events) {
    if (o_.tls) return on_tls_event(c, events);
    if (c.state == connection_state::connecting) {
        if (!connect_completed(c, events)) return;
        on_connected(c);
    }
    if (c.fd >= 0 && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        read_available(c, events);
    if (c.fd >= 0 && (events & EPOLLOUT) && c.out_sent < c.out.size()) flush(c);
}

bool load_generator::connect_completed(connection& c, u32 events) {
    int error = 0;
    socklen_t length = sizeof error;
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0 || (events & (EPOLLERR | EPOLLHUP))) {
        fail(c, false, std::string("connect: ") + std::strerror(error ? error : ECONNREFUSED));
        return false;
    }
    return (events & EPOLLOUT) != 0;
}

void load_generator::read_available(connection& c, u32 events) {
    for (int reads = 0;; ++reads) {
        if (reads == max_reads_per_event) {
            // The edge is not spent: come back to it after the other connections' events.
            if (!c.still_readable) still_readable_.push_back(&c);
            c.still_readable = true;
            c.still_readable_events = events;
            return;
        }
        ssize_t n = recv(c.fd, rx_buffer_.data(), rx_buffer_.size(), 0);
        if (n > 0) {
            rx_ns_ = now_ns();
            if (!check_echo(c, rx_buffer_.data(), std::size_t(n))) return;
            flush(c);  // the lines queued for the echoes just checked leave in one send
            if (c.fd < 0) return;
            // A short read drained the socket and the next arrival raises a new edge, unless the
            // peer's FIN is already in (EPOLLRDHUP): that edge is spent, so read on to the 0.
            if (std::size_t(n) < rx_buffer_.size() && !(events & EPOLLRDHUP)) return;
        } else if (n == 0) {
            return on_end_of_stream(c);
        } else if (errno == EAGAIN) {
            return;
        } else if (errno != EINTR) {
            return fail(c, false, std::string("recv: ") + std::strerror(errno));
        }
    }
}

void load_generator::read_still_readable() {
    std::vector<connection*> round;
    round.swap(still_readable_);
    for (connection* c : round) {
        c->still_readable = false;
        if (c->fd < 0) continue;
        if (o_.tls)
            tls_read_available(*c, c->still_readable_events);
        else
            read_available(*c, c->still_readable_events);
    }
}

bool load_generator::check_echo(connection& c, const char* data, std::size_t n) {
    const std::size_t content = pattern_.content_size();
    auto mismatch = [&](std::size_t offset, char got) {
        std::string expected = c.rx_pos < content
                                   ? printable(pattern_.expected(c.rx_tag, c.rx_pos + offset))
                               : o_.eol == eol_policy::lf                         ? "\\n"
                               : c.rx_pos == content && o_.eol == eol_policy::any ? "\\n or \\r\\n"
                               : c.rx_pos == content                              ? "\\r\\n"
                                                                                  : "\\n";
        fail(c, true,
             "line " + std::to_string(c.echoed) + " byte " + std::to_string(c.rx_pos + offset) +
                 ": expected " + expected + ", got " + printable(got));
        return false;
    };
    while (n > 0) {
        if (c.echoed == c.sent || c.state == connection_state::draining) {
            fail(c, true,
                 "received " + std::to_string(n) + " bytes beyond the echo of line " +
                     std::to_string(c.sent) + " (first " + printable(*data) + ")");
            return false;
        }
        if (c.rx_pos < content) {
            std::size_t take = std::min(n, content - c.rx_pos);
            std::size_t bad = pattern_.first_difference(c.rx_tag, c.rx_pos, data, take);
            if (bad < take) return mismatch(bad, data[bad]);
            c.rx_pos += u32(take);
            data += take;
            n -= take;
            continue;
        }
        char b = *data;
        if (c.rx_pos == content && b == '\r' && o_.eol != eol_policy::lf) {
            ++c.rx_pos;
        } else if (b == '\n' && (c.rx_pos > content || o_.eol != eol_policy::crlf)) {
            on_line_echoed(c);
            if (c.fd < 0) return false;
        } else {
            return mismatch(0, b);
        }
        ++data;
        --n;
    }
    return true;
}

void load_generator::fail(connection& c, bool mismatch, const std::string& what) {
    ++(mismatch ? mismatches_ : errors_);
    if (messages_left_ > 0) {
        --messages_left_;
        if (progress_shown_) {
            clear_progress_line();
            std::fflush(stdout);
        }
        std::fprintf(stderr, "bench: connection %u: %s%s\n", c.id, mismatch ? "mismatch: " : "",
                     what.c_str());
        if (messages_left_ == 0) std::fprintf(stderr, "bench: further failures are only counted\n");
    }
    close_connection(c);
    // Churn keeps its load by replacing the connection; the others run on with fewer.
    if (o_.kind == scenario::churn && !stopping_) queue_connect(c);
}

void load_generator::close_connection(connection& c) {
    if (c.state == connection_state::connecting || c.state == connection_state::handshaking)
        --connecting_;
    if (c.tls) close_tls(c);
    if (c.fd >= 0) close(c.fd);  // close() also drops it from the epoll set
    c.fd = -1;
    c.state = connection_state::closed;
}

}  // namespace loadgen
