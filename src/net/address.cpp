// The text forms of addresses: parsing the address argument, and printing addresses and socket
// ends. Parsing is strict so that a typo ("1.2.3.4.5:80", "host:8o") fails here, with the value
// in the message, instead of later as a resolver error or, worse, as a DNS query for it.
#include <rill/address.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <ostream>

#include <rill/error.hpp>

#include "net/resolve.hpp"

namespace rill {
namespace {

constexpr int max_port_number = 65535;
// What a bare port, "" and ":PORT" mean: the loopback, as in the reference (a safe default).
constexpr const char* loopback_host = "127.0.0.1";

// Appended rather than `"\"" + std::string(text)`: g++ 12 at -O2 reports a false -Wrestrict
// overlap inside operator+(const char*, std::string&&).
std::string quoted(std::string_view text) {
    std::string q;
    q.reserve(text.size() + 2);
    q.append(1, '"').append(text).append(1, '"');
    return q;
}

[[noreturn]] void throw_bad_address(std::string_view text, const std::string& reason) {
    throw argument_error("invalid address " + quoted(text) + ": " + reason);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Only digits and dots: the user meant an IPv4 address, so it is not handed to the resolver
// as a host name (glibc would accept "1.2.3" or "2020" as IPv4 in inet_aton's legacy forms).
bool looks_like_ipv4(std::string_view host) {
    return std::all_of(host.begin(), host.end(), [](char c) { return is_digit(c) || c == '.'; });
}

bool is_numeric(int family, std::string_view host) {
    // inet_pton does not know IPv6 scopes ("fe80::1%eth0"); getaddrinfo resolves them later.
    std::string text(family == AF_INET6 ? host.substr(0, host.find('%')) : host);
    in6_addr parsed;  // large enough for either family
    return inet_pton(family, text.c_str(), &parsed) == 1;
}

std::string numeric_text(int family, const void* raw_address) {
    char text[INET6_ADDRSTRLEN];
    // Cannot fail: the family is AF_INET or AF_INET6 and the buffer fits both.
    inet_ntop(family, raw_address, text, sizeof text);
    return text;
}

std::string checked_host(std::string_view text, std::string_view host, bool bracketed) {
    if (host.empty() && !bracketed) return loopback_host;
    if (bracketed || host.find(':') != std::string_view::npos) {
        if (!is_numeric(AF_INET6, host))
            throw_bad_address(text, quoted(host) + " is not an IPv6 address");
    } else if (looks_like_ipv4(host) && !is_numeric(AF_INET, host)) {
        throw_bad_address(text, quoted(host) + " is not an IPv4 address");
    }
    return std::string(host);
}

int parse_port(std::string_view text, std::string_view port) {
    int value = 0;
    // All digits first: from_chars alone would accept a sign.
    bool digits = !port.empty() && std::all_of(port.begin(), port.end(), is_digit);
    if (!digits ||
        std::from_chars(port.data(), port.data() + port.size(), value).ec != std::errc{} ||
        value > max_port_number) {
        throw_bad_address(text, "port " + quoted(port) + " must be a number 0..65535");
    }
    return value;
}

// IPv6 groups are numbers; their bytes go to the wire most significant first.
std::array<std::uint8_t, 16> to_bytes(std::array<std::uint16_t, 8> groups) {
    std::array<std::uint8_t, 16> bytes{};
    for (std::size_t i = 0; i < groups.size(); ++i) {
        bytes[2 * i] = static_cast<std::uint8_t>(groups[i] >> 8);
        bytes[2 * i + 1] = static_cast<std::uint8_t>(groups[i] & 0xff);
    }
    return bytes;
}

}  // namespace

address::address(int port) : host_(loopback_host), port_(detail::checked_port_number(port)) {}

address::address(std::string_view text) {
    std::string_view host = text;
    std::optional<std::string_view> port;
    bool bracketed = text.starts_with('[');
    if (bracketed) {
        std::size_t close = text.find(']');
        if (close == std::string_view::npos)
            throw_bad_address(text, "no ']' after the IPv6 address");
        host = text.substr(1, close - 1);
        std::string_view rest = text.substr(close + 1);
        if (!rest.empty() && rest.front() != ':')
            throw_bad_address(text, "expected \":PORT\" after ']'");
        if (!rest.empty()) port = rest.substr(1);
    } else if (std::count(text.begin(), text.end(), ':') == 1) {
        std::size_t colon = text.find(':');
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    // Otherwise there is no port: either no colon at all, or several without brackets, which
    // only an IPv6 literal such as "::1" has.
    host_ = checked_host(text, host, bracketed);
    if (port) port_ = parse_port(text, *port);
}

address::address(std::array<std::uint8_t, 4> ipv4) : host_(numeric_text(AF_INET, ipv4.data())) {}

address::address(std::array<std::uint8_t, 16> ipv6) : host_(numeric_text(AF_INET6, ipv6.data())) {}

address::address(std::array<std::uint16_t, 8> ipv6) : address(to_bytes(ipv6)) {}

std::string address::to_string() const {
    return port_ ? detail::host_port_text(host_, *port_) : host_;
}

std::string socket_info::to_string() const { return detail::host_port_text(address, port_number); }

std::ostream& operator<<(std::ostream& out, const socket_info& info) {
    return out << info.to_string();
}

namespace detail {

int checked_port_number(int port) {
    if (port < 0 || port > max_port_number)
        throw argument_error("port_number must be 0..65535, got " + std::to_string(port));
    return port;
}

std::string host_port_text(std::string_view host, int port) {
    // Appended, as in quoted(): "[" + std::string(host) draws g++ 12's false -Wrestrict.
    const bool ipv6 = host.find(':') != std::string_view::npos;
    std::string text;
    if (ipv6) text.append(1, '[');
    text.append(host);
    if (ipv6) text.append(1, ']');
    return text.append(1, ':').append(std::to_string(port));
}

socket_info to_socket_info(const sockaddr* sa) {
    if (sa->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        return {AF_INET6, numeric_text(AF_INET6, &in6->sin6_addr), ntohs(in6->sin6_port)};
    }
    if (sa->sa_family == AF_INET) {
        const auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
        return {AF_INET, numeric_text(AF_INET, &in4->sin_addr), ntohs(in4->sin_port)};
    }
    return {sa->sa_family, {}, 0};  // not an IP socket: nothing numeric to show
}

std::string to_string(const endpoint& e) { return to_socket_info(e.get()).to_string(); }

}  // namespace detail
}  // namespace rill
