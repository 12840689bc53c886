// What a running service is doing. counters_snapshot: rare events a server rides out instead
// of dying, what an operator looks at when clients report dropped connections. Process-wide
// (every run() in the process adds to them), counted from the start of the process, never
// reset; reading them costs a few loads. runtime_stats_snapshot (below) adds the workers,
// the backend, each server stream and the bytes, lines and errors of every stream.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <rill/runtime.hpp>

namespace rill {

struct runtime_counters {
    // spawn could not start a task (no stack could be mapped: an address-space limit,
    // vm.max_map_count, memory pressure; or no memory for the task itself). The task ended
    // at once with that error: its body (a client stream it captured, say) was destroyed, a
    // joiner gets the error, a detached task has it reported.
    std::uint64_t tasks_failed_to_start = 0;
    // Accepts that failed with an error that does not end the server (out of descriptors or
    // memory, or an error read(server) does not know) and were retried after a back-off.
    std::uint64_t accept_errors_retried = 0;
    // Connections accepted and closed again at once because the process had no memory for
    // their stream: those clients see their connection close, the server carries on.
    std::uint64_t clients_dropped = 0;
    // Failures of tasks nobody joins that the default report did not write on stderr (over
    // its rate of 20 lines, then 10 a second; its queue full; no memory to format them):
    // counted here and summed up on stderr instead. A handler set with
    // set_task_failure_handler sees every failure.
    std::uint64_t task_failures_not_reported = 0;
};

// The counters now. Safe from any thread, inside or outside run().
runtime_counters counters_snapshot() noexcept;

// ---- runtime_stats_snapshot: what a running service is doing ------------------------------

// One worker of the running run() (runtime_options::workers of them; worker 0 is the thread
// that called run).
struct worker_stats {
    std::uint64_t tasks_alive = 0;  // started on this worker and not finished yet
    std::uint64_t tasks_spawned = 0;  // started on this worker since run began (main included)
    std::uint64_t run_queue_length = 0;  // tasks ready to run, waiting for their turn
    std::uint64_t loop_turns = 0;  // turns of the worker's loop (each runs the ready tasks)
    // Time the worker spent in its backend waiting for events (idle time, in effect).
    std::chrono::nanoseconds time_waiting{0};
};

// Why run uses the backend it uses.
enum class backend_choice {
    io_uring_by_default,  // runtime_options::backend automatic: io_uring works here
    asked_by_options,  // runtime_options::backend named it
    asked_by_environment,  // the RILL_BACKEND environment variable named it
    io_uring_unavailable,  // automatic, but the kernel or a seccomp profile refuses io_uring
    io_uring_setup_failed,  // automatic, and a worker's ring could not be set up: epoll
};

// One open tcp_server_stream (listed from construction until close_stream or destruction).
struct server_stats {
    std::string address;  // its bound address, "127.0.0.1:2020" or "[::1]:2020"
    std::uint64_t connections_accepted = 0;  // clients read(server) returned
    std::uint64_t connections_open = 0;  // of those, not closed yet
    // Times read(server) found max_connections clients open and stopped accepting until
    // one closed (server_options::max_connections).
    std::uint64_t accepting_paused_at_limit = 0;
    // Accepts that failed and were retried after a back-off (out of descriptors or memory):
    // per server, the count runtime_counters::accept_errors_retried sums.
    std::uint64_t accept_errors = 0;
};

// What every stream of the process read and wrote, counted from the start of the process
// (every run() adds to them), never reset.
struct stream_totals {
    // Bytes the stream layer received and sent: plaintext (after TLS decryption, before
    // encryption), before decoding and after encoding with a transcoder.
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::uint64_t lines_in = 0;  // lines read_line returned
    std::uint64_t lines_out = 0;  // lines written by showln and newline (one each)
    std::uint64_t lines_too_long = 0;  // line_too_long errors read_line threw
    // decoding_error exceptions a reader threw (error mode raise); bytes a transcoder in
    // replace mode replaced are not counted.
    std::uint64_t decoding_errors = 0;
    // Reader timeouts (a read that returned empty or short because reader_timeout passed),
    // writer timeouts (timeout_error from a write or flush) and TLS handshake timeouts.
    std::uint64_t timeouts = 0;
    // task_cancelled exceptions made: each blocking call of a cancelled task throws one.
    std::uint64_t cancellations = 0;
    // TLS handshakes of this process's streams, server and client side alike: those that
    // completed, and those that failed (a refused certificate, an alert, plaintext or garbage
    // from the peer, the handshake timeout, the peer closing during the handshake). Each
    // failure is also a tls_error thrown to the stream's task; a reset, the caller's own
    // timeout or a cancellation during the handshake counts as neither.
    std::uint64_t tls_handshakes = 0;
    std::uint64_t tls_handshake_failures = 0;
};

struct runtime_stats {
    // Whether a run() is running. The fields below about "the runtime" describe the one that
    // started last when several run at once; outside run they are empty (no workers).
    bool running = false;
    rill::backend backend = rill::backend::automatic;  // io_uring or epoll when running
    backend_choice backend_reason = backend_choice::io_uring_by_default;
    // When io_uring could not be used: the refusal ("io_uring_setup failed: Operation not
    // permitted"); empty otherwise.
    std::string backend_reason_detail;
    std::vector<worker_stats> workers;
    std::vector<server_stats> servers;  // every open server stream of the process
    stream_totals streams;
    runtime_counters events;  // counters_snapshot()
};

// A snapshot of the running runtime, its servers and the process's stream counters. Safe from
// any thread, inside or outside run (a task of the run may call it: it does not wait). Takes
// a mutex shared with server streams' construction and close, and allocates the vectors;
// each value is read once, so the sums are not one instant's but each is exact for a quiet
// counter. Throws std::bad_alloc only.
runtime_stats runtime_stats_snapshot();

// "io_uring", "epoll" (or "automatic"); the choice's name as its enumerator reads.
const char* to_string(rill::backend b) noexcept;
const char* to_string(backend_choice c) noexcept;

}  // namespace rill
