// server_options::max_connections: the open clients of one server, counted in slots. read
// (server) takes a slot before it accepts, waiting while every slot is taken (new clients
// wait in the kernel's listen backlog meanwhile); a client's transport gives its slot back
// when it closes, on whatever worker that happens. The stream layer knows nothing of it.
// Every server has one (without a cap, its limit is never reached): it also keeps the
// server's counters for runtime_stats_snapshot, which reaches it through the list of open
// servers (list_open_server / unlist_server), since clients may outlive their server.
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <rill/channel.hpp>  // detail::wait_list
#include <rill/stats.hpp>

namespace rill::detail {

// Shared by the server and each open client's slot: the last of them frees it, so clients
// may outlive their server.
class connection_limit;
void list_open_server(connection_limit& server);

class connection_limit {
public:
    // max_connections 0: no cap. `name` is the server's bound address.
    connection_limit(std::size_t max_connections, std::string name)
        : max_(max_connections ? max_connections : static_cast<std::size_t>(-1)),
          name_(std::move(name)) {}
    connection_limit(const connection_limit&) = delete;
    connection_limit& operator=(const connection_limit&) = delete;

    // Drops the server's reference (the server is gone); wakes a waiting read first.
    void release_server() noexcept;
    // The server closed: a read waiting for a slot returns (and every later one) at once.
    // It also leaves the list of open servers.
    void close() noexcept;

    // Per connection, not per request: shared atomics are cheap enough here.
    void count_accept_error() noexcept { accept_errors_.fetch_add(1, std::memory_order_relaxed); }
    // This server's line of a snapshot.
    rill::server_stats stats() const;

private:
    friend class connection_slot;
    friend void list_open_server(connection_limit& server);
    void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
    void drop_ref() noexcept;

    const std::size_t max_;
    const std::string name_;
    std::atomic<std::uint64_t> accepted_{0};  // slots handed to an accepted client
    std::atomic<std::uint64_t> closed_connections_{0};  // ... and given back by it
    std::atomic<std::uint64_t> paused_at_limit_{0};
    std::atomic<std::uint64_t> accept_errors_{0};
    bool listed_ = false;  // in the list of open servers (under that list's mutex)
    std::atomic<std::size_t> refs_{1};  // the server's, plus one per slot
    std::mutex mutex_;
    std::size_t open_ = 0;  // slots taken
    bool closed_ = false;
    wait_list readers_;  // read(server) waiting for a slot
};

// One open client's place under its server's max_connections; empty when the server has no
// limit. Gives the place back when released or destroyed.
class connection_slot {
public:
    connection_slot() noexcept = default;
    connection_slot(connection_slot&& o) noexcept
        : limit_(std::exchange(o.limit_, nullptr)), accepted_(std::exchange(o.accepted_, false)) {}
    connection_slot& operator=(connection_slot&& o) noexcept {
        if (this != &o) {
            release();
            limit_ = std::exchange(o.limit_, nullptr);
            accepted_ = std::exchange(o.accepted_, false);
        }
        return *this;
    }
    ~connection_slot() { release(); }

    // Waits (parking the calling task) until `limit` has a free slot and takes it; an empty
    // slot once the server is closed. Throws task_cancelled when the task is cancelled.
    static connection_slot take(connection_limit& limit);

    explicit operator bool() const noexcept { return limit_ != nullptr; }
    void release() noexcept;
    // The slot now holds an accepted client: counted accepted, and open until released.
    void mark_accepted() noexcept;

private:
    explicit connection_slot(connection_limit* taken) noexcept : limit_(taken) {}
    connection_limit* limit_ = nullptr;
    bool accepted_ = false;
};

// Adds `server` to the servers runtime_stats_snapshot lists (until its close()).
void list_open_server(connection_limit& server);
// The snapshot's lines, one per open server, in the order they were opened.
std::vector<rill::server_stats> open_server_stats();

}  // namespace rill::detail
