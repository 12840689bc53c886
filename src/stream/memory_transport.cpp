// The in-memory transport pair: one queue of sent chunks per direction, guarded by a mutex,
// with the tasks waiting on either end parked on wait lists.
#include "stream/memory_transport.hpp"

#include <cerrno>
#include <deque>
#include <mutex>
#include <string>

#include <rill/channel.hpp>

#include "stream/stream_state.hpp"

namespace rill::detail {

namespace {

// One direction: the chunks one end sent and the other has not received yet.
struct memory_direction {
    std::mutex mutex;
    std::deque<std::string> chunks;
    std::size_t bytes = 0;
    bool writer_done =
        false;  // the sender shut its writer down or closed: end of stream after the chunks
    bool reader_closed = false;  // the receiver closed: sends fail as on a reset connection
    bool reader_shut = false;  // the receiver shut its reader down: sends are dropped
    wait_list receivers;
    wait_list senders;
};

struct memory_link {
    explicit memory_link(std::size_t capacity) : capacity_bytes(capacity) {}
    std::size_t capacity_bytes;
    memory_direction directions[2];
};

class memory_transport final : public transport {
public:
    memory_transport(std::shared_ptr<memory_link> link, int side)
        : link_(std::move(link)), incoming_(link_->directions[side]),
          outgoing_(link_->directions[1 - side]) {}
    ~memory_transport() override { close(); }

    long receive(byte_buffer& in, const std::optional<time_point>& deadline,
                 pending_output*) override {
        if (closed_) return -EBADF;
        std::unique_lock lock(incoming_.mutex);
        bool deferred_sent = false;
        for (;;) {
            if (incoming_.reader_shut) return 0;
            if (!incoming_.chunks.empty()) {
                std::string chunk = std::move(incoming_.chunks.front());
                incoming_.chunks.pop_front();
                incoming_.bytes -= chunk.size();
                incoming_.senders.notify_all();
                in.append(chunk.data(), chunk.size());
                return static_cast<long>(chunk.size());
            }
            if (incoming_.writer_done) return 0;
            if (in.empty()) in.release();  // waiting holds no buffer
            if (const long r = wait(incoming_.receivers, lock, deadline, deferred_sent); r < 0)
                return r;
        }
    }

    long send(const char* p, std::size_t n, const std::optional<time_point>& deadline,
              bool) override {
        if (closed_) return -EBADF;
        std::unique_lock lock(outgoing_.mutex);
        bool deferred_sent = false;
        for (;;) {
            if (const long r = offer(p, n); r != -EAGAIN) return r;
            if (const long r = wait(outgoing_.senders, lock, deadline, deferred_sent); r < 0)
                return r;
        }
    }

    long send_without_waiting(const char* p, std::size_t n) noexcept override {
        if (closed_) return -EBADF;
        std::lock_guard lock(outgoing_.mutex);
        try {
            return offer(p, n);
        } catch (const std::bad_alloc&) {
            return -ENOMEM;
        }
    }

    void shutdown_writer() noexcept override {
        std::lock_guard lock(outgoing_.mutex);
        outgoing_.writer_done = true;
        outgoing_.receivers.notify_all();
    }

    void shutdown_reader() noexcept override {
        std::lock_guard lock(incoming_.mutex);
        incoming_.reader_shut = true;
        incoming_.chunks.clear();
        incoming_.bytes = 0;
        incoming_.senders.notify_all();
        incoming_.receivers.notify_all();
    }

    void shut_down_from_any_thread() noexcept override {
        {
            std::lock_guard lock(outgoing_.mutex);
            outgoing_.writer_done = true;  // the peer reads end of stream; our sends fail
            outgoing_.receivers.notify_all();
            outgoing_.senders.notify_all();
        }
        shutdown_reader();  // our receives return 0
    }

    bool input_pending() const noexcept override {
        if (closed_) return false;
        std::lock_guard lock(incoming_.mutex);
        return !incoming_.chunks.empty();
    }

    void close() noexcept override {
        if (closed_) return;
        closed_ = true;
        shutdown_writer();
        std::lock_guard lock(incoming_.mutex);
        incoming_.reader_closed = true;
        incoming_.chunks.clear();
        incoming_.bytes = 0;
        incoming_.senders.notify_all();
    }

    std::string peer_name() const override { return "the in-memory peer"; }
    int native_handle() const noexcept override { return -1; }

private:
    // With outgoing_'s mutex held: queues what fits of p..n for the peer. How many bytes went,
    // -EAGAIN when the peer holds capacity_bytes unread, or the error of a peer that is gone.
    long offer(const char* p, std::size_t n) {
        if (outgoing_.reader_closed) return -ECONNRESET;
        if (outgoing_.writer_done) return -EPIPE;
        if (outgoing_.reader_shut || n == 0) return static_cast<long>(n);  // dropped / nothing
        const std::size_t room =
            link_->capacity_bytes - std::min(outgoing_.bytes, link_->capacity_bytes);
        if (room == 0) return -EAGAIN;
        const std::size_t taken = std::min(n, room);
        outgoing_.chunks.emplace_back(p, taken);
        outgoing_.bytes += taken;
        outgoing_.receivers.notify_all();
        return static_cast<long>(taken);
    }

    // Parks on `waiters` until notified; the first time, the task's put-off output goes first
    // (with the lock released), as before any wait. 0 to look again, or -ETIMEDOUT, -ECANCELED.
    static long wait(wait_list& waiters, std::unique_lock<std::mutex>& lock,
                     const std::optional<time_point>& deadline, bool& deferred_sent) {
        try {
            if (!deferred_sent) {
                deferred_sent = true;
                lock.unlock();
                prepare_to_wait();
                lock.lock();
                return 0;  // the state may have changed meanwhile
            }
            if (deadline) return waiters.wait_until(lock, *deadline) ? 0 : -ETIMEDOUT;
            waiters.wait(lock);
            return 0;
        } catch (const task_cancelled&) {
            if (!lock.owns_lock()) lock.lock();
            return -ECANCELED;
        }
    }

    std::shared_ptr<memory_link> link_;
    memory_direction& incoming_;
    memory_direction& outgoing_;
    bool closed_ = false;
};

}  // namespace

std::pair<std::unique_ptr<transport>, std::unique_ptr<transport>>
make_memory_transport_pair(std::size_t capacity_bytes) {
    auto link = std::make_shared<memory_link>(capacity_bytes);
    return {std::make_unique<memory_transport>(link, 0),
            std::make_unique<memory_transport>(link, 1)};
}

memory_stream_pair make_memory_stream_pair(const stream_options& options,
                                           const std::optional<transcoder>& first_transcoder,
                                           const std::optional<transcoder>& second_transcoder,
                                           std::size_t capacity_bytes) {
    auto [a, b] = make_memory_transport_pair(capacity_bytes);
    return {make_stream(std::move(a), options, first_transcoder),
            make_stream(std::move(b), options, second_transcoder)};
}

}  // namespace rill::detail
