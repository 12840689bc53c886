#include "net/connection_limit.hpp"

#include <algorithm>

#include <rill/channel.hpp>

#include "runtime/scheduler.hpp"

namespace rill::detail {

namespace {
// The open servers, for runtime_stats_snapshot. A server leaves in close(), under this
// mutex, before anything can free it: a snapshot never reads a freed one.
std::mutex open_servers_mutex;
std::vector<connection_limit*> open_servers;
}  // namespace

void list_open_server(connection_limit& server) {
    std::lock_guard lock(open_servers_mutex);
    open_servers.push_back(&server);
    server.listed_ = true;
}

std::vector<rill::server_stats> open_server_stats() {
    std::vector<rill::server_stats> out;
    std::lock_guard lock(open_servers_mutex);
    out.reserve(open_servers.size());
    for (const connection_limit* s : open_servers) out.push_back(s->stats());
    return out;
}

rill::server_stats connection_limit::stats() const {
    // Closed first: a client that closes between the two loads is then counted open, never
    // "minus one open".
    const std::uint64_t closed = closed_connections_.load(std::memory_order_acquire);
    const std::uint64_t accepted = accepted_.load(std::memory_order_acquire);
    return rill::server_stats{
        .address = name_,
        .connections_accepted = accepted,
        .connections_open = accepted >= closed ? accepted - closed : 0,
        .accepting_paused_at_limit = paused_at_limit_.load(std::memory_order_relaxed),
        .accept_errors = accept_errors_.load(std::memory_order_relaxed),
    };
}

void connection_limit::drop_ref() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

void connection_limit::close() noexcept {
    {
        std::lock_guard lock(open_servers_mutex);
        if (listed_) std::erase(open_servers, this);
        listed_ = false;
    }
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
    if (!limit.closed_ && limit.open_ >= limit.max_)
        limit.paused_at_limit_.fetch_add(1, std::memory_order_relaxed);
    while (!limit.closed_ && limit.open_ >= limit.max_)
        wait_as(limit.readers_, lock, wait_kind::accept_limit);
    if (limit.closed_) return connection_slot();
    ++limit.open_;
    limit.add_ref();
    return connection_slot(&limit);
}

void connection_slot::mark_accepted() noexcept {
    accepted_ = true;
    limit_->accepted_.fetch_add(1, std::memory_order_release);
}

void connection_slot::release() noexcept {
    connection_limit* limit = std::exchange(limit_, nullptr);
    if (!limit) return;
    if (std::exchange(accepted_, false))
        limit->closed_connections_.fetch_add(1, std::memory_order_release);
    {
        std::lock_guard lock(limit->mutex_);
        --limit->open_;
        limit->readers_.notify_one();
    }
    limit->drop_ref();
}

}  // namespace rill::detail
