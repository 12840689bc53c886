// The scheduler's view of its I/O backend: a loop turn waits for events (or polls), another
// thread wakes a sleeping loop. The I/O layer (io/) implements it and creates one per worker;
// the runtime knows nothing else of it.
#pragma once

#include <chrono>
#include <memory>
#include <optional>

#include <string>
#include <system_error>

#include <rill/error.hpp>
#include <rill/runtime.hpp>

#include "runtime/worker_stats.hpp"

namespace rill::detail {

class scheduler;

class poller {
public:
    virtual ~poller() = default;

    // From the scheduler loop: hands the kernel what is queued and waits up to `timeout`
    // (none: no limit; zero: just poll) for events, making their tasks ready.
    virtual void wait(std::optional<std::chrono::nanoseconds> timeout) = 0;

    // From any thread: makes a concurrent or next wait() return.
    virtual void wake() noexcept = 0;

    // Work is queued that only the next wait() hands to the kernel (io_uring's submission
    // queue): the loop puts that off by one turn at most.
    virtual bool has_unsubmitted() const noexcept { return false; }
};

// A worker's backend could not be set up although choose_backend said it would do (io_uring:
// a ring refused for RLIMIT_MEMLOCK or ENOMEM after the probe passed). Under `automatic`, run
// starts again with epoll on every worker; a backend asked for by name fails the run.
class backend_setup_error : public os_error {
public:
    using os_error::os_error;
};
[[noreturn]] inline void throw_backend_setup_error(int err, const std::string& context) {
    throw backend_setup_error(std::error_code(err, std::system_category()), context);
}

// Defined by the I/O layer. Which backend `requested` means in this process (RILL_BACKEND,
// then `automatic`'s probe), decided before any worker starts.
rill::backend choose_backend(rill::backend requested);
// Why choose_backend(requested) gave `chosen`, for runtime_stats_snapshot.
backend_decision explain_backend_choice(rill::backend requested, rill::backend chosen);
// The poller of one worker, created on that worker's thread.
std::unique_ptr<poller> make_poller(rill::backend kind, scheduler& owner);
// Whether `requested` lets run fall back to epoll when a worker's io_uring cannot be set up
// (`automatic`, unless RILL_BACKEND names a backend).
bool backend_may_fall_back(rill::backend requested);

}  // namespace rill::detail
