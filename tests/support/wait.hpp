// Bounded waits for a condition that another thread or task makes true, from a plain thread
// or from inside a rill task. A wait that runs out returns false, so a broken test fails
// instead of hanging. Prefer a real event (a channel, a join, the peer's bytes) where the
// test has one: these are for state that only shows in a flag.
#pragma once

#include <chrono>
#include <thread>

#include <rill/runtime.hpp>

namespace rill_test {

inline constexpr auto wait_limit = std::chrono::seconds(10);
inline constexpr auto wait_poll_interval = std::chrono::milliseconds(1);

// From a plain thread: waits until `ready` holds or `limit` passes; returns ready().
template <class Predicate>
bool thread_wait_until(Predicate ready, std::chrono::milliseconds limit = wait_limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!ready()) {
        if (std::chrono::steady_clock::now() >= deadline) return ready();
        std::this_thread::sleep_for(wait_poll_interval);
    }
    return true;
}

// From a rill task: the same, suspending only this task.
template <class Predicate>
bool task_wait_until(Predicate ready, std::chrono::milliseconds limit = wait_limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!ready()) {
        if (std::chrono::steady_clock::now() >= deadline) return ready();
        rill::task_sleep(wait_poll_interval);
    }
    return true;
}

}  // namespace rill_test
