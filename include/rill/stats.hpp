// Counters of rare events a server rides out instead of dying: what an operator looks at when
// clients report dropped connections. Process-wide (every run() in the process adds to them),
// counted from the start of the process, never reset; reading them costs a few loads.
#pragma once

#include <cstdint>

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

}  // namespace rill
