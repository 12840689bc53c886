// Helper threads for work that blocks its thread (getaddrinfo may wait seconds for a name
// server): the task that needs it waits as a task, and its worker runs the others meanwhile.
#pragma once

#include <functional>

namespace rill::detail {

// Runs `job` on a helper thread (at most helper_threads_max at once; more jobs queue) and
// parks the calling task until it has finished. Outside a task, or when no helper thread can
// be started, runs it on the calling thread. A task cancelled while it waits leaves with
// task_cancelled at once; the job still runs to its end, so it must own what it touches.
void run_on_helper_thread(std::function<void()> job);

}  // namespace rill::detail
