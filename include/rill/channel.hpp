// Bounded channels between tasks, on any workers: the C++ form of Slogan's task messages.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include <rill/error.hpp>

namespace rill {

namespace detail {
struct task_control;

// Sends the output the running task flushed (flush_writer defers it to here) before the
// task may wait. No-op outside a task.
void prepare_to_wait();

// Tasks parked on a condition guarded by the owner's mutex. Safe across workers.
class wait_list {
public:
    struct node;
    // Parks the calling task until notify_one/notify_all picks it. `lock` is held on entry,
    // released while parked and held again on return. Throws task_cancelled if the task is
    // cancelled while parked (after leaving the list), or error outside a task.
    void wait(std::unique_lock<std::mutex>& lock);
    // As wait, but gives up once `deadline` passes: false then, off the list.
    bool wait_until(std::unique_lock<std::mutex>& lock,
                    std::chrono::steady_clock::time_point deadline);
    // Both with the mutex held. Return whether a task was woken.
    bool notify_one() noexcept;
    void notify_all() noexcept;
    bool empty() const noexcept { return head_ == nullptr; }

private:
    node* head_ = nullptr;
    node* tail_ = nullptr;
    friend struct wait_list_access;
};
}  // namespace detail

// A bounded FIFO channel. Copies share one channel (it is a handle, as in Go).
template <class T>
class channel {
public:
    // Capacity must be at least 1: send blocks while `capacity` values wait unreceived.
    explicit channel(std::size_t capacity) : state_(std::make_shared<state>()) {
        if (capacity == 0) throw argument_error("channel capacity must be at least 1, got 0");
        state_->capacity = capacity;
    }

    // Blocks while the channel is full. Throws channel_closed if the channel is closed.
    void send(T value) {
        detail::prepare_to_wait();
        std::unique_lock lock(state_->mutex);
        while (state_->values.size() >= state_->capacity && !state_->closed)
            state_->senders.wait(lock);
        if (state_->closed) throw channel_closed("channel send: the channel is closed");
        state_->values.push_back(std::move(value));
        state_->receivers.notify_one();
    }

    // Blocks while the channel is empty; returns empty once the channel is closed and drained.
    std::optional<T> receive() {
        detail::prepare_to_wait();
        std::unique_lock lock(state_->mutex);
        while (state_->values.empty() && !state_->closed) state_->receivers.wait(lock);
        if (state_->values.empty()) return std::nullopt;
        std::optional<T> value(std::move(state_->values.front()));
        state_->values.pop_front();
        state_->senders.notify_one();
        return value;
    }

    // Wakes every waiting task: senders throw, receivers drain what is left, then get empty.
    void close() {
        std::lock_guard lock(state_->mutex);
        state_->closed = true;
        state_->senders.notify_all();
        state_->receivers.notify_all();
    }

    std::size_t size() const {
        std::lock_guard lock(state_->mutex);
        return state_->values.size();
    }

private:
    struct state {
        mutable std::mutex mutex;
        std::deque<T> values;
        std::size_t capacity = 1;
        bool closed = false;
        detail::wait_list senders, receivers;
    };
    std::shared_ptr<state> state_;
};

}  // namespace rill
