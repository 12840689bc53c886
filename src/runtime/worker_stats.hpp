// The counters behind rill::runtime_stats_snapshot (include/rill/stats.hpp) that change on a
// request's path: one block per worker, written only by that worker's thread, summed when a
// snapshot is taken. A count is a relaxed load and store (a plain add on x86: no locked
// instruction, no cache line shared with another worker), and the snapshot's relaxed loads
// read whole values (TSan sees no race). Events on a thread that is not a worker (rare: a
// task_cancelled made by user code outside run) go to one shared block with fetch_add.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include <rill/runtime.hpp>
#include <rill/stats.hpp>

namespace rill::detail {

class runtime_state;

// Aligned to a cache line so two workers' counting never touches one line.
struct alignas(64) worker_counters {
    // Scheduler: tasks started and finished on this worker, tasks in its run queue, loop
    // turns, and nanoseconds spent in a backend wait that could block.
    std::atomic<std::uint64_t> tasks_started{0};
    std::atomic<std::uint64_t> tasks_finished{0};
    std::atomic<std::uint64_t> tasks_ready{0};
    std::atomic<std::uint64_t> loop_turns{0};
    std::atomic<std::uint64_t> waiting_ns{0};
    // Streams of tasks on this worker (the fields of rill::stream_totals).
    std::atomic<std::uint64_t> bytes_in{0};
    std::atomic<std::uint64_t> bytes_out{0};
    std::atomic<std::uint64_t> lines_in{0};
    std::atomic<std::uint64_t> lines_out{0};
    std::atomic<std::uint64_t> lines_too_long{0};
    std::atomic<std::uint64_t> decoding_errors{0};
    std::atomic<std::uint64_t> timeouts{0};
    std::atomic<std::uint64_t> cancellations{0};
    std::atomic<std::uint64_t> tls_handshakes{0};
    std::atomic<std::uint64_t> tls_handshake_failures{0};
};

// Adds `n` to a counter only the calling thread writes: no read-modify-write instruction.
inline void add_owned(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
// The same for a gauge only the calling thread changes.
inline void subtract_owned(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
}

using worker_counter = std::atomic<std::uint64_t> worker_counters::*;

// The calling worker's block, or null on a thread that is not a worker: set and cleared with
// current_scheduler (constinit: read without a thread-local init call).
extern constinit thread_local worker_counters* current_worker_block;
inline worker_counters* current_worker_counters() noexcept { return current_worker_block; }
// Off a worker: the shared block, counted with fetch_add.
void count_off_worker(worker_counter field, std::uint64_t n) noexcept;

// Counts `n` events of `field` for the calling thread's worker.
inline void count_event(worker_counter field, std::uint64_t n = 1) noexcept {
    if (worker_counters* c = current_worker_counters()) [[likely]]
        add_owned(c->*field, n);
    else
        count_off_worker(field, n);
}

// How run chose its backend, kept with the running runtime for the snapshot.
struct backend_decision {
    rill::backend_choice why = rill::backend_choice::io_uring_by_default;
    std::string detail;  // the refusal's text when io_uring could not be used
};

// A run leaving running_runtimes (run_registration): its stream counters join the process
// totals. With running_mutex held.
void fold_stream_counters(runtime_state& rt) noexcept;
// Fills the runtime's part of a snapshot: running, backend, workers and stream totals.
void collect_runtime_stats(rill::runtime_stats& out);

}  // namespace rill::detail
