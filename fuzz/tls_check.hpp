// Property checks for rill's TLS transport (net/tls.cpp) under hostile input, shared by the
// libFuzzer target (fuzz_tls.cpp) and by tests/net/test_tls_corpus.cpp, which replays the seed
// corpus in every test run, on both backends.
//
// The stream under test is a TLS *server* stream inside rill::run (make_tls_transport over one
// end of an in-memory transport pair, stream/memory_transport.hpp), with a self-signed ECDSA
// P-256 certificate made once per process with libcrypto (no private key is ever stored).
// The server reads with read_line until end of stream or an error.
//
// An input is  [mode byte] [settings byte] [record seed] [cipher seed] payload...
//   mode % 3   0 raw: the payload goes to the server as it is, cut into receives at random
//                (record seed): a ClientHello, or anything else, from a peer that is not TLS.
//              1 established: a real rill TLS client does the handshake, then sends the
//                payload as application data, cut into records at random (record seed);
//                a relay between client and server cuts the ciphertext into receives at
//                random (cipher seed).
//              2 corrupted: as 1 for the first k bytes of the payload (k from the cipher seed);
//                the rest corrupts the ciphertext after the handshake: settings bit 2 clear,
//                it goes raw into the ciphertext stream after the last record; set, its first
//                two bytes pick an offset into the ciphertext of the records (and the
//                close_notify) and the others are XORed into it from there (a bit flip
//                inside a record, its header or its tag).
//   settings   bit 0: the client ends with close_notify (0) or by shutting down TCP only
//                (truncation between records, read as end of stream); bit 1: the server's
//                max_line_length is short_max_line_length_bytes instead of the default
//                (modes 0 and 1); bit 2: mode 2 flips ciphertext instead of injecting bytes;
//                bit 3: the client of modes 1 and 2 offers TLS 1.2 only (records with an
//                explicit nonce and no inner content type), else TLS 1.3.
//
// Checked: no crash or sanitizer report; read_line ends only in end of stream, tls_error or
// line_too_long (never another exception, never a hang: every run ends within
// stuck_limit); after end of stream or tls_error the next read_line gives the same again;
// mode 1 gives exactly the lines a model cuts from the payload, then end of stream; mode 2
// gives exactly the lines complete before the corruption (the first record changed, or the
// injected bytes) and then tls_error (or, should injected bytes be ignored, all the lines
// sent and end of stream); mode 0 never gives a line; modes 1 and 2 negotiate the version
// bit 3 asks for.
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <rill/error.hpp>
#include <rill/runtime.hpp>
#include <rill/stream.hpp>
#include <rill/tls.hpp>

#include "codec_check.hpp"
#include "net/tls_transport.hpp"
#include "read_line_check.hpp"
#include "stream/memory_transport.hpp"
#include "stream/stream_state.hpp"

namespace rill::tls_check {

inline constexpr std::size_t header_bytes = 4;  // mode, settings, record seed, cipher seed
inline constexpr std::size_t short_max_line_length_bytes = 16;
// A handshake fed everything the input holds ends long before this; one still running is
// stuck (and reported as such, not taken for a refused handshake).
inline constexpr std::chrono::milliseconds handshake_timeout{3000};
// A whole check (every read, the handshake, the relays) taking longer than this is a hang. The
// server's reads time out after it too (as end of stream), so a stuck read ends the check.
inline constexpr std::chrono::milliseconds stuck_limit{8000};
// The relay between client and server passes ciphertext on in pieces of 1 to this many bytes.
inline constexpr std::size_t max_relay_piece_bytes = 64;
// The reads a check makes at most: one per payload byte and a few more.
inline constexpr std::size_t extra_reads = 8;
// The certificate is valid from this long before it is made (clocks differ a little).
inline constexpr long certificate_backdate_seconds = 3600;
inline constexpr long certificate_lifetime_seconds = 30L * 24 * 3600;

enum class mode : std::uint8_t { raw, established, corrupted };

struct settings {
    mode what = mode::raw;
    bool close_notify = true;  // the client ends with close_notify, else TCP's end only
    bool flip = false;  // mode corrupted: XOR into the records instead of injecting bytes
    bool tls12 = false;  // modes established and corrupted: the client offers TLS 1.2 only
    std::size_t max_line_length = default_max_line_length_bytes;
    std::uint32_t record_seed = 0;
    std::uint32_t cipher_seed = 0;
    std::string_view payload;
};

inline settings parse_input(const std::uint8_t* data, std::size_t size) {
    settings s;
    s.what = static_cast<mode>(data[0] % 3);
    s.close_notify = (data[1] & 1) == 0;
    if ((data[1] & 2) != 0 && s.what != mode::corrupted)
        s.max_line_length = short_max_line_length_bytes;
    s.flip = (data[1] & 4) != 0;
    s.tls12 = (data[1] & 8) != 0;
    s.record_seed = data[2];
    s.cipher_seed = data[3];
    s.payload =
        std::string_view(reinterpret_cast<const char*>(data) + header_bytes, size - header_bytes);
    return s;
}

// The server's certificate and key, made once per process: a self-signed ECDSA P-256
// certificate for localhost (the client does not verify it; it only has to be usable).
namespace detail_certs {

struct pem_pair {
    std::string certificate;
    std::string private_key;
};

[[noreturn]] inline void fail(const std::string& what) {
    const unsigned long code = ERR_get_error();
    char reason[256] = "no OpenSSL error queued";
    if (code != 0) ERR_error_string_n(code, reason, sizeof reason);
    ERR_clear_error();
    throw std::runtime_error("tls_check certificate: " + what + ": " + reason);
}

inline std::string bio_text(BIO* bio) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(size));
}

inline pem_pair make_self_signed_p256() {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
    if (!key) fail("EVP_EC_gen P-256");
    std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
    if (!cert) fail("X509_new");
    X509_NAME* name = X509_get_subject_name(cert.get());
    if (X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
        ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(cert.get()), -certificate_backdate_seconds) ==
            nullptr ||
        X509_gmtime_adj(X509_getm_notAfter(cert.get()), certificate_lifetime_seconds) == nullptr ||
        X509_set_pubkey(cert.get(), key.get()) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("localhost"), -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(cert.get(), name) != 1)
        fail("certificate fields");
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) fail("X509_sign");
    std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(BIO_new(BIO_s_mem()), BIO_free);
    std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(BIO_new(BIO_s_mem()), BIO_free);
    if (!cert_bio || !key_bio || PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1 ||
        PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
            1)
        fail("PEM_write_bio");
    return {bio_text(cert_bio.get()), bio_text(key_bio.get())};
}

}  // namespace detail_certs

// No session resumption on either side: every run starts from the same state, so an input
// always takes the same path (a client's session cache would make every other run resume).
inline const tls_context& server_context() {
    static const tls_context context = [] {
        const detail_certs::pem_pair pems = detail_certs::make_self_signed_p256();
        return tls_context({.certificate_pem = pems.certificate,
                            .private_key_pem = pems.private_key,
                            .session_resumption = false,
                            .handshake_timeout = handshake_timeout});
    }();
    return context;
}

// The client's context, capped at `max_version` when given (settings bit 3: TLS 1.2).
inline tls_context make_client_context(std::optional<tls_version> max_version) {
    return tls_context({.verify_peer = false,
                        .server_name = "localhost",
                        .max_version = max_version,
                        .session_resumption = false,
                        .handshake_timeout = handshake_timeout});
}

inline const tls_context& client_context(bool tls12) {
    static const tls_context context = make_client_context(std::nullopt);
    static const tls_context context12 = make_client_context(tls_version::tls1_2);
    return tls12 ? context12 : context;
}

// What the server's reads gave: the lines ("line:..." or "line_too_long") and how they ended.
struct server_reads {
    std::vector<std::string> lines;
    std::string end;  // "end", "tls_error: <message>", or "unexpected ...: <message>"
    std::string after_end;  // what one more read_line gave after `end`, the same forms
};

inline bool is_tls_error(const std::string& r) { return r.starts_with("tls_error"); }

// One read_line as a result string.
inline std::string read_one(stream& s) {
    try {
        if (std::optional<std::string> line = read_line(s)) return "line:" + *line;
        return "end";
    } catch (const line_too_long&) {
        return "line_too_long";
    } catch (const tls_error& e) {
        return std::string("tls_error: ") + e.what();
    } catch (const std::exception& e) {
        return std::string("unexpected exception: ") + e.what();
    }
}

inline server_reads read_server(stream& s, std::size_t payload_size) {
    server_reads r;
    const std::size_t max_reads = payload_size + extra_reads;
    for (std::size_t n = 0; n < max_reads; ++n) {
        std::string got = read_one(s);
        if (got.starts_with("line")) {
            r.lines.push_back(std::move(got));
            continue;
        }
        r.end = std::move(got);
        r.after_end = read_one(s);
        return r;
    }
    r.end = "unexpected: more reads than payload bytes without an end";
    return r;
}

// Which server stream options a setting asks for.
inline stream_options server_options(const settings& in) {
    stream_options o;
    o.max_line_length = in.max_line_length;
    o.reader_timeout = stuck_limit;
    return o;
}

// The server's side of a check: a TLS server stream over `lower`, read to its end (the stream
// is closed when this returns, which ends the relays and the client).
inline server_reads read_as_tls_server(std::unique_ptr<detail::transport> lower,
                                       const settings& in) {
    stream server = detail::make_stream(
        detail::make_tls_transport(std::move(lower), server_context(), detail::tls_role::server),
        server_options(in));
    return read_server(server, in.payload.size());
}

// Mode raw: the payload, cut at random, straight into the server's transport.
inline server_reads run_raw(const settings& in) {
    auto [server_lower, peer] = detail::make_memory_transport_pair();
    const std::vector<std::string> chunks = read_line_check::chunks_at(
        in.payload, codec_check::random_cuts(in.payload.size(), in.record_seed));
    // The peer's end stays open until the server is done: its answers (ServerHello, alerts)
    // queue there unread, where a closed end would fail them as a reset connection would.
    detail::transport* p = peer.get();
    auto sender = spawn([&chunks, p] {
        for (const std::string& chunk : chunks) {
            for (std::string_view rest = chunk; !rest.empty();) {
                const long sent = p->send(rest.data(), rest.size(), std::nullopt, false);
                if (sent < 0) return;
                rest.remove_prefix(static_cast<std::size_t>(sent));
            }
        }
        p->shutdown_writer();
    });
    const server_reads r = read_as_tls_server(std::move(server_lower), in);
    sender.join();
    return r;
}

// Moves what `from` receives to `to` until `from` ends, each receive cut into pieces at random
// (seed; 0: as received), then ends `to`'s input.
inline void relay(detail::transport& from, detail::transport& to, std::uint32_t seed) {
    std::minstd_rand rng(seed + 1);
    detail::byte_buffer buffer;
    for (;;) {
        const long got = from.receive(buffer, std::nullopt, nullptr);
        if (got <= 0) break;
        while (!buffer.empty()) {
            std::size_t piece = buffer.size();
            if (seed != 0)
                piece =
                    std::min(piece, 1 + static_cast<std::size_t>(rng() % max_relay_piece_bytes));
            const long sent = to.send(buffer.head(), piece, std::nullopt, false);
            if (sent < 0) {
                to.shutdown_writer();
                return;
            }
            buffer.consume(static_cast<std::size_t>(sent));
        }
    }
    to.shutdown_writer();
}

// Sends all of `bytes` through `t`; "" or why not.
inline std::string send_all(detail::transport& t, std::string_view bytes, const char* what) {
    while (!bytes.empty()) {
        const long sent = t.send(bytes.data(), bytes.size(), std::nullopt, false);
        if (sent < 0) return std::string(what) + " failed: " + std::to_string(sent);
        bytes.remove_prefix(static_cast<std::size_t>(sent));
    }
    return {};
}

// The client's transport below TLS: passes everything on to `below`, and once armed XORs
// `masks` into the ciphertext it sends, from `flip_at` bytes after the arming on, noting the
// offset of the first byte it changed.
class corrupting_transport final : public detail::transport {
public:
    explicit corrupting_transport(std::unique_ptr<detail::transport> below)
        : below_(std::move(below)) {}

    void arm(std::size_t flip_at, std::string_view masks) {
        armed_ = true;
        flip_at_ = flip_at;
        masks_ = masks;
    }
    // Bytes sent since the arming.
    std::size_t sent_since_arming() const noexcept { return sent_; }
    // Where the first changed byte is, counted from the arming; empty: none changed.
    std::optional<std::size_t> first_changed() const noexcept { return first_changed_; }

    long receive(detail::byte_buffer& in, const std::optional<detail::time_point>& deadline,
                 detail::pending_output* flushed) override {
        return below_->receive(in, deadline, flushed);
    }
    long send(const char* p, std::size_t n, const std::optional<detail::time_point>& deadline,
              bool closing) override {
        if (!armed_) return below_->send(p, n, deadline, closing);
        std::string bytes(p, n);
        std::optional<std::size_t> changed;
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t at = sent_ + i;
            if (at < flip_at_ || at - flip_at_ >= masks_.size() || masks_[at - flip_at_] == 0)
                continue;
            bytes[i] = static_cast<char>(bytes[i] ^ masks_[at - flip_at_]);
            if (!changed) changed = at;
        }
        const long r = below_->send(bytes.data(), n, deadline, closing);
        if (r <= 0) return r;
        if (changed && *changed < sent_ + static_cast<std::size_t>(r) && !first_changed_)
            first_changed_ = changed;
        sent_ += static_cast<std::size_t>(r);
        return r;
    }
    long send_without_waiting(const char* p, std::size_t n) noexcept override {
        // Only a stream closing after an exception sends this way: never after the arming.
        return armed_ ? -EAGAIN : below_->send_without_waiting(p, n);
    }
    void shutdown_writer() noexcept override { below_->shutdown_writer(); }
    void shutdown_reader() noexcept override { below_->shutdown_reader(); }
    bool input_pending() const noexcept override { return below_->input_pending(); }
    void close() noexcept override { below_->close(); }
    void shut_down_from_any_thread() noexcept override { below_->shut_down_from_any_thread(); }
    std::string peer_name() const override { return below_->peer_name(); }
    int native_handle() const noexcept override { return below_->native_handle(); }

private:
    std::unique_ptr<detail::transport> below_;
    bool armed_ = false;
    std::size_t flip_at_ = 0;
    std::string_view masks_;
    std::size_t sent_ = 0;
    std::optional<std::size_t> first_changed_;
};

// What the client did, for the expectations.
struct client_report {
    std::string failure;  // "" when every send went through
    bool changed = false;  // mode corrupted with flips: some ciphertext was changed
    // The plaintext whose records went out unchanged before the first changed byte: all of it
    // when none was changed, or only the close_notify.
    std::size_t intact_bytes = 0;
    std::string version;  // negotiated ("TLSv1.3"); empty: no handshake
    std::size_t record_overhead = 0;  // the ciphertext a record adds (0: no handshake)
};

// The ciphertext a record adds to its plaintext. TLS 1.3: header 5, content type 1, tag 16.
inline constexpr std::size_t tls13_record_overhead_bytes = 5 + 1 + 16;
// TLS 1.2 with AES-GCM: header 5, explicit nonce 8, tag 16; with ChaCha20-Poly1305: no nonce.
inline constexpr std::size_t tls12_gcm_record_overhead_bytes = 5 + 8 + 16;
inline constexpr std::size_t tls12_chacha_record_overhead_bytes = 5 + 16;
// A close_notify alert's plaintext.
inline constexpr std::size_t close_notify_bytes = 2;

// The overhead of the records the negotiated version and cipher make; empty for a cipher the
// check does not know (OpenSSL's defaults with an ECDSA key negotiate only AEAD ciphers).
inline std::optional<std::size_t> record_overhead_bytes(const tls_info& info) {
    if (info.version == "TLSv1.3") return tls13_record_overhead_bytes;
    if (info.version != "TLSv1.2") return std::nullopt;
    if (info.cipher.find("GCM") != std::string::npos) return tls12_gcm_record_overhead_bytes;
    if (info.cipher.find("CHACHA20") != std::string::npos)
        return tls12_chacha_record_overhead_bytes;
    return std::nullopt;
}

// Modes established and corrupted: a real TLS client sends `plaintext` in records cut at
// random, then ends. `corruption` (mode corrupted) goes raw into the ciphertext stream after
// the records, or with in.flip is XORed into their ciphertext (see the input layout).
inline server_reads run_established(const settings& in, std::string_view plaintext,
                                    std::string_view corruption, client_report& report) {
    auto [client_lower, relay_in] = detail::make_memory_transport_pair();
    auto [relay_out, server_lower] = detail::make_memory_transport_pair();
    auto tap_owner = std::make_unique<corrupting_transport>(std::move(client_lower));
    corrupting_transport* tap = tap_owner.get();  // owned by the client's TLS transport
    std::unique_ptr<detail::transport> client = detail::make_tls_transport(
        std::move(tap_owner), client_context(in.tls12), detail::tls_role::client, "localhost", 0);
    std::vector<std::string> records = read_line_check::chunks_at(
        plaintext, codec_check::random_cuts(plaintext.size(), in.record_seed));
    std::erase_if(records, [](const std::string& r) { return r.empty(); });
    report.intact_bytes = plaintext.size();

    const bool flip = !corruption.empty() && in.flip;
    // Where the flips start: an offset into the ciphertext of the records and the close_notify,
    // whose size the negotiated record overhead gives.
    const auto arm_flips = [&](std::size_t overhead) {
        std::size_t ciphertext_bytes = in.close_notify ? close_notify_bytes + overhead : 0;
        for (const std::string& r : records) ciphertext_bytes += r.size() + overhead;
        const auto byte = [&](std::size_t i) {
            return i < corruption.size() ? static_cast<std::uint8_t>(corruption[i]) : 0u;
        };
        // No record at all (no plaintext, no close_notify): nothing to flip.
        tap->arm((byte(0) | byte(1) << 8) % std::max<std::size_t>(ciphertext_bytes, 1),
                 corruption.substr(std::min<std::size_t>(2, corruption.size())));
    };

    // clang 14 cannot capture structured bindings: plain pointers.
    detail::transport* const in_side = relay_in.get();
    detail::transport* const out_side = relay_out.get();
    auto forward = spawn([&] { relay(*in_side, *out_side, in.cipher_seed | 1); });
    auto back = spawn([&] { relay(*out_side, *in_side, 0); });
    auto writer = spawn([&] {
        // An empty send runs the handshake: the corruption comes after it.
        if (const long r = client->send("", 0, std::nullopt, false); r < 0) {
            report.failure = "client handshake failed: " + std::to_string(r);
            client->shutdown_writer();
            return;
        }
        const std::optional<tls_info> info = detail::tls_info_of(*client, std::nullopt, "check");
        if (info) report.version = info->version;
        const std::optional<std::size_t> overhead =
            info ? record_overhead_bytes(*info) : std::nullopt;
        if (!overhead) {
            report.failure = "unknown record overhead: " +
                             (info ? info->version + " " + info->cipher : std::string("no TLS"));
            client->shutdown_writer();
            return;
        }
        report.record_overhead = *overhead;
        if (flip) arm_flips(*overhead);
        std::vector<std::size_t> record_ends;  // ciphertext sent after each record
        for (const std::string& record : records) {
            report.failure = send_all(*client, record, "client send");
            if (!report.failure.empty()) break;
            record_ends.push_back(tap->sent_since_arming());
        }
        if (!corruption.empty() && !flip) {
            if (report.failure.empty()) report.failure = send_all(*tap, corruption, "inject");
            tap->shutdown_writer();
            return;
        }
        if (in.close_notify && report.failure.empty()) client->finish_output(std::nullopt);
        client->shutdown_writer();
        if (const std::optional<std::size_t> first = tap->first_changed()) {
            report.changed = true;
            report.intact_bytes = 0;
            for (std::size_t j = 0; j < record_ends.size() && record_ends[j] <= *first; ++j)
                report.intact_bytes += records[j].size();
        }
    });
    const server_reads r = read_as_tls_server(std::move(server_lower), in);
    // The server's end closed: the backward relay sees the end and ends the client's input
    // (a client still in its handshake fails), the forward one the client's end or a failed
    // send.
    writer.join();
    forward.join();
    back.join();
    return r;
}

// The lines of `text` up to its last line end: what follows may be a line's beginning only.
inline std::vector<std::string> complete_lines(std::string_view text, std::size_t cap) {
    const std::size_t last_end = text.find_last_of("\r\n");
    return read_line_check::model_lines(
        last_end == std::string_view::npos ? std::string_view() : text.substr(0, last_end + 1),
        eol_style::crlf, cap);
}

inline std::string describe(const server_reads& r) {
    return read_line_check::describe(r.lines) + " then [" + r.end + "] then [" + r.after_end + "]";
}

// The end a read must repeat: end of stream stays the end, a TLS failure stays one.
inline bool end_repeats(const server_reads& r) {
    if (r.end == "end") return r.after_end == "end";
    return is_tls_error(r.after_end);
}

// Checks one input; returns a description of the first failure, or "". Call it from a task
// inside rill::run.
inline std::string check_tls_input(const std::uint8_t* data, std::size_t size) {
    if (size < header_bytes) return {};
    const settings in = parse_input(data, size);
    const auto started = std::chrono::steady_clock::now();
    server_reads r;
    std::vector<std::string> expected;  // the lines; mode corrupted: those before it
    std::vector<std::string> expected_if_ignored;  // mode corrupted: all the lines sent
    client_report client;
    try {
        switch (in.what) {
        case mode::raw: r = run_raw(in); break;
        case mode::established:
            r = run_established(in, in.payload, {}, client);
            expected =
                read_line_check::model_lines(in.payload, eol_style::crlf, in.max_line_length);
            break;
        case mode::corrupted: {
            const std::size_t k = in.payload.empty() ? 0 : in.cipher_seed % in.payload.size();
            const std::string_view plaintext = in.payload.substr(0, k);
            r = run_established(in, plaintext, in.payload.substr(k), client);
            expected_if_ignored =
                read_line_check::model_lines(plaintext, eol_style::crlf, in.max_line_length);
            if (in.flip && !client.changed) {
                expected = expected_if_ignored;  // the flips all fell on zero masks
            } else {
                expected =
                    complete_lines(plaintext.substr(0, client.intact_bytes), in.max_line_length);
            }
            break;
        }
        }
    } catch (const std::exception& e) {
        return std::string("unexpected exception outside the reads: ") + e.what();
    }
    const auto took = std::chrono::steady_clock::now() - started;
    if (took > stuck_limit)
        return "stuck: the check took " +
               std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()) +
               " ms: " + describe(r);
    if (r.end != "end" && !is_tls_error(r.end)) return "bad ending: " + describe(r);
    if (r.end.find("no handshake within") != std::string::npos)
        return "the handshake hung (all input was given): " + describe(r);
    if (!end_repeats(r)) return "the end does not repeat: " + describe(r);
    if (in.what != mode::raw && client.version != (in.tls12 ? "TLSv1.2" : "TLSv1.3"))
        return "negotiated [" + client.version + "], not the version asked for (" + client.failure +
               "): " + describe(r);
    switch (in.what) {
    case mode::raw:
        // Raw bytes cannot complete a handshake (they would need the server's key share).
        if (!r.lines.empty()) return "a line before any handshake: " + describe(r);
        if (r.end == "end") return "a raw peer's end read as a clean end: " + describe(r);
        break;
    case mode::established:
        if (!client.failure.empty()) return client.failure + ": " + describe(r);
        if (r.end != "end") return "no clean end: " + describe(r);
        if (r.lines != expected)
            return "lines differ from the plaintext: " + describe(r) + " vs " +
                   read_line_check::describe(expected);
        break;
    case mode::corrupted:
        if (in.flip && !client.changed) {
            if (!client.failure.empty()) return client.failure + ": " + describe(r);
            if (r.end != "end" || r.lines != expected)
                return "flips that changed nothing changed the lines: " + describe(r) + " vs " +
                       read_line_check::describe(expected);
            break;
        }
        // After changed records the server may be gone before the client's last send.
        if (!client.failure.empty() && !in.flip) return client.failure + ": " + describe(r);
        if (in.flip && !is_tls_error(r.end))
            return "changed ciphertext read without tls_error: " + describe(r);
        if (is_tls_error(r.end) ? r.lines != expected : r.lines != expected_if_ignored)
            return "lines differ from those sent before the corruption: " + describe(r) + " vs " +
                   read_line_check::describe(is_tls_error(r.end) ? expected : expected_if_ignored);
        break;
    }
    return {};
}

}  // namespace rill::tls_check
