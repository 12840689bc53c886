// The epoll backend: each socket is registered once, edge-triggered, for both directions. An
// operation that would block parks its task in the socket's reader or writer slot; an event
// wakes the slot's task, which retries the system call.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include <rill/error.hpp>

#include "io/socket_calls.hpp"

namespace rill::detail {

namespace {

constexpr int events_per_wait = 256;

class epoll_backend;

// A task waiting for one direction of one descriptor.
struct epoll_waiter final : park_point {
    epoll_backend* backend;
    int fd;
    bool writing;
    void interrupt(task_control* t) noexcept override;
    void describe_target(std::string& out) const override { describe_socket_wait(fd, kind, out); }
};

class epoll_backend final : public backend {
public:
    explicit epoll_backend(scheduler& owner) : owner_(owner) {
        epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
        if (epoll_fd_ < 0) throw_os_error(errno, "epoll_create1");
        wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wake_fd_ < 0) {
            int err = errno;
            close(epoll_fd_);
            throw_os_error(err, "eventfd");
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = wake_fd_;
        if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
            int err = errno;
            close(wake_fd_);
            close(epoll_fd_);
            throw_os_error(err, "epoll_ctl add eventfd");
        }
        // Room for every descriptor the process may open, reserved (not touched) up front:
        // growing by copies would leave the old arrays' pages resident in the heap.
        rlimit limit{};
        if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
            waiters_.reserve(std::min<rlim_t>(limit.rlim_cur, rlim_t{1} << 20));
    }

    ~epoll_backend() override {
        close(wake_fd_);
        close(epoll_fd_);
    }

    const char* name() const noexcept override { return "epoll"; }

    // `flushed` is left: it goes out as the task starts to wait, before the readiness wait.
    long receive(io_handle& h, byte_buffer& in, const std::optional<time_point>& deadline,
                 pending_output*) override {
        io_op op{io_kind::recv, nullptr, 0, nullptr, deadline};
        for (;;) {
            // A receive that found the socket drained last time waits for readiness first:
            // the attempt would most likely be a wasted system call.
            if (!h.recv_drained) {
                receive_into(op, in);
                const long r = receive_attempt(h, op);
                if (r != -EAGAIN) return committed(in, r);
            }
            // Wait until readable holding no buffer when nothing is buffered, so an idle
            // connection holds none; then receive.
            if (in.empty()) in.release();
            io_op readable{io_kind::readable, nullptr, 0, nullptr, deadline};
            if (const long r = wait_for(h, readable); r < 0) return r;
            h.recv_drained = false;
        }
    }

    long send(io_handle& h, const char* p, std::size_t n, const std::optional<time_point>& deadline,
              bool closing) override {
        io_op op{io_kind::send, const_cast<char*>(p), n, nullptr, deadline};
        op.more = closing;
        const long r = try_io(h, op);
        if (r != -EAGAIN) return r;
        return wait_for(h, op);
    }

    long accept(io_handle& h, sockaddr* peer, socklen_t* peer_length) override {
        io_op op{io_kind::accept, peer, 0, peer_length, std::nullopt};
        const long r = try_io(h, op);
        if (r != -EAGAIN) return r;
        return wait_for(h, op);
    }

    long connect(io_handle& h) override {
        io_op op{io_kind::connect, nullptr, 0, nullptr, std::nullopt};
        return wait_for(h, op);
    }

    void wait(std::optional<std::chrono::nanoseconds> timeout) override {
        // About to sleep: the buffer blocks a burst left warm beyond the idle reserve go back.
        if (!timeout || timeout->count() > 0) trim_warm_buffer_blocks();
        epoll_event events[events_per_wait];
        timespec ts{};
        if (timeout) {
            ts.tv_sec = timeout->count() / 1'000'000'000;
            ts.tv_nsec = timeout->count() % 1'000'000'000;
        }
        int n = has_pwait2_ ? epoll_pwait2(epoll_fd_, events, events_per_wait,
                                           timeout ? &ts : nullptr, nullptr)
                            : -1;
        if (n < 0 && (!has_pwait2_ || errno == ENOSYS)) {
            // epoll_pwait2 is Linux 5.11+ (and unknown to valgrind 3.19): wait in whole
            // milliseconds, rounded up so a timer never fires early.
            has_pwait2_ = false;
            int ms = -1;
            if (timeout)
                ms = static_cast<int>(
                    std::min<std::int64_t>((timeout->count() + 999'999) / 1'000'000, 1 << 30));
            n = epoll_wait(epoll_fd_, events, events_per_wait, ms);
        }
        if (n < 0) {
            if (errno != EINTR)
                std::fprintf(stderr, "rill: epoll_wait failed: %s\n", std::strerror(errno));
            return;
        }
        for (int i = 0; i < n; ++i) {
            const int fd = events[i].data.fd;
            const std::uint32_t e = events[i].events;
            if (fd == wake_fd_) {
                std::uint64_t value;
                [[maybe_unused]] ssize_t got = ::read(wake_fd_, &value, sizeof value);
                continue;
            }
            if (static_cast<std::size_t>(fd) >= waiters_.size()) continue;
            if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                if (waiters_[fd].reader)
                    wake_slot(waiters_[fd].reader);
                else
                    waiters_[fd].readable = true;
                if (e & (EPOLLRDHUP | EPOLLHUP)) waiters_[fd].ended = true;
                // An error alone (not the end) is reported by one receive: one try.
                if (e & EPOLLERR) waiters_[fd].readable = true;
            }
            if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) wake_slot(waiters_[fd].writer);
        }
    }

    void wake() noexcept override {
        std::uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
    }

    // Called by another worker's backend (enroll) when a stream moved to one of its tasks, so
    // waiters_, which only this worker's thread may touch, is left alone: no task of this
    // worker waits on the descriptor (a stream is used by one task at a time), so its slots
    // are empty already. epoll_ctl on another thread's set is safe.
    void forget(io_handle& h) noexcept override {
        if (h.registered == this) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, h.fd, nullptr);
        h.registered = nullptr;
    }

    void clear_slot(int fd, bool writing) noexcept { slot_for(fd, writing) = nullptr; }
    scheduler& owner() noexcept { return owner_; }

private:
    // Parks the task in the descriptor's reader or writer slot until an event, then retries.
    long wait_for(io_handle& h, io_op& op) {
        if (!task_to_wait()) return -ECANCELED;
        if (h.registered != this) {
            if (long r = enroll(h); r < 0) return r;
        }
        const bool writing = op.kind == io_kind::send || op.kind == io_kind::connect;
        epoll_waiter w;
        w.kind = wait_kind_of(op.kind);
        w.backend = this;
        w.fd = h.fd;
        w.writing = writing;
        for (;;) {
            if (!writing) {
                fd_waiters& state = slot_state(h.fd);
                if (state.readable || state.ended) {
                    state.readable = false;
                    if (op.kind == io_kind::readable) return 0;
                    long r = try_io(h, op);
                    if (r != -EAGAIN) return r;
                }
            }
            task_control*& slot = slot_for(h.fd, writing);
            slot = owner_.running();
            wake_reason why = owner_.park(&w, op.deadline);
            if (why == wake_reason::timeout) return -ETIMEDOUT;
            if (why == wake_reason::cancelled) return -ECANCELED;
            if (op.kind == io_kind::readable) return 0;
            long r = op.kind == io_kind::connect ? connect_state(h.fd) : try_io(h, op);
            if (r != -EAGAIN) return r;
        }
    }

    struct fd_waiters {
        task_control* reader = nullptr;
        task_control* writer = nullptr;
        // An edge that came while no task waited to read: the next reader tries at once
        // (a drained socket's next receive waits without trying, so this edge is its data).
        bool readable = false;
        // The peer's end of stream (or the connection's) was reported. It comes as one edge
        // only and stays (a receive returns 0 from then on, never EAGAIN): every later reader
        // tries at once. Not folded into `readable`: the receive that uses that flag up may
        // take the last data and stop short of the end (a short receive, so the socket counts
        // as drained), and the next one would then wait for an edge that never comes.
        bool ended = false;
    };

    // Adds the socket to this set. A stream moved to a task of another worker leaves the
    // other worker's set first (epoll_ctl on another thread's set is safe).
    long enroll(io_handle& h) {
        if (h.registered) h.registered->forget(h);
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.fd = h.fd;
        if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, h.fd, &ev) != 0) {
            // EEXIST: a descriptor number reused before this set noticed the old one closed.
            if (errno != EEXIST || epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, h.fd, &ev) != 0)
                return -errno;
        }
        h.registered = this;
        // Adding reports the socket's current state as an event if it is ready; a flag left
        // by an earlier socket with this number must not stand in for it.
        fd_waiters& state = slot_state(h.fd);
        state.readable = false;
        state.ended = false;
        return 0;
    }

    fd_waiters& slot_state(int fd) {
        if (static_cast<std::size_t>(fd) >= waiters_.size())
            waiters_.resize(static_cast<std::size_t>(fd) + 64);
        return waiters_[fd];
    }

    task_control*& slot_for(int fd, bool writing) {
        fd_waiters& w = slot_state(fd);
        return writing ? w.writer : w.reader;
    }

    void wake_slot(task_control*& slot) noexcept {
        if (task_control* t = slot) {
            slot = nullptr;
            owner_.ready(t);
        }
    }

    static long connect_state(int fd) noexcept {
        io_handle probe;
        probe.fd = fd;
        io_op op{io_kind::connect, nullptr, 0, nullptr, {}};
        return try_io(probe, op);
    }

    scheduler& owner_;
    int epoll_fd_ = -1;
    int wake_fd_ = -1;
    std::vector<fd_waiters> waiters_;
    bool has_pwait2_ = true;
};

void epoll_waiter::interrupt(task_control* t) noexcept {
    backend->clear_slot(fd, writing);
    backend->owner().ready(t);
}

}  // namespace

std::unique_ptr<backend> make_epoll_backend(scheduler& owner) {
    return std::make_unique<epoll_backend>(owner);
}

}  // namespace rill::detail
