// The process-wide counters behind rill::counters_snapshot (include/rill/stats.hpp). Relaxed
// atomics: they count rare events (a failed start, a failed accept), nothing on a request's
// path.
#pragma once

#include <atomic>
#include <cstdint>

namespace rill::detail {

struct process_counters {
    std::atomic<std::uint64_t> tasks_failed_to_start{0};
    std::atomic<std::uint64_t> accept_errors_retried{0};
    std::atomic<std::uint64_t> clients_dropped{0};
    std::atomic<std::uint64_t> task_failures_not_reported{0};
};

extern process_counters counters;

inline void count(std::atomic<std::uint64_t>& counter) noexcept {
    counter.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace rill::detail
