// One scheduler per worker thread: a run queue, a timer heap, a stack pool and an I/O
// backend. Tasks stay on the scheduler that started them; other threads reach a scheduler
// only through its remote queue (ready) and its backend's wake.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <time.h>

#include <rill/channel.hpp>
#include <rill/runtime.hpp>

#include "runtime/failure_reports.hpp"
#include "runtime/fiber.hpp"
#include "runtime/poller.hpp"
#include "runtime/shutdown.hpp"
#include "runtime/worker_stats.hpp"

namespace rill::detail {

class scheduler;
class runtime_state;

using clock = std::chrono::steady_clock;
using time_point = clock::time_point;

// `d` from now, saturated at the clock's end: a wait "for ever" (nanoseconds::max(),
// milliseconds::max()) must not overflow into a deadline in the past.
template <class Rep, class Period>
time_point deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
    const time_point now = clock::now();
    const auto room = time_point::max() - now;
    if (d >= std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(room))
        return time_point::max();
    return now + std::chrono::duration_cast<clock::duration>(d);
}

enum class wake_reason : std::uint8_t { normal, timeout, cancelled };

// What a waiting task waits for, as the task dump names it.
enum class wait_kind : std::uint8_t {
    other,
    read,
    write,
    accept,
    accept_limit,  // a server at its max_connections, waiting for a client to close
    connect,
    sleep,
    channel,
    join,
    helper,  // a blocking call run on a helper thread (a name lookup)
};
const char* wait_kind_name(wait_kind kind) noexcept;

// The monotonic clock at its coarse resolution (1-4 ms, the kernel's tick), in nanoseconds:
// ~4 ns a read here, against ~26 for the full clock. Stamps when a task started to wait.
inline std::int64_t coarse_now_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// What a parked task is waiting on. When the task's deadline passes or it is cancelled, the
// scheduler calls interrupt on the task's own thread; the park point must then make sure the
// task is made ready soon (at once, or when an in-flight kernel operation completes).
// It lives on the parked task's stack for the whole wait, so what the task dump shows of a
// wait is kept here, not in the task's control block (one per connection).
struct park_point {
    virtual void interrupt(task_control* t) noexcept = 0;
    // For the task dump, on the task's thread while it waits: appends what the wait is on
    // ("127.0.0.1:40522"), or nothing. The task holds that object (a stream) while it waits.
    virtual void describe_target(std::string& /*out*/) const {}

    wait_kind kind = wait_kind::other;  // set by whoever parks on it
    std::int64_t parked_since_ns = 0;  // coarse_now_ns() when park last suspended the task

protected:
    ~park_point() = default;
};

// Work a task puts off until just before it next waits, or ends: the output flush_writer
// marked. Consecutive flushes from one run of a task become one send, and the bytes still
// leave before the task waits on anything. Intrusive: registering allocates nothing. A task
// has one item per stream it flushed since it last waited: a short singly linked list.
struct deferred_work {
    void (*run)(deferred_work*) = nullptr;
    void* context = nullptr;  // what `run` works on
    deferred_work* next = nullptr;
    task_control* owner = nullptr;  // null when not registered
};

inline constexpr std::uint32_t no_heap_index = static_cast<std::uint32_t>(-1);

// The cooperative budget: stream operations (a receive, a send, an accepted connection) a task
// may complete in a row before it yields to the other ready tasks of its worker, as tokio's
// coop budget does (Go preempts instead). A client that floods a connection keeps its task's
// reads and writes from ever waiting; without a budget that task holds the worker for as long
// as the flood lasts (seconds). Any wait refills it, so a task that waits now and then never
// spends it. One receive may carry a whole input buffer (4 KiB: 64 lines of 64 bytes, 1024 of
// 4), so the budget is small: measured with bench/run.sh's flood row (release, 4 MiB of 64-byte
// lines in flight), 16 operations kept the probe's median round trip at 0.2-4 ms with a yield
// every 0.3-0.6 ms; 64 operations gave 2-12 ms; without a budget the probe waited the whole
// measurement (0.7-2.4 s). A yield costs two switches and a poll (~2 us), under 1% of a slice.
inline constexpr std::uint32_t task_budget_operations = 16;

struct task_control : small_block_allocated {
    // Scheduling: touched only by the owning scheduler's thread.
    context ctx = nullptr;
    stack_block stack;
    [[no_unique_address]] fiber_sanitizer_state sanitizer;
    scheduler* owner = nullptr;
    task_body* body = nullptr;
    task_control* next_ready = nullptr;
    task_control* live_prev = nullptr;
    task_control* live_next = nullptr;
    park_point* parked_on = nullptr;
    time_point deadline{};
    deferred_work* deferred = nullptr;  // run by run_deferred before the task waits
    std::uint64_t id = 0;
    std::uint32_t heap_index = no_heap_index;
    wake_reason reason = wake_reason::normal;
    bool cancelled = false;  // set once; every later blocking call throws task_cancelled
    bool parked = false;

    // Shared with joiners and the handle, possibly on other threads. (Fields are ordered so
    // that the block has no padding: one per task, 20k of them at 20k connections.)
    std::atomic<int> refs{2};  // the handle and the running task
    bool finished = false;
    bool detached = false;
    std::mutex join_mutex;
    wait_list joiners;
    std::exception_ptr error;
};

class scheduler {
public:
    // Worker `worker_index` of `runtime` (its counter block: runtime.counters_of(index)).
    scheduler(runtime_state& runtime, rill::backend kind, std::size_t stack_bytes,
              std::size_t worker_index);
    ~scheduler();
    scheduler(const scheduler&) = delete;
    scheduler& operator=(const scheduler&) = delete;

    // The scheduler of the calling thread, or null outside run().
    static scheduler* current() noexcept;  // inline below: every I/O call asks
    task_control* running() const noexcept { return running_; }
    runtime_state& runtime() noexcept { return runtime_; }
    // The I/O layer's poller of this worker (its backend).
    detail::poller& poller() noexcept { return *poller_; }
    // Another task runs before the loop next waits for events: work handed to the poller now
    // (a send queued in io_uring's submission queue) leaves with that batch's.
    bool others_ready() const noexcept { return batch_rest_ != nullptr || ready_head_ != nullptr; }

    // Starts a task on this scheduler. From this scheduler's thread or any other.
    void start(task_control* t);
    // Makes a parked task runnable. From any thread; from another thread it goes through
    // the remote queue and wakes this scheduler.
    void ready(task_control* t) noexcept;
    // Suspends the running task until ready(t). With a deadline, the task's park point is
    // interrupted when it passes; cancellation interrupts it too. Returns why it woke.
    wake_reason park(park_point* p, std::optional<time_point> deadline);
    // Puts the running task at the back of the run queue.
    void yield();
    // Charges the running task one stream operation that completed (waited or not): when its
    // budget is spent the task runs its deferred work and yields. Never throws; a task being
    // cancelled does not yield (its next blocking call throws).
    void spend_budget() noexcept {
        if (--budget_left_ == 0) [[unlikely]]
            budget_spent();
    }

    // Work another thread hands to this scheduler's thread (a task dump's listing of its
    // tasks). Intrusive: the poster owns it until `run` is called, once, by the loop between
    // two tasks (with this scheduler), or with null when the scheduler is destroyed first.
    struct loop_request {
        void (*run)(loop_request* self, scheduler* on) noexcept = nullptr;
        loop_request* next = nullptr;
    };
    // From any thread; wakes the loop.
    void post(loop_request* r) noexcept;
    // This scheduler's started, unfinished tasks (linked by live_next). Its thread only.
    task_control* live_tasks() const noexcept { return live_head_; }

    // Runs tasks and I/O until the runtime stops and no worker has a task left.
    void run_loop();
    // From any thread: cancel every task of this scheduler (run's main has returned).
    void request_cancel_all() noexcept;
    // From any thread: makes the loop look again at whether it may stop.
    void wake_loop() noexcept;

    // From any thread: the runtime is shutting down (runtime_state::start_shutdown). The
    // loop fires its idle watches and, from then on, ends the drain when it is due.
    void request_shutdown() noexcept;
    // This worker has learnt of the shutdown: a stream that would wait idle ends instead.
    bool draining() const noexcept { return draining_; }
    // A stream's receive about to wait with nothing buffered (on this worker's thread).
    void watch_idle(idle_watch& w) noexcept {
        w.prev = nullptr;
        w.next = idle_head_;
        if (idle_head_) idle_head_->prev = &w;
        idle_head_ = &w;
    }
    void unwatch_idle(idle_watch& w) noexcept {
        if (w.prev) {
            w.prev->next = w.next;
        } else if (idle_head_ == &w) {
            idle_head_ = w.next;
        }
        if (w.next) w.next->prev = w.prev;
        w.prev = w.next = nullptr;
    }

private:
    static void task_entry(transfer t);
    void resume(task_control* t);
    [[gnu::cold]] void budget_spent() noexcept;
    void finish_task(task_control* t);
    void switch_to_loop(bool finishing);
    void push_ready(task_control* t) noexcept;
    void take_remote() noexcept;
    void begin_drain() noexcept;
    void fire_idle_watches() noexcept;
    void drain_turn() noexcept;
    void cancel_all() noexcept;
    void interrupt(task_control* t, wake_reason why) noexcept;
    void fire_timers(time_point now) noexcept;
    std::optional<std::chrono::nanoseconds> wait_timeout() const noexcept;
    // Timer heap (min-heap on deadline, intrusive index in the task).
    void timer_add(task_control* t) noexcept;
    void timer_remove(task_control* t) noexcept;
    void heap_sift_up(std::size_t i) noexcept;
    void heap_sift_down(std::size_t i) noexcept;

    runtime_state& runtime_;
    worker_counters& counters_;  // written only by this worker's thread
    std::unique_ptr<detail::poller> poller_;
    stack_pool stacks_;
    task_control* running_ = nullptr;
    // The running task's budget, refilled whenever a task is resumed: a task that waited (or
    // yielded) starts afresh, so only a run of operations that never wait spends it all.
    std::uint32_t budget_left_ = task_budget_operations;
    context loop_ctx_ = nullptr;
    fiber_sanitizer_state loop_sanitizer_;
    task_control* ready_head_ = nullptr;
    task_control* ready_tail_ = nullptr;
    task_control* batch_rest_ = nullptr;  // the rest of the batch run_loop is running
    // Turns run since the last poll with tasks ready, and when the first of them decided the
    // next poll is due at the latest (read only while tasks are ready: no clock per turn).
    unsigned turns_since_poll_ = 0;
    time_point next_poll_{};
    task_control* live_head_ = nullptr;
    std::size_t live_count_ = 0;
    task_control* finished_ = nullptr;  // a task that just switched away for the last time
    std::vector<task_control*> timers_;

    std::mutex remote_mutex_;
    task_control* remote_head_ = nullptr;
    task_control* remote_tail_ = nullptr;
    loop_request* requests_ = nullptr;  // post's, under remote_mutex_
    std::atomic<bool> remote_pending_{false};
    std::atomic<bool> cancel_requested_{false};
    std::atomic<bool> shutdown_requested_{false};
    std::atomic<bool> sleeping_{false};
    bool cancel_done_ = false;
    bool draining_ = false;
    idle_watch* idle_head_ = nullptr;  // idle receives waiting on this worker
};

// The whole runtime of one run() call.
class runtime_state {
public:
    runtime_state(const runtime_options& options, rill::backend kind);
    std::vector<std::unique_ptr<scheduler>>& schedulers() noexcept { return schedulers_; }
    // Where the next spawned task goes (round robin over the workers).
    scheduler& next_scheduler() noexcept;
    bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }
    void stop() noexcept;  // main returned: cancel everything
    // Tasks spawned and not yet finished, on every worker, counted from spawn so that a task
    // on its way to another worker's remote queue is included. A worker leaves its loop only
    // when none is left anywhere: until then a worker still running may hand it a new task.
    void task_added() noexcept { live_tasks_.fetch_add(1, std::memory_order_relaxed); }
    void task_ended() noexcept;  // the last one (after stop) wakes every worker
    bool tasks_left() const noexcept { return live_tasks_.load(std::memory_order_acquire) != 0; }
    std::size_t tasks_alive() const noexcept { return live_tasks_.load(std::memory_order_relaxed); }
    std::uint64_t next_task_id() noexcept {
        return next_id_.fetch_add(1, std::memory_order_relaxed);
    }
    const runtime_options& options() const noexcept { return options_; }
    rill::backend backend_kind() const noexcept { return kind_; }
    // For runtime_stats_snapshot: why this backend, and each worker's counter block (they
    // outlive the schedulers, so a snapshot taken while run ends reads valid memory).
    const backend_decision& backend_reason() const noexcept { return backend_reason_; }
    void set_backend_reason(backend_decision why) { backend_reason_ = std::move(why); }
    std::size_t worker_count() const noexcept { return schedulers_.size(); }
    worker_counters& counters_of(std::size_t worker) noexcept { return worker_counters_[worker]; }

    // Graceful shutdown (request_shutdown): closes the run's servers (its shutdown hooks) and
    // tells every worker. Only the first call does anything; from any thread.
    void start_shutdown() noexcept;
    void start_shutdown_locked() noexcept;  // shutdown.cpp's registry lock held
    bool shutting_down() const noexcept { return shutting_down_.load(std::memory_order_acquire); }
    // When the drain ends (read once shutting_down() is true).
    time_point drain_deadline() const noexcept { return drain_deadline_; }

private:
    runtime_options options_;
    rill::backend kind_;
    std::vector<std::unique_ptr<scheduler>> schedulers_;
    std::atomic<unsigned> next_worker_{0};
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> live_tasks_{0};
    std::atomic<std::uint64_t> next_id_{1};
    std::mutex shutdown_mutex_;
    time_point drain_deadline_{};  // written before shutting_down_ is set
    std::atomic<bool> shutting_down_{false};
    backend_decision backend_reason_;
    std::unique_ptr<worker_counters[]> worker_counters_;
};

// The calling thread's scheduler (constinit: read without a thread-local init call).
extern constinit thread_local scheduler* current_scheduler;
inline scheduler* scheduler::current() noexcept { return current_scheduler; }

// Throws rill::error "`operation`: called outside a rill task".
[[noreturn, gnu::cold]] void refuse_outside_task(const char* operation);
// The running task; throws rill::error with `operation` in the message outside a task.
inline task_control& current_task(const char* operation) {
    scheduler* s = current_scheduler;
    if (!s || !s->running()) [[unlikely]]
        refuse_outside_task(operation);
    return *s->running();
}
// Charges the calling task one stream operation against its cooperative budget
// (task_budget_operations); a few instructions, and nothing outside a worker.
inline void spend_budget() noexcept {
    if (scheduler* s = current_scheduler) s->spend_budget();
}
// `t` could not start (`e`: no stack, say): it ends at once with that error, as a task whose
// body threw would, and is counted. Its body (a client stream it captured) is destroyed now,
// so that connection closes; a joiner gets the error; a detached task has it reported.
void end_unstarted_task(task_control* t, std::exception_ptr e, runtime_state& rt) noexcept;
// Drops one reference to a task's control block (the handle's or the running task's).
void drop_ref(task_control* t) noexcept;

// Throws task_cancelled when the running task is being cancelled.
void check_cancelled(task_control& t);

// wait_list's wait and wait_until, with the kind of wait the task dump shows (channel for
// those two): join, helper, accept at a connection limit.
void wait_as(wait_list& list, std::unique_lock<std::mutex>& lock, wait_kind kind);
bool wait_as_until(wait_list& list, std::unique_lock<std::mutex>& lock, time_point deadline,
                   wait_kind kind);

// Registers `w` with task `t` (once; registering again is a no-op) / takes it off.
void defer(task_control& t, deferred_work& w) noexcept;
void undefer(deferred_work& w) noexcept;
// Runs (and unregisters) every deferred work item of `t`. Every blocking call runs this
// before it makes its task visible to anything that could wake it.
void run_deferred(task_control& t);

}  // namespace rill::detail
