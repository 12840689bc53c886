// TLS for TCP streams (Gambit's make-tls-context and the tls-context: option of open-tcp-server
// and open-tcp-client): a context made once from tls_options, given to server_options.tls or
// client_options.tls. Every stream operation, transcoder, timeout and limit then works
// unchanged over the encrypted connection.
//
//     rill::tls_context tls({.certificate_file = "cert.pem", .private_key_file = "key.pem"});
//     rill::tcp_server_stream server(2020, {.tls = tls});
//
// The handshake runs in the task that uses the connection, on its first read or write (never
// in the task calling read(server)), and is bounded by handshake_timeout. close_stream and
// close_writer send TLS's close_notify before the TCP FIN; a stream closed by an exception
// (call_with_stream's) or destroyed without close_stream does not, so its peer can tell a cut
// answer from a whole one. Over the reads, a peer that ends the TCP connection without
// close_notify (truncation) reads as end of stream when it ends between two TLS records, as
// Python's ssl does by default (many clients close that way); one that ends inside a record,
// or sends anything TLS cannot authenticate, gets a tls_error.
//
// As for every stream, one task uses a TLS stream at a time: its handshake and records go
// through one OpenSSL object, which two tasks must not drive at once.
//
// Errors: tls_error (a rill::error) naming the operation, the peer and OpenSSL's reason:
// "read_line: tls handshake with 127.0.0.1:40522: certificate verify failed: self-signed
// certificate". They end that connection only.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace rill {

enum class tls_version { tls1_2, tls1_3 };

// A handshake not finished within this long fails with tls_error (silent or dribbling peers).
inline constexpr std::chrono::seconds default_tls_handshake_timeout{10};

struct tls_options {
    // This side's certificate chain (PEM, leaf first) and its private key (PEM): required for a
    // server, optional for a client (client certificates). As files, or as PEM text (the text
    // wins when both are given).
    std::string certificate_file;
    std::string private_key_file;
    std::string certificate_pem;
    std::string private_key_pem;
    // The CAs a peer's certificate must chain to (a PEM file; a directory hashed by
    // `openssl rehash`). Neither: the system's store (Debian: /etc/ssl/certs).
    std::string ca_file;
    std::string ca_directory;
    // Verify the peer's certificate: by default a client verifies its server, and a server does
    // not ask for client certificates (true: it requires one). A client that turns it off must
    // say so: verify_peer = false, and nothing is checked.
    std::optional<bool> verify_peer;
    // A client's name for its server: sent as SNI and checked against the certificate. Empty:
    // the host of the address connected to ("localhost" for "localhost:2020").
    std::string server_name;
    // A client checks that the server's certificate names server_name (DNS name or IP address).
    bool check_host_name = true;
    // ALPN protocols in preference order ("h2", "http/1.1"); empty: no ALPN. A server picks its
    // first that the client offers; a client without a match from the server gets none.
    std::vector<std::string> alpn;
    // The oldest version accepted; TLS 1.3 is used whenever both sides have it.
    tls_version min_version = tls_version::tls1_2;
    // The newest version offered (client) or accepted (server); none: TLS 1.3. A peer limited
    // to versions outside [min_version, max_version] fails the handshake with tls_error.
    std::optional<tls_version> max_version;
    // Session resumption: a server issues tickets; a client offers the last session it got
    // from the same server (name and port) on its next connection, which then skips the
    // certificate exchange.
    bool session_resumption = true;
    // The handshake, from the connection's first read or write, fails after this long.
    std::chrono::milliseconds handshake_timeout = default_tls_handshake_timeout;
};

namespace detail {
struct tls_context_state;
}

// Settings and certificates for TLS streams, loaded once. Immutable after construction and
// shared by every stream and worker using it; copies share it. Throws tls_error naming the
// file and OpenSSL's reason (a certificate or key that cannot be read, a key that does not
// match the certificate), argument_error for contradictory options, and, in a build without
// OpenSSL (-DRILL_WITH_TLS=OFF), rill::error saying so.
class tls_context {
public:
    explicit tls_context(const tls_options& options = {});

    const tls_options& options() const noexcept;
    // For the library: the loaded state.
    const std::shared_ptr<detail::tls_context_state>& state() const noexcept { return state_; }

private:
    std::shared_ptr<detail::tls_context_state> state_;
};

// What a TLS stream negotiated.
struct tls_info {
    std::string version;  // "TLSv1.3"
    std::string cipher;  // "TLS_AES_128_GCM_SHA256"
    std::string alpn;  // the protocol chosen; empty: none
    std::string peer_subject;  // the peer certificate's subject ("CN=localhost"); empty: none
    bool resumed = false;  // the session was resumed (no certificate exchange)
};

// True when rill was built with TLS (RILL_WITH_TLS, the default).
bool tls_available() noexcept;

}  // namespace rill
