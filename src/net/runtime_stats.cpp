// runtime_stats_snapshot: the runtime's part (workers, backend, stream totals) and the open
// servers. Here, in the layer that knows both.
#include <rill/stats.hpp>

#include "net/connection_limit.hpp"
#include "runtime/worker_stats.hpp"

namespace rill {

runtime_stats runtime_stats_snapshot() {
    runtime_stats out;
    detail::collect_runtime_stats(out);
    out.servers = detail::open_server_stats();
    out.events = counters_snapshot();
    return out;
}

}  // namespace rill
