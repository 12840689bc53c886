#include "net/connection_limit.hpp"

#include <rill/channel.hpp>

#include "runtime/scheduler.hpp"

namespace rill::detail {

void connection_limit::drop_ref() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

void connection_limit::close() noexcept {
    std::lock_guard lock(mutex_);
    closed_ = true;
    readers_.notify_all();
}

void connection_limit::release_server() noexcept {
    close();
    drop_ref();
}

connection_slot connection_slot::take(connection_limit& limit) {
    current_task("read");  // parking needs a task: name the caller's operation outside one
    prepare_to_wait();  // output the task flushed leaves before it may park
    std::unique_lock lock(limit.mutex_);
    // Parks on a list rather than polling: nothing runs while the server is at its limit.
    while (!limit.closed_ && limit.open_ >= limit.max_)
        wait_as(limit.readers_, lock, wait_kind::accept_limit);
    if (limit.closed_) return connection_slot();
    ++limit.open_;
    limit.add_ref();
    return connection_slot(&limit);
}

void connection_slot::release() noexcept {
    connection_limit* limit = std::exchange(limit_, nullptr);
    if (!limit) return;
    {
        std::lock_guard lock(limit->mutex_);
        --limit->open_;
        limit->readers_.notify_one();
    }
    limit->drop_ref();
}

}  // namespace rill::detail
