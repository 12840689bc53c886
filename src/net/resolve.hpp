// Turning an address (plus an optional port_number override) into socket addresses.
#pragma once

#include <netdb.h>
#include <sys/socket.h>

#include <atomic>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rill/address.hpp>

namespace rill::detail {

struct endpoint {
    sockaddr_storage storage{};
    socklen_t length = 0;
    const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
    int family() const noexcept { return storage.ss_family; }
};

enum class resolve_purpose { listen, connect };

// Resolve `where` for a server (listen: "*" is every interface, "" is the loopback) or a
// client (connect). `port_number` wins over a port in the address. Throws argument_error
// when no port is given at all or port_number is out of range, and os_error (resolver error,
// `operation` and the address in the message) for a name that does not resolve. A name that
// needs the resolver is looked up on a helper thread while the calling task waits (its
// worker runs other tasks; cancelling the task stops the wait); numeric hosts never wait.
// Results are ordered as getaddrinfo gives them; never empty.
std::vector<endpoint> resolve(const address& where, std::optional<int> port_number,
                              resolve_purpose purpose, std::string_view operation);

// The resolver call behind resolve: getaddrinfo. Tests swap in a slow one to show that a
// lookup does not hold up its worker.
using name_lookup_function = int (*)(const char* host, const char* service, const addrinfo* hints,
                                     addrinfo** results);
extern std::atomic<name_lookup_function> name_lookup;

// Returns `port` when it is 0..65535; otherwise throws argument_error
// "port_number must be 0..65535, got 70000".
int checked_port_number(int port);
// "host:port", with an IPv6 host in brackets: "[::1]:2020".
std::string host_port_text(std::string_view host, int port);

// The numeric form of a socket address.
socket_info to_socket_info(const sockaddr* sa);
// "127.0.0.1:2020" / "[::1]:2020" for error messages.
std::string to_string(const endpoint& e);

}  // namespace rill::detail
