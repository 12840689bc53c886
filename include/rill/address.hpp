// What tcp_server_stream and tcp_client_stream take first: a port, "INTF:PORT", "INTF", or a
// raw IPv4/IPv6 address. Parsing is strict and happens here; resolution of host names happens
// when a stream is opened.
#pragma once

#include <array>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace rill {

class address {
public:
    // A port alone: the interface is the loopback 127.0.0.1, as in the reference.
    address(int port);  // NOLINT(google-explicit-constructor): tcp_server_stream(2020)
    // "INTF:PORT", "INTF", "[V6]:PORT", "*:80", ":PORT", "". Throws argument_error for a
    // malformed string ("1.2.3.4.5:80", a port that is not 0..65535).
    address(std::string_view text);  // NOLINT(google-explicit-constructor)
    address(const char* text) : address(std::string_view(text)) {}  // NOLINT
    address(const std::string& text) : address(std::string_view(text)) {}  // NOLINT
    address(std::array<std::uint8_t, 4> ipv4);  // NOLINT
    address(std::array<std::uint16_t, 8> ipv6);  // NOLINT
    address(std::array<std::uint8_t, 16> ipv6);  // NOLINT

    // The interface or host part: "127.0.0.1", "::1", "localhost", "*" (every interface);
    // IPv6 literals without brackets.
    const std::string& host() const noexcept { return host_; }
    // The port given in the address itself, if any.
    std::optional<int> port() const noexcept { return port_; }
    // "host:port" as given (IPv6 in brackets), "host" when there is no port.
    std::string to_string() const;

private:
    std::string host_;
    std::optional<int> port_;
};

// One end of a socket: family (AF_INET or AF_INET6), numeric address and port.
struct socket_info {
    int family = 0;
    std::string address;
    int port_number = 0;
    // "127.0.0.1:2020" or "[::1]:2020".
    std::string to_string() const;
    friend bool operator==(const socket_info&, const socket_info&) = default;
};
std::ostream& operator<<(std::ostream& out, const socket_info& info);

}  // namespace rill
