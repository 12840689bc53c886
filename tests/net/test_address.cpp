// The address argument: parsing, printing and resolution. Nothing here sends traffic: the one
// name that is not in /etc/hosts is looked up in a child process inside a new, empty network
// namespace, where the resolver has no route to any name server.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include <rill/address.hpp>
#include <rill/error.hpp>

#include "net/resolve.hpp"
#include "support/errors.hpp"

namespace {

using rill::address;
using rill::argument_error;
using rill::os_error;
using rill::socket_info;
using rill::detail::resolve;
using rill::detail::resolve_purpose;
using rill_test::message_of;
using testing::HasSubstr;

std::vector<std::string> resolved(const address& where, std::optional<int> port_number = {},
                                  resolve_purpose purpose = resolve_purpose::connect) {
    std::vector<std::string> texts;
    for (const auto& e : resolve(where, port_number, purpose, "test"))
        texts.push_back(rill::detail::to_string(e));
    return texts;
}

TEST(Address, PortAloneMeansLoopback) {
    address a(2020);
    EXPECT_EQ(a.host(), "127.0.0.1");
    EXPECT_EQ(a.port(), 2020);
    EXPECT_EQ(a.to_string(), "127.0.0.1:2020");
    EXPECT_EQ(address(0).port(), 0);
    EXPECT_EQ(address(65535).port(), 65535);
}

TEST(Address, PortOutOfRangeIsAnArgumentError) {
    EXPECT_EQ(message_of<argument_error>([] { address a(70000); }),
              "port_number must be 0..65535, got 70000");
    EXPECT_EQ(message_of<argument_error>([] { address a(-1); }),
              "port_number must be 0..65535, got -1");
}

TEST(Address, StringForms) {
    struct form {
        const char* text;
        const char* host;
        std::optional<int> port;
        const char* printed;
    };
    const form forms[] = {
        {"localhost:2020", "localhost", 2020, "localhost:2020"},
        {"localhost", "localhost", {}, "localhost"},
        {"0.0.0.0:80", "0.0.0.0", 80, "0.0.0.0:80"},
        {"*:80", "*", 80, "*:80"},
        {"*", "*", {}, "*"},
        {"", "127.0.0.1", {}, "127.0.0.1"},
        {":2020", "127.0.0.1", 2020, "127.0.0.1:2020"},
        {"[::1]:2020", "::1", 2020, "[::1]:2020"},
        {"[::]:80", "::", 80, "[::]:80"},
        {"[::1]", "::1", {}, "::1"},
        {"::1", "::1", {}, "::1"},
        {"2001:db8::1", "2001:db8::1", {}, "2001:db8::1"},
        {"fe80::1%lo", "fe80::1%lo", {}, "fe80::1%lo"},
        {"example.com:65535", "example.com", 65535, "example.com:65535"},
        {"10.0.0.1:0", "10.0.0.1", 0, "10.0.0.1:0"},
        {"host:007", "host", 7, "host:7"},
    };
    for (const auto& f : forms) {
        SCOPED_TRACE(f.text);
        address a(f.text);
        EXPECT_EQ(a.host(), f.host);
        EXPECT_EQ(a.port(), f.port);
        EXPECT_EQ(a.to_string(), f.printed);
    }
    EXPECT_EQ(address(std::string("localhost:2020")).port(), 2020);
}

TEST(Address, MalformedStringsAreArgumentErrors) {
    const char* malformed[] = {
        "1.2.3.4.5:80",  // dotted quad that is no IPv4 address
        "999.1.1.1",  //
        "2020",  // a bare number is not a host (pass the int for a port)
        "[::1",  // unclosed bracket
        "[::1]x",  //
        "[::1]:",  //
        "[]:80",  //
        "[localhost]:80",  // brackets are for IPv6 only
        "1:2:3:zz",  // several colons: must be an IPv6 literal
        "host:abc",  //
        "host:",  //
        "host:99999",  //
        "host:-1",  //
        "host:+80",  //
        "host:8 ",  //
    };
    for (const char* text : malformed) {
        SCOPED_TRACE(text);
        std::string message = message_of<argument_error>([&] { address a(text); });
        EXPECT_THAT(message, HasSubstr("address"));
        // std::string first: "\"" + std::string(text) draws g++ 12's false -Wrestrict at -O3.
        EXPECT_THAT(message, HasSubstr(std::string("\"") + text + "\""));
    }
    EXPECT_THAT(message_of<argument_error>([] { address a("host:abc"); }),
                HasSubstr("port \"abc\" must be a number 0..65535"));
    EXPECT_THAT(message_of<argument_error>([] { address a("1.2.3.4.5:80"); }),
                HasSubstr("\"1.2.3.4.5\" is not an IPv4 address"));
}

TEST(Address, Arrays) {
    EXPECT_EQ(address(std::array<std::uint8_t, 4>{127, 0, 0, 1}).host(), "127.0.0.1");
    EXPECT_EQ(address(std::array<std::uint8_t, 4>{192, 168, 1, 255}).host(), "192.168.1.255");
    EXPECT_EQ(address(std::array<std::uint16_t, 8>{0, 0, 0, 0, 0, 0, 0, 1}).host(), "::1");
    EXPECT_EQ(address(std::array<std::uint16_t, 8>{0x2001, 0xdb8, 0, 0, 0, 0, 0xff00, 0x42}).host(),
              "2001:db8::ff00:42");
    std::array<std::uint8_t, 16> loopback6{};
    loopback6[15] = 1;
    address a(loopback6);
    EXPECT_EQ(a.host(), "::1");
    EXPECT_EQ(a.port(), std::nullopt);
    EXPECT_EQ(resolved(a, 2020), std::vector<std::string>{"[::1]:2020"});
}

TEST(Resolve, NumericAddresses) {
    EXPECT_EQ(resolved("127.0.0.1:2020"), std::vector<std::string>{"127.0.0.1:2020"});
    EXPECT_EQ(resolved("[::1]:2020"), std::vector<std::string>{"[::1]:2020"});
    EXPECT_EQ(resolved(":0"), std::vector<std::string>{"127.0.0.1:0"});
    auto endpoints = resolve("[::1]:2020", {}, resolve_purpose::connect, "test");
    ASSERT_EQ(endpoints.size(), 1u);
    EXPECT_EQ(endpoints[0].family(), AF_INET6);
    EXPECT_EQ(endpoints[0].length, sizeof(sockaddr_in6));
}

TEST(Resolve, PortNumberWinsOverTheAddressPort) {
    EXPECT_EQ(resolved("127.0.0.1:2020", 3030), std::vector<std::string>{"127.0.0.1:3030"});
    EXPECT_EQ(resolved("::1", 80), std::vector<std::string>{"[::1]:80"});
    EXPECT_EQ(resolved(2020, 0), std::vector<std::string>{"127.0.0.1:0"});
}

TEST(Resolve, EveryInterface) {
    EXPECT_EQ(resolved("*:80", {}, resolve_purpose::listen),
              std::vector<std::string>{"0.0.0.0:80"});
    EXPECT_EQ(resolved("*", 80, resolve_purpose::listen), std::vector<std::string>{"0.0.0.0:80"});
    EXPECT_EQ(resolved("[::]:80", {}, resolve_purpose::listen),
              std::vector<std::string>{"[::]:80"});
    // A client cannot connect to every interface: "*" is the loopback there.
    EXPECT_EQ(resolved("*:80"), std::vector<std::string>{"127.0.0.1:80"});
}

TEST(Resolve, LocalhostIsALoopbackAddress) {
    auto endpoints = resolve("localhost:2020", {}, resolve_purpose::connect, "test");
    ASSERT_FALSE(endpoints.empty());
    for (const auto& e : endpoints) {
        socket_info info = rill::detail::to_socket_info(e.get());
        SCOPED_TRACE(info.to_string());
        EXPECT_EQ(info.port_number, 2020);
        EXPECT_TRUE(info.address.starts_with("127.") || info.address == "::1");
    }
    // getaddrinfo repeats addresses; resolve keeps each once.
    auto texts = resolved("localhost:2020");
    std::sort(texts.begin(), texts.end());
    EXPECT_EQ(std::adjacent_find(texts.begin(), texts.end()), texts.end());
}

TEST(Resolve, BadPortNumbers) {
    EXPECT_EQ(message_of<argument_error>([] { resolved("localhost", 70000); }),
              "port_number must be 0..65535, got 70000");
    EXPECT_EQ(message_of<argument_error>([] { resolved("localhost:80", -1); }),
              "port_number must be 0..65535, got -1");
}

TEST(Resolve, NoPortAtAll) {
    std::string message = message_of<argument_error>([] { resolved("localhost"); });
    EXPECT_THAT(message, HasSubstr("\"localhost\""));
    EXPECT_THAT(message, HasSubstr("no port"));
    EXPECT_THAT(message, HasSubstr("port_number"));
}

TEST(Resolve, UnknownHostIsAnOsError) {
    int pipe_fds[2];
    ASSERT_EQ(pipe(pipe_fds), 0);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        close(pipe_fds[0]);
        std::string report;
        if (unshare(CLONE_NEWNET) != 0) {
            report = "skip: unshare(CLONE_NEWNET) failed (not root?)";
        } else {
            try {
                resolve("nosuchhost.invalid:80", {}, resolve_purpose::connect, "tcp_client_stream");
                report = "resolved";
            } catch (const os_error& e) {
                report = std::string(e.what()) + "\n" + e.code().message() + "\n" +
                         (e.code() ? "1" : "0");
            } catch (const std::exception& e) {
                report = std::string("other exception: ") + e.what();
            }
        }
        [[maybe_unused]] ssize_t n = write(pipe_fds[1], report.data(), report.size());
        _exit(0);
    }
    close(pipe_fds[1]);
    std::string report;
    char buf[512];
    for (ssize_t n; (n = read(pipe_fds[0], buf, sizeof buf)) > 0;)
        report.append(buf, static_cast<std::size_t>(n));
    close(pipe_fds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    if (report.rfind("skip:", 0) == 0) GTEST_SKIP() << report;
    std::istringstream lines(report);
    std::string what, code_message, has_code;
    std::getline(lines, what);
    std::getline(lines, code_message);
    std::getline(lines, has_code);
    EXPECT_THAT(what, HasSubstr("tcp_client_stream: resolve nosuchhost.invalid:80: ")) << report;
    EXPECT_EQ(has_code, "1") << report;
    EXPECT_THAT(what, HasSubstr(code_message)) << report;
}

TEST(SocketInfo, FromSocketAddresses) {
    sockaddr_in in4{};
    in4.sin_family = AF_INET;
    in4.sin_port = htons(2020);
    ASSERT_EQ(inet_pton(AF_INET, "127.0.0.1", &in4.sin_addr), 1);
    socket_info info4 = rill::detail::to_socket_info(reinterpret_cast<const sockaddr*>(&in4));
    EXPECT_EQ(info4, (socket_info{AF_INET, "127.0.0.1", 2020}));
    EXPECT_EQ(info4.to_string(), "127.0.0.1:2020");

    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(2020);
    in6.sin6_addr = in6addr_loopback;
    socket_info info6 = rill::detail::to_socket_info(reinterpret_cast<const sockaddr*>(&in6));
    EXPECT_EQ(info6, (socket_info{AF_INET6, "::1", 2020}));
    std::ostringstream out;
    out << info6;
    EXPECT_EQ(out.str(), "[::1]:2020");

    // An IPv4-mapped IPv6 address stays as the kernel gave it.
    ASSERT_EQ(inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr), 1);
    EXPECT_EQ(rill::detail::to_socket_info(reinterpret_cast<const sockaddr*>(&in6)).to_string(),
              "[::ffff:127.0.0.1]:2020");
}

}  // namespace
