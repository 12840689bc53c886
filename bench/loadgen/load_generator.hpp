#pragma once

// The load generator's state: the connection table, the epoll set, the phase and the counts.
//
// connections.cpp holds the mechanics (connects, sends, receives, the check of every echoed
// byte, failures); scenarios.cpp what each scenario does with them (its phases, what an echo or
// an end of stream means, what is counted); tls_connections.cpp the same mechanics over TLS
// (--tls), kept apart so that the plain path runs exactly as before: one branch per event.

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <deque>
#include <string>
#include <vector>

#include "loadgen/integers.hpp"
#include "loadgen/line_pattern.hpp"
#include "loadgen/measurements.hpp"
#include "loadgen/options.hpp"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace loadgen {

// flood: the connection that floods; every other one probes.
inline constexpr u32 flooder_id = 0;
// Full receives from one connection before the others get their turn: a connection whose
// echoes never stop (flood) must not starve the rest of the client, or the probe's latency
// would be the client's, not the server's.
inline constexpr int max_reads_per_event = 4;

// handshaking: TCP connected, TLS handshake under way (--tls); it still counts as connecting.
enum class connection_state { closed, waiting, connecting, handshaking, open, draining };

struct tls_connection;  // tls_connections.cpp: the OpenSSL state of one connection slot

struct connection {
    int fd = -1;
    u32 id = 0;  // index in the table; part of every line's tag
    connection_state state = connection_state::closed;
    u64 sent = 0;  // lines queued for sending
    u64 echoed = 0;  // lines whose echo arrived complete and correct
    u32 rx_pos = 0;  // bytes of the current echo checked so far (content, then CR)
    line_pattern::tag_bytes rx_tag{};
    std::string out;  // queued output; out_sent bytes of it already sent
    std::size_t out_sent = 0;
    std::vector<u64> sent_ns;  // send time of each line in flight, ring indexed by seq % depth
    u64 opened_ns = 0;  // churn: when the connect began
    // Its receives stopped at max_reads_per_event with bytes left: read on after the others.
    bool still_readable = false;
    u32 still_readable_events = 0;  // the events of the edge being read
    // --tls: this slot's OpenSSL state, owned by the load generator; it outlives each connection
    // so that the slot's saved session (--tls-resume) carries over to the next one.
    tls_connection* tls = nullptr;
};

class load_generator {
public:
    // Resolves the address and raises the descriptor limit; throws usage_error when the run
    // cannot be set up, std::system_error when epoll cannot.
    explicit load_generator(const bench_options& o);
    ~load_generator();
    load_generator(const load_generator&) = delete;
    load_generator& operator=(const load_generator&) = delete;

    // Runs the scenario and prints its report; returns bench_command's exit status (0 or 1).
    int run();

private:
    // connections.cpp
    void raise_descriptor_limit();
    void open_connection(connection& c);
    void on_connected(connection& c);
    void on_event(connection& c, u32 events);
    // A connecting socket's event: true when the connect succeeded, false when it is still
    // under way or failed (then c is closed).
    bool connect_completed(connection& c, u32 events);
    void read_available(connection& c, u32 events);
    // Reads on from every connection left still_readable, once round.
    void read_still_readable();
    bool check_echo(connection& c, const char* data, std::size_t n);
    void queue_lines(connection& c, int count, u64 sent_ns);
    void flush(connection& c);
    void fail(connection& c, bool mismatch, const std::string& what);
    void close_connection(connection& c);
    void queue_connect(connection& c);
    void start_queued_connects();

    // tls_connections.cpp; used only with --tls
    void create_tls_client();
    void destroy_tls_client();
    void start_tls(connection& c);
    void on_tls_event(connection& c, u32 events);
    void tls_read_available(connection& c, u32 events);
    // Decrypts what has arrived: handshake, echoes, close_notify. False when c was closed.
    bool tls_consume(connection& c);
    void tls_flush(connection& c);
    void close_tls(connection& c);

    // scenarios.cpp
    // Lines connection c keeps in flight: --depth, but 1 for flood's probes.
    int lines_in_flight(const connection& c) const;
    void record_unanswered_probes();
    void on_line_echoed(connection& c);
    void on_end_of_stream(connection& c);
    template <class Done>
    void run_until(u64 deadline_ns, Done done);
    void show_progress(u64 now);
    void start_measuring();
    void stop_measuring();
    void establish(u64 deadline_ns);
    int abandon_unfinished(bool need_echo);
    int exit_status() const;
    const char* phase_name() const;

    const bench_options& o_;
    sockaddr_storage target_;
    line_pattern pattern_;
    int epoll_fd_ = -1;
    int source_addresses_ = o_.source_addresses;
    std::vector<connection> table_;
    std::deque<connection*> connect_queue_;
    std::vector<connection*> still_readable_;
    int connecting_ = 0;  // connects in progress
    int established_ = 0;  // connects that completed (churn: every reconnect counts)
    bool stopping_ = false;

    enum class phase { setup, warmup, measure, settle } phase_ = phase::setup;
    bool measuring_ = false;
    results r_;
    u64 measure_start_ns_ = 0;
    double client_cpu_start_ = 0, server_cpu_start_ = 0;
    u64 rx_ns_ = 0;  // arrival time of the chunk being checked
    ssl_ctx_st* tls_client_ = nullptr;  // --tls: the client's SSL_CTX
    std::string tls_suite_;  // --tls: cipher and key exchange group of the first handshake

    u64 completed_total_ = 0;  // lines, connections or exchanges, in every phase
    u64 errors_ = 0, mismatches_ = 0;
    int messages_left_ = 5;  // detailed failure reports before going quiet

    bool progress_ = false;
    bool progress_shown_ = false;
    u64 next_tick_ns_ = 0, phase_start_ns_ = 0, completed_at_tick_ = 0;
    std::array<char, 64 * 1024> rx_buffer_{};
    std::array<char, 64 * 1024> tls_rx_buffer_{};  // --tls: ciphertext as received
};

}  // namespace loadgen
