// TLS streams over real sockets, both ends rill unless said otherwise (both backends): large
// writes, half-close, what a stream negotiated (version, ALPN, peer certificate, resumption),
// verification failures and client certificates, the handshake timeout against silent and
// dribbling peers (with another client served meanwhile), timeouts after the handshake, and
// close_notify on close_stream but not on a close for an exception (seen by a plain OpenSSL
// client that tells the two apart).
#include <gtest/gtest.h>

#if RILL_WITH_TLS

#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <rill/rill.hpp>

#include "support/errors.hpp"
#include "support/loopback.hpp"
#include "support/tls_certs.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using rill_test::contains;

rill_test::tls_test_certificates& certificates() {
    static rill_test::tls_test_certificates certs;
    return certs;
}

rill::tls_options server_tls_options() {
    return {.certificate_file = certificates().server.certificate.path.string(),
            .private_key_file = certificates().server.private_key.path.string()};
}

rill::tls_context server_tls() { return rill::tls_context(server_tls_options()); }

rill::tls_context client_tls(rill::tls_options o = {}) {
    if (o.ca_file.empty()) o.ca_file = certificates().ca.path.string();
    return rill::tls_context(o);
}

std::string at(int port) { return "localhost:" + std::to_string(port); }

// A TLS echo server on 127.0.0.1 (port 0) inside the running rill::run: each client in a task
// of its own echoing lines until end of stream, then close_stream. Returns its port; the
// server is closed (and its accepting task joined) by the returned guard's destructor.
struct echo_server {
    rill::tcp_server_stream server;
    int port;
    rill::task acceptor;
    explicit echo_server(rill::server_options o)
        : server(0, std::move(o)), port(rill::tcp_server_socket_info(server).port_number) {
        acceptor = rill::spawn([this] {
            while (auto c = rill::read(server)) {
                rill::spawn([c = std::move(*c)]() mutable {
                    try {
                        while (auto line = rill::read_line(c)) {
                            rill::showln(c, *line);
                            rill::flush_writer(c);
                        }
                        rill::close_stream(c);
                    } catch (const rill::error&) {
                        // A client that failed its handshake: its own business.
                    }
                });
            }
        });
    }
    ~echo_server() {
        rill::close_stream(server);
        acceptor.join();
    }
};

TEST(TlsStreams, LinesGoBothWaysAndTheClientSeesWhatWasNegotiated) {
    rill::run([] {
        echo_server echo({.tls = server_tls()});
        rill::tcp_client_stream c(at(echo.port), {.tls = client_tls()});
        rill::showln(c, "hello over TLS");
        rill::flush_writer(c);
        EXPECT_EQ(rill::read_line(c), "hello over TLS");
        const auto info = rill::tcp_client_tls_info(c);
        ASSERT_TRUE(info);
        EXPECT_EQ(info->version, "TLSv1.3");
        EXPECT_FALSE(info->cipher.empty());
        EXPECT_TRUE(info->peer_subject.starts_with("CN=localhost")) << info->peer_subject;
        EXPECT_TRUE(info->alpn.empty());
        rill::close_stream(c);
    });
}

// rill looks at the thread's OpenSSL error queue before each SSL call rather than wiping it
// (cheaper); an error the application left there must still not be taken for the stream's.
TEST(TlsStreams, AnErrorTheApplicationLeftInOpenSslsQueueDoesNotFailTheStream) {
    rill::run([] {
        echo_server echo({.tls = server_tls()});
        rill::tcp_client_stream c(at(echo.port), {.tls = client_tls()});
        rill::showln(c, "first");
        rill::flush_writer(c);
        ASSERT_EQ(rill::read_line(c), "first");
        // Long enough that the answer comes in pieces of records: reads that find a record
        // not yet whole ask SSL_get_error, which a stale error would turn into a failure.
        const std::string line(48 * 1024, 'x');  // three records and more, under the line cap
        for (int round = 0; round < 3; ++round) {
            ERR_raise(ERR_LIB_USER, ERR_R_INTERNAL_ERROR);
            rill::showln(c, line);
            rill::flush_writer(c);
            ERR_raise(ERR_LIB_USER, ERR_R_INTERNAL_ERROR);
            const std::optional<std::string> back = rill::read_line(c);
            ASSERT_TRUE(back) << "round " << round;
            EXPECT_TRUE(*back == line) << "round " << round << ": " << back->size() << " bytes";
        }
        rill::close_stream(c);
        ERR_clear_error();
    });
}

TEST(TlsStreams, APlainStreamHasNoTlsInfo) {
    rill::run([] {
        rill::tcp_server_stream server(0);
        const int port = rill::tcp_server_socket_info(server).port_number;
        rill::tcp_client_stream c(port);
        EXPECT_FALSE(rill::tcp_client_tls_info(c));
    });
}

TEST(TlsStreams, MinimumVersionAndAlpnAreNegotiated) {
    rill::run([] {
        rill::tls_options so = server_tls_options();
        so.alpn = {"h2", "rill-echo"};
        echo_server echo({.tls = rill::tls_context(so)});
        // The server's preference wins among what the client offers.
        rill::tcp_client_stream c(at(echo.port),
                                  {.tls = client_tls({.alpn = {"rill-echo", "h2"},
                                                      .min_version = rill::tls_version::tls1_3})});
        const auto info = rill::tcp_client_tls_info(c);
        ASSERT_TRUE(info);
        EXPECT_EQ(info->alpn, "h2");
        EXPECT_EQ(info->version, "TLSv1.3");
        // No protocol in common: no ALPN, the connection still works.
        rill::tcp_client_stream d(at(echo.port), {.tls = client_tls({.alpn = {"other"}})});
        rill::showln(d, "x");
        rill::flush_writer(d);
        EXPECT_EQ(rill::read_line(d), "x");
        EXPECT_EQ(rill::tcp_client_tls_info(d)->alpn, "");
    });
}

TEST(TlsStreams, MaximumVersionLimitsWhatIsNegotiated) {
    rill::run([] {
        rill::tls_options so = server_tls_options();
        so.max_version = rill::tls_version::tls1_2;
        echo_server echo({.tls = rill::tls_context(so)});
        rill::tcp_client_stream c(at(echo.port), {.tls = client_tls()});
        rill::showln(c, "over 1.2");
        rill::flush_writer(c);
        EXPECT_EQ(rill::read_line(c), "over 1.2");
        EXPECT_EQ(rill::tcp_client_tls_info(c)->version, "TLSv1.2");
        // A client that takes TLS 1.3 only: a tls_error on that connection, and the server
        // goes on serving the first.
        rill::tcp_client_stream d(at(echo.port),
                                  {.tls = client_tls({.min_version = rill::tls_version::tls1_3})});
        const std::string m = rill_test::message_of<rill::tls_error>([&] {
            rill::showln(d, "x");
            rill::flush_writer(d);
            (void)rill::read_line(d);  // the handshake has failed by then at the latest
        });
        EXPECT_TRUE(contains(m, "tls handshake with ")) << m;
        EXPECT_TRUE(contains(m, "protocol version") || contains(m, "unsupported protocol")) << m;
        rill::showln(c, "still");
        rill::flush_writer(c);
        EXPECT_EQ(rill::read_line(c), "still");
        rill::close_stream(c);
    });
    const std::string m = rill_test::message_of<rill::argument_error>([] {
        rill::tls_context(
            {.min_version = rill::tls_version::tls1_3, .max_version = rill::tls_version::tls1_2});
    });
    EXPECT_TRUE(contains(m, "max_version TLS 1.2 is below min_version TLS 1.3")) << m;
}

TEST(TlsStreams, AClientResumesItsSessionOnItsNextConnection) {
    rill::run([] {
        echo_server echo({.tls = server_tls()});
        const rill::tls_context client = client_tls();
        for (int i = 0; i < 3; ++i) {
            rill::tcp_client_stream c(at(echo.port), {.tls = client});
            rill::showln(c, "round ", i);
            rill::flush_writer(c);
            // The ticket arrives after the handshake: reading the answer takes it in.
            EXPECT_EQ(rill::read_line(c), "round " + std::to_string(i));
            EXPECT_EQ(rill::tcp_client_tls_info(c)->resumed, i > 0) << "connection " << i;
            rill::close_stream(c);
        }
        // Without resumption every handshake is a full one.
        const rill::tls_context fresh = client_tls({.session_resumption = false});
        for (int i = 0; i < 2; ++i) {
            rill::tcp_client_stream c(at(echo.port), {.tls = fresh});
            rill::showln(c, "x");
            rill::flush_writer(c);
            EXPECT_EQ(rill::read_line(c), "x");
            EXPECT_FALSE(rill::tcp_client_tls_info(c)->resumed);
        }
    });
}

TEST(TlsStreams, OneMebibyteEachWayInOneWrite) {
    constexpr std::size_t size = 1 << 20;
    std::string payload(size, '\0');
    for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<char>('a' + i * 7 % 26);
    rill::run([&] {
        rill::tcp_server_stream server(0, {.tls = server_tls()});
        const int port = rill::tcp_server_socket_info(server).port_number;
        auto served = rill::spawn([&] {
            auto c = rill::read(server);
            ASSERT_TRUE(c);
            // All of it read (in pieces as they come), then all of it written back at once.
            std::string got;
            std::vector<std::byte> buffer(100'000);
            while (got.size() < size) {
                const std::size_t n = rill::read_some(*c, buffer);
                if (n == 0) break;
                got.append(reinterpret_cast<const char*>(buffer.data()), n);
            }
            EXPECT_EQ(got.size(), size);
            rill::write_chars(*c, got);
            rill::close_stream(*c);
        });
        rill::tcp_client_stream c(at(port), {.tls = client_tls()});
        rill::write_chars(c, payload);  // one write: the stream sends it in records
        rill::flush_writer(c);
        const auto back = rill::read_n_bytes(c, size);
        ASSERT_TRUE(back);
        ASSERT_EQ(back->size(), size);
        EXPECT_TRUE(
            std::equal(back->begin(), back->end(), payload.begin(),
                       [](std::uint8_t a, char b) { return a == static_cast<std::uint8_t>(b); }));
        EXPECT_EQ(rill::read_byte(c), std::nullopt);  // then close_notify: end of stream
        served.join();
    });
}

TEST(TlsStreams, CloseWriterSendsCloseNotifyAndTheAnswerStillComesBack) {
    rill::run([] {
        rill::tcp_server_stream server(0, {.tls = server_tls()});
        const int port = rill::tcp_server_socket_info(server).port_number;
        auto served = rill::spawn([&] {
            auto c = rill::read(server);
            ASSERT_TRUE(c);
            std::vector<std::string> lines;
            while (auto line = rill::read_line(*c)) lines.push_back(*line);
            // The client's end of stream came before any answer: answer them all now.
            rill::showln(*c, lines.size(), " lines");
            rill::close_stream(*c);
        });
        rill::tcp_client_stream c(at(port), {.tls = client_tls()});
        for (int i = 0; i < 5; ++i) rill::showln(c, "line ", i);
        rill::close_writer(c);
        EXPECT_EQ(rill::read_line(c), "5 lines");
        EXPECT_EQ(rill::read_line(c), std::nullopt);
        EXPECT_THROW(rill::showln(c, "late"), rill::error);
        served.join();
    });
}

TEST(TlsStreams, AnUntrustedOrMisnamedServerIsRefusedByTheClient) {
    rill::run([] {
        echo_server echo({.tls = server_tls()});
        // The system store does not know the test CA.
        const std::string untrusted = rill_test::message_of<rill::tls_error>([&] {
            rill::tcp_client_stream c(at(echo.port), {.tls = rill::tls_context()});
            rill::showln(c, "x");
            rill::flush_writer(c);
            (void)rill::read_line(c);
        });
        EXPECT_TRUE(contains(untrusted, "read_line: tls handshake with 127.0.0.1:")) << untrusted;
        EXPECT_TRUE(contains(untrusted, "certificate verify failed: unable to get local issuer"))
            << untrusted;
        // Trusted, but for another name.
        const std::string misnamed = rill_test::message_of<rill::tls_error>([&] {
            rill::tcp_client_stream c(at(echo.port),
                                      {.tls = client_tls({.server_name = "other.example"})});
            (void)rill::read_line(c);
        });
        EXPECT_TRUE(contains(misnamed, "read_line: tls handshake with ")) << misnamed;
        EXPECT_TRUE(contains(misnamed, "certificate verify failed: hostname mismatch")) << misnamed;
        // Turned off, visibly: both connect.
        rill::tcp_client_stream c(at(echo.port),
                                  {.tls = rill::tls_context({.verify_peer = false})});
        rill::showln(c, "unverified");
        rill::flush_writer(c);
        EXPECT_EQ(rill::read_line(c), "unverified");
        rill::tcp_client_stream d(at(echo.port), {.tls = client_tls({.server_name = "other.example",
                                                                     .check_host_name = false})});
        rill::showln(d, "any name");
        rill::flush_writer(d);
        EXPECT_EQ(rill::read_line(d), "any name");
    });
}

TEST(TlsStreams, AnExpiredCertificateIsRefused) {
    rill::run([] {
        echo_server echo(
            {.tls = rill::tls_context(
                 {.certificate_file = certificates().expired.certificate.path.string(),
                  .private_key_file = certificates().expired.private_key.path.string()})});
        const std::string m = rill_test::message_of<rill::tls_error>([&] {
            rill::tcp_client_stream c(at(echo.port), {.tls = client_tls()});
            (void)rill::read_line(c);
        });
        EXPECT_TRUE(contains(m, "certificate verify failed: certificate has expired")) << m;
    });
}

TEST(TlsStreams, AServerThatAsksForClientCertificatesGetsThem) {
    rill::run([] {
        rill::tls_options so = server_tls_options();
        so.verify_peer = true;
        so.ca_file = certificates().ca.path.string();
        rill::tcp_server_stream server(0, {.tls = rill::tls_context(so)});
        const int port = rill::tcp_server_socket_info(server).port_number;
        auto served = rill::spawn([&] {
            // Without a certificate: refused, on that connection only.
            auto first = rill::read(server);
            ASSERT_TRUE(first);
            const std::string m =
                rill_test::message_of<rill::tls_error>([&] { (void)rill::read_line(*first); });
            EXPECT_TRUE(contains(m, "read_line: tls ")) << m;
            EXPECT_TRUE(contains(m, "peer did not return a certificate")) << m;
            // With one: served, and the server sees who it is.
            auto second = rill::read(server);
            ASSERT_TRUE(second);
            EXPECT_EQ(rill::read_line(*second), "it is me");
            EXPECT_TRUE(rill::tcp_client_tls_info(*second)->peer_subject.starts_with(
                "CN=rill-test-client"));
            rill::close_stream(*second);
        });
        {
            rill::tcp_client_stream c(at(port), {.tls = client_tls()});
            rill::showln(c, "who?");
            try {
                rill::flush_writer(c);
                (void)rill::read_line(c);  // the refusal (TLS 1.3: after the client's Finished)
            } catch (const rill::error&) {}
        }
        rill::tcp_client_stream c(
            at(port), {.tls = client_tls(
                           {.certificate_file = certificates().client.certificate.path.string(),
                            .private_key_file = certificates().client.private_key.path.string()})});
        rill::showln(c, "it is me");
        rill::close_stream(c);
        served.join();
    });
}

TEST(TlsStreams, ContextErrorsNameWhatIsWrong) {
    const std::string missing = rill_test::message_of<rill::tls_error>([] {
        rill::tls_context({.certificate_file = "/nonexistent/cert.pem",
                           .private_key_file = "/nonexistent/key.pem"});
    });
    EXPECT_TRUE(contains(missing, "tls_context: certificate_file /nonexistent/cert.pem: "))
        << missing;
    const std::string mismatch = rill_test::message_of<rill::tls_error>([] {
        rill::tls_context({.certificate_file = certificates().server.certificate.path.string(),
                           .private_key_file = certificates().client.private_key.path.string()});
    });
    EXPECT_TRUE(contains(mismatch, "tls_context: private_key_file ")) << mismatch;
    EXPECT_TRUE(contains(mismatch, "key values mismatch")) << mismatch;
    const std::string half = rill_test::message_of<rill::argument_error>([] {
        rill::tls_context({.certificate_file = certificates().server.certificate.path.string()});
    });
    EXPECT_TRUE(contains(half, "a certificate needs its private key")) << half;
    rill::run([] {
        const std::string no_certificate = rill_test::message_of<rill::argument_error>(
            [] { rill::tcp_server_stream server(0, {.tls = rill::tls_context()}); });
        EXPECT_TRUE(
            contains(no_certificate, "server_options.tls: a TLS server needs a certificate"))
            << no_certificate;
    });
}

// A plain TCP connection to `port` that does what `act` says and then waits for the server to
// close it (bounded): true when the server closed it (read returned 0 or a reset).
template <class Act>
bool raw_peer_is_closed_after(int port, Act act) {
    rill_test::raw_client raw(port);
    act(raw);
    char buf[256];
    for (int i = 0; i < 100; ++i) {
        const ssize_t n = ::recv(raw.fd(), buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
        if (n < 0) return false;  // the receive timeout
    }
    return false;
}

TEST(TlsStreams, TheHandshakeTimeoutEndsSilentAndDribblingPeersWhileOthersAreServed) {
    const rill::stream_totals before = rill::runtime_stats_snapshot().streams;
    rill::tls_options so = server_tls_options();
    so.handshake_timeout = 300ms;
    std::atomic<int> port{0};
    std::atomic<int> failures{0};
    std::mutex failure_mutex;  // the clients' tasks run on any worker
    std::string last_failure;
    std::thread peers([&] {
        if (!rill_test::thread_wait_until([&] { return port.load() != 0; })) return;
        std::thread silent([&] {
            EXPECT_TRUE(raw_peer_is_closed_after(port.load(), [](rill_test::raw_client&) {}));
        });
        std::thread dribbling([&] {
            EXPECT_TRUE(raw_peer_is_closed_after(port.load(), [](rill_test::raw_client& raw) {
                // A ClientHello's first bytes, one every 50 ms: never a whole one in time.
                const char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0x7c, 0x03};
                for (char b : hello) {
                    if (::send(raw.fd(), &b, 1, MSG_NOSIGNAL) != 1) return;
                    std::this_thread::sleep_for(50ms);
                }
            }));
        });
        silent.join();
        dribbling.join();
    });
    rill::run([&] {
        rill::tcp_server_stream server(0, {.tls = rill::tls_context(so)});
        port = rill::tcp_server_socket_info(server).port_number;
        std::vector<rill::task> tasks;
        auto acceptor = rill::spawn([&] {
            while (auto c = rill::read(server)) {
                tasks.push_back(rill::spawn([&, c = std::move(*c)]() mutable {
                    try {
                        while (auto line = rill::read_line(c)) {
                            rill::showln(c, *line);
                            rill::flush_writer(c);
                        }
                    } catch (const rill::tls_error& e) {
                        std::lock_guard lock(failure_mutex);
                        last_failure = e.what();
                        ++failures;
                    }
                }));
            }
        });
        // A good client is served while the two others hold their handshakes open.
        const auto started = std::chrono::steady_clock::now();
        rill::tcp_client_stream good(at(port), {.tls = client_tls()});
        for (int i = 0; i < 3; ++i) {
            rill::showln(good, "still served ", i);
            rill::flush_writer(good);
            EXPECT_EQ(rill::read_line(good), "still served " + std::to_string(i));
        }
        EXPECT_LT(std::chrono::steady_clock::now() - started, 300ms);
        EXPECT_TRUE(rill_test::task_wait_until([&] { return failures.load() == 2; }));
        rill::close_stream(good);
        rill::close_stream(server);
        acceptor.join();
        for (auto& t : tasks) t.join();
    });
    peers.join();
    EXPECT_EQ(failures.load(), 2);
    EXPECT_TRUE(contains(last_failure, "read_line: tls handshake with 127.0.0.1:")) << last_failure;
    EXPECT_TRUE(contains(last_failure, ": no handshake within 300 ms")) << last_failure;
    // The stats: two handshake timeouts, failed handshakes both; the good client's two ends.
    const rill::stream_totals after = rill::runtime_stats_snapshot().streams;
    EXPECT_EQ(after.timeouts - before.timeouts, 2u);
    EXPECT_EQ(after.tls_handshake_failures - before.tls_handshake_failures, 2u);
    EXPECT_EQ(after.tls_handshakes - before.tls_handshakes, 2u);
}

TEST(TlsStreams, ReaderAndWriterTimeoutsWorkAfterTheHandshake) {
    rill::run([] {
        rill::server_options o{.tls = server_tls()};
        o.stream.reader_timeout = 200ms;
        rill::tcp_server_stream server(0, o);
        const int port = rill::tcp_server_socket_info(server).port_number;
        auto served = rill::spawn([&] {
            auto c = rill::read(server);
            ASSERT_TRUE(c);
            EXPECT_EQ(rill::read_line(*c), "one line, then silence");
            const auto before = std::chrono::steady_clock::now();
            EXPECT_EQ(rill::read_line(*c), std::nullopt);  // the reader timeout: end of stream
            EXPECT_GE(std::chrono::steady_clock::now() - before, 190ms);
            // A writer timeout: the client reads nothing, so the sends fill up and wait.
            rill::writer_timeout(*c, 200ms);
            const std::string chunk(64 * 1024, 'w');
            EXPECT_THROW(
                {
                    for (int i = 0; i < 1000; ++i) rill::write_chars(*c, chunk);
                    rill::flush_writer(*c);
                },
                rill::timeout_error);
        });
        rill::tcp_client_stream c(at(port), {.tls = client_tls()});
        rill::showln(c, "one line, then silence");
        rill::flush_writer(c);
        served.join();
    });
}

// A plain blocking OpenSSL client on a socket (not rill), to see what the server ends with:
// close_notify reads as SSL_ERROR_ZERO_RETURN, a bare TCP end as SSL_ERROR_SSL (OpenSSL 3:
// "unexpected eof while reading").
struct openssl_client {
    int fd = -1;
    SSL_CTX* ctx = nullptr;
    SSL* ssl = nullptr;
    explicit openssl_client(int port) {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        timeval tv{10, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        const rill_test::loopback_sockaddr to(port, false);
        if (::connect(fd, to.get(), to.length) != 0) throw std::runtime_error("connect");
        ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_load_verify_locations(ctx, certificates().ca.path.c_str(), nullptr);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        SSL_set_tlsext_host_name(ssl, "localhost");
        if (SSL_connect(ssl) != 1) throw std::runtime_error("SSL_connect failed");
    }
    ~openssl_client() {
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        ::close(fd);
    }
    void write(const std::string& s) { SSL_write(ssl, s.data(), static_cast<int>(s.size())); }
    // Reads until the connection ends: what was read, and SSL_get_error's verdict on the end.
    std::pair<std::string, int> read_to_end() {
        std::string all;
        char buf[4096];
        for (;;) {
            const int n = SSL_read(ssl, buf, sizeof buf);
            if (n > 0) {
                all.append(buf, static_cast<std::size_t>(n));
                continue;
            }
            const int e = SSL_get_error(ssl, n);
            ERR_clear_error();
            return {all, e};
        }
    }
};

TEST(TlsStreams, CloseStreamSendsCloseNotifyButACloseForAnExceptionDoesNot) {
    std::atomic<int> port{0};
    std::pair<std::string, int> orderly, cut;
    std::thread client([&] {
        if (!rill_test::thread_wait_until([&] { return port.load() != 0; })) return;
        {
            openssl_client c(port.load());
            c.write("orderly\n");
            orderly = c.read_to_end();
        }
        {
            openssl_client c(port.load());
            c.write("fail\n");
            cut = c.read_to_end();
        }
    });
    rill::run([&] {
        rill::tcp_server_stream server(0, {.tls = server_tls()});
        port = rill::tcp_server_socket_info(server).port_number;
        for (int i = 0; i < 2; ++i) {
            auto c = rill::read(server);
            ASSERT_TRUE(c);
            try {
                rill::call_with_stream(*c, [](rill::stream& s) {
                    const auto line = rill::read_line(s);
                    rill::showln(s, "answer to ", *line);
                    if (line == "fail") throw std::runtime_error("the handler failed");
                });
            } catch (const std::runtime_error&) {}
        }
    });
    client.join();
    EXPECT_EQ(orderly.first, "answer to orderly\r\n");
    EXPECT_EQ(orderly.second, SSL_ERROR_ZERO_RETURN);
    // The answer written before the exception is not sent (call_with_stream aborts), and the
    // peer can tell the connection was cut.
    EXPECT_EQ(cut.first, "");
    EXPECT_EQ(cut.second, SSL_ERROR_SSL);
}

TEST(TlsStreams, APeerEndingTcpWithoutCloseNotifyBetweenRecordsReadsAsEndOfStream) {
    std::atomic<int> port{0};
    std::thread client([&] {
        if (!rill_test::thread_wait_until([&] { return port.load() != 0; })) return;
        openssl_client c(port.load());
        c.write("first\nsecond\n");
        ::shutdown(c.fd, SHUT_WR);  // no close_notify: a truncation between records
        c.read_to_end();
    });
    rill::run([&] {
        rill::tcp_server_stream server(0, {.tls = server_tls()});
        port = rill::tcp_server_socket_info(server).port_number;
        auto c = rill::read(server);
        ASSERT_TRUE(c);
        EXPECT_EQ(rill::read_line(*c), "first");
        EXPECT_EQ(rill::read_line(*c), "second");
        EXPECT_EQ(rill::read_line(*c), std::nullopt);
        rill::close_stream(*c);
    });
    client.join();
}

// Also what the runtime stats count: the failed handshake, and the two ends of the good one.
TEST(TlsStreams, PlaintextToATlsPortIsATlsErrorOnThatConnectionOnly) {
    const rill::stream_totals before = rill::runtime_stats_snapshot().streams;
    std::atomic<int> port{0};
    std::thread client([&] {
        if (!rill_test::thread_wait_until([&] { return port.load() != 0; })) return;
        EXPECT_TRUE(raw_peer_is_closed_after(
            port.load(), [](rill_test::raw_client& raw) { raw.send("GET / HTTP/1.0\r\n\r\n"); }));
    });
    rill::run([&] {
        rill::tcp_server_stream server(0, {.tls = server_tls()});
        port = rill::tcp_server_socket_info(server).port_number;
        auto plain = rill::read(server);
        ASSERT_TRUE(plain);
        const std::string m =
            rill_test::message_of<rill::tls_error>([&] { (void)rill::read_line(*plain); });
        EXPECT_TRUE(contains(m, "read_line: tls handshake with 127.0.0.1:")) << m;
        EXPECT_TRUE(contains(m, "wrong version number") || contains(m, "http request")) << m;
        rill::close_stream(*plain);
        // The server goes on: a TLS client is served next.
        auto peer = rill::spawn([&] {
            rill::tcp_client_stream c(at(port.load()), {.tls = client_tls()});
            rill::showln(c, "after");
            rill::close_stream(c);
        });
        auto next = rill::read(server);
        ASSERT_TRUE(next);
        EXPECT_EQ(rill::read_line(*next), "after");
        peer.join();
    });
    client.join();
    const rill::stream_totals after = rill::runtime_stats_snapshot().streams;
    EXPECT_EQ(after.tls_handshakes - before.tls_handshakes, 2u);
    EXPECT_EQ(after.tls_handshake_failures - before.tls_handshake_failures, 1u);
}

}  // namespace

#endif  // RILL_WITH_TLS
