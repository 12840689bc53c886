// Graceful shutdown (rill::request_shutdown): what the layers above register so that a
// shutdown reaches them. Servers register a hook with their run, fired once from whatever
// thread starts the shutdown; a stream about to wait for input with nothing buffered
// registers an idle watch with its worker, fired on that worker's own thread.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include <rill/runtime.hpp>

namespace rill::detail {

class runtime_state;

// Fired once, from the thread that starts the shutdown (any thread): must be thread-safe and
// must not block. A server closes itself.
struct shutdown_hook {
    void (*fire)(shutdown_hook*) noexcept = nullptr;
    void* context = nullptr;  // what `fire` works on
    runtime_state* runtime = nullptr;  // null once removed or once its run has ended
    shutdown_hook* prev = nullptr;
    shutdown_hook* next = nullptr;
};

// Adds `h` to the run of the calling task (nothing outside a task). A hook added once the
// shutdown has begun fires at once.
void add_shutdown_hook(shutdown_hook& h) noexcept;
// Takes `h` off (from any thread; harmless when it is not on).
void remove_shutdown_hook(shutdown_hook& h) noexcept;
// A run that ends takes its hooks off (they may outlive it).
void drop_shutdown_hooks(runtime_state& rt) noexcept;

// A task waiting for input on an idle connection. Fired on the worker's own thread when the
// worker learns of the shutdown, then on each loop turn of the drain until it returns true:
// the stream makes its waiting receive end once no output of its own is still on its way
// (a task blocked sending is in the middle of a request).
struct idle_watch {
    bool (*fire)(idle_watch*) noexcept = nullptr;
    bool fired = false;
    idle_watch* prev = nullptr;
    idle_watch* next = nullptr;
};

// The runs under way, in the order they started: request_shutdown and end_drain, a task
// dump from a thread that is no worker, and runtime_stats_snapshot find them here. Under
// running_mutex, which also guards the servers' shutdown hooks (a hook may outlive its run).
extern std::mutex running_mutex;
extern std::vector<runtime_state*> running_runtimes;

// Lists a run in running_runtimes while it lives, and watches the signals of
// runtime_options::shutdown_signals and task_dump_signal. Made by run once every worker
// exists; destroyed once every worker has left its loop, before the schedulers go. Leaving
// the list folds the run's stream counters into the process totals.
class run_registration {
public:
    explicit run_registration(runtime_state& rt);
    ~run_registration();
    run_registration(const run_registration&) = delete;
    run_registration& operator=(const run_registration&) = delete;

private:
    runtime_state& rt_;
    class signal_watcher;
    std::unique_ptr<signal_watcher> signals_;
};

// Throws argument_error for signals that cannot be caught (SIGKILL, SIGSTOP, out of range),
// a signal given twice, and a negative drain_timeout.
void check_shutdown_options(const runtime_options& options);

}  // namespace rill::detail
