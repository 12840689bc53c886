#include "loadgen/loopback.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstring>

#include "loadgen/options.hpp"

namespace loadgen {

namespace {

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

}  // namespace

sockaddr_storage resolve_loopback(const std::string& address) {
    auto colon = address.rfind(':');
    if (colon == std::string::npos)
        throw usage_error("--address must be HOST:PORT, got " + address);
    std::string host = address.substr(0, colon), port = address.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
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

}  // namespace loadgen
