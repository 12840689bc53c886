// Helpers for the stream tests: one accepted connection served inside rill::run while a
// plain-POSIX peer (rill_test::raw_client) drives the other end from a std::thread, so a test
// controls exactly which bytes reach the wire and when (split writes, half-closes, resets).
// Every wait is bounded: a broken stream fails a test instead of hanging it.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <unistd.h>

#include <rill/rill.hpp>

#include "net/tls_transport.hpp"
#include "stream/memory_transport.hpp"
#include "support/loopback.hpp"
#include "support/wait.hpp"
#if RILL_WITH_TLS
#include "support/tls_certs.hpp"
#endif

namespace rill_stream_test {

using namespace std::chrono_literals;

using rill_test::task_wait_until;
using rill_test::thread_wait_until;
using rill_test::wait_limit;

// The tls. pass of the suite (RILL_TEST_TRANSPORT=tls, tests/CMakeLists.txt) runs the stream
// tests whose peer is a memory_peer or a rill client over TLS: every stream operation and
// transcoder then reads and writes through rill's TLS transport, unchanged. Tests with a raw
// socket peer (it speaks no TLS) are skipped in that pass.
inline bool tls_pass() {
    const char* v = std::getenv("RILL_TEST_TRANSPORT");
    return v != nullptr && std::string_view(v) == "tls";
}

#if RILL_WITH_TLS
// The certificates and both sides' contexts of the tls. pass, made once per process.
struct tls_pass_contexts {
    rill_test::tls_test_certificates certificates;
    rill::tls_context server{{.certificate_pem = certificates.server.certificate.pem,
                              .private_key_pem = certificates.server.private_key.pem}};
    rill::tls_context client{{.ca_file = certificates.ca.path.string()}};
};
inline tls_pass_contexts& tls_contexts() {
    static tls_pass_contexts contexts;
    return contexts;
}
#endif

// In the tls. pass: both ends of an in-memory pair wrapped in TLS (server, client).
inline void wrap_in_tls_in_tls_pass(std::unique_ptr<rill::detail::transport>& server_end,
                                    std::unique_ptr<rill::detail::transport>& client_end) {
    if (!tls_pass()) return;
#if RILL_WITH_TLS
    server_end = rill::detail::make_tls_transport(std::move(server_end), tls_contexts().server,
                                                  rill::detail::tls_role::server);
    client_end = rill::detail::make_tls_transport(std::move(client_end), tls_contexts().client,
                                                  rill::detail::tls_role::client, "localhost");
#endif
}

// Long enough for bytes sent on loopback to have arrived, short enough to keep the suite fast.
inline constexpr auto settle_time = std::chrono::milliseconds(50);

// Serves one connection: `serve(stream)` runs inside rill::run on the accepted stream of a
// server on 127.0.0.1, port 0, while `peer(raw_client)` drives the other end from a thread
// started before run and joined after it. An exception on the peer's side is rethrown here.
template <class Serve, class Peer>
void serve_raw_peer(Serve serve, Peer peer, rill::server_options options = {}) {
    if (tls_pass()) GTEST_SKIP() << "a raw socket peer speaks no TLS (the tls. pass)";
    std::atomic<int> port{0};  // 0: not yet known; -1: the server side gave up
    std::exception_ptr peer_error;
    std::thread peer_thread([&] {
        try {
            if (!thread_wait_until([&] { return port.load() != 0; }))
                throw std::runtime_error("the server never published its port");
            if (port.load() < 0) return;
            rill_test::raw_client client(port.load());
            peer(client);
        } catch (...) {
            peer_error = std::current_exception();
        }
    });
    try {
        rill::run([&] {
            rill::tcp_server_stream server(0, options);
            port = rill::tcp_server_socket_info(server).port_number;
            auto client = rill::read(server);
            ASSERT_TRUE(client) << "no connection accepted";
            serve(*client);
        });
    } catch (...) {
        int unknown = 0;
        port.compare_exchange_strong(unknown, -1);
        peer_thread.join();
        throw;
    }
    int unknown = 0;
    port.compare_exchange_strong(unknown, -1);
    peer_thread.join();
    if (peer_error) std::rethrow_exception(peer_error);
}

// Both ends in rill: `serve(accepted)` in the main task, `connect(client)` in a spawned task
// holding a tcp_client_stream to the server (joined, so its exception is rethrown).
template <class Serve, class Connect>
void serve_rill_peer(Serve serve, Connect connect, rill::server_options options = {}) {
    rill::client_options client_options;
#if RILL_WITH_TLS
    if (tls_pass()) {
        options.tls = tls_contexts().server;
        client_options.tls = tls_contexts().client;
    }
#endif
    rill::run([&] {
        rill::tcp_server_stream server(0, options);
        const int port = rill::tcp_server_socket_info(server).port_number;
        auto peer = rill::spawn([&, port] {
            rill::tcp_client_stream c("localhost:" + std::to_string(port), client_options);
            connect(c);
        });
        auto client = rill::read(server);
        ASSERT_TRUE(client) << "no connection accepted";
        serve(*client);
        peer.join();
    });
}

// The other end of an in-memory transport, driven from a rill task: each send() arrives as
// one receive of the stream's, so a test splits the bytes exactly where it wants, and every
// wait is for an event (no pause for bytes to settle, as a socket peer needs).
class memory_peer {
public:
    explicit memory_peer(std::unique_ptr<rill::detail::transport> t) : transport_(std::move(t)) {}

    // All of `bytes`, as one receive when they fit the transport's capacity.
    void send(std::string_view bytes) {
        const auto deadline = rill::detail::clock::now() + wait_limit;
        while (!bytes.empty()) {
            const long r = transport_->send(bytes.data(), bytes.size(), deadline, false);
            if (r < 0) throw std::runtime_error("memory_peer send: error " + std::to_string(-r));
            bytes.remove_prefix(static_cast<std::size_t>(r));
        }
    }
    // TLS: close_notify first, as close_writer sends it (after the handshake, which a peer
    // that sent nothing has not made yet: a send of nothing makes it).
    void shutdown_write() {
        const auto deadline = rill::detail::clock::now() + wait_limit;
        if (tls_pass() && transport_->send("", 0, deadline, false) < 0)
            throw std::runtime_error("memory_peer: the TLS handshake failed");
        transport_->finish_output(deadline);
        transport_->shutdown_writer();
    }
    // What arrives next (empty at end of stream).
    std::string receive_some() {
        rill::detail::byte_buffer in;
        const long r = transport_->receive(in, rill::detail::clock::now() + wait_limit, nullptr);
        if (r < 0) throw std::runtime_error("memory_peer receive: error " + std::to_string(-r));
        return std::string(in.head(), in.size());
    }
    // Everything until the stream closes or shuts its writer down.
    std::string receive_all() {
        std::string all;
        while (true) {
            std::string some = receive_some();
            if (some.empty()) return all;
            all += some;
        }
    }
    void close() { transport_->close(); }

private:
    std::unique_ptr<rill::detail::transport> transport_;
};

// Serves a stream over an in-memory transport inside rill::run: `serve(stream)` in the main
// task, `peer(memory_peer)` in a task of its own (on another worker when there is one). The
// stream is closed when serve returns; the peer is joined, so its exception is rethrown.
template <class Serve, class Peer>
void serve_memory_peer(Serve serve, Peer peer, rill::stream_options options = {},
                       std::optional<rill::transcoder> coding = {}) {
    rill::run([&] {
        auto [mine, theirs] = rill::detail::make_memory_transport_pair();
        wrap_in_tls_in_tls_pass(mine, theirs);
        rill::stream s = rill::detail::make_stream(std::move(mine), options, coding);
        auto peer_task = rill::spawn([&, t = std::move(theirs)]() mutable {
            memory_peer p(std::move(t));
            peer(p);
        });
        std::exception_ptr failure;
        try {
            serve(s);
        } catch (...) {
            failure = std::current_exception();
        }
        rill::detail::abort_stream(s);  // the peer's receive_all ends
        peer_task.join();
        if (failure) std::rethrow_exception(failure);
    });
}

// The peer of serve_memory_peer that sends `segments` (each arrives as one receive), then
// half-closes and reads until the stream closes.
inline auto memory_sends(std::vector<std::string> segments) {
    return [segments = std::move(segments)](memory_peer& c) {
        for (const std::string& segment : segments) c.send(segment);
        c.shutdown_write();
        c.receive_all();
    };
}

// Every line read_line returns until end of stream (bounded).
inline std::vector<std::string> read_all_lines(rill::stream& s,
                                               const rill::read_line_options& o = {}) {
    std::vector<std::string> lines;
    for (int i = 0; i < 100000; ++i) {
        auto line = rill::read_line(s, o);
        if (!line) break;
        lines.push_back(*line);
    }
    return lines;
}

// Resident set size of this process, in bytes.
inline std::size_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::size_t pages_total = 0, pages_resident = 0;
    statm >> pages_total >> pages_resident;
    return pages_resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

inline std::string as_string(const std::vector<std::uint8_t>& bytes) {
    return std::string(bytes.begin(), bytes.end());
}

}  // namespace rill_stream_test
