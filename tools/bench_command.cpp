// `rill bench`: a single-threaded, edge-triggered epoll load generator for line-echo servers.
//
// One thread and one epoll set drive every connection, so the client's own cost per line is a
// few syscalls and can be read off its CPU share (reported next to the server's). Every echoed
// byte is checked: each line carries a tag naming its connection and sequence number, so a
// misrouted, reordered, duplicated or truncated echo is caught, not only a flipped byte.

#include "bench_command.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

namespace {

using u32 = std::uint32_t;
using u64 = std::uint64_t;
constexpr u64 ns_per_s = 1'000'000'000;

u64 now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return u64(ts.tv_sec) * ns_per_s + u64(ts.tv_nsec);
}

u64 seconds_to_ns(double s) { return u64(std::max(0.0, s) * 1e9); }

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------
// Options

enum class scenario { pingpong, pipeline, churn, idle };
enum class eol_policy { lf, crlf, any };

constexpr int max_line_size_bytes = 1 << 20;
// Connects in progress at once: below the servers' listen backlog (128, the seed's default), so
// a burst of SYNs never overflows it and stalls on the kernel's 1 s SYN retransmit.
constexpr int max_connects_in_flight = 64;
// Descriptors the client keeps for itself beyond its sockets (stdio, epoll, /proc reads).
constexpr int reserved_descriptors = 16;
// One source address per this many idle connections (each address has ~28k ephemeral ports).
constexpr int idle_connections_per_source_address = 5000;
// Churn spreads over this many source addresses so that a reused 4-tuple rarely meets the
// server's TIME_WAIT socket for it (the server closes first, so TIME_WAIT is on its side).
constexpr int churn_source_addresses = 16;
// idle: time given to the server after the last exchange before its RSS is read. Idle means
// idle for a while: a server may reclaim per-connection memory lazily (rill's io_uring
// backend moves a receive that has waited 1-2 s onto shared provided buffers).
constexpr double idle_settle_s = 3.0;

struct bench_options {
    scenario kind = scenario::pingpong;
    std::string address = "127.0.0.1:2020";  // HOST:PORT of the server; loopback only
    int connections = 1;                     // concurrent connections; idle default 1000
    int line_size_bytes = 64;                // S: bytes per line including the trailing "\n"
    int depth = 1;                           // lines in flight per connection; pipeline default 16
    double duration_s = 5;                   // measured time
    double warmup_s = 1;                     // load applied before measuring, not counted
    double timeout_s = 10;                   // bound on connecting (+1 s per 1000 connections)
    eol_policy eol = eol_policy::any;        // line end accepted in echoes (default: LF or CR LF)
    bool json = false;                       // one JSON line instead of the plain summary
    int server_pid = 0;                      // idle: required (RSS); others: adds CPU shares
    int source_addresses = -1;  // bind clients to 127.0.0.2..; -1 = scenario default, 0 = no bind
};

constexpr std::string_view usage_text =
    R"(usage: rill bench SCENARIO [options]
scenarios:
  pingpong   one line in flight per connection: requests/s and latency percentiles
  pipeline   --depth lines in flight per connection: lines/s and MB/s
  churn      connect, send a line, read the echo, read to end of stream (the server
             closes: run it in "once" mode), repeat: connections/s and latency
  idle       open --connections connections that exchange one line and stay open,
             report the growth of the server's VmRSS per connection (needs --server-pid)
options:
  --address HOST:PORT   server address, loopback only (default 127.0.0.1:2020)
  --connections N       concurrent connections (default 1; idle 1000)
  --size S              bytes per line including "\n" (default 64)
  --depth P             lines in flight per connection (pipeline, default 16)
  --duration SECS       measured time (default 5)
  --warmup SECS         unmeasured load first (default 1)
  --timeout SECS        bound on connecting, beyond the duration (default 10)
  --eol lf|crlf|any     accepted line end of the echo (default any)
  --server-pid PID      server process: CPU share; idle: RSS from /proc/PID/status
  --source-addresses K  bind clients to 127.0.0.2..127.0.0.(K+1) (default: idle N/5000,
                        churn 16, others 0)
  --json                print one JSON line
exit status: 0 all echoes matched, 1 mismatch or connection error, 2 usage or setup error
)";

template <class T>
T parse_number(std::string_view option, std::string_view text, T low, T high) {
    T value{};
    if constexpr (std::is_floating_point_v<T>) {
        std::string copy(text);
        char* end = nullptr;
        value = T(std::strtod(copy.c_str(), &end));
        if (copy.empty() || *end != '\0') throw usage_error(std::string(option) + ": not a number: " + copy);
    } else {
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc{} || end != text.data() + text.size())
            throw usage_error(std::string(option) + ": not an integer: " + std::string(text));
    }
    if (value < low || value > high) {
        std::ostringstream message;
        message << option << " must be " << low << ".." << high << ", got " << text;
        throw usage_error(message.str());
    }
    return value;
}

bench_options parse_options(int argc, char** argv) {
    if (argc < 2) throw usage_error("missing scenario");
    bench_options o;
    std::string_view name = argv[1];
    if (name == "pingpong") {
        o.kind = scenario::pingpong;
    } else if (name == "pipeline") {
        o.kind = scenario::pipeline;
        o.depth = 16;
    } else if (name == "churn") {
        o.kind = scenario::churn;
    } else if (name == "idle") {
        o.kind = scenario::idle;
        o.connections = 1000;
    } else {
        throw usage_error("unknown scenario: " + std::string(name));
    }

    for (int i = 2; i < argc; ++i) {
        std::string_view option = argv[i];
        if (option == "--json") {
            o.json = true;
            continue;
        }
        if (i + 1 >= argc) throw usage_error("unknown option or missing value: " + std::string(option));
        std::string_view value = argv[++i];
        if (option == "--address")
            o.address = value;
        else if (option == "--connections")
            o.connections = parse_number(option, value, 1, 1'000'000);
        else if (option == "--size")
            o.line_size_bytes = parse_number(option, value, 1, max_line_size_bytes);
        else if (option == "--depth")
            o.depth = parse_number(option, value, 1, 1'000'000);
        else if (option == "--duration")
            o.duration_s = parse_number(option, value, 0.0, 86400.0);
        else if (option == "--warmup")
            o.warmup_s = parse_number(option, value, 0.0, 86400.0);
        else if (option == "--timeout")
            o.timeout_s = parse_number(option, value, 0.0, 86400.0);
        else if (option == "--server-pid")
            o.server_pid = parse_number(option, value, 1, 1 << 30);
        else if (option == "--source-addresses")
            o.source_addresses = parse_number(option, value, 0, 250);
        else if (option == "--eol") {
            if (value == "lf")
                o.eol = eol_policy::lf;
            else if (value == "crlf")
                o.eol = eol_policy::crlf;
            else if (value == "any")
                o.eol = eol_policy::any;
            else
                throw usage_error("--eol must be lf, crlf or any, got " + std::string(value));
        } else {
            throw usage_error("unknown option: " + std::string(option));
        }
    }
    if (o.kind == scenario::pingpong || o.kind == scenario::churn || o.kind == scenario::idle) o.depth = 1;
    if (o.kind == scenario::idle && o.server_pid == 0) throw usage_error("idle needs --server-pid");
    if (o.source_addresses < 0) {
        if (o.kind == scenario::idle)
            o.source_addresses = (o.connections + idle_connections_per_source_address - 1) /
                                 idle_connections_per_source_address;
        else if (o.kind == scenario::churn)
            o.source_addresses = churn_source_addresses;
        else
            o.source_addresses = 0;
    }
    return o;
}

// A load generator is a flood by design: refuse anything but this machine.
bool is_loopback(const sockaddr_storage& a) {
    if (a.ss_family == AF_INET)
        return (ntohl(reinterpret_cast<const sockaddr_in&>(a).sin_addr.s_addr) >> 24) == 127;
    if (a.ss_family == AF_INET6) {
        const auto& a6 = reinterpret_cast<const sockaddr_in6&>(a).sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return false;
}

sockaddr_storage resolve_loopback(const std::string& address) {
    auto colon = address.rfind(':');
    if (colon == std::string::npos) throw usage_error("--address must be HOST:PORT, got " + address);
    std::string host = address.substr(0, colon), port = address.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty()) host = "127.0.0.1";
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0)
        throw usage_error("--address " + address + ": " + gai_strerror(rc));
    sockaddr_storage result{};
    std::memcpy(&result, found->ai_addr, found->ai_addrlen);
    freeaddrinfo(found);
    if (!is_loopback(result))
        throw usage_error("--address " + address + ": only loopback addresses are allowed");
    return result;
}

// ---------------------------------------------------------------------------------------------
// Measurements

// Log-linear buckets as in HdrHistogram: 128 linear sub-buckets per power of two keep the
// relative error under 1% from 1 ns to centuries in 7.4k counters, so recording is O(1) and
// never allocates, however long the run.
class latency_histogram {
public:
    void record(u64 ns) {
        ++counts_[index_of(ns)];
        ++total_;
        max_ = std::max(max_, ns);
    }
    void clear() { *this = {}; }
    u64 count() const { return total_; }
    u64 max() const { return max_; }
    u64 percentile(double q) const {
        if (total_ == 0) return 0;
        u64 rank = std::max<u64>(1, u64(std::ceil(q * double(total_))));
        u64 seen = 0;
        for (std::size_t i = 0; i < counts_.size(); ++i)
            if ((seen += counts_[i]) >= rank) return std::min(midpoint(i), max_);
        return max_;
    }

private:
    static constexpr int sub_bits = 7;
    static constexpr std::size_t sub_count = std::size_t{1} << sub_bits;
    // Index = shift * 128 + top 8 bits of the value; values below 256 are their own index.
    static std::size_t index_of(u64 v) {
        int shift = std::max(0, int(std::bit_width(v)) - (sub_bits + 1));
        return std::size_t(shift) * sub_count + std::size_t(v >> shift);
    }
    static u64 midpoint(std::size_t i) {
        if (i < 2 * sub_count) return i;
        std::size_t shift = i / sub_count - 1;
        return (u64(i - shift * sub_count) << shift) + (u64{1} << shift) / 2;
    }
    std::array<u64, (64 - sub_bits + 1) * sub_count> counts_{};
    u64 total_ = 0, max_ = 0;
};

double cpu_seconds_of_self() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// utime + stime of the whole process (all threads), from /proc/PID/stat; -1 if unreadable.
double cpu_seconds_of(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    auto paren = text.rfind(')');  // the command name may contain spaces
    if (paren == std::string::npos) return -1;
    std::istringstream fields(text.substr(paren + 1));
    std::string skip;
    for (int field = 3; field <= 13; ++field) fields >> skip;
    double utime = 0, stime = 0;
    if (!(fields >> utime >> stime)) return -1;
    return (utime + stime) / double(sysconf(_SC_CLK_TCK));
}

// VmRSS in KiB from /proc/PID/status, or -1.
long rss_kib_of(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    return -1;
}

// ---------------------------------------------------------------------------------------------
// Line pattern

// Line k of connection c: a 16-hex-digit tag of (c << 40 | k), then a fixed printable filler,
// then "\n". Neither part contains CR or LF, so any line end in the echo is the server's.
class line_pattern {
public:
    static constexpr std::size_t tag_capacity = 16;
    using tag_bytes = std::array<char, tag_capacity>;

    explicit line_pattern(std::size_t line_bytes) : content_(line_bytes - 1, ' ') {
        for (std::size_t i = 0; i < content_.size(); ++i) content_[i] = char('!' + (i * 7) % 94);
        tag_size_ = std::min(tag_capacity, content_.size());
    }
    std::size_t content_size() const { return content_.size(); }
    std::size_t line_size() const { return content_.size() + 1; }

    static tag_bytes tag(u32 connection, u64 seq) {
        u64 v = (u64(connection) << 40) | (seq & ((u64{1} << 40) - 1));
        tag_bytes t;
        for (int i = 15; i >= 0; --i, v >>= 4) t[std::size_t(i)] = "0123456789abcdef"[v & 15];
        return t;
    }
    void append_line(std::string& out, u32 connection, u64 seq) const {
        std::size_t at = out.size();
        out.append(content_);
        out.push_back('\n');
        auto t = tag(connection, seq);
        std::memcpy(out.data() + at, t.data(), tag_size_);
    }
    // Offset of the first byte of [data, data + n) that differs from the line's content at
    // [from, from + n), or n when all match.
    std::size_t first_difference(const tag_bytes& t, std::size_t from, const char* data,
                                 std::size_t n) const {
        std::size_t i = 0;
        for (; i < n && from + i < tag_size_; ++i)
            if (data[i] != t[from + i]) return i;
        if (i < n && std::memcmp(data + i, content_.data() + from + i, n - i) != 0)
            for (; i < n; ++i)
                if (data[i] != content_[from + i]) return i;
        return n;
    }
    char expected(const tag_bytes& t, std::size_t at) const { return at < tag_size_ ? t[at] : content_[at]; }

private:
    std::string content_;
    std::size_t tag_size_ = 0;
};

std::string printable(char c) {
    if (c == '\n') return "\\n";
    if (c == '\r') return "\\r";
    if (c >= 0x20 && c < 0x7f) return std::string(1, c);
    char hex[8];
    std::snprintf(hex, sizeof hex, "\\x%02x", unsigned(static_cast<unsigned char>(c)));
    return hex;
}

// ---------------------------------------------------------------------------------------------
// The load generator

enum class connection_state { closed, waiting, connecting, open, draining };

struct connection {
    int fd = -1;
    u32 id = 0;  // index in the table; part of every line's tag
    connection_state state = connection_state::closed;
    u64 sent = 0;    // lines queued for sending
    u64 echoed = 0;  // lines whose echo arrived complete and correct
    u32 rx_pos = 0;  // bytes of the current echo checked so far (content, then CR)
    line_pattern::tag_bytes rx_tag{};
    std::string out;  // queued output; out_sent bytes of it already sent
    std::size_t out_sent = 0;
    std::vector<u64> sent_ns;  // send time of each line in flight, ring indexed by seq % depth
    u64 opened_ns = 0;         // churn: when the connect began
};

struct results {
    u64 completed = 0;  // lines (pingpong, pipeline), connections (churn), exchanges (idle)
    double wall_s = 0, client_cpu_s = 0, server_cpu_s = -1;
    latency_histogram latency;
};

class load_generator {
public:
    explicit load_generator(const bench_options& o)
        : o_(o), target_(resolve_loopback(o.address)), pattern_(std::size_t(o.line_size_bytes)) {
        raise_descriptor_limit();
        epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
        if (epoll_fd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
        if (target_.ss_family != AF_INET) source_addresses_ = 0;
        table_.resize(std::size_t(o.connections));
        for (u32 i = 0; i < table_.size(); ++i) {
            table_[i].id = i;
            table_[i].sent_ns.resize(std::size_t(o.depth));
        }
        progress_ = isatty(STDOUT_FILENO) == 1;
    }
    ~load_generator() {
        for (auto& c : table_) close_connection(c);
        close(epoll_fd_);
    }
    load_generator(const load_generator&) = delete;
    load_generator& operator=(const load_generator&) = delete;

    int run();

private:
    void raise_descriptor_limit();
    void open_connection(connection& c);
    void on_connected(connection& c);
    void on_event(connection& c, u32 events);
    void read_available(connection& c, u32 events);
    bool check_echo(connection& c, const char* data, std::size_t n);
    void on_line_echoed(connection& c);
    void on_end_of_stream(connection& c);
    void queue_lines(connection& c, int count, u64 sent_ns);
    void flush(connection& c);
    void fail(connection& c, bool mismatch, const std::string& what);
    void close_connection(connection& c);
    void queue_connect(connection& c);
    void start_queued_connects();
    template <class Done>
    void run_until(u64 deadline_ns, Done done);
    void show_progress(u64 now);
    void start_measuring();
    void stop_measuring();
    void establish(u64 deadline_ns);
    int abandon_unfinished(bool need_echo);
    int report_load() const;
    int report_idle(long rss_before_kib, long rss_after_kib) const;
    const char* phase_name() const;

    const bench_options& o_;
    sockaddr_storage target_;
    line_pattern pattern_;
    int epoll_fd_ = -1;
    int source_addresses_ = o_.source_addresses;
    std::vector<connection> table_;
    std::deque<connection*> connect_queue_;
    int connecting_ = 0;   // connects in progress
    int established_ = 0;  // connects that completed (churn: every reconnect counts)
    bool stopping_ = false;

    enum class phase { setup, warmup, measure, settle } phase_ = phase::setup;
    bool measuring_ = false;
    results r_;
    u64 measure_start_ns_ = 0;
    double client_cpu_start_ = 0, server_cpu_start_ = 0;
    u64 rx_ns_ = 0;  // arrival time of the chunk being checked

    u64 completed_total_ = 0;  // lines, connections or exchanges, in every phase
    u64 errors_ = 0, mismatches_ = 0;
    int messages_left_ = 5;  // detailed failure reports before going quiet

    bool progress_ = false;
    bool progress_shown_ = false;
    u64 next_tick_ns_ = 0, phase_start_ns_ = 0, completed_at_tick_ = 0;
    std::array<char, 64 * 1024> rx_buffer_{};
};

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
    for (std::size_t n = connect_queue_.size(); n > 0 && !stopping_ && connecting_ < max_connects_in_flight;
         --n) {
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
    --connecting_;
    c.state = connection_state::open;
    ++established_;
    queue_lines(c, o_.depth, now_ns());
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
    if (c.state == connection_state::connecting) {
        int error = 0;
        socklen_t length = sizeof error;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0 || (events & (EPOLLERR | EPOLLHUP)))
            return fail(c, false, std::string("connect: ") + std::strerror(error ? error : ECONNREFUSED));
        if (!(events & EPOLLOUT)) return;
        on_connected(c);
    }
    if (c.fd >= 0 && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) read_available(c, events);
    if (c.fd >= 0 && (events & EPOLLOUT) && c.out_sent < c.out.size()) flush(c);
}

void load_generator::read_available(connection& c, u32 events) {
    for (;;) {
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

bool load_generator::check_echo(connection& c, const char* data, std::size_t n) {
    const std::size_t content = pattern_.content_size();
    auto mismatch = [&](std::size_t offset, char got) {
        std::string expected = c.rx_pos < content ? printable(pattern_.expected(c.rx_tag, c.rx_pos + offset))
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

void load_generator::on_line_echoed(connection& c) {
    u64 seq = c.echoed++;
    c.rx_pos = 0;
    c.rx_tag = line_pattern::tag(c.id, c.echoed);
    switch (o_.kind) {
        case scenario::pingpong:
        case scenario::pipeline:
            ++completed_total_;
            if (measuring_) {
                ++r_.completed;
                r_.latency.record(rx_ns_ - c.sent_ns[seq % c.sent_ns.size()]);
            }
            // Stamped with the arrival of the echo that prompts it: the send follows within the
            // same chunk's processing, and one clock read per chunk keeps the client lean.
            if (!stopping_) queue_lines(c, 1, rx_ns_);
            break;
        case scenario::churn:
            c.state = connection_state::draining;  // the server closes next
            break;
        case scenario::idle:
            ++completed_total_;  // and stay open
            break;
    }
}

void load_generator::on_end_of_stream(connection& c) {
    if (o_.kind == scenario::churn && c.state == connection_state::draining) {
        ++completed_total_;
        if (measuring_) {
            ++r_.completed;
            r_.latency.record(now_ns() - c.opened_ns);
        }
        close_connection(c);
        if (!stopping_) queue_connect(c);
        return;
    }
    fail(c, false,
         c.rx_pos > 0        ? "server closed the connection in the middle of an echoed line"
         : c.echoed < c.sent ? "server closed the connection with " + std::to_string(c.sent - c.echoed) +
                                   " line(s) unanswered"
                             : std::string("server closed the connection"));
}

void load_generator::fail(connection& c, bool mismatch, const std::string& what) {
    ++(mismatch ? mismatches_ : errors_);
    if (messages_left_ > 0) {
        --messages_left_;
        if (progress_shown_) std::printf("\r\033[K"), std::fflush(stdout);
        std::fprintf(stderr, "bench: connection %u: %s%s\n", c.id, mismatch ? "mismatch: " : "",
                     what.c_str());
        if (messages_left_ == 0) std::fprintf(stderr, "bench: further failures are only counted\n");
    }
    close_connection(c);
    // Churn keeps its load by replacing the connection; the others run on with fewer.
    if (o_.kind == scenario::churn && !stopping_) queue_connect(c);
}

void load_generator::close_connection(connection& c) {
    if (c.state == connection_state::connecting) --connecting_;
    if (c.fd >= 0) close(c.fd);  // close() also drops it from the epoll set
    c.fd = -1;
    c.state = connection_state::closed;
}

template <class Done>
void load_generator::run_until(u64 deadline_ns, Done done) {
    std::array<epoll_event, 512> events;
    for (;;) {
        start_queued_connects();
        u64 now = now_ns();
        if (done() || now >= deadline_ns) return;
        if (now >= next_tick_ns_) show_progress(now);
        u64 wake = std::min(deadline_ns, next_tick_ns_);
        int timeout_ms = int(std::min<u64>((wake - now + 999'999) / 1'000'000, 1000));
        int n = epoll_wait(epoll_fd_, events.data(), int(events.size()), timeout_ms);
        if (n < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "epoll_wait");
        for (int i = 0; i < n; ++i)
            on_event(*static_cast<connection*>(events[std::size_t(i)].data.ptr),
                     events[std::size_t(i)].events);
    }
}

const char* load_generator::phase_name() const {
    switch (phase_) {
        case phase::setup:
            return "connect";
        case phase::warmup:
            return "warmup";
        case phase::measure:
            return "measure";
        case phase::settle:
            return "settle";
    }
    return "";
}

// Once a second on a terminal: phase, seconds in it, and the rate over the last second.
void load_generator::show_progress(u64 now) {
    if (next_tick_ns_ != 0 && progress_) {
        static constexpr const char* units[] = {"req/s", "lines/s", "conn/s", "exchanged"};
        u64 delta = completed_total_ - completed_at_tick_;
        const u64 failed = errors_ + mismatches_;
        if (o_.kind == scenario::idle)
            std::printf("\r\033[K%-8s %3.0fs  established %d/%d  exchanged %llu  errors %llu", phase_name(),
                        double(now - phase_start_ns_) / 1e9, established_, o_.connections,
                        static_cast<unsigned long long>(completed_total_),
                        static_cast<unsigned long long>(failed));
        else
            std::printf("\r\033[K%-8s %3.0fs  %10llu %s  errors %llu", phase_name(),
                        double(now - phase_start_ns_) / 1e9, static_cast<unsigned long long>(delta),
                        units[int(o_.kind)], static_cast<unsigned long long>(failed));
        std::fflush(stdout);
        progress_shown_ = true;
    }
    completed_at_tick_ = completed_total_;
    next_tick_ns_ = now + ns_per_s;
}

void load_generator::start_measuring() {
    r_ = {};
    measuring_ = true;
    measure_start_ns_ = now_ns();
    client_cpu_start_ = cpu_seconds_of_self();
    if (o_.server_pid) server_cpu_start_ = cpu_seconds_of(o_.server_pid);
}

void load_generator::stop_measuring() {
    measuring_ = false;
    r_.wall_s = double(now_ns() - measure_start_ns_) / 1e9;
    r_.client_cpu_s = cpu_seconds_of_self() - client_cpu_start_;
    if (o_.server_pid) {
        double end = cpu_seconds_of(o_.server_pid);
        r_.server_cpu_s = end >= 0 && server_cpu_start_ >= 0 ? end - server_cpu_start_ : -1;
    }
}

// Opens every connection (at most max_connects_in_flight at once) and waits until each has
// either connected or failed, or the deadline passes.
void load_generator::establish(u64 deadline_ns) {
    phase_start_ns_ = now_ns();
    for (auto& c : table_) queue_connect(c);
    run_until(deadline_ns, [&] { return connect_queue_.empty() && connecting_ == 0; });
    if (int late = abandon_unfinished(false); late > 0)
        std::fprintf(stderr, "bench: %d of %d connections did not connect within the timeout\n", late,
                     o_.connections);
}

// Gives up on connections still connecting or, with need_echo, still owed their first echo:
// each is closed and counted as one error, so nothing completes later and counts twice.
int load_generator::abandon_unfinished(bool need_echo) {
    int abandoned = 0;
    for (auto& c : table_) {
        bool unfinished = c.state == connection_state::waiting || c.state == connection_state::connecting ||
                          (need_echo && c.state == connection_state::open && c.echoed == 0);
        if (unfinished) {
            close_connection(c);
            ++errors_;
            ++abandoned;
        }
    }
    connect_queue_.clear();
    return abandoned;
}

int load_generator::run() {
    const u64 setup_deadline = now_ns() + seconds_to_ns(o_.timeout_s + o_.connections / 1000.0);
    if (o_.kind == scenario::idle) {
        long rss_before = rss_kib_of(o_.server_pid);
        if (rss_before < 0)
            throw usage_error("cannot read VmRSS of process " + std::to_string(o_.server_pid));
        phase_start_ns_ = now_ns();
        for (auto& c : table_) queue_connect(c);
        // Each connection ends up exchanged (and held open) or failed (and closed).
        run_until(setup_deadline,
                  [&] { return completed_total_ + errors_ + mismatches_ >= u64(o_.connections); });
        if (int late = abandon_unfinished(true); late > 0)
            std::fprintf(stderr, "bench: %d of %d connections did not exchange a line within the timeout\n",
                         late, o_.connections);
        phase_ = phase::settle;
        phase_start_ns_ = now_ns();
        run_until(now_ns() + seconds_to_ns(idle_settle_s), [] { return false; });
        long rss_after = rss_kib_of(o_.server_pid);
        stopping_ = true;
        return report_idle(rss_before, rss_after);
    }

    if (o_.kind == scenario::churn) {
        // Churn's connections come and go: start them and go straight to warmup.
        for (auto& c : table_) queue_connect(c);
    } else {
        establish(setup_deadline);
    }
    phase_ = phase::warmup;
    phase_start_ns_ = now_ns();
    run_until(phase_start_ns_ + seconds_to_ns(o_.warmup_s), [] { return false; });
    phase_ = phase::measure;
    phase_start_ns_ = now_ns();
    start_measuring();
    run_until(measure_start_ns_ + seconds_to_ns(o_.duration_s), [] { return false; });
    stop_measuring();
    stopping_ = true;
    int status = report_load();
    // A server that hangs produces no errors, only silence: that must not pass as a result.
    if (r_.completed == 0) {
        std::fprintf(stderr, "bench: nothing completed in the measured %.1f s\n", r_.wall_s);
        status = 1;
    }
    return status;
}

// ---------------------------------------------------------------------------------------------
// Reports

void clear_progress(bool shown) {
    if (shown) std::printf("\r\033[K");
}

int load_generator::report_load() const {
    clear_progress(progress_shown_);
    const double wall = r_.wall_s > 0 ? r_.wall_s : 1;
    const double rate = double(r_.completed) / wall;
    const double mb_s = o_.kind == scenario::churn ? 0 : rate * double(pattern_.line_size()) / 1e6;
    auto us = [&](double q) { return double(r_.latency.percentile(q)) / 1e3; };
    const char* names[] = {"pingpong", "pipeline", "churn", "idle"};
    const char* unit = o_.kind == scenario::pingpong   ? "req/s"
                       : o_.kind == scenario::pipeline ? "lines/s"
                                                       : "conn/s";
    const double client_cpu = r_.client_cpu_s / wall;
    const double server_cpu = r_.server_cpu_s >= 0 ? r_.server_cpu_s / wall : -1;
    if (o_.json) {
        std::string server_cpu_json = "null";  // unknown without --server-pid
        if (server_cpu >= 0) server_cpu_json = std::to_string(server_cpu);
        std::printf(
            "{\"scenario\":\"%s\",\"address\":\"%s\",\"connections\":%d,\"size\":%d,\"depth\":%d,"
            "\"duration_s\":%.3f,\"completed\":%llu,\"rate\":%.1f,\"rate_unit\":\"%s\",\"mb_s\":%.2f,"
            "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"established\":%d,"
            "\"errors\":%llu,\"mismatches\":%llu,\"client_cpu\":%.3f,\"server_cpu\":%s}\n",
            names[int(o_.kind)], o_.address.c_str(), o_.connections, o_.line_size_bytes, o_.depth, wall,
            static_cast<unsigned long long>(r_.completed), rate, unit, mb_s, us(0.5), us(0.99), us(0.999),
            double(r_.latency.max()) / 1e3, established_, static_cast<unsigned long long>(errors_),
            static_cast<unsigned long long>(mismatches_), client_cpu, server_cpu_json.c_str());
    } else {
        std::printf("%s %s: %d connections, %d-byte lines, depth %d, %.2f s measured\n", names[int(o_.kind)],
                    o_.address.c_str(), o_.connections, o_.line_size_bytes, o_.depth, wall);
        std::printf("  %-10s %llu (%.0f %s", o_.kind == scenario::churn ? "conns" : "lines",
                    static_cast<unsigned long long>(r_.completed), rate, unit);
        if (mb_s > 0) std::printf(", %.2f MB/s sent", mb_s);
        std::printf(")\n  %-10s p50 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us\n", "latency", us(0.5),
                    us(0.99), us(0.999), double(r_.latency.max()) / 1e3);
        std::printf("  %-10s client %.0f%%", "cpu", client_cpu * 100);
        if (server_cpu >= 0) std::printf("  server %.0f%%", server_cpu * 100);
        std::printf("\n  %-10s %llu errors, %llu mismatches\n", "checks",
                    static_cast<unsigned long long>(errors_), static_cast<unsigned long long>(mismatches_));
    }
    std::fflush(stdout);
    return errors_ + mismatches_ > 0 ? 1 : 0;
}

int load_generator::report_idle(long rss_before_kib, long rss_after_kib) const {
    clear_progress(progress_shown_);
    const u64 held = completed_total_;
    const double per_connection =
        held > 0 && rss_after_kib >= 0 ? double(rss_after_kib - rss_before_kib) / double(held) : 0;
    if (o_.json) {
        std::printf(
            "{\"scenario\":\"idle\",\"address\":\"%s\",\"connections\":%d,\"established\":%llu,"
            "\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,\"rss_per_conn_kib\":%.2f,\"errors\":%llu,"
            "\"mismatches\":%llu}\n",
            o_.address.c_str(), o_.connections, static_cast<unsigned long long>(held), rss_before_kib,
            rss_after_kib, per_connection, static_cast<unsigned long long>(errors_),
            static_cast<unsigned long long>(mismatches_));
    } else {
        std::printf("idle %s: %llu of %d connections open after one exchange each\n", o_.address.c_str(),
                    static_cast<unsigned long long>(held), o_.connections);
        std::printf("  %-10s before %ld KiB, after %ld KiB: %.2f KiB per connection\n", "server rss",
                    rss_before_kib, rss_after_kib, per_connection);
        std::printf("  %-10s %llu errors, %llu mismatches\n", "checks",
                    static_cast<unsigned long long>(errors_), static_cast<unsigned long long>(mismatches_));
    }
    std::fflush(stdout);
    return errors_ + mismatches_ > 0 ? 1 : 0;
}

}  // namespace

int bench_command(int argc, char** argv) {
    if (argc >= 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
        std::fputs(usage_text.data(), stdout);
        return 0;
    }
    try {
        bench_options options = parse_options(argc, argv);
        auto generator = std::make_unique<load_generator>(options);  // ~130 KiB of buffers: not on the stack
        return generator->run();
    } catch (const usage_error& e) {
        std::fprintf(stderr, "bench: %s (see --help)\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench: %s\n", e.what());
        return 2;
    }
}
