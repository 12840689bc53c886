#include "runtime/counters.hpp"

#include <rill/stats.hpp>

namespace rill {
namespace detail {

constinit process_counters counters;

}  // namespace detail

runtime_counters counters_snapshot() noexcept {
    const auto& c = detail::counters;
    return runtime_counters{
        .tasks_failed_to_start = c.tasks_failed_to_start.load(std::memory_order_relaxed),
        .accept_errors_retried = c.accept_errors_retried.load(std::memory_order_relaxed),
        .clients_dropped = c.clients_dropped.load(std::memory_order_relaxed),
        .task_failures_not_reported = c.task_failures_not_reported.load(std::memory_order_relaxed),
    };
}

}  // namespace rill
