// The transport of a TCP stream: its socket, moved by the worker's backend.
#pragma once

#include <memory>

#include "net/connection_limit.hpp"
#include "stream/transport.hpp"

namespace rill::detail {

// Takes ownership of `socket`, a connected non-blocking socket (with whatever its backend
// registered while connecting; byte_stream set for TCP).
void emplace_socket_transport(transport_slot& slot, io_handle socket) noexcept;
// The same for a client counted under its server's max_connections: the transport holds
// `connection` and gives it back when the socket closes. Throws bad_alloc (the socket is then
// not taken, and `connection` is given back).
void emplace_socket_transport(transport_slot& slot, io_handle socket, connection_slot connection);

}  // namespace rill::detail
