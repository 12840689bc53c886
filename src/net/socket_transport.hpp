// The transport of a TCP stream: its socket, moved by the worker's backend.
#pragma once

#include <memory>

#include "stream/transport.hpp"

namespace rill::detail {

// Takes ownership of `socket`, a connected non-blocking socket (with whatever its backend
// registered while connecting; byte_stream set for TCP).
std::unique_ptr<transport> make_socket_transport(io_handle socket);

}  // namespace rill::detail
