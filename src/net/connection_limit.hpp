// server_options::max_connections: the open clients of one server, counted in slots. read
// (server) takes a slot before it accepts, waiting while every slot is taken (new clients
// wait in the kernel's listen backlog meanwhile); a client's transport gives its slot back
// when it closes, on whatever worker that happens. The stream layer knows nothing of it.
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>
#include <utility>

#include <rill/channel.hpp>  // detail::wait_list

namespace rill::detail {

// Shared by the server and each open client's slot: the last of them frees it, so clients
// may outlive their server.
class connection_limit {
public:
    explicit connection_limit(std::size_t max_connections) noexcept : max_(max_connections) {}
    connection_limit(const connection_limit&) = delete;
    connection_limit& operator=(const connection_limit&) = delete;

    // Drops the server's reference (the server is gone); wakes a waiting read first.
    void release_server() noexcept;
    // The server closed: a read waiting for a slot returns (and every later one) at once.
    void close() noexcept;

private:
    friend class connection_slot;
    void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
    void drop_ref() noexcept;

    const std::size_t max_;
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
    connection_slot(connection_slot&& o) noexcept : limit_(std::exchange(o.limit_, nullptr)) {}
    connection_slot& operator=(connection_slot&& o) noexcept {
        if (this != &o) {
            release();
            limit_ = std::exchange(o.limit_, nullptr);
        }
        return *this;
    }
    ~connection_slot() { release(); }

    // Waits (parking the calling task) until `limit` has a free slot and takes it; an empty
    // slot once the server is closed. Throws task_cancelled when the task is cancelled.
    static connection_slot take(connection_limit& limit);

    explicit operator bool() const noexcept { return limit_ != nullptr; }
    void release() noexcept;

private:
    explicit connection_slot(connection_limit* taken) noexcept : limit_(taken) {}
    connection_limit* limit_ = nullptr;
};

}  // namespace rill::detail
