// tcp_server_stream and tcp_client_stream options end to end: every address form, socket
// info, IPv6, backlog, reuse_address, keep_alive, coalesce, and the errors for bad input.
// Traffic stays on the loopback; every port is picked by the kernel.
#include <fcntl.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <string>

#include <rill/rill.hpp>

#include "net/net_test_support.hpp"
#include "stream/stream_state.hpp"

namespace {

using rill::address;
using rill::argument_error;
using rill::socket_info;
using rill::tcp_client_stream;
using rill::tcp_server_stream;
using rill_test::message_of;
using rill_test::os_error_code;
using testing::HasSubstr;
using testing::MatchesRegex;

// "127.0.0.1:N" for a server bound to every interface ("*" is 0.0.0.0), else its own address.
std::string client_address_for(const socket_info& bound) {
    if (bound.address == "0.0.0.0") return "127.0.0.1:" + std::to_string(bound.port_number);
    return bound.to_string();
}

// Inside a task: one line from a client at `where` through `server` and back; the two ends'
// socket info must agree.
void round_trip(tcp_server_stream& server, const address& where,
                rill::client_options options = {}) {
    const socket_info bound = rill::tcp_server_socket_info(server);
    socket_info client_self;
    auto sender = rill::spawn([&] {
        try {
            tcp_client_stream c(where, options);
            client_self = rill::tcp_client_self_socket_info(c);
            EXPECT_EQ(rill::tcp_client_peer_socket_info(c).to_string(), client_address_for(bound));
            EXPECT_NE(client_self.port_number, 0);
            rill::showln(c, "ping");
            rill::flush_writer(c);
            EXPECT_EQ(rill::read_line(c), "ping");
            rill::close_stream(c);
        } catch (const rill::error& e) {
            ADD_FAILURE() << "client to " << where.to_string() << ": " << e.what();
            rill::close_stream(server);  // so that read(server) below does not wait forever
        }
    });
    auto accepted = rill::read(server);
    ASSERT_TRUE(accepted);
    const socket_info accepted_self = rill::tcp_client_self_socket_info(*accepted);
    const socket_info accepted_peer = rill::tcp_client_peer_socket_info(*accepted);
    EXPECT_EQ(accepted_self.port_number, bound.port_number);
    rill::call_with_stream(*accepted, [](tcp_client_stream& s) {
        if (auto line = rill::read_line(s)) rill::showln(s, *line);
    });
    sender.join();
    EXPECT_EQ(accepted_peer, client_self);
}

TEST(ServerOptions, AddressFormsEndToEnd) {
    const bool v6 = rill_test::ipv6_loopback_available();
    struct form {
        std::string label;
        std::function<tcp_server_stream()> open;
        const char* bound_address;
        int family;
        bool needs_v6;
    };
    std::array<std::uint8_t, 16> loopback6_bytes{};
    loopback6_bytes[15] = 1;
    const form forms[] = {
        {"port 0", [] { return tcp_server_stream(0); }, "127.0.0.1", AF_INET, false},
        {"\"127.0.0.1:0\"", [] { return tcp_server_stream("127.0.0.1:0"); }, "127.0.0.1", AF_INET,
         false},
        {"\":0\"", [] { return tcp_server_stream(":0"); }, "127.0.0.1", AF_INET, false},
        {"\"\" + port_number 0", [] { return tcp_server_stream("", {.port_number = 0}); },
         "127.0.0.1", AF_INET, false},
        {"\"*:0\"", [] { return tcp_server_stream("*:0"); }, "0.0.0.0", AF_INET, false},
        {"\"[::1]:0\"", [] { return tcp_server_stream("[::1]:0"); }, "::1", AF_INET6, true},
        {"\"::1\" + port_number 0", [] { return tcp_server_stream("::1", {.port_number = 0}); },
         "::1", AF_INET6, true},
        {"\"localhost\" + port_number 0",
         [] { return tcp_server_stream("localhost", {.port_number = 0}); }, nullptr, 0, false},
        {"array<uint8_t, 4>",
         [] {
             return tcp_server_stream(std::array<std::uint8_t, 4>{127, 0, 0, 1},
                                      {.port_number = 0});
         },
         "127.0.0.1", AF_INET, false},
        {"array<uint16_t, 8>",
         [] {
             return tcp_server_stream(std::array<std::uint16_t, 8>{0, 0, 0, 0, 0, 0, 0, 1},
                                      {.port_number = 0});
         },
         "::1", AF_INET6, true},
        {"array<uint8_t, 16>",
         [&] { return tcp_server_stream(loopback6_bytes, {.port_number = 0}); }, "::1", AF_INET6,
         true},
    };
    rill::run([&] {
        for (const auto& f : forms) {
            SCOPED_TRACE(f.label);
            if (f.needs_v6 && !v6) continue;
            tcp_server_stream server = f.open();
            socket_info bound = rill::tcp_server_socket_info(server);
            if (f.bound_address) {
                EXPECT_EQ(bound.address, f.bound_address);
                EXPECT_EQ(bound.family, f.family);
            } else {
                EXPECT_TRUE(bound.address == "127.0.0.1" || bound.address == "::1") << bound;
            }
            EXPECT_GT(bound.port_number, 0);
            round_trip(server, client_address_for(bound));
            rill::close_stream(server);
        }
    });
    if (!v6) GTEST_SKIP() << "no IPv6 loopback here: the IPv6 forms were not run";
}

TEST(ServerOptions, PortNumberOverridesThePortInTheString) {
    const int closed_port = rill_test::unused_loopback_port();
    rill::run([&] {
        tcp_server_stream first(0);
        const int busy = rill::tcp_server_socket_info(first).port_number;
        // The string names a busy port; port_number 0 wins, so the kernel picks a free one
        // (the string's port would fail with EADDRINUSE).
        tcp_server_stream second("127.0.0.1:" + std::to_string(busy), {.port_number = 0});
        const int picked = rill::tcp_server_socket_info(second).port_number;
        EXPECT_NE(picked, busy);
        // And the other way round: a port_number that is busy wins over ":0".
        std::string message;
        EXPECT_EQ(
            os_error_code([&] { tcp_server_stream third("127.0.0.1:0", {.port_number = busy}); },
                          &message),
            EADDRINUSE);
        EXPECT_EQ(message, "tcp_server_stream: bind 127.0.0.1:" + std::to_string(busy) +
                               ": Address already in use");
        // The client side: port_number wins over a closed port in the address (which would be
        // refused).
        tcp_client_stream c("127.0.0.1:" + std::to_string(closed_port), {.port_number = picked});
        EXPECT_EQ(rill::tcp_client_peer_socket_info(c).port_number, picked);
        auto accepted = rill::read(second);
        ASSERT_TRUE(accepted);
        EXPECT_EQ(rill::tcp_client_peer_socket_info(*accepted),
                  rill::tcp_client_self_socket_info(c));
    });
}

TEST(ServerOptions, ClientByHostName) {
    // "localhost" comes from /etc/hosts (127.0.0.1, maybe ::1 too): the client tries each
    // address until one answers, as the seed's client does with "localhost:2020".
    rill::run([] {
        tcp_server_stream server(0);
        const int port = rill::tcp_server_socket_info(server).port_number;
        round_trip(server, "localhost:" + std::to_string(port));
        round_trip(server, "localhost", {.port_number = port});
    });
}

TEST(ServerOptions, SocketInfoPrintsAddressAndPort) {
    rill::run([] {
        tcp_server_stream server("127.0.0.1:0");
        socket_info bound = rill::tcp_server_socket_info(server);
        const std::string expected = "127.0.0.1:" + std::to_string(bound.port_number);
        EXPECT_EQ(bound.to_string(), expected);
        std::ostringstream printed;
        printed << bound;
        EXPECT_EQ(printed.str(), expected);

        tcp_client_stream c(expected);
        auto accepted = rill::read(server);
        ASSERT_TRUE(accepted);
        EXPECT_EQ(rill::tcp_client_peer_socket_info(c), bound);
        EXPECT_EQ(rill::tcp_client_self_socket_info(c),
                  rill::tcp_client_peer_socket_info(*accepted));
        EXPECT_EQ(rill::tcp_client_peer_socket_info(c),
                  rill::tcp_client_self_socket_info(*accepted));
        EXPECT_THAT(rill::tcp_client_self_socket_info(c).to_string(),
                    MatchesRegex("127\\.0\\.0\\.1:[0-9]+"));

        // Info of a closed stream is an error that names the operation, not a crash.
        rill::close_stream(c);
        EXPECT_THAT(message_of<rill::error>([&] { rill::tcp_client_self_socket_info(c); }),
                    HasSubstr("tcp_client_self_socket_info"));
    });
}

TEST(ServerOptions, Ipv6ClientAndServer) {
    if (!rill_test::ipv6_loopback_available()) GTEST_SKIP() << "no IPv6 loopback here";
    rill::run([] {
        tcp_server_stream server("[::1]:0");
        socket_info bound = rill::tcp_server_socket_info(server);
        EXPECT_EQ(bound.family, AF_INET6);
        EXPECT_EQ(bound.to_string(), "[::1]:" + std::to_string(bound.port_number));
        auto sender = rill::spawn([&] {
            tcp_client_stream c("::1", {.port_number = bound.port_number});
            EXPECT_EQ(rill::tcp_client_peer_socket_info(c).to_string(), bound.to_string());
            std::ostringstream printed;
            printed << rill::tcp_client_self_socket_info(c);
            EXPECT_THAT(printed.str(), MatchesRegex("\\[::1\\]:[0-9]+"));
            rill::showln(c, "over six");
            rill::flush_writer(c);
            EXPECT_EQ(rill::read_line(c), "over six");
        });
        auto accepted = rill::read(server);
        ASSERT_TRUE(accepted);
        EXPECT_EQ(rill::tcp_client_peer_socket_info(*accepted).family, AF_INET6);
        rill::call_with_stream(*accepted, [](tcp_client_stream& s) {
            if (auto line = rill::read_line(s)) rill::showln(s, *line);
        });
        sender.join();
    });
}

TEST(ServerOptions, BadBacklogAndPortNumber) {
    rill::run([] {
        EXPECT_EQ(message_of<argument_error>([] { tcp_server_stream s(0, {.backlog = 0}); }),
                  "backlog must be positive, got 0");
        EXPECT_EQ(message_of<argument_error>([] { tcp_server_stream s(0, {.backlog = -1}); }),
                  "backlog must be positive, got -1");
        EXPECT_EQ(message_of<argument_error>(
                      [] { tcp_server_stream s("127.0.0.1", {.port_number = 70000}); }),
                  "port_number must be 0..65535, got 70000");
        EXPECT_EQ(message_of<argument_error>([] { tcp_server_stream s(70000); }),
                  "port_number must be 0..65535, got 70000");
        EXPECT_EQ(message_of<argument_error>(
                      [] { tcp_client_stream c("127.0.0.1", {.port_number = 70000}); }),
                  "port_number must be 0..65535, got 70000");
        EXPECT_THAT(message_of<argument_error>([] { tcp_server_stream s("127.0.0.1"); }),
                    HasSubstr("no port"));
    });
}

TEST(ServerOptions, BindToAnAddressThatIsNotLocal) {
    // 203.0.113.0/24 is TEST-NET-3 (RFC 5737): never a local address, and bind sends nothing.
    rill::run([] {
        std::string message;
        EXPECT_EQ(os_error_code([] { tcp_server_stream s("203.0.113.1:0"); }, &message),
                  EADDRNOTAVAIL);
        EXPECT_EQ(message,
                  "tcp_server_stream: bind 203.0.113.1:0: Cannot assign requested address");
        EXPECT_EQ(os_error_code([] { tcp_server_stream s("203.0.113.1", {.port_number = 2020}); },
                                &message),
                  EADDRNOTAVAIL);
        EXPECT_EQ(message,
                  "tcp_server_stream: bind 203.0.113.1:2020: Cannot assign requested address");
    });
}

TEST(ServerOptions, SecondServerOnABusyPort) {
    rill::run([] {
        tcp_server_stream first(0);
        const int port = rill::tcp_server_socket_info(first).port_number;
        for (bool reuse : {true, false}) {
            SCOPED_TRACE(reuse ? "reuse_address=true" : "reuse_address=false");
            std::string message;
            EXPECT_EQ(
                os_error_code([&] { tcp_server_stream second(port, {.reuse_address = reuse}); },
                              &message),
                EADDRINUSE);
            EXPECT_EQ(message, "tcp_server_stream: bind 127.0.0.1:" + std::to_string(port) +
                                   ": Address already in use");
        }
    });
}

// The Send-Q column of `ss -ltn` for a listening socket is its backlog.
std::optional<int> listen_backlog_seen_by_ss(int port) {
    const std::string command = "ss -ltnH 2>/dev/null";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
    if (!pipe) return std::nullopt;
    char line[512];
    const std::string local = "127.0.0.1:" + std::to_string(port);
    std::optional<int> found;
    for (int lines = 0; lines < 100000 && std::fgets(line, sizeof line, pipe.get()); ++lines) {
        std::istringstream fields(line);
        std::string state, recv_q, send_q, local_address;
        fields >> state >> recv_q >> send_q >> local_address;
        if (state == "LISTEN" && local_address == local) found = std::stoi(send_q);
    }
    return found;
}

TEST(ServerOptions, BacklogReachesListen) {
    if (std::system("command -v ss >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "ss (iproute2) is not installed";
    rill::run([] {
        for (int backlog : {7, 1, rill::default_backlog}) {
            SCOPED_TRACE(backlog);
            tcp_server_stream server(0, {.backlog = backlog});
            const int port = rill::tcp_server_socket_info(server).port_number;
            auto seen = listen_backlog_seen_by_ss(port);
            ASSERT_TRUE(seen) << "ss shows no LISTEN socket on 127.0.0.1:" << port;
            EXPECT_EQ(*seen, backlog);
        }
    });
}

// True when a TIME_WAIT connection has local port `port` (ss's kernel-side filter, else
// /proc/net/tcp, where state 06 is TIME_WAIT).
bool time_wait_on(int port) {
    std::string command;
    if (std::system("command -v ss >/dev/null 2>&1") == 0)
        command =
            "ss -tanH state time-wait '( sport = :" + std::to_string(port) + " )' 2>/dev/null";
    else
        command = "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
    if (!pipe) return false;
    char hex_port[8];
    std::snprintf(hex_port, sizeof hex_port, ":%04X", port);
    bool found = false;
    char line[512];
    for (int lines = 0; lines < 1000000 && std::fgets(line, sizeof line, pipe.get()); ++lines) {
        std::istringstream fields(line);
        if (command.starts_with("ss")) {
            found = true;  // ss printed only matching sockets
        } else {
            std::string slot, local, remote, state;
            fields >> slot >> local >> remote >> state;
            if (state == "06" && local.ends_with(hex_port)) found = true;
        }
    }
    return found;
}

// This thread in a network namespace of its own for the scope (its loopback up), back in the
// original one afterwards; not active() without the privilege to make one. Its TIME_WAIT
// table is its own: on a busy machine the shared one can be full, and the kernel then skips
// TIME_WAIT altogether (TcpExtTCPTimeWaitOverflow).
class private_network_namespace {
public:
    private_network_namespace() {
        original_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (original_ < 0 || ::unshare(CLONE_NEWNET) != 0) return;
        active_ = true;
        int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ifreq ifr{};
        std::strcpy(ifr.ifr_name, "lo");
        if (s < 0 || ::ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
            ADD_FAILURE() << "SIOCGIFFLAGS lo: " << std::strerror(errno);
        ifr.ifr_flags |= IFF_UP;
        if (s >= 0 && ::ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
            ADD_FAILURE() << "SIOCSIFFLAGS lo: " << std::strerror(errno);
        if (s >= 0) ::close(s);
    }
    private_network_namespace(const private_network_namespace&) = delete;
    private_network_namespace& operator=(const private_network_namespace&) = delete;
    ~private_network_namespace() {
        if (active_ && ::setns(original_, CLONE_NEWNET) != 0) {
            std::fprintf(stderr, "setns back to the original network namespace: %s\n",
                         std::strerror(errno));
            std::abort();  // every later test would run in the wrong namespace
        }
        if (original_ >= 0) ::close(original_);
    }
    bool active() const { return active_; }

private:
    int original_ = -1;
    bool active_ = false;
};

TEST(ServerOptions, ReuseAddressAndTimeWait) {
    private_network_namespace own_namespace;
    bool skipped = false;
    rill::run([&] {
        // The server side closes first, so its end of the connection enters TIME_WAIT once the
        // client closes too. Without a namespace of our own, the shared TIME_WAIT table may
        // be full: try a few times, then give up.
        int port = 0;
        for (int attempt = 0; attempt < 5 && port == 0; ++attempt) {
            tcp_server_stream server(0);
            const int candidate = rill::tcp_server_socket_info(server).port_number;
            {
                rill_test::raw_client c(candidate);
                auto accepted = rill::read(server);
                ASSERT_TRUE(accepted);
                rill::close_stream(*accepted);
                EXPECT_EQ(rill_test::receive_all_in_task(c), "");
            }
            rill::close_stream(server);
            for (int i = 0; i < 3 && port == 0; ++i) {
                if (time_wait_on(candidate))
                    port = candidate;
                else
                    rill::task_sleep(std::chrono::milliseconds(10));
            }
        }
        if (port == 0) {
            skipped = true;
            return;
        }

        std::string message;
        EXPECT_EQ(os_error_code([&] { tcp_server_stream again(port, {.reuse_address = false}); },
                                &message),
                  EADDRINUSE);
        EXPECT_EQ(message, "tcp_server_stream: bind 127.0.0.1:" + std::to_string(port) +
                               ": Address already in use");

        tcp_server_stream again(port, {.reuse_address = true});
        EXPECT_EQ(rill::tcp_server_socket_info(again).port_number, port);
        // And it serves.
        round_trip(again, port);
    });
    if (skipped) {
        EXPECT_FALSE(own_namespace.active()) << "no TIME_WAIT even in a namespace of our own";
        GTEST_SKIP() << "no connection entered TIME_WAIT: the kernel's TIME_WAIT table is full "
                        "(other traffic)";
    }
}

int socket_flag(int fd, int level, int name) {
    int value = -1;
    socklen_t len = sizeof value;
    if (getsockopt(fd, level, name, &value, &len) != 0) return -1;
    return value != 0 ? 1 : 0;
}

TEST(ServerOptions, ClientKeepAliveAndCoalesce) {
    rill::run([] {
        tcp_server_stream server(0);
        const int port = rill::tcp_server_socket_info(server).port_number;

        tcp_client_stream plain(port);
        EXPECT_EQ(socket_flag(rill::detail::state_of(plain).io->native_handle(), SOL_SOCKET,
                              SO_KEEPALIVE),
                  0);
        EXPECT_EQ(socket_flag(rill::detail::state_of(plain).io->native_handle(), IPPROTO_TCP,
                              TCP_NODELAY),
                  0);  // coalesce: Nagle on

        tcp_client_stream tuned(port, {.keep_alive = true, .coalesce = false});
        EXPECT_EQ(socket_flag(rill::detail::state_of(tuned).io->native_handle(), SOL_SOCKET,
                              SO_KEEPALIVE),
                  1);
        EXPECT_EQ(socket_flag(rill::detail::state_of(tuned).io->native_handle(), IPPROTO_TCP,
                              TCP_NODELAY),
                  1);

        tcp_client_stream keep_alive_only(port, {.keep_alive = true});
        EXPECT_EQ(socket_flag(rill::detail::state_of(keep_alive_only).io->native_handle(),
                              SOL_SOCKET, SO_KEEPALIVE),
                  1);
        EXPECT_EQ(socket_flag(rill::detail::state_of(keep_alive_only).io->native_handle(),
                              IPPROTO_TCP, TCP_NODELAY),
                  0);

        // coalesce never affects buffering: nothing goes out before flush_writer.
        std::optional<tcp_client_stream> accepted[3];
        for (auto& a : accepted) {
            a = rill::read(server);
            ASSERT_TRUE(a);
        }
        const tcp_client_stream& tuned_peer = *accepted[1];
        ASSERT_EQ(rill::tcp_client_peer_socket_info(tuned_peer),
                  rill::tcp_client_self_socket_info(tuned));
        rill::write_chars(tuned, "x");
        rill::task_sleep(std::chrono::milliseconds(20));
        char byte;
        EXPECT_EQ(
            ::recv(rill::detail::state_of(tuned_peer).io->native_handle(), &byte, 1, MSG_DONTWAIT),
            -1);
        rill::flush_writer(tuned);
        EXPECT_EQ(rill::read_byte(*accepted[1]), 'x');
    });
}

TEST(ServerOptions, ConnectToAClosedPort) {
    const int port = rill_test::unused_loopback_port();
    rill::run([&] {
        std::string message;
        EXPECT_EQ(os_error_code([&] { tcp_client_stream c(port); }, &message), ECONNREFUSED);
        EXPECT_EQ(message, "tcp_client_stream: connect 127.0.0.1:" + std::to_string(port) +
                               ": Connection refused");
        EXPECT_EQ(os_error_code([&] { tcp_client_stream c("127.0.0.1", {.port_number = port}); },
                                &message),
                  ECONNREFUSED);
    });
}

}  // namespace
