// TCP server and client streams (Slogan's tcp_server_stream and tcp_client_stream, on
// Gambit's open-tcp-server and open-tcp-client).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>

#include <rill/address.hpp>
#include <rill/stream.hpp>
#include <rill/tls.hpp>
#include <rill/transcoder.hpp>

namespace rill {

inline constexpr int default_backlog = 128;

struct server_options {
    std::optional<int> port_number;  // wins over a port in the address
    int backlog = default_backlog;  // positive; passed to listen()
    bool reuse_address = true;  // SO_REUSEADDR; false + a busy port => os_error
    bool reuse_port = false;  // SO_REUSEPORT: several servers share the port
    // Hand out a connection once its first bytes have arrived (TCP_DEFER_ACCEPT), or once this
    // long has passed without any; 0 (the default): at once. For protocols where the client
    // speaks first, the server then wakes once per connection instead of twice (accept, then
    // the request): 10-25% more connections/s on the churn benchmark. A server that greets its
    // clients first must leave it at 0: they would wait this long (rounded up to the kernel's
    // SYN-ACK retransmission times) before being accepted.
    std::chrono::seconds defer_accept{0};
    std::optional<rill::transcoder> transcoder;  // for every client stream handed out
    stream_options
        stream;  // for every client stream handed out: line cap, reader and writer timeouts
    // Open clients of this server at most; 0 (the default): no cap. At the cap read(server)
    // stops accepting, nothing running meanwhile (new clients wait in the kernel's listen
    // backlog; once that is full, Linux leaves further handshakes unanswered and their clients
    // retry), and resumes when one of them is closed, by any task on any worker. Each client
    // handed out counts until its stream is closed or destroyed. Pair it with a
    // reader_timeout, or idle clients keep the server at its cap.
    std::size_t max_connections = 0;
    // Serve TLS (include/rill/tls.hpp): every client stream handed out is encrypted; its
    // handshake runs in the task that reads or writes it first. The context needs a
    // certificate and key (argument_error otherwise).
    std::optional<tls_context> tls;
};

struct client_options {
    std::optional<int> port_number;  // wins over a port in the address
    bool keep_alive = false;  // SO_KEEPALIVE
    bool coalesce = true;  // true: Nagle on; false: TCP_NODELAY. Never affects buffering
    std::optional<rill::transcoder> transcoder;
    stream_options stream;  // line cap, reader and writer timeouts
    // Connect over TLS (include/rill/tls.hpp): the server's certificate is verified and must
    // name the host connected to (or tls_options::server_name), unless the context turns
    // that off. The handshake runs on the stream's first read or write.
    std::optional<tls_context> tls;
};

class tcp_server_stream;

// A connection: what tcp_client_stream(...) opens and what read(server) returns.
class tcp_client_stream : public stream {
public:
    // Connects, blocking the calling task (so: inside run). Throws argument_error for a bad
    // address or option, os_error naming the address for resolution or connection failures.
    explicit tcp_client_stream(address where, const client_options& options = {});
    tcp_client_stream() noexcept = default;  // a closed stream
    tcp_client_stream(tcp_client_stream&&) noexcept = default;
    tcp_client_stream& operator=(tcp_client_stream&&) noexcept = default;

private:
    friend std::optional<tcp_client_stream> read(tcp_server_stream& server);
    explicit tcp_client_stream(std::unique_ptr<detail::stream_state> state) noexcept;
};

namespace detail {
struct server_state;
// The state behind a server stream (src/net/tcp.cpp); throws error for a moved-from one.
server_state& state_of(const tcp_server_stream& s);
}  // namespace detail

class tcp_server_stream {
public:
    // Binds and listens. Throws argument_error (bad address, port_number, backlog) or
    // os_error ("tcp_server_stream: bind 127.0.0.1:2020: Address already in use").
    explicit tcp_server_stream(address where, server_options options = {});
    tcp_server_stream(tcp_server_stream&&) noexcept;
    tcp_server_stream& operator=(tcp_server_stream&&) noexcept;
    ~tcp_server_stream();

    bool is_open() const noexcept;

private:
    friend detail::server_state& detail::state_of(const tcp_server_stream& s);
    std::unique_ptr<detail::server_state> state_;
};

// The next client, blocking this task; empty once the server is closed (also when it is
// closed from another task while this one waits, at max_connections too).
//
// What ends it, and what it rides out:
// - the server closed (close_stream, or its socket shut down or closed from outside: EBADF,
//   EINVAL, ENOTSOCK): returns empty;
// - the task cancelled (run's main returned): throws task_cancelled;
// - a pending connection that failed before it was accepted (ECONNABORTED, EPROTO, EPERM and
//   the network errors accept(2) passes on): skipped, the next one is accepted;
// - every other error (out of descriptors or kernel memory: EMFILE, ENFILE, ENOBUFS, ENOMEM;
//   and any error it does not know): it waits, backing off from 1 ms to 100 ms, and tries
//   again; the clients already accepted keep being served, the pending ones stay in the
//   backlog. Counted in runtime_counters::accept_errors_retried;
// - no memory for the new client's stream: that connection is closed at once and the next
//   one accepted (runtime_counters::clients_dropped).
// It never throws os_error for an accept that failed.
std::optional<tcp_client_stream> read(tcp_server_stream& server);
// Closes the listening socket and wakes a task blocked in read(server). Harmless twice.
void close_stream(tcp_server_stream& server);

socket_info tcp_server_socket_info(const tcp_server_stream& server);
socket_info tcp_client_self_socket_info(const tcp_client_stream& client);
socket_info tcp_client_peer_socket_info(const tcp_client_stream& client);
// What a TLS client stream negotiated (version, cipher, ALPN, the peer certificate's
// subject), finishing the handshake first if it has not run yet (so it blocks, and throws
// tls_error as a read would); empty for a stream without TLS.
std::optional<tls_info> tcp_client_tls_info(tcp_client_stream& client);

}  // namespace rill
