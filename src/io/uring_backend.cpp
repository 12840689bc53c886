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

// Set up a ring with the best flags this kernel takes: SINGLE_ISSUER + DEFER_TASKRUN (6.1+)
// let the kernel skip locking and run completion work only when we ask for events;
// COOP_TASKRUN (5.19+) at least avoids interrupting the thread; plain setup otherwise.
int setup_ring(io_uring& ring) {
    const unsigned ladder[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int r = -EINVAL;
    for (unsigned flags : ladder) {
        io_uring_params params{};
        params.flags = flags | IORING_SETUP_CQSIZE;
        params.cq_entries = completion_queue_entries;
        r = io_uring_queue_init_params(submission_queue_entries, &ring, &params);
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

    void interrupt(task_control* t) noexcept override;
};

class uring_backend final : public backend {
public:
    explicit uring_backend(scheduler& owner) : owner_(owner) {
        if (int r = setup_ring(ring_); r < 0) throw_os_error(-r, "io_uring_queue_init");
        // Every loop turn enters the kernel through the ring's descriptor; registered (Linux
        // 5.18+), the entry skips looking it up in the descriptor table. Older kernels refuse,
        // and the plain descriptor works as before.
        io_uring_register_ring_fd(&ring_);
        // Blocking: io_uring honours O_NONBLOCK on reads, and the read must wait for a wake.
        wake_fd_ = eventfd(0, EFD_CLOEXEC);
        if (wake_fd_ < 0) {
            int err = errno;
            io_uring_queue_exit(&ring_);
            throw_os_error(err, "eventfd");
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
            in.append(static_cast<const char*>(provided.buffer), static_cast<std::size_t>(r));
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
        prepare(h, op, req);
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
        sending.completed = send.completed;
        sending.context = send.context;
        prepare(h, send, sending);
        uring_request req;
        req.backend = this;
        req.task = t;
        prepare(h, op, req);
        const long r = complete(h, op, req, owner_.park(&req, op.deadline));
        note_receive(h, op, r);
        wake_reason why = wake_reason::normal;
        if (!sending.done) {
            sending.task = t;
            if (t->cancelled) cancel(&sending);
            why = owner_.park(&sending, send.deadline);
        }
        flushed.sent = complete(h, send, sending, why);
        return r;
    }

    void prepare(io_handle& h, io_op& op, uring_request& req) noexcept {
        io_uring_sqe* sqe = next_sqe();
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
        io_uring_sqe* sqe = next_sqe();
        io_uring_prep_cancel64(sqe, reinterpret_cast<std::uint64_t>(req), 0);
        io_uring_sqe_set_data64(sqe, ignored_completion);
    }

    void wait(std::optional<std::chrono::nanoseconds> timeout) override {
        if (!wake_armed_) arm_wake();
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
        if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN) {
            std::fprintf(stderr, "rill: io_uring_enter failed: %s\n", std::strerror(-r));
        }
        reap();
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

    io_uring_sqe* next_sqe() noexcept {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        while (!sqe) {
            // The submission queue is full: hand it to the kernel and take a fresh slot.
            io_uring_submit(&ring_);
            sqe = io_uring_get_sqe(&ring_);
        }
        return sqe;
    }

    void arm_wake() noexcept {
        io_uring_sqe* sqe = next_sqe();
        io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof wake_value_, 0);
        io_uring_sqe_set_data64(sqe, wake_completion);
        wake_armed_ = true;
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
    int expected = 0;
    if (!refused || decided.compare_exchange_strong(expected, 2))
        std::fprintf(stderr, "rill: using the epoll backend: io_uring_setup failed: %s%s\n",
                     std::strerror(-r), refused ? "" : " (this run only)");
    return rill::backend::epoll;
}

void set_provided_buffer_count_for_tests(unsigned count) noexcept {
    provided_buffer_count_override.store(count, std::memory_order_relaxed);
}

std::unique_ptr<backend> make_uring_backend(scheduler& owner) {
    return std::make_unique<uring_backend>(owner);
}

}  // namespace rill::detail
