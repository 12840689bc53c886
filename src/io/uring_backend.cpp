// The io_uring backend: an operation that would block is submitted to the ring as itself
// (recv, send, accept) and the task parks until its completion. Submissions are batched: the
// scheduler loop submits them all with the wait, in one kernel entry per loop turn.
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>

#include <rill/error.hpp>

#include "io/socket_calls.hpp"

namespace rill::detail {

namespace {

constexpr unsigned submission_queue_entries = 1024;
// Completions can outnumber submissions in flight (one per parked connection); a large
// completion queue avoids the kernel's overflow path under bursts.
constexpr unsigned completion_queue_entries = 16384;
constexpr std::uint64_t ignored_completion = 0;  // async cancels
constexpr std::uint64_t wake_completion = 1;  // the eventfd read that wakes the loop
// How many completions ahead reap fetches a request into the cache (its targets at half that).
constexpr unsigned reap_prefetch_distance = 8;

// Provided buffers: a waiting receive takes one when its data comes and the task hands it
// back once it has copied the bytes into its stream, so only receives completing within one
// loop turn hold them at once. All of them get touched as the ring cycles: the pool is a
// fixed cost per worker (512 KiB), kept small so it stays small beside 20k idle connections.
// When more receives complete in one turn than there are buffers, the rest come back with
// ENOBUFS and receive into their stream's own buffer (tests/io/test_provided_buffers.cpp; with
// DEFER_TASKRUN, Linux 6.18 runs about 20 deferred completions per kernel entry, so 600
// receives at once did not exhaust the 256). A receive that fills its buffer is
// followed by a receive attempt (the socket may hold more), so a buffer should be larger
// than a typical burst: 1 KiB buffers cost pipelined 16 x 64-byte lines a wasted system call
// per burst (0.06 -> 0.005 system calls per line with 2 KiB).
constexpr unsigned provided_buffer_count = 256;
constexpr std::size_t provided_buffer_bytes = 2048;
// Tests shrink the pool (a power of two) to reach the shortage on purpose: 0 is the default.
std::atomic<unsigned> provided_buffer_count_override{0};
constexpr unsigned short provided_group = 0;

// A full submission queue is handed to the kernel to make room; a kernel that keeps refusing
// (-EAGAIN or -ENOMEM short of memory, -EBUSY with completions it cannot post) gets this many
// tries, completions reaped between them, before the operation that wanted the slot fails.
constexpr int submit_attempts_max = 8;
// Completions the kernel kept aside while the completion queue was full (IORING_FEAT_NODROP)
// are flushed into it by entering with GETEVENTS: a loop turn flushes and reaps up to this many
// times, and the next turn carries on.
constexpr int overflow_flushes_per_wait_max = 16;
// A loop whose wake-up read could not be submitted waits at most this long between looks, so
// another thread's wake is not missed for long.
constexpr std::chrono::milliseconds wake_unarmed_poll_interval{1};

// Test knobs (tests/io/): queue sizes, refused submits and failing ring setups on demand.
std::atomic<unsigned> submission_entries_override{0};
std::atomic<unsigned> completion_entries_override{0};
std::atomic<int> submit_failure_for_tests{0};
std::atomic<int> ring_setup_failure_for_tests{0};
std::atomic<int> ring_setups_before_failure{0};
std::atomic<std::uint64_t> completion_overflows{0};
std::atomic<std::uint64_t> completions_dropped{0};

unsigned or_default(const std::atomic<unsigned>& override_value, unsigned fallback) noexcept {
    const unsigned v = override_value.load(std::memory_order_relaxed);
    return v ? v : fallback;
}

// A test's failing setup: -errno once the allowed number of setups has been used up, else 0.
int injected_setup_failure() noexcept {
    const int error = ring_setup_failure_for_tests.load(std::memory_order_relaxed);
    if (!error) return 0;
    return ring_setups_before_failure.fetch_sub(1, std::memory_order_relaxed) > 0 ? 0 : -error;
}

// Set up a ring with the best flags this kernel takes: SINGLE_ISSUER + DEFER_TASKRUN (6.1+)
// let the kernel skip locking and run completion work only when we ask for events;
// COOP_TASKRUN (5.19+) at least avoids interrupting the thread; plain setup otherwise.
// Refuses a kernel without IORING_FEAT_NODROP (before Linux 5.5, which also lacks CQSIZE): it
// drops completions when the completion queue is full, and a task waiting on one would never
// wake.
int setup_ring(io_uring& ring) {
    if (const int injected = injected_setup_failure()) return injected;
    const unsigned ladder[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int r = -EINVAL;
    for (unsigned flags : ladder) {
        io_uring_params params{};
        params.flags = flags | IORING_SETUP_CQSIZE;
        params.cq_entries = or_default(completion_entries_override, completion_queue_entries);
        r = io_uring_queue_init_params(
            or_default(submission_entries_override, submission_queue_entries), &ring, &params);
        if (r == 0 && !(params.features & IORING_FEAT_NODROP)) {
            io_uring_queue_exit(&ring);
            return -EINVAL;
        }
        if (r != -EINVAL) return r;
    }
    return r;
}

class uring_backend;

// An operation in flight; lives on the parked task's stack until its completion arrives.
struct uring_request final : park_point {
    uring_backend* backend;
    task_control* task;  // made ready by the completion; null: nobody waits on it (yet)
    long result = 0;
    std::uint32_t flags = 0;  // the completion's flags (which provided buffer)
    bool done = false;  // the completion arrived
    void (*completed)(void*, long) = nullptr;  // io_op::completed, called from reap
    void* context = nullptr;
    // Its cancel found no submission slot and waits for the next loop turn (cancels_pending_).
    bool cancel_pending = false;
    uring_request* next_cancel = nullptr;
    int fd = -1;  // for the task dump

    void interrupt(task_control* t) noexcept override;
    void describe_target(std::string& out) const override { describe_socket_wait(fd, kind, out); }
};

class uring_backend final : public backend {
public:
    explicit uring_backend(scheduler& owner) : owner_(owner) {
        if (int r = setup_ring(ring_); r < 0)
            throw_backend_setup_error(-r, "io_uring backend: io_uring_setup for a worker's ring");
        // Every loop turn enters the kernel through the ring's descriptor; registered (Linux
        // 5.18+), the entry skips looking it up in the descriptor table. Older kernels refuse,
        // and the plain descriptor works as before.
        io_uring_register_ring_fd(&ring_);
        // Blocking: io_uring honours O_NONBLOCK on reads, and the read must wait for a wake.
        wake_fd_ = eventfd(0, EFD_CLOEXEC);
        if (wake_fd_ < 0) {
            int err = errno;
            io_uring_queue_exit(&ring_);
            throw_backend_setup_error(err, "io_uring backend: eventfd");
        }
        setup_provided_buffers();
    }

    ~uring_backend() override {
        io_uring_queue_exit(&ring_);
        close(wake_fd_);
        if (provided_ring_) munmap(provided_ring_, provided_ring_bytes());
        if (provided_buffers_) munmap(provided_buffers_, provided_pool_bytes());
    }

    const char* name() const noexcept override { return "io_uring"; }
    bool receives_into_provided_buffers() const noexcept override {
        return provided_ring_ != nullptr;
    }

    long receive(io_handle& h, byte_buffer& in, const std::optional<time_point>& deadline,
                 pending_output* flushed) override {
        io_op op{io_kind::recv, nullptr, 0, nullptr, deadline};
        // With bytes buffered (a partial line) the receive goes on into the stream's buffer;
        // without provided buffers (before Linux 5.19) every waiting receive holds its buffer.
        const bool into_own_buffer = !in.empty() || !provided_ring_;
        if (into_own_buffer || !h.recv_drained) {
            receive_into(op, in);
            // A receive that found the socket drained last time goes straight to the ring:
            // the attempt would most likely be a wasted system call.
            if (!h.recv_drained) {
                const long r = receive_attempt(h, op);
                if (r != -EAGAIN) return committed(in, r);
            }
            if (into_own_buffer) return committed(in, wait_for(h, op));
        }
        // Nothing buffered and the socket empty: wait on the provided buffers, holding none of
        // the stream's, so an idle connection holds no buffer; the bytes are copied over when
        // they come.
        in.release();
        io_op provided{io_kind::recv_provided, nullptr, 0, nullptr, deadline};
        // flush_writer's send, when it would join the batch anyway, goes with this receive.
        const long r = flushed && owner_.others_ready() ? receive_with_send(h, provided, *flushed)
                                                        : wait_for(h, provided);
        if (r > 0) {
            // The copy may need a block for `in` (std::bad_alloc): the provided buffer goes
            // back to the ring either way, or the pool would shrink by one for good.
            try {
                in.append(static_cast<const char*>(provided.buffer), static_cast<std::size_t>(r));
            } catch (...) {
                give_back(provided.buffer_id);
                throw;
            }
            give_back(provided.buffer_id);
            return r;
        }
        if (r != -ENOBUFS) return r;
        // Every provided buffer is taken: receive into the stream's own.
        count_provided_buffer_shortfall();
        op.buffer = in.tail(initial_buffer_bytes);
        op.length = in.tail_room();
        return committed(in, wait_for(h, op));
    }

    long send(io_handle& h, const char* p, std::size_t n, const std::optional<time_point>& deadline,
              bool closing) override {
        io_op op{io_kind::send, const_cast<char*>(p), n, nullptr, deadline};
        op.more = closing;
        // With other tasks about to run, the send goes into the ring: the loop's next kernel
        // entry carries it with theirs (one entry for a whole batch of answers, and the peers
        // are woken once, not once per send). The last task of a batch sends at once: nothing
        // would share the entry, and it saves a switch.
        if (!owner_.others_ready()) {
            const long r = try_io(h, op);
            if (r != -EAGAIN) return r;
        }
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

private:
    // Hands `op` to the ring and parks the task until its completion.
    long wait_for(io_handle& h, io_op& op) {
        task_control* t = task_to_wait();
        if (!t) return -ECANCELED;
        uring_request req;
        req.backend = this;
        req.task = t;
        req.kind = wait_kind_of(op.kind);
        req.fd = h.fd;
        if (!prepare(h, op, req)) return refused();
        const long r = complete(h, op, req, owner_.park(&req, op.deadline));
        if (op.kind == io_kind::recv || op.kind == io_kind::recv_provided) note_receive(h, op, r);
        return r;
    }

    // Both submissions go to the kernel in the loop's next entry, the send first; the task
    // parks once, on op. The send normally completes in that same entry; when op completes
    // first (the peer does not read, and wrote again), the task waits for the send too, up
    // to its deadline, and cancels it when that passes or the task is cancelled. The send's
    // result is applied as soon as it completes, so an idle connection's output buffer goes
    // back while it waits for its next request.
    long receive_with_send(io_handle& h, io_op& op, pending_output& flushed) {
        undefer(flushed.flush);
        flushed.taken = true;
        task_control* t = task_to_wait();
        if (!t) return -ECANCELED;  // nothing was sent: flushed.sent stays 0
        io_op send{io_kind::send, flushed.bytes.head(), flushed.bytes.size(), nullptr,
                   flushed.deadline};
        send.context = &flushed.bytes;
        send.completed = [](void* context, long result) {
            if (result > 0)
                static_cast<byte_buffer*>(context)->consume(static_cast<std::size_t>(result));
        };
        uring_request sending;
        sending.backend = this;
        sending.task = nullptr;
        sending.kind = wait_kind::write;
        sending.fd = h.fd;
        sending.completed = send.completed;
        sending.context = send.context;
        if (!prepare(h, send, sending)) {
            flushed.sent = refused();  // the stream's next write reports it
            return refused();
        }
        uring_request req;
        req.backend = this;
        req.task = t;
        req.kind = wait_kind::read;
        req.fd = h.fd;
        long r = refused();
        if (prepare(h, op, req)) {
            r = complete(h, op, req, owner_.park(&req, op.deadline));
            note_receive(h, op, r);
        }
        // The send is in flight (it writes from the stream's output buffer): wait for it even
        // when the receive could not be submitted.
        wake_reason why = wake_reason::normal;
        if (!sending.done) {
            sending.task = t;
            if (t->cancelled) cancel(&sending);
            why = owner_.park(&sending, send.deadline);
        }
        flushed.sent = complete(h, send, sending, why);
        return r;
    }

    // What an operation that found no submission slot returns: the kernel's -errno.
    long refused() const noexcept { return submit_error_ < 0 ? submit_error_ : -EAGAIN; }

    // False when the kernel keeps refusing to make room in the submission queue (next_sqe):
    // the operation then fails with submit_error_.
    [[nodiscard]] bool prepare(io_handle& h, io_op& op, uring_request& req) noexcept {
        io_uring_sqe* sqe = next_sqe();
        if (!sqe) return false;
        switch (op.kind) {
        case io_kind::recv: io_uring_prep_recv(sqe, h.fd, op.buffer, op.length, 0); break;
        case io_kind::send:
            io_uring_prep_send(sqe, h.fd, op.buffer, op.length,
                               MSG_NOSIGNAL | (op.more ? MSG_MORE : 0));
            break;
        case io_kind::accept:
            io_uring_prep_accept(sqe, h.fd, static_cast<sockaddr*>(op.buffer), op.address_length,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
            break;
        case io_kind::connect: io_uring_prep_poll_add(sqe, h.fd, POLLOUT); break;
        case io_kind::readable: io_uring_prep_poll_add(sqe, h.fd, POLLIN); break;
        case io_kind::recv_provided:
            op.length = provided_buffer_bytes;
            io_uring_prep_recv(sqe, h.fd, nullptr, provided_buffer_bytes, 0);
            sqe->flags |= IOSQE_BUFFER_SELECT;
            sqe->buf_group = provided_group;
            break;
        }
        io_uring_sqe_set_data(sqe, &req);
        return true;
    }

    long complete(io_handle& h, io_op& op, uring_request& req, wake_reason why) noexcept {
        long r = req.result;
        if (op.kind == io_kind::recv_provided) {
            if (req.flags & IORING_CQE_F_BUFFER) {
                op.buffer_id = static_cast<std::uint16_t>(req.flags >> IORING_CQE_BUFFER_SHIFT);
                op.buffer = provided_buffer(op.buffer_id);
                if (r <= 0) give_back(op.buffer_id);
            }
        }
        if (op.kind == io_kind::connect && r >= 0) r = connect_result(h.fd);
        if (op.kind == io_kind::readable && r >= 0) r = 0;
        if (why != wake_reason::normal && (r == -ECANCELED || r == -EINTR))
            return why == wake_reason::timeout ? -ETIMEDOUT : -ECANCELED;
        return r;
    }

public:
    void cancel(uring_request* req) noexcept {
        if (req->cancel_pending || submit_cancel(req)) return;
        // No slot now: the next loop turn tries again (the task stays parked until then, and
        // until the request's own completion).
        req->cancel_pending = true;
        req->next_cancel = cancels_pending_;
        cancels_pending_ = req;
    }

    void wait(std::optional<std::chrono::nanoseconds> timeout) override {
        // About to sleep: the buffer blocks a burst left warm beyond the idle reserve go back.
        if (!timeout || timeout->count() > 0) trim_warm_buffer_blocks();
        if (cancels_pending_) [[unlikely]]
            retry_pending_cancels();
        if (!wake_armed_ && !arm_wake()) {
            // No read waits on the eventfd, so another thread's wake would go unseen: poll.
            if (!timeout || *timeout > wake_unarmed_poll_interval)
                timeout = wake_unarmed_poll_interval;
        }
        int r;
        if (timeout && timeout->count() == 0) {
            r = io_uring_submit_and_get_events(&ring_);
        } else if (!timeout) {
            // At most one io_uring_enter, and reap looks at the completions itself (the
            // timeout form loops peeking at the completion queue around the entry: ~90
            // instructions more per loop turn). Completions already posted (sends that
            // completed as they were submitted) are not waited for: the submissions go in
            // without a wait, or without a system call when there are none.
            r = io_uring_cq_ready(&ring_) ? io_uring_submit(&ring_)
                                          : io_uring_submit_and_wait(&ring_, 1);
        } else {
            io_uring_cqe* cqe = nullptr;
            __kernel_timespec ts{};
            ts.tv_sec = timeout->count() / 1'000'000'000;
            ts.tv_nsec = timeout->count() % 1'000'000'000;
            r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
        }
        if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN && r != -EBADR) {
            std::fprintf(stderr, "rill: io_uring_enter failed: %s\n", std::strerror(-r));
        }
        reap();
        // One flag read per loop turn; -EBADR: the kernel dropped completions (Linux 5.19+).
        if (completions_overflowed() || r == -EBADR) [[unlikely]]
            flush_overflowed_completions();
    }

    void wake() noexcept override {
        std::uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
    }

    void forget(io_handle& h) noexcept override { h.registered = nullptr; }

    bool has_unsubmitted() const noexcept override {
        return io_uring_sq_ready(const_cast<io_uring*>(&ring_)) != 0;
    }

private:
    std::size_t provided_ring_bytes() const noexcept {
        return buffer_count_ * sizeof(io_uring_buf);
    }
    std::size_t provided_pool_bytes() const noexcept {
        return buffer_count_ * provided_buffer_bytes;
    }

    // A ring of buffers the kernel picks from when data arrives (Linux 5.19+): a receive that
    // waits holds none, so idle connections cost no buffer. Without it (older kernels) each
    // waiting receive holds its stream's buffer.
    void setup_provided_buffers() noexcept {
        if (unsigned n = provided_buffer_count_override.load(std::memory_order_relaxed))
            buffer_count_ = n;
        void* ring_mem = mmap(nullptr, provided_ring_bytes(), PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (ring_mem == MAP_FAILED) return;
        void* buffers = mmap(nullptr, provided_pool_bytes(), PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (buffers == MAP_FAILED) {
            munmap(ring_mem, provided_ring_bytes());
            return;
        }
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<std::uint64_t>(ring_mem);
        reg.ring_entries = buffer_count_;
        reg.bgid = provided_group;
        if (io_uring_register_buf_ring(&ring_, &reg, 0) != 0) {
            munmap(ring_mem, provided_ring_bytes());
            munmap(buffers, provided_pool_bytes());
            return;
        }
        provided_ring_ = static_cast<io_uring_buf_ring*>(ring_mem);
        provided_buffers_ = static_cast<char*>(buffers);
        io_uring_buf_ring_init(provided_ring_);
        for (unsigned i = 0; i < buffer_count_; ++i) give_back(static_cast<std::uint16_t>(i));
    }

    char* provided_buffer(std::uint16_t id) const noexcept {
        return provided_buffers_ + std::size_t{id} * provided_buffer_bytes;
    }

    void give_back(std::uint16_t id) noexcept {
        io_uring_buf_ring_add(provided_ring_, provided_buffer(id), provided_buffer_bytes, id,
                              io_uring_buf_ring_mask(buffer_count_), 0);
        io_uring_buf_ring_advance(provided_ring_, 1);
    }

    // A free submission slot; null when the kernel keeps refusing to take the queued ones
    // (submit_error_ then says why). A full queue is handed to the kernel, and the completions
    // that are ready are reaped between tries: a kernel that cannot post completions refuses
    // new work (-EBUSY) until room is made.
    io_uring_sqe* next_sqe() noexcept {
        if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) [[likely]]
            return sqe;
        return next_sqe_after_submitting();
    }

    [[gnu::noinline]] io_uring_sqe* next_sqe_after_submitting() noexcept {
        io_uring_sqe* sqe = nullptr;
        for (int attempt = 0; !sqe && attempt < submit_attempts_max; ++attempt) {
            const int injected = submit_failure_for_tests.load(std::memory_order_relaxed);
            const int r = injected ? -injected : io_uring_submit_and_get_events(&ring_);
            if (r < 0) submit_error_ = r;
            reap();
            sqe = io_uring_get_sqe(&ring_);
        }
        if (!sqe && submit_error_ >= 0) submit_error_ = -EAGAIN;
        return sqe;
    }

    bool arm_wake() noexcept {
        io_uring_sqe* sqe = next_sqe();
        if (!sqe) return false;
        io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof wake_value_, 0);
        io_uring_sqe_set_data64(sqe, wake_completion);
        wake_armed_ = true;
        return true;
    }

    bool submit_cancel(uring_request* req) noexcept {
        io_uring_sqe* sqe = next_sqe();
        if (!sqe) return false;
        io_uring_prep_cancel64(sqe, reinterpret_cast<std::uint64_t>(req), 0);
        io_uring_sqe_set_data64(sqe, ignored_completion);
        return true;
    }

    [[gnu::cold, gnu::noinline]] void retry_pending_cancels() noexcept {
        while (uring_request* req = cancels_pending_) {
            if (!submit_cancel(req)) return;
            cancels_pending_ = req->next_cancel;
            req->cancel_pending = false;
        }
    }

    // A request that completed no longer needs its cancel (and leaves the task's stack soon).
    void drop_pending_cancel(uring_request* done) noexcept {
        done->cancel_pending = false;
        for (uring_request** link = &cancels_pending_; *link; link = &(*link)->next_cancel) {
            if (*link == done) {
                *link = done->next_cancel;
                return;
            }
        }
    }

    // With IORING_FEAT_NODROP (setup_ring insists on it) the kernel keeps the completions that
    // found the completion queue full and says so with IORING_SQ_CQ_OVERFLOW; they reach the
    // queue only when the ring is entered with GETEVENTS. liburing 2.3 adds GETEVENTS when it
    // sees the flag, and Linux 6.18 woke every task without this loop
    // (tests/io/test_completion_overflow.cpp); it makes the flush explicit and bounded whatever
    // the liburing version: each loop turn that sees the flag enters and reaps until it clears.
    [[gnu::cold, gnu::noinline]] void flush_overflowed_completions() noexcept {
        for (int i = 0; i < overflow_flushes_per_wait_max && completions_overflowed(); ++i) {
            completion_overflows.fetch_add(1, std::memory_order_relaxed);
            io_uring_submit_and_get_events(&ring_);
            reap();
        }
        // A completion the kernel could not even keep aside (no memory for it) is lost: its
        // task cannot be found any more, so the least is to say so.
        const unsigned dropped = io_uring_smp_load_acquire(ring_.cq.koverflow);
        if (dropped != completions_dropped_seen_) [[unlikely]] {
            completions_dropped.fetch_add(dropped - completions_dropped_seen_,
                                          std::memory_order_relaxed);
            std::fprintf(stderr,
                         "rill: io_uring dropped %u completions (the kernel had no memory to "
                         "keep them): tasks waiting on them may not wake\n",
                         dropped - completions_dropped_seen_);
            completions_dropped_seen_ = dropped;
        }
    }

    bool completions_overflowed() const noexcept {
        return IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_CQ_OVERFLOW;
    }

    void reap() noexcept {
        const unsigned mask = ring_.cq.ring_mask;
        const unsigned first = *ring_.cq.khead;
        const unsigned end = io_uring_smp_load_acquire(ring_.cq.ktail);
        auto entry = [&](unsigned i) noexcept {
            return &ring_.cq.cqes[io_uring_cqe_index(&ring_, i, mask)];
        };
        for (unsigned i = first; i != end; ++i) {
            // With many connections each request (on its task's stack), the task's control
            // block and the stream a send completion updates have left the cache: fetch them
            // a few completions ahead, the request first, then what it points to.
            if (end - i > reap_prefetch_distance)
                prefetch_request(entry(i + reap_prefetch_distance)->user_data);
            if (end - i > reap_prefetch_distance / 2)
                prefetch_targets(entry(i + reap_prefetch_distance / 2)->user_data);
            const io_uring_cqe* cqe = entry(i);
            const std::uint64_t data = cqe->user_data;
            if (!is_request(data)) {
                if (data == wake_completion) wake_armed_ = false;
                continue;
            }
            auto* req = reinterpret_cast<uring_request*>(data);
            req->result = cqe->res;
            req->flags = cqe->flags;
            req->done = true;
            if (req->cancel_pending) [[unlikely]]
                drop_pending_cancel(req);
            if (req->completed) req->completed(req->context, cqe->res);
            if (req->task) owner_.ready(req->task);
        }
        io_uring_cq_advance(&ring_, end - first);
    }

    // A completion of one of our uring_requests, not of a cancel, of the wake-up read, or of
    // the timeout request liburing adds to a wait before Linux 5.11 (no IORING_FEAT_EXT_ARG).
    static bool is_request(std::uint64_t data) noexcept {
        return data != ignored_completion && data != wake_completion &&
               data != LIBURING_UDATA_TIMEOUT;
    }
    static void prefetch_request(std::uint64_t data) noexcept {
        if (is_request(data)) __builtin_prefetch(reinterpret_cast<const void*>(data), 1);
    }
    static void prefetch_targets(std::uint64_t data) noexcept {
        if (!is_request(data)) return;
        const auto* req = reinterpret_cast<const uring_request*>(data);
        if (req->task) __builtin_prefetch(req->task, 1);
        if (req->context) __builtin_prefetch(req->context, 1);
    }

    scheduler& owner_;
    io_uring ring_{};
    int wake_fd_ = -1;
    std::uint64_t wake_value_ = 0;
    bool wake_armed_ = false;
    int submit_error_ = 0;  // why next_sqe last found no slot (-errno)
    uring_request* cancels_pending_ = nullptr;  // cancels waiting for a submission slot
    unsigned completions_dropped_seen_ = 0;  // the ring's overflow counter, last seen
    unsigned buffer_count_ = provided_buffer_count;
    io_uring_buf_ring* provided_ring_ = nullptr;  // null: no provided buffers on this kernel
    char* provided_buffers_ = nullptr;
};

void uring_request::interrupt(task_control*) noexcept {
    // The task stays parked until the cancelled operation's own completion arrives: the
    // kernel may still be writing into the task's buffer until then.
    backend->cancel(this);
}

}  // namespace

namespace {
std::atomic<int> last_probe_error{0};  // the errno of the last probe that failed
}  // namespace

int io_uring_probe_error() noexcept { return last_probe_error.load(std::memory_order_relaxed); }

rill::backend probe_io_uring() {
    // Decided once per process, but only by a refusal that will not change: a shortage of
    // descriptors or memory at the first probe must not turn io_uring off for good.
    static std::atomic<int> decided{0};  // 0: not yet, 1: io_uring, 2: epoll
    if (int d = decided.load(std::memory_order_acquire))
        return d == 1 ? rill::backend::io_uring : rill::backend::epoll;
    io_uring ring;
    int r = io_uring_queue_init(8, &ring, 0);
    if (r == 0) {
        io_uring_queue_exit(&ring);
        decided.store(1, std::memory_order_release);
        return rill::backend::io_uring;
    }
    // EPERM: seccomp (Docker's default profile) or kernel.io_uring_disabled; ENOSYS: a kernel
    // without io_uring; EINVAL: one too old for the setup we ask for.
    const bool refused = r == -EPERM || r == -ENOSYS || r == -EINVAL;
    last_probe_error.store(-r, std::memory_order_relaxed);
    int expected = 0;
    if (!refused || decided.compare_exchange_strong(expected, 2))
        std::fprintf(stderr, "rill: using the epoll backend: io_uring_setup failed: %s%s\n",
                     std::strerror(-r), refused ? "" : " (this run only)");
    return rill::backend::epoll;
}

void set_provided_buffer_count_for_tests(unsigned count) noexcept {
    provided_buffer_count_override.store(count, std::memory_order_relaxed);
}

void set_ring_sizes_for_tests(unsigned submission_entries, unsigned completion_entries) noexcept {
    submission_entries_override.store(submission_entries, std::memory_order_relaxed);
    completion_entries_override.store(completion_entries, std::memory_order_relaxed);
}

void set_submit_failure_for_tests(int error) noexcept {
    submit_failure_for_tests.store(error, std::memory_order_relaxed);
}

void set_ring_setup_failure_for_tests(int error, int setups_first) noexcept {
    ring_setups_before_failure.store(setups_first, std::memory_order_relaxed);
    ring_setup_failure_for_tests.store(error, std::memory_order_relaxed);
}

std::uint64_t completion_queue_overflows() noexcept {
    return completion_overflows.load(std::memory_order_relaxed);
}

std::uint64_t dropped_completions() noexcept {
    return completions_dropped.load(std::memory_order_relaxed);
}

std::unique_ptr<backend> make_uring_backend(scheduler& owner) {
    return std::make_unique<uring_backend>(owner);
}

}  // namespace rill::detail
