#include "runtime/worker_stats.hpp"

#include <algorithm>
#include <mutex>
#include <vector>

#include <rill/error.hpp>

#include "runtime/scheduler.hpp"

namespace rill {
namespace detail {

constinit thread_local worker_counters* current_worker_block = nullptr;

namespace {
// The process's stream totals of runs that ended and of threads that are not workers. Folded
// and read under running_mutex, so a snapshot sees a run's counters either in its blocks or
// in the totals, never both nor neither.
constinit worker_counters finished_and_off_worker;

constexpr worker_counter stream_fields[] = {
    &worker_counters::bytes_in,       &worker_counters::bytes_out,
    &worker_counters::lines_in,       &worker_counters::lines_out,
    &worker_counters::lines_too_long, &worker_counters::decoding_errors,
    &worker_counters::timeouts,       &worker_counters::cancellations,
    &worker_counters::tls_handshakes, &worker_counters::tls_handshake_failures,
};

std::uint64_t read(const std::atomic<std::uint64_t>& c) noexcept {
    return c.load(std::memory_order_relaxed);
}
}  // namespace

void count_off_worker(worker_counter field, std::uint64_t n) noexcept {
    (finished_and_off_worker.*field).fetch_add(n, std::memory_order_relaxed);
}

void fold_stream_counters(runtime_state& rt) noexcept {
    for (std::size_t w = 0; w < rt.worker_count(); ++w)
        for (worker_counter f : stream_fields)
            (finished_and_off_worker.*f)
                .fetch_add(read(rt.counters_of(w).*f), std::memory_order_relaxed);
}

void collect_runtime_stats(rill::runtime_stats& out) {
    worker_counters sum;
    std::lock_guard lock(running_mutex);
    for (worker_counter f : stream_fields) add_owned(sum.*f, read(finished_and_off_worker.*f));
    for (runtime_state* rt : running_runtimes)
        for (std::size_t w = 0; w < rt->worker_count(); ++w)
            for (worker_counter f : stream_fields) add_owned(sum.*f, read(rt->counters_of(w).*f));
    out.streams = rill::stream_totals{
        .bytes_in = read(sum.bytes_in),
        .bytes_out = read(sum.bytes_out),
        .lines_in = read(sum.lines_in),
        .lines_out = read(sum.lines_out),
        .lines_too_long = read(sum.lines_too_long),
        .decoding_errors = read(sum.decoding_errors),
        .timeouts = read(sum.timeouts),
        .cancellations = read(sum.cancellations),
        .tls_handshakes = read(sum.tls_handshakes),
        .tls_handshake_failures = read(sum.tls_handshake_failures),
    };
    if (running_runtimes.empty()) return;
    runtime_state& rt = *running_runtimes.back();
    out.running = true;
    out.backend = rt.backend_kind();
    out.backend_reason = rt.backend_reason().why;
    out.backend_reason_detail = rt.backend_reason().detail;
    out.workers.reserve(rt.worker_count());
    for (std::size_t w = 0; w < rt.worker_count(); ++w) {
        const worker_counters& c = rt.counters_of(w);
        // Finished first: a task that finishes between the two loads is then counted alive,
        // never "minus one alive".
        const std::uint64_t finished = read(c.tasks_finished);
        const std::uint64_t started = read(c.tasks_started);
        out.workers.push_back(rill::worker_stats{
            .tasks_alive = started >= finished ? started - finished : 0,
            .tasks_spawned = started,
            .run_queue_length = read(c.tasks_ready),
            .loop_turns = read(c.loop_turns),
            .time_waiting = std::chrono::nanoseconds(read(c.waiting_ns)),
        });
    }
}

}  // namespace detail

// Out of line so that each one made is counted (stream_totals::cancellations).
task_cancelled::task_cancelled() : error("task cancelled") {
    detail::count_event(&detail::worker_counters::cancellations);
}

const char* to_string(rill::backend b) noexcept {
    switch (b) {
    case rill::backend::io_uring: return "io_uring";
    case rill::backend::epoll: return "epoll";
    case rill::backend::automatic: break;
    }
    return "automatic";
}

const char* to_string(backend_choice c) noexcept {
    switch (c) {
    case backend_choice::io_uring_by_default: return "io_uring_by_default";
    case backend_choice::asked_by_options: return "asked_by_options";
    case backend_choice::asked_by_environment: return "asked_by_environment";
    case backend_choice::io_uring_unavailable: return "io_uring_unavailable";
    case backend_choice::io_uring_setup_failed: return "io_uring_setup_failed";
    }
    return "unknown";
}

}  // namespace rill
