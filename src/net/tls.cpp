// TLS over OpenSSL 3: the context (certificates, verification, ALPN, session tickets and the
// client's session cache) and the transport. OpenSSL never touches the socket: it reads
// ciphertext from, and writes it to, two buffers of the transport through a BIO of our own,
// and the transport moves them through the socket transport below it. So a TLS stream waits
// the way every stream does (the task parks, the worker's backend moves the bytes), and no
// OpenSSL call ever blocks or switches tasks, which keeps its per-thread error queue ours
// from the call to the reading of its result.
#include "net/tls_transport.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include <rill/error.hpp>

#include "net/socket_transport.hpp"
#include "runtime/worker_stats.hpp"

#if RILL_WITH_TLS
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#endif

namespace rill {
namespace detail {

#if RILL_WITH_TLS

namespace {

// The most plaintext one send encrypts before the ciphertext goes out: four full records, so
// a large write holds about this much ciphertext at a time, not a copy of all of it.
constexpr std::size_t tls_send_chunk_bytes = 64 * 1024;

// OpenSSL's reason for the error at the head of this thread's queue (then cleared), with the
// certificate check's verdict when that is what failed: "certificate verify failed:
// self-signed certificate".
std::string openssl_reason(const SSL* ssl) {
    const unsigned long e = ERR_peek_error();
    std::string reason;
    if (e == 0) {
        reason = "unexpected end of the TLS conversation";
    } else {
        const char* r = ERR_reason_error_string(e);
        reason = r ? r : "error " + std::to_string(ERR_GET_REASON(e));
        if (ssl && ERR_GET_LIB(e) == ERR_LIB_SSL &&
            ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
            const long verdict = SSL_get_verify_result(ssl);
            if (verdict != X509_V_OK)
                reason += std::string(": ") + X509_verify_cert_error_string(verdict);
        }
    }
    ERR_clear_error();
    return reason;
}

// Before an SSL call whose failure SSL_get_error reads: the queue must hold nothing of an
// earlier failure. Every failure here clears what it left (openssl_reason), so the queue is
// nearly always empty already; looking is cheaper than ERR_clear_error, which wipes all of its
// slots (7% of the instructions of a TLS request in rill echo, by bench/callgrind.sh --tls).
void clear_stale_errors() noexcept {
    if (ERR_peek_error() != 0) ERR_clear_error();
}

struct ssl_ctx_free {
    void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
};
struct bio_free {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct x509_free {
    void operator()(X509* x) const noexcept { X509_free(x); }
};
struct pkey_free {
    void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};

bool is_ip_literal(const std::string& name) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, name.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

}  // namespace

struct tls_context_state {
    tls_options options;
    std::unique_ptr<SSL_CTX, ssl_ctx_free> ctx;
    bool has_certificate = false;
    std::string alpn_wire;  // the ALPN list in its wire form (length-prefixed names)

    // A client's last session per server ("name:port"), offered on its next connection.
    std::mutex sessions_mutex;
    std::map<std::string, SSL_SESSION*> sessions;

    ~tls_context_state() {
        for (auto& [key, session] : sessions) SSL_SESSION_free(session);
    }

    void remember_session(const std::string& key, SSL_SESSION* session) {
        std::lock_guard lock(sessions_mutex);
        SSL_SESSION*& slot = sessions[key];
        if (slot) SSL_SESSION_free(slot);
        slot = session;  // the reference the new-session callback handed over
    }
    // A new reference to the session for `key`, or null.
    SSL_SESSION* session_for(const std::string& key) {
        std::lock_guard lock(sessions_mutex);
        const auto it = sessions.find(key);
        if (it == sessions.end()) return nullptr;
        SSL_SESSION_up_ref(it->second);
        return it->second;
    }
};

namespace {

// The index of the transport in each SSL's ex_data (for the client's new-session callback).
int transport_ex_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

[[noreturn]] void throw_context_error(const std::string& what) {
    throw tls_error("tls_context: " + what + ": " + openssl_reason(nullptr));
}

void load_certificate_and_key(SSL_CTX* ctx, const tls_options& o) {
    if (!o.certificate_pem.empty()) {
        std::unique_ptr<BIO, bio_free> bio(
            BIO_new_mem_buf(o.certificate_pem.data(), static_cast<int>(o.certificate_pem.size())));
        std::unique_ptr<X509, x509_free> leaf(
            bio ? PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr, nullptr) : nullptr);
        if (!leaf || SSL_CTX_use_certificate(ctx, leaf.get()) != 1)
            throw_context_error("certificate_pem");
        SSL_CTX_clear_chain_certs(ctx);
        while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
            if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
                X509_free(ca);
                throw_context_error("certificate_pem chain");
            }
        }
        ERR_clear_error();  // the end of the PEM text
    } else if (!o.certificate_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o.certificate_file.c_str()) != 1)
            throw_context_error("certificate_file " + o.certificate_file);
    }
    if (!o.private_key_pem.empty()) {
        std::unique_ptr<BIO, bio_free> bio(
            BIO_new_mem_buf(o.private_key_pem.data(), static_cast<int>(o.private_key_pem.size())));
        std::unique_ptr<EVP_PKEY, pkey_free> key(
            bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
        if (!key || SSL_CTX_use_PrivateKey(ctx, key.get()) != 1)
            throw_context_error("private_key_pem");
    } else if (!o.private_key_file.empty()) {
        if (SSL_CTX_use_PrivateKey_file(ctx, o.private_key_file.c_str(), SSL_FILETYPE_PEM) != 1)
            throw_context_error("private_key_file " + o.private_key_file);
    }
    const bool certificate = !o.certificate_pem.empty() || !o.certificate_file.empty();
    const bool key = !o.private_key_pem.empty() || !o.private_key_file.empty();
    if (certificate != key)
        throw argument_error(certificate ? "tls_context: a certificate needs its private key "
                                           "(private_key_file or private_key_pem)"
                                         : "tls_context: a private key needs its certificate "
                                           "(certificate_file or certificate_pem)");
    if (certificate && SSL_CTX_check_private_key(ctx) != 1)
        throw_context_error("the private key does not match the certificate");
}

// A server's ALPN choice: its first protocol the client offers; none in common: no ALPN.
int select_alpn(SSL*, const unsigned char** out, unsigned char* out_length,
                const unsigned char* offered, unsigned offered_length, void* arg) {
    const auto* st = static_cast<const tls_context_state*>(arg);
    const auto* ours = reinterpret_cast<const unsigned char*>(st->alpn_wire.data());
    const auto ours_length = static_cast<unsigned>(st->alpn_wire.size());
    for (unsigned i = 0; i < ours_length; i += 1u + ours[i]) {
        for (unsigned j = 0; j < offered_length; j += 1u + offered[j]) {
            if (ours[i] == offered[j] && std::memcmp(ours + i + 1, offered + j + 1, ours[i]) == 0) {
                *out = offered + j + 1;
                *out_length = offered[j];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

int remember_new_session(SSL* ssl, SSL_SESSION* session);

}  // namespace

#endif  // RILL_WITH_TLS

}  // namespace detail

bool tls_available() noexcept { return RILL_WITH_TLS != 0; }

#if RILL_WITH_TLS

tls_context::tls_context(const tls_options& o)
    : state_(std::make_shared<detail::tls_context_state>()) {
    using namespace detail;
    if (o.handshake_timeout.count() <= 0)
        throw argument_error("tls_context: handshake_timeout must be positive, got " +
                             std::to_string(o.handshake_timeout.count()) + " ms");
    for (const std::string& p : o.alpn)
        if (p.empty() || p.size() > 255)
            throw argument_error("tls_context: an alpn protocol must be 1..255 bytes, got \"" + p +
                                 "\"");
    if (o.max_version && *o.max_version < o.min_version)
        throw argument_error("tls_context: max_version TLS 1.2 is below min_version TLS 1.3");
    tls_context_state& st = *state_;
    st.options = o;
    ERR_clear_error();
    st.ctx.reset(SSL_CTX_new(TLS_method()));
    if (!st.ctx) throw_context_error("SSL_CTX_new");
    SSL_CTX* ctx = st.ctx.get();
    SSL_CTX_set_min_proto_version(ctx, o.min_version == tls_version::tls1_3 ? TLS1_3_VERSION
                                                                            : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, o.max_version == tls_version::tls1_2 ? TLS1_2_VERSION
                                                                            : TLS1_3_VERSION);
    // OpenSSL's read and write buffers go back whenever they are empty: an idle connection
    // holds only the SSL object itself.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    load_certificate_and_key(ctx, o);
    st.has_certificate = !o.certificate_pem.empty() || !o.certificate_file.empty();
    if (!o.ca_file.empty() || !o.ca_directory.empty()) {
        if (SSL_CTX_load_verify_locations(ctx, o.ca_file.empty() ? nullptr : o.ca_file.c_str(),
                                          o.ca_directory.empty() ? nullptr
                                                                 : o.ca_directory.c_str()) != 1)
            throw_context_error("ca_file " + o.ca_file + o.ca_directory);
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        throw_context_error("the system's CA store");
    }
    if (st.has_certificate) {
        // The chain this side sends is completed once, here, from what was loaded and the
        // store; without this OpenSSL would search the store (a directory of files for the
        // system's) at every full handshake.
        SSL_CTX_build_cert_chain(ctx,
                                 SSL_BUILD_CHAIN_FLAG_NO_ROOT | SSL_BUILD_CHAIN_FLAG_IGNORE_ERROR);
        ERR_clear_error();
        SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
    }
    for (const std::string& p : o.alpn) {
        st.alpn_wire.push_back(static_cast<char>(p.size()));
        st.alpn_wire += p;
    }
    if (!st.alpn_wire.empty()) SSL_CTX_set_alpn_select_cb(ctx, select_alpn, state_.get());
    // Server side: tickets (stateless resumption), or none at all.
    static const unsigned char session_context[] = "rill";
    SSL_CTX_set_session_id_context(ctx, session_context, sizeof session_context - 1);
    if (o.session_resumption) {
        // Client side: the sessions the server hands out, kept per server by the context.
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_CLIENT |
                                                SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, remember_new_session);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    transport_ex_index();  // made once, before any handshake
}

#else

tls_context::tls_context(const tls_options&) {
    throw error("tls_context: rill was built without TLS (-DRILL_WITH_TLS=OFF); rebuild it with "
                "OpenSSL 3 (Debian: libssl-dev) to use server_options.tls or client_options.tls");
}

#endif

const tls_options& tls_context::options() const noexcept {
#if RILL_WITH_TLS
    return state_->options;
#else
    static const tls_options none;
    return none;
#endif
}

namespace detail {

#if RILL_WITH_TLS

namespace {

class tls_transport;
int bio_write(BIO* b, const char* p, int n);
int bio_read(BIO* b, char* p, int n);
long bio_ctrl(BIO* b, int command, long, void*);

// The BIO between OpenSSL and a transport's two ciphertext buffers (made once per process).
BIO_METHOD* transport_bio_method() {
    static BIO_METHOD* const method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "rill transport");
        BIO_meth_set_write(m, bio_write);
        BIO_meth_set_read(m, bio_read);
        BIO_meth_set_ctrl(m, bio_ctrl);
        return m;
    }();
    return method;
}

class tls_transport final : public transport {
public:
    tls_transport(io_handle socket, connection_slot connection,
                  std::shared_ptr<tls_context_state> context, tls_role role,
                  const std::string& server_name, int port, bool& socket_taken)
        : context_(std::move(context)), role_(role) {
        // The socket is ours from here on, whatever fails next.
        emplace_socket_transport(lower_, socket, std::move(connection));
        socket_taken = true;
        start(server_name, port);
    }
    tls_transport(std::unique_ptr<transport> lower, std::shared_ptr<tls_context_state> context,
                  tls_role role, const std::string& server_name, int port)
        : context_(std::move(context)), role_(role) {
        lower_.adopt(std::move(lower));
        start(server_name, port);
    }
    ~tls_transport() override { SSL_free(ssl_); }

private:
    void start(const std::string& server_name, int port) {
        // Kept for messages: a peer that alerts and closes at once is gone by the time its
        // failure is told (getpeername then fails).
        peer_ = lower_->peer_name();
        ERR_clear_error();
        ssl_ = SSL_new(context_->ctx.get());
        BIO* bio = ssl_ ? BIO_new(transport_bio_method()) : nullptr;
        if (!bio) {
            SSL_free(ssl_);
            ERR_clear_error();
            throw std::bad_alloc();  // OpenSSL fails only for memory here
        }
        BIO_set_data(bio, this);
        BIO_set_init(bio, 1);
        SSL_set_bio(ssl_, bio, bio);
        SSL_set_ex_data(ssl_, transport_ex_index(), this);
        const tls_options& o = context_->options;
        if (role_ == tls_role::server) {
            SSL_set_accept_state(ssl_);
            if (o.verify_peer.value_or(false))
                SSL_set_verify(ssl_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
            return;
        }
        SSL_set_connect_state(ssl_);
        const std::string& name = o.server_name.empty() ? server_name : o.server_name;
        const bool ip = is_ip_literal(name);
        if (!name.empty() && !ip) SSL_set_tlsext_host_name(ssl_, name.c_str());
        if (o.verify_peer.value_or(true)) {
            SSL_set_verify(ssl_, SSL_VERIFY_PEER, nullptr);
            if (o.check_host_name && !name.empty()) {
                X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
                X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                if (ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) != 1
                       : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size()) != 1) {
                    SSL_free(ssl_);
                    throw argument_error("tls: server_name \"" + name +
                                         "\" cannot be checked against a certificate");
                }
            }
        }
        if (!context_->alpn_wire.empty())
            SSL_set_alpn_protos(ssl_,
                                reinterpret_cast<const unsigned char*>(context_->alpn_wire.data()),
                                static_cast<unsigned>(context_->alpn_wire.size()));
        if (o.session_resumption) {
            session_key_ = name + ":" + std::to_string(port);
            if (SSL_SESSION* session = context_->session_for(session_key_)) {
                SSL_set_session(ssl_, session);
                SSL_SESSION_free(session);
            }
        }
    }

public:
    long receive(byte_buffer& in, const std::optional<time_point>& deadline,
                 pending_output* flushed) override {
        if (!ssl_) return -EBADF;
        if (failed_) return transport_protocol_failure;
        if (flushed && !flushed->bytes.empty()) send_flushed(*flushed);
        if (const long r = handshake(deadline); r < 0) return r;
        // Nothing decrypted or to decrypt: wait for ciphertext first, holding no buffer.
        bool wait_first = cipher_in_.empty() && !SSL_has_pending(ssl_);
        for (;;) {
            if (wait_first) {
                if (in.empty()) in.release();
                if (const long r = send_pending(deadline, false); r < 0) return r;
                const long r = lower_->receive(cipher_in_, deadline, nullptr);
                if (r == 0) return end_of_ciphertext("tls receive from");
                if (r < 0) return r;
            }
            char* p = room_for_receive(in);
            std::size_t got = 0;
            clear_stale_errors();
            const int ok = SSL_read_ex(ssl_, p, in.tail_room(), &got);
            if (ok == 1) {
                in.commit(got);
                return static_cast<long>(got);
            }
            const int e = SSL_get_error(ssl_, ok);
            if (e == SSL_ERROR_ZERO_RETURN) return 0;  // close_notify
            if (e != SSL_ERROR_WANT_READ) return fail("tls receive from", openssl_reason(ssl_));
            // A record not whole yet (or a post-handshake message, a session ticket): more.
            wait_first = true;
        }
    }

    // Encrypts up to tls_send_chunk_bytes and sends the records. What an earlier send left
    // unsent (it timed out) goes first; a timeout then reports that nothing of this call was
    // taken, and a timeout after the encryption reports the bytes as taken (their records
    // leave first on the next call), so no byte is sent twice or lost.
    long send(const char* p, std::size_t n, const std::optional<time_point>& deadline,
              bool closing) override {
        if (!ssl_) return -EBADF;
        if (failed_) return transport_protocol_failure;
        if (const long r = handshake(deadline); r < 0) return r;
        if (const long r = send_pending(deadline, false); r < 0) return r;
        if (n == 0) return 0;
        const std::size_t chunk = std::min(n, tls_send_chunk_bytes);
        std::size_t written = 0;
        clear_stale_errors();
        if (SSL_write_ex(ssl_, p, chunk, &written) != 1)
            return fail("tls send to", openssl_reason(ssl_));
        const long r = send_pending(deadline, closing && written == n);
        if (r < 0 && r != -ETIMEDOUT) return r;
        return static_cast<long>(written);
    }

    long send_without_waiting(const char* p, std::size_t n) noexcept override {
        if (!ssl_ || failed_ || !established_) return -EAGAIN;
        // Records already made go first, whole: a record cut short breaks the stream.
        if (send_pending_without_waiting() < 0 || !cipher_out_.empty()) return -EAGAIN;
        std::size_t written = 0;
        clear_stale_errors();
        if (SSL_write_ex(ssl_, p, std::min(n, tls_send_chunk_bytes), &written) != 1) {
            ERR_clear_error();
            return -EAGAIN;
        }
        send_pending_without_waiting();  // what does not go now goes with the next call
        return static_cast<long>(written);
    }

    long finish_output(const std::optional<time_point>& deadline) override {
        if (!ssl_ || failed_ || !established_ || (SSL_get_shutdown(ssl_) & SSL_SENT_SHUTDOWN))
            return 0;
        SSL_shutdown(ssl_);  // writes close_notify; the peer's answer is not waited for
        ERR_clear_error();  // its result is not read: whatever it queued goes
        return send_pending(deadline, true);
    }

    void shutdown_writer() noexcept override {
        // After finish_output (close_writer, close_stream): close_notify has gone.
        send_pending_without_waiting();
        lower_->shutdown_writer();
    }
    // The peer's close_notify never comes: the ciphertext's end between records reads as
    // end of stream (inside one, as the truncation it is).
    void stop_input() noexcept override { lower_->stop_input(); }
    void shutdown_reader() noexcept override {
        lower_->shutdown_reader();
        reader_shut_ = true;
    }
    bool input_pending() const noexcept override {
        if (!ssl_ || reader_shut_) return false;
        return !cipher_in_.empty() || SSL_has_pending(ssl_) || lower_->input_pending();
    }
    void close() noexcept override {
        if (!ssl_) return;
        SSL_free(ssl_);
        ssl_ = nullptr;
        cipher_in_.release();
        cipher_out_.release();
        lower_->close();
    }
    void shut_down_from_any_thread() noexcept override { lower_->shut_down_from_any_thread(); }

    [[noreturn]] void throw_protocol_failure(const std::string& operation) const override {
        throw tls_error(operation + ": " + failure_);
    }
    std::string peer_name() const override { return peer_; }
    int native_handle() const noexcept override { return lower_->native_handle(); }

    // tcp_client_tls_info.
    long complete_handshake(const std::optional<time_point>& deadline) {
        return handshake(deadline);
    }
    tls_info info() const {
        tls_info i;
        i.version = SSL_get_version(ssl_);
        if (const char* c = SSL_get_cipher_name(ssl_)) i.cipher = c;
        const unsigned char* alpn = nullptr;
        unsigned alpn_length = 0;
        SSL_get0_alpn_selected(ssl_, &alpn, &alpn_length);
        if (alpn) i.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_length);
        if (X509* peer = SSL_get0_peer_certificate(ssl_)) {
            std::unique_ptr<BIO, bio_free> bio(BIO_new(BIO_s_mem()));
            if (bio && X509_NAME_print_ex(bio.get(), X509_get_subject_name(peer), 0,
                                          XN_FLAG_RFC2253) >= 0) {
                char* text = nullptr;
                const long length = BIO_get_mem_data(bio.get(), &text);
                if (text && length > 0)
                    i.peer_subject.assign(text, static_cast<std::size_t>(length));
            }
        }
        i.resumed = SSL_session_reused(ssl_) == 1;
        return i;
    }

    // The BIO's side.
    int give_ciphertext(char* p, std::size_t n) noexcept {
        const std::size_t k = std::min(n, cipher_in_.size());
        std::memcpy(p, cipher_in_.head(), k);
        cipher_in_.consume(k);
        return static_cast<int>(k);
    }
    bool has_ciphertext() const noexcept { return !cipher_in_.empty(); }
    bool take_ciphertext(const char* p, std::size_t n) noexcept {
        try {
            cipher_out_.append(p, n);
            return true;
        } catch (...) {
            return false;  // no memory: OpenSSL fails the call
        }
    }
    void remember(SSL_SESSION* session) { context_->remember_session(session_key_, session); }
    bool wants_sessions() const noexcept { return !session_key_.empty(); }

private:
    // Runs the handshake to its end (at once when it is done): 0, or what the stream's call
    // returns instead. The handshake's own deadline runs from its first step.
    long handshake(const std::optional<time_point>& deadline) {
        if (established_) return 0;
        if (failed_) return transport_protocol_failure;
        const auto limit = context_->options.handshake_timeout;
        if (!handshake_deadline_) handshake_deadline_ = deadline_after(limit);
        for (;;) {
            clear_stale_errors();
            const int r = SSL_do_handshake(ssl_);
            if (r == 1) {
                established_ = true;
                count_event(&worker_counters::tls_handshakes);
                // The last flight (a client's Finished, a server's session tickets).
                const long s = send_pending(deadline, false);
                return s == -ETIMEDOUT ? 0 : s;  // a slow last flight leaves with the next send
            }
            const int e = SSL_get_error(ssl_, r);
            if (e != SSL_ERROR_WANT_READ) {
                std::string reason = openssl_reason(ssl_);
                send_pending_without_waiting();  // the alert saying why, if it fits
                return handshake_failed(reason);
            }
            const bool own_deadline_first = !deadline || *handshake_deadline_ <= *deadline;
            const std::optional<time_point> wait_until =
                own_deadline_first ? handshake_deadline_ : deadline;
            long got = send_pending(wait_until, false);
            if (got >= 0) got = lower_->receive(cipher_in_, wait_until, nullptr);
            if (got > 0) continue;
            if (got == 0)
                return handshake_failed("the peer closed the connection during the handshake");
            if (got == -ETIMEDOUT && own_deadline_first) {
                count_event(&worker_counters::timeouts);  // a timeout, as stream_totals says
                return handshake_failed("no handshake within " + std::to_string(limit.count()) +
                                        " ms");
            }
            return got;  // the caller's deadline, cancellation, a reset
        }
    }

    // The ciphertext the transport holds goes to the socket (all of it, or an error).
    long send_pending(const std::optional<time_point>& deadline, bool closing) {
        while (!cipher_out_.empty()) {
            const long r = lower_->send(cipher_out_.head(), cipher_out_.size(), deadline, closing);
            if (r < 0) return r;
            cipher_out_.consume(static_cast<std::size_t>(r));
        }
        return 0;
    }
    long send_pending_without_waiting() noexcept {
        while (!cipher_out_.empty()) {
            const long r = lower_->send_without_waiting(cipher_out_.head(), cipher_out_.size());
            if (r <= 0) return r < 0 ? r : -EAGAIN;
            cipher_out_.consume(static_cast<std::size_t>(r));
        }
        return 0;
    }

    // flush_writer's put-off output, handed to this receive: it goes out first, encrypted.
    void send_flushed(pending_output& flushed) {
        undefer(flushed.flush);
        flushed.taken = true;
        flushed.sent = 0;
        while (!flushed.bytes.empty()) {
            const long r =
                send(flushed.bytes.head(), flushed.bytes.size(), flushed.deadline, false);
            if (r < 0) {
                flushed.sent = r;
                return;
            }
            flushed.bytes.consume(static_cast<std::size_t>(r));
            flushed.sent += r;
        }
    }

    // The TCP stream ended: after close_notify that is the end (SSL_read said so before we
    // get here); between records, a truncation read as end of stream; inside one, a failure.
    long end_of_ciphertext(const char* what) {
        if (!cipher_in_.empty() || SSL_has_pending(ssl_))
            return fail(what, "the connection ended inside a TLS record");
        return 0;
    }

    long handshake_failed(const std::string& reason) {
        count_event(&worker_counters::tls_handshake_failures);
        return fail("tls handshake with", reason);
    }

    long fail(const char* what, const std::string& reason) {
        failed_ = true;
        failure_ = std::string(what) + " " + peer_ + ": " + reason;
        cipher_in_.release();
        return transport_protocol_failure;
    }

    transport_slot lower_;
    std::shared_ptr<tls_context_state> context_;
    SSL* ssl_ = nullptr;
    byte_buffer cipher_in_;  // received, not yet read by OpenSSL
    byte_buffer cipher_out_;  // written by OpenSSL, not yet sent
    std::optional<time_point> handshake_deadline_;
    std::string failure_;  // why the transport failed: "tls handshake with ...: reason"
    std::string session_key_;  // a client's "server_name:port"; empty: no resumption
    std::string peer_;  // "127.0.0.1:40522", from when the connection was made
    tls_role role_;
    bool established_ = false;
    bool failed_ = false;
    bool reader_shut_ = false;
};

int bio_write(BIO* b, const char* p, int n) {
    auto* t = static_cast<tls_transport*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    if (n <= 0) return 0;
    return t->take_ciphertext(p, static_cast<std::size_t>(n)) ? n : -1;
}

int bio_read(BIO* b, char* p, int n) {
    auto* t = static_cast<tls_transport*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    if (n <= 0) return 0;
    if (!t->has_ciphertext()) {
        BIO_set_retry_read(b);  // the transport receives more and OpenSSL is called again
        return -1;
    }
    return t->give_ciphertext(p, static_cast<std::size_t>(n));
}

long bio_ctrl(BIO*, int command, long, void*) {
    // OpenSSL flushes after each flight: the transport sends when the call returns.
    return command == BIO_CTRL_FLUSH ? 1 : 0;
}

int remember_new_session(SSL* ssl, SSL_SESSION* session) {
    auto* t = static_cast<tls_transport*>(SSL_get_ex_data(ssl, transport_ex_index()));
    if (!t || !t->wants_sessions()) return 0;
    t->remember(session);
    return 1;  // the context keeps the reference
}

}  // namespace

void emplace_tls_transport(transport_slot& slot, io_handle socket, connection_slot connection,
                           const tls_context& context, tls_role role,
                           const std::string& server_name, int port) {
    bool taken = false;
    try {
        slot.adopt(std::make_unique<tls_transport>(socket, std::move(connection), context.state(),
                                                   role, server_name, port, taken));
    } catch (...) {
        if (!taken) close_socket(socket);
        throw;
    }
}

std::unique_ptr<transport> make_tls_transport(std::unique_ptr<transport> lower,
                                              const tls_context& context, tls_role role,
                                              const std::string& server_name, int port) {
    return std::make_unique<tls_transport>(std::move(lower), context.state(), role, server_name,
                                           port);
}

void check_server_tls_context(const tls_context& context) {
    if (!context.state()->has_certificate)
        throw argument_error("server_options.tls: a TLS server needs a certificate and its private "
                             "key (tls_options::certificate_file and private_key_file, or the "
                             "_pem forms)");
}

std::optional<tls_info> tls_info_of(transport& t, const std::optional<time_point>& deadline,
                                    const char* operation) {
    auto* tls = dynamic_cast<tls_transport*>(&t);
    if (!tls) return std::nullopt;
    const long r = tls->complete_handshake(deadline);
    if (r == transport_protocol_failure) tls->throw_protocol_failure(operation);
    if (r == -ECANCELED) throw task_cancelled();
    if (r == -ETIMEDOUT && deadline) {
        count_event(&worker_counters::timeouts);
        throw timeout_error(std::string(operation) + ": the handshake with " + t.peer_name() +
                            " passed the reader timeout");
    }
    if (r < 0)
        throw_os_error(static_cast<int>(-r),
                       std::string(operation) + ": handshake with " + t.peer_name());
    return tls->info();
}

#else

void emplace_tls_transport(transport_slot&, io_handle, connection_slot, const tls_context&,
                           tls_role, const std::string&, int) {
    throw error("tls: rill was built without TLS (-DRILL_WITH_TLS=OFF)");
}
std::unique_ptr<transport> make_tls_transport(std::unique_ptr<transport>, const tls_context&,
                                              tls_role, const std::string&, int) {
    throw error("tls: rill was built without TLS (-DRILL_WITH_TLS=OFF)");
}
void check_server_tls_context(const tls_context&) {}
std::optional<tls_info> tls_info_of(transport&, const std::optional<time_point>&, const char*) {
    return std::nullopt;
}

#endif  // RILL_WITH_TLS

}  // namespace detail
}  // namespace rill
