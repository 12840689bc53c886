// The load generator over TLS (--tls): OpenSSL 3 as the client, TLS 1.3 only, on the same
// edge-triggered epoll set and the same check of every echoed byte as the plain path.
//
// OpenSSL never touches the socket: recv() fills a memory BIO it reads ciphertext from, and
// send() drains the one it writes ciphertext to. So a TLS connection costs the syscalls a plain
// one does (one recv per edge, a short recv means the socket is drained, one send for all the
// records a chunk of echoes prompts), and the client's share of the CPU stays comparable.
//
// The server's certificate is not verified: this is a loopback benchmark against the
// self-signed certificate bench/run.sh makes, not a client to trust with anything.

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "loadgen/clock.hpp"
#include "loadgen/load_generator.hpp"

#if LOADGEN_WITH_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

namespace loadgen {

#if LOADGEN_WITH_TLS

const bool tls_available = true;

struct tls_connection {
    SSL* ssl = nullptr;  // of the current connection; null between connections
    BIO* received = nullptr;  // ciphertext from the server, read by ssl (owned by ssl)
    BIO* to_send = nullptr;  // ciphertext ssl wrote for the server (owned by ssl)
    std::string unsent;  // ciphertext taken from to_send; unsent_sent bytes of it already sent
    std::size_t unsent_sent = 0;
    SSL_SESSION* saved = nullptr;  // --tls-resume: the newest session the slot received
};

namespace {

// The only TLS 1.3 cipher suite the client offers; the key exchange is OpenSSL's default
// (X25519 first), the signature whatever the server's certificate is (run.sh: ECDSA P-256).
constexpr const char* offered_cipher_suite = "TLS_AES_128_GCM_SHA256";

// "WHAT: OpenSSL's first queued error", and the queue emptied for the next failure.
std::string openssl_error(const std::string& what) {
    std::string text = what;
    if (unsigned long e = ERR_get_error(); e != 0) {
        char reason[256];
        ERR_error_string_n(e, reason, sizeof reason);
        text += ": ";
        text += reason;
    }
    ERR_clear_error();
    return text;
}

// --tls-resume: TLS 1.3 tickets arrive after the handshake, each a session; the newest one
// becomes the slot's, offered by its next connection.
int save_session(SSL* ssl, SSL_SESSION* session) {
    auto* t = static_cast<tls_connection*>(SSL_get_app_data(ssl));
    if (t->saved != nullptr) SSL_SESSION_free(t->saved);
    t->saved = session;
    return 1;  // the reference is kept
}

}  // namespace

void load_generator::create_tls_client() {
    SSL_CTX* context = SSL_CTX_new(TLS_client_method());
    if (context == nullptr) throw usage_error(openssl_error("--tls: SSL_CTX_new"));
    tls_client_ = context;
    SSL_CTX_set_min_proto_version(context, TLS1_3_VERSION);
    // One suite, so that every server runs the same cipher: Go's crypto/tls would pick it
    // anyway, OpenSSL servers follow the client's order (which starts with AES-256-GCM).
    if (SSL_CTX_set_ciphersuites(context, offered_cipher_suite) != 1)
        throw usage_error(openssl_error("--tls: SSL_CTX_set_ciphersuites"));
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nullptr);  // loopback, self-signed: see --help
    if (o_.tls_resume) {
        // Sessions go to the slots (save_session), not to OpenSSL's cache.
        SSL_CTX_set_session_cache_mode(context,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(context, save_session);
    } else {
        SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_OFF);
    }
    for (auto& c : table_) c.tls = new tls_connection;
}

void load_generator::destroy_tls_client() {
    for (auto& c : table_) {
        if (c.tls == nullptr) continue;
        close_tls(c);
        if (c.tls->saved != nullptr) SSL_SESSION_free(c.tls->saved);
        delete c.tls;
        c.tls = nullptr;
    }
    SSL_CTX_free(tls_client_);
    tls_client_ = nullptr;
}

void load_generator::start_tls(connection& c) {
    tls_connection& t = *c.tls;
    t.ssl = SSL_new(tls_client_);
    if (t.ssl == nullptr) return fail(c, false, openssl_error("SSL_new"));
    BIO* received = BIO_new(BIO_s_mem());
    BIO* to_send = BIO_new(BIO_s_mem());
    if (received == nullptr || to_send == nullptr) {
        BIO_free(received);
        BIO_free(to_send);
        return fail(c, false, openssl_error("BIO_new"));
    }
    // An empty BIO means "more to come" (SSL_ERROR_WANT_READ), not end of stream.
    BIO_set_mem_eof_return(received, -1);
    SSL_set_bio(t.ssl, received, to_send);
    t.received = received;
    t.to_send = to_send;
    SSL_set_app_data(t.ssl, &t);
    if (o_.tls_resume && t.saved != nullptr) SSL_set_session(t.ssl, t.saved);
    SSL_set_connect_state(t.ssl);
    t.unsent.clear();
    t.unsent_sent = 0;
    c.state = connection_state::handshaking;
    if (tls_consume(c)) tls_flush(c);  // the ClientHello
}

void load_generator::on_tls_event(connection& c, u32 events) {
    if (c.state == connection_state::connecting) {
        if (!connect_completed(c, events)) return;
        start_tls(c);
    }
    if (c.fd >= 0 && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        tls_read_available(c, events);
    if (c.fd >= 0 && (events & EPOLLOUT) && c.tls->unsent_sent < c.tls->unsent.size()) tls_flush(c);
}

void load_generator::tls_read_available(connection& c, u32 events) {
    for (int reads = 0;; ++reads) {
        if (reads == max_reads_per_event) {
            if (!c.still_readable) still_readable_.push_back(&c);
            c.still_readable = true;
            c.still_readable_events = events;
            return;
        }
        ssize_t n = recv(c.fd, tls_rx_buffer_.data(), tls_rx_buffer_.size(), 0);
        if (n > 0) {
            rx_ns_ = now_ns();
            if (BIO_write(c.tls->received, tls_rx_buffer_.data(), int(n)) != int(n))
                return fail(c, false, openssl_error("BIO_write"));
            if (!tls_consume(c)) return;
            tls_flush(c);  // handshake messages, or the lines queued for the echoes just checked
            if (c.fd < 0) return;
            if (std::size_t(n) < tls_rx_buffer_.size() && !(events & EPOLLRDHUP)) return;
        } else if (n == 0) {
            // A server ends a TLS stream with close_notify first (tls_consume handles it).
            return fail(c, false,
                        c.state == connection_state::handshaking
                            ? "server closed the connection during the TLS handshake"
                            : "server closed the connection without a TLS close_notify");
        } else if (errno == EAGAIN) {
            return;
        } else if (errno != EINTR) {
            return fail(c, false, std::string("recv: ") + std::strerror(errno));
        }
    }
}

bool load_generator::tls_consume(connection& c) {
    tls_connection& t = *c.tls;
    if (c.state == connection_state::handshaking) {
        int rc = SSL_do_handshake(t.ssl);
        if (rc != 1) {
            if (SSL_get_error(t.ssl, rc) == SSL_ERROR_WANT_READ) return true;  // flight queued
            fail(c, false, openssl_error("TLS handshake"));
            return false;
        }
        --connecting_;
        ++established_;
        c.state = connection_state::open;
        if (measuring_) {
            ++r_.tls_handshakes;
            if (SSL_session_reused(t.ssl)) ++r_.tls_resumed;
        }
        if (tls_suite_.empty()) {
            const char* group = SSL_group_to_name(t.ssl, SSL_get_negotiated_group(t.ssl));
            tls_suite_ = std::string(SSL_get_cipher_name(t.ssl)) + " " + (group ? group : "?");
        }
        queue_lines(c, lines_in_flight(c), now_ns());
    }
    for (;;) {
        int n = SSL_read(t.ssl, rx_buffer_.data(), int(rx_buffer_.size()));
        if (n > 0) {
            if (!check_echo(c, rx_buffer_.data(), std::size_t(n))) return false;
            continue;
        }
        int error = SSL_get_error(t.ssl, n);
        if (error == SSL_ERROR_WANT_READ) return true;
        if (error == SSL_ERROR_ZERO_RETURN) {
            // close_notify: answer it as a client that closes cleanly does, without waiting
            // (the server may have closed its socket already), then it is the end of stream.
            SSL_shutdown(t.ssl);
            char* data = nullptr;
            if (long pending = BIO_get_mem_data(t.to_send, &data); pending > 0)
                (void)send(c.fd, data, std::size_t(pending), MSG_NOSIGNAL | MSG_DONTWAIT);
            on_end_of_stream(c);
            return false;
        }
        fail(c, false, openssl_error("TLS receive"));
        return false;
    }
}

void load_generator::tls_flush(connection& c) {
    tls_connection& t = *c.tls;
    if (c.out_sent < c.out.size() && c.state != connection_state::handshaking) {
        // Into a memory BIO, SSL_write takes everything at once.
        if (SSL_write(t.ssl, c.out.data() + c.out_sent, int(c.out.size() - c.out_sent)) <= 0)
            return fail(c, false, openssl_error("TLS send"));
        c.out.clear();
        c.out_sent = 0;
    }
    // Behind whatever an earlier short send left, so that records leave in order.
    for (std::size_t pending; (pending = BIO_ctrl_pending(t.to_send)) > 0;) {
        std::size_t at = t.unsent.size();
        t.unsent.resize(at + pending);
        int n = BIO_read(t.to_send, t.unsent.data() + at, int(pending));
        t.unsent.resize(at + std::size_t(std::max(n, 0)));
        if (n <= 0) break;
    }
    while (t.unsent_sent < t.unsent.size()) {
        ssize_t n = send(c.fd, t.unsent.data() + t.unsent_sent, t.unsent.size() - t.unsent_sent,
                         MSG_NOSIGNAL);
        if (n > 0) {
            t.unsent_sent += std::size_t(n);
        } else if (errno == EAGAIN) {
            return;  // the EPOLLOUT edge brings us back
        } else if (errno != EINTR) {
            return fail(c, false, std::string("send: ") + std::strerror(errno));
        }
    }
    t.unsent.clear();
    t.unsent_sent = 0;
}

void load_generator::close_tls(connection& c) {
    tls_connection& t = *c.tls;
    if (t.ssl != nullptr) SSL_free(t.ssl);  // and its BIOs
    t.ssl = nullptr;
    t.received = t.to_send = nullptr;
    t.unsent.clear();
    t.unsent_sent = 0;
}

#else  // built without OpenSSL 3: parse_options refuses --tls, so none of these is reached

const bool tls_available = false;

struct tls_connection {};

void load_generator::create_tls_client() { throw usage_error("--tls: built without OpenSSL 3"); }
void load_generator::destroy_tls_client() {}
void load_generator::start_tls(connection&) {}
void load_generator::on_tls_event(connection&, u32) {}
void load_generator::tls_read_available(connection&, u32) {}
bool load_generator::tls_consume(connection&) { return false; }
void load_generator::tls_flush(connection&) {}
void load_generator::close_tls(connection&) {}

#endif

}  // namespace loadgen
