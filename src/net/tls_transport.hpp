// TLS as a stream's transport: OpenSSL over the socket transport, each a transport of its own.
// The stream's buffers hold plaintext; the TLS transport holds the ciphertext on its way and
// leaves how it moves to the socket transport below, and so to the worker's backend.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <rill/tcp.hpp>
#include <rill/tls.hpp>

#include "net/connection_limit.hpp"
#include "stream/transport.hpp"

namespace rill::detail {

enum class tls_role { server, client };

// Makes `slot`'s transport a TLS one over `socket` (taken, as emplace_socket_transport takes
// it, with `connection`). `server_name`: a client's name for its server (SNI, host-name check),
// from the address when the context names none; `port` keys the client's session cache.
// Takes the socket in every case: when it throws (bad_alloc; argument_error for a server_name
// that cannot be checked) the socket is closed and `connection` given back.
void emplace_tls_transport(transport_slot& slot, io_handle socket, connection_slot connection,
                           const tls_context& context, tls_role role,
                           const std::string& server_name, int port);

// The same over any transport (an in-memory pair in tests and fuzzing): a TLS transport that
// owns `lower`. Throws bad_alloc or argument_error as above (`lower` is then destroyed).
std::unique_ptr<transport> make_tls_transport(std::unique_ptr<transport> lower,
                                              const tls_context& context, tls_role role,
                                              const std::string& server_name = {}, int port = 0);

// Checks what a server needs from its context (a certificate and a key): argument_error
// naming the option otherwise. Called when the server is made, not at its first client.
void check_server_tls_context(const tls_context& context);

// The negotiated parameters of a TLS transport, completing its handshake first; empty for a
// transport that is not TLS. Throws tls_error, task_cancelled, timeout_error as a read would.
std::optional<tls_info> tls_info_of(transport& t, const std::optional<time_point>& deadline,
                                    const char* operation);

}  // namespace rill::detail
