// The transport of a TCP stream: its socket, moved by the worker's backend.
#pragma once

#include <memory>

#include "stream/transport.hpp"

namespace rill::detail {

// Takes ownership of `socket`, a connected non-blocking socket (with whatever its backend
// registered while connecting; byte_stream set for TCP).
void emplace_socket_transport(transport_slot& slot, io_handle socket) noexcept;

}  // namespace rill::detail
