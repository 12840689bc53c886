#pragma once

// The server's address: loopback only, since a load generator is a flood by design.

#include <sys/socket.h>

#include <string>

namespace loadgen {

// HOST:PORT with a numeric port ("[::1]:2020", ":2020" for 127.0.0.1) to a socket address.
// Throws usage_error when it does not resolve or is not a loopback address.
sockaddr_storage resolve_loopback(const std::string& address);

}  // namespace loadgen
