#include "runtime/scheduler.hpp"

#include <algorithm>
#include <utility>

#include <rill/error.hpp>

#include "runtime/counters.hpp"

#ifdef RILL_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace rill::detail {

constinit thread_local scheduler* current_scheduler = nullptr;

namespace {
// While tasks are ready, the loop polls the backend at least every this many turns, and at
// the latest this long after the first turn since the last poll that found tasks ready.
constexpr unsigned poll_every_turns = 16;
// With io_uring submissions queued (sends), the poll waits for one more turn only.
constexpr unsigned poll_turns_with_submissions = 2;
constexpr std::chrono::microseconds poll_interval{20};
// A task body (its callable and captures) up to this size lives at the top of its stack.
constexpr std::size_t max_body_on_stack = 512;
// How much of a parked task's stack a resumption touches: the saved context and the frames
// between the park and the stream call (measured with perf at 1000 connections).
constexpr int prefetched_stack_lines = 16;

}  // namespace

void drop_ref(task_control* t) noexcept {
    if (t->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete t;
}

namespace {
// Marks `t` finished (its error, if any, already stored), wakes its joiners and reports an
// error that nobody will join.
void mark_finished(task_control* t) noexcept {
    bool report;
    {
        std::lock_guard lock(t->join_mutex);
        t->finished = true;
        t->joiners.notify_all();
        report = t->detached;
    }
    if (report) report_unjoined_error(t->id, t->error);
}
}  // namespace

void end_unstarted_task(task_control* t, std::exception_ptr e, runtime_state& rt) noexcept {
    count(counters.tasks_failed_to_start);
    t->error = std::move(e);
    t->body->destroy(t->body);
    t->body = nullptr;
    mark_finished(t);
    drop_ref(t);  // the running task's reference: it never ran
    rt.task_ended();
}

scheduler::scheduler(runtime_state& runtime, rill::backend kind, std::size_t stack_bytes,
                     std::size_t worker_index)
    : runtime_(runtime), counters_(runtime.counters_of(worker_index)), stacks_(stack_bytes) {
    poller_ = make_poller(kind, *this);
    // Only once nothing can throw: a half-built scheduler must not stay current (run would
    // then refuse every later call as nested, and point at freed memory).
    current_scheduler = this;
    current_worker_block = &counters_;
}

scheduler::~scheduler() {
    // A request posted after the loop left (the runtime was ending) is answered with null.
    loop_request* left;
    {
        std::lock_guard lock(remote_mutex_);
        left = std::exchange(requests_, nullptr);
    }
    while (left) {
        loop_request* next = left->next;
        left->run(left, nullptr);
        left = next;
    }
    poller_.reset();
    if (current_scheduler == this) {
        current_scheduler = nullptr;
        current_worker_block = nullptr;
    }
}

void scheduler::start(task_control* t) {
    t->owner = this;
    if (current_scheduler != this) {
        ready(t);  // prepared by take_remote on the owner's thread
        return;
    }
    t->stack = stacks_.acquire();
#ifdef RILL_ASAN
    // A reused stack still carries the redzones of its last task's frames (they never
    // returned: the task ended by switching away). Instrumented code rewrites its own frames'
    // marks, but a library that is not instrumented (OpenSSL's stack buffers) would land on
    // stale ones and be reported: the whole stack starts clean.
    ASAN_UNPOISON_MEMORY_REGION(t->stack.bottom(), t->stack.usable_bytes);
#endif
    std::size_t reserved = 0;
    if (t->body->relocate && t->body->size <= max_body_on_stack) {
        // The body moves to the top of the stack: its page is committed anyway.
        reserved = (t->body->size + 63) & ~std::size_t{63};
        char* where = t->stack.top() - reserved;
        t->body = t->body->relocate(t->body, where);
    }
    t->ctx = make_context(t->stack, reserved, &scheduler::task_entry);
    t->sanitizer.set_stack(t->stack.bottom(), t->stack.usable_bytes);
    t->sanitizer.set_tsan(tsan_create_fiber());
    t->live_next = live_head_;
    if (live_head_) live_head_->live_prev = t;
    live_head_ = t;
    ++live_count_;
    add_owned(counters_.tasks_started);
    if (runtime_.stopping()) t->cancelled = true;
    push_ready(t);
}

void scheduler::push_ready(task_control* t) noexcept {
    t->next_ready = nullptr;
    if (ready_tail_) {
        ready_tail_->next_ready = t;
    } else {
        ready_head_ = t;
    }
    ready_tail_ = t;
    add_owned(counters_.tasks_ready);
}

void scheduler::ready(task_control* t) noexcept {
    if (current_scheduler == this) {
        if (!t->parked) return;  // already woken by someone else
        t->parked = false;
        t->parked_on = nullptr;
        if (t->heap_index != no_heap_index) timer_remove(t);
        push_ready(t);
        return;
    }
    {
        std::lock_guard lock(remote_mutex_);
        t->next_ready = nullptr;
        if (remote_tail_) {
            remote_tail_->next_ready = t;
        } else {
            remote_head_ = t;
        }
        remote_tail_ = t;
        // seq_cst here and in run_loop: a store-then-load handshake on two flags (Dekker),
        // which release/acquire alone does not order.
        remote_pending_.store(true, std::memory_order_seq_cst);
    }
    if (sleeping_.exchange(false, std::memory_order_seq_cst)) poller_->wake();
}

void scheduler::post(loop_request* r) noexcept {
    {
        std::lock_guard lock(remote_mutex_);
        r->next = requests_;
        requests_ = r;
        remote_pending_.store(true, std::memory_order_seq_cst);  // as ready's
    }
    if (sleeping_.exchange(false, std::memory_order_seq_cst)) poller_->wake();
}

void scheduler::take_remote() noexcept {
    task_control* list;
    loop_request* requests;
    {
        std::lock_guard lock(remote_mutex_);
        list = std::exchange(remote_head_, nullptr);
        remote_tail_ = nullptr;
        requests = std::exchange(requests_, nullptr);
        remote_pending_.store(false, std::memory_order_relaxed);
    }
    while (requests) {
        loop_request* next = requests->next;
        requests->run(requests, this);
        requests = next;
    }
    while (list) {
        task_control* next = list->next_ready;
        if (list->ctx == nullptr) {
            try {
                start(list);
            } catch (...) {
                end_unstarted_task(list, std::current_exception(), runtime_);
            }
        } else {
            ready(list);
        }
        list = next;
    }
    if (!draining_ && shutdown_requested_.load(std::memory_order_acquire)) [[unlikely]]
        begin_drain();
}

void scheduler::task_entry(transfer tr) {
    auto* t = static_cast<task_control*>(tr.data);
    scheduler* s = t->owner;
    s->loop_ctx_ = tr.from;
    fiber_entered(t->sanitizer, s->loop_sanitizer_);
    try {
        t->body->invoke(t->body);
    } catch (...) {
        t->error = std::current_exception();
    }
    try {
        run_deferred(*t);  // output the task flushed last goes out before it ends
    } catch (...) {
        if (!t->error) t->error = std::current_exception();
    }
    // The captured state (a client stream, say) is destroyed here, on the task, so its
    // destructor may still use the task's scheduler.
    t->body->destroy(t->body);
    t->body = nullptr;
    mark_finished(t);
    s->finished_ = t;
    s->switch_to_loop(true);
}

void scheduler::switch_to_loop(bool finishing) {
    task_control* t = running_;
    transfer tr = switch_context(loop_ctx_, nullptr, t->sanitizer, loop_sanitizer_, finishing);
    loop_ctx_ = tr.from;
}

void scheduler::resume(task_control* t) {
    subtract_owned(counters_.tasks_ready);  // every task resumed was pushed ready
    running_ = t;
    budget_left_ = task_budget_operations;
    transfer tr = switch_context(t->ctx, t, loop_sanitizer_, t->sanitizer);
    running_ = nullptr;
    t->ctx = tr.from;
    if (finished_ == t) {
        finished_ = nullptr;
        finish_task(t);
    }
}

void scheduler::finish_task(task_control* t) {
    stacks_.release(t->stack);
    tsan_destroy_fiber(t->sanitizer.tsan());
    if (t->live_prev) t->live_prev->live_next = t->live_next;
    if (t->live_next) t->live_next->live_prev = t->live_prev;
    if (live_head_ == t) live_head_ = t->live_next;
    --live_count_;
    add_owned(counters_.tasks_finished);
    drop_ref(t);
    runtime_.task_ended();
}

wake_reason scheduler::park(park_point* p, std::optional<time_point> deadline) {
    task_control* t = running_;
    t->parked = true;
    t->parked_on = p;
    t->reason = wake_reason::normal;
    // For the task dump's "for how long": only a wait that suspends reads the clock.
    if (p) p->parked_since_ns = coarse_now_ns();
    if (deadline) {
        t->deadline = *deadline;
        timer_add(t);
    }
    switch_to_loop(false);
    return t->reason;
}

void scheduler::yield() {
    task_control* t = running_;
    t->parked = true;
    t->parked_on = nullptr;
    t->reason = wake_reason::normal;
    ready(t);
    switch_to_loop(false);
}

void scheduler::budget_spent() noexcept {
    budget_left_ = task_budget_operations;
    task_control* t = running_;
    if (!t || t->cancelled) return;  // outside a task, or cancelled: its next wait throws
    try {
        // As task_yield: output flush_writer put off leaves before the others run.
        run_deferred(*t);
    } catch (...) {
        // A flush that was cancelled (or ran out of memory) while it waited: the operation
        // that charged the budget has completed and must return its result; the flush's
        // stream keeps its output, and the task's next blocking call sees the cancellation.
        return;
    }
    // The loop polls before this task runs again: the I/O the others wait for (the probe's
    // request, a connection's answer) is seen after one budget, not after the next one too.
    turns_since_poll_ = poll_every_turns;
    yield();
}

void scheduler::interrupt(task_control* t, wake_reason why) noexcept {
    if (!t->parked) return;
    t->reason = why;
    if (t->heap_index != no_heap_index) timer_remove(t);
    if (t->parked_on) {
        t->parked_on->interrupt(t);
    } else {
        ready(t);
    }
}

void scheduler::request_cancel_all() noexcept {
    cancel_requested_.store(true, std::memory_order_release);
    remote_pending_.store(true, std::memory_order_seq_cst);
    if (current_scheduler != this && sleeping_.exchange(false, std::memory_order_seq_cst))
        poller_->wake();
}

void scheduler::request_shutdown() noexcept {
    shutdown_requested_.store(true, std::memory_order_release);
    remote_pending_.store(true, std::memory_order_seq_cst);
    if (current_scheduler != this && sleeping_.exchange(false, std::memory_order_seq_cst))
        poller_->wake();
}

void scheduler::begin_drain() noexcept {
    draining_ = true;
    fire_idle_watches();
}

// Each idle receive ends (its stream takes it off the list when its task runs again); one
// whose stream still sends output it put off is left for a later turn, once that has gone.
void scheduler::fire_idle_watches() noexcept {
    for (idle_watch* w = idle_head_; w; w = w->next)
        if (!w->fired) w->fired = w->fire(w);
}

// While draining: the run stops (its tasks left are cancelled) once no task is left, or
// once the drain's time is up.
void scheduler::drain_turn() noexcept {
    if (cancel_requested_.load(std::memory_order_relaxed)) return;
    if (!runtime_.tasks_left() || clock::now() >= runtime_.drain_deadline()) {
        runtime_.stop();
        return;
    }
    fire_idle_watches();
}

void scheduler::wake_loop() noexcept {
    // Unconditional: the eventfd stays readable, so a loop about to sleep returns at once.
    if (current_scheduler != this) poller_->wake();
}

void scheduler::cancel_all() noexcept {
    cancel_done_ = true;
    for (task_control* t = live_head_; t; t = t->live_next) {
        t->cancelled = true;
        interrupt(t, wake_reason::cancelled);
    }
}

namespace {
// With many connections a parked task's stack has left the cache by the time it runs again;
// the switch and the frames it returns through then stall on every line. Fetching the next
// task's top of stack while this one runs hides most of that.
inline void prefetch_stack(const task_control* t) noexcept {
    const char* top = static_cast<const char*>(t->ctx);
    for (int line = 0; line < prefetched_stack_lines; ++line)
        __builtin_prefetch(top + 64 * line, 1);
}
}  // namespace

void scheduler::run_loop() {
    loop_sanitizer_.set_tsan(tsan_current_fiber());
    for (;;) {
        add_owned(counters_.loop_turns);
        if (remote_pending_.load(std::memory_order_acquire)) take_remote();
        if (!cancel_done_ && cancel_requested_.load(std::memory_order_acquire)) cancel_all();
        // Run what is ready now; what these tasks make ready runs after the next I/O poll,
        // so a task that yields in a loop cannot starve the backend.
        batch_rest_ = std::exchange(ready_head_, nullptr);
        ready_tail_ = nullptr;
        while (task_control* t = batch_rest_) {
            batch_rest_ = t->next_ready;
            if (batch_rest_) prefetch_stack(batch_rest_);
            resume(t);
        }
        // After the batch: the last task may just have ended here (with one worker nobody
        // else would notice before the drain's end).
        if (draining_) [[unlikely]]
            drain_turn();
        if (cancel_done_ && live_count_ == 0 && !remote_pending_.load(std::memory_order_acquire) &&
            !runtime_.tasks_left())
            break;
        if (ready_head_) {
            // Tasks are ready again (they yielded, woke each other, or were spawned): polling
            // the kernel every turn would make each switch cost a system call. Poll every few
            // turns, or once the last poll is a few microseconds old, so I/O is never held
            // back long; with io_uring submissions queued (sends), after one more turn.
            const unsigned turns =
                poller_->has_unsubmitted() ? poll_turns_with_submissions : poll_every_turns;
            const time_point now = clock::now();
            if (turns_since_poll_++ == 0) next_poll_ = now + poll_interval;
            if (turns_since_poll_ < turns && now < next_poll_) {
                if (!timers_.empty()) fire_timers(now);
                continue;
            }
        }
        turns_since_poll_ = 0;
        std::optional<std::chrono::nanoseconds> timeout = std::chrono::nanoseconds::zero();
        if (!ready_head_) {
            timeout = wait_timeout();
            if (draining_ && !cancel_done_) [[unlikely]] {
                // Wake for the drain's end.
                const auto left =
                    std::max(runtime_.drain_deadline() - clock::now(), clock::duration::zero());
                const auto left_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left);
                if (!timeout || left_ns < *timeout) timeout = left_ns;
            }
            sleeping_.store(true, std::memory_order_seq_cst);
            if (remote_pending_.load(std::memory_order_seq_cst))
                timeout = std::chrono::nanoseconds::zero();
        }
        // Only a wait that may block is timed (a poll with tasks ready reads no clock), and
        // the timers are fired with the clock read that ends it.
        const bool may_block = timeout != std::chrono::nanoseconds::zero();
        const time_point before = may_block ? clock::now() : time_point{};
        poller_->wait(timeout);
        sleeping_.store(false, std::memory_order_relaxed);
        if (!may_block && timers_.empty()) continue;
        const time_point after = clock::now();
        if (may_block)
            add_owned(
                counters_.waiting_ns,
                static_cast<std::uint64_t>(
                    std::chrono::duration_cast<std::chrono::nanoseconds>(after - before).count()));
        if (!timers_.empty()) fire_timers(after);
    }
}

std::optional<std::chrono::nanoseconds> scheduler::wait_timeout() const noexcept {
    if (timers_.empty()) return std::nullopt;  // no clock read on a loop turn without timers
    auto left = timers_.front()->deadline - clock::now();
    if (left < std::chrono::nanoseconds::zero()) return std::chrono::nanoseconds::zero();
    return std::chrono::duration_cast<std::chrono::nanoseconds>(left);
}

void scheduler::fire_timers(time_point now) noexcept {
    while (!timers_.empty() && timers_.front()->deadline <= now)
        interrupt(timers_.front(), wake_reason::timeout);
}

void scheduler::timer_add(task_control* t) noexcept {
    t->heap_index = static_cast<std::uint32_t>(timers_.size());
    timers_.push_back(t);
    heap_sift_up(t->heap_index);
}

void scheduler::timer_remove(task_control* t) noexcept {
    std::size_t i = t->heap_index;
    t->heap_index = no_heap_index;
    task_control* last = timers_.back();
    timers_.pop_back();
    if (last == t) return;
    timers_[i] = last;
    last->heap_index = static_cast<std::uint32_t>(i);
    heap_sift_up(i);
    heap_sift_down(last->heap_index);
}

void scheduler::heap_sift_up(std::size_t i) noexcept {
    task_control* t = timers_[i];
    while (i > 0) {
        std::size_t parent = (i - 1) / 2;
        if (timers_[parent]->deadline <= t->deadline) break;
        timers_[i] = timers_[parent];
        timers_[i]->heap_index = static_cast<std::uint32_t>(i);
        i = parent;
    }
    timers_[i] = t;
    t->heap_index = static_cast<std::uint32_t>(i);
}

void scheduler::heap_sift_down(std::size_t i) noexcept {
    task_control* t = timers_[i];
    const std::size_t n = timers_.size();
    for (;;) {
        std::size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && timers_[child + 1]->deadline < timers_[child]->deadline) ++child;
        if (t->deadline <= timers_[child]->deadline) break;
        timers_[i] = timers_[child];
        timers_[i]->heap_index = static_cast<std::uint32_t>(i);
        i = child;
    }
    timers_[i] = t;
    t->heap_index = static_cast<std::uint32_t>(i);
}

// ---------------------------------------------------------------------------------------

void refuse_outside_task(const char* operation) {
    throw error(std::string(operation) + ": called outside a rill task (inside rill::run only)");
}

void check_cancelled(task_control& t) {
    if (t.cancelled) throw task_cancelled();
}

void defer(task_control& t, deferred_work& w) noexcept {
    if (w.owner) return;
    w.owner = &t;
    w.next = t.deferred;
    t.deferred = &w;
}

void undefer(deferred_work& w) noexcept {
    if (!w.owner) return;
    deferred_work** link = &w.owner->deferred;
    while (*link != &w) link = &(*link)->next;
    *link = w.next;
    w.owner = nullptr;
    w.next = nullptr;
}

void run_deferred(task_control& t) {
    while (deferred_work* w = t.deferred) {
        undefer(*w);
        w->run(w);
    }
}

void prepare_to_wait() {
    scheduler* s = scheduler::current();
    if (s && s->running() && s->running()->deferred) run_deferred(*s->running());
}

// wait_list ------------------------------------------------------------------------------

const char* wait_kind_name(wait_kind kind) noexcept {
    switch (kind) {
    case wait_kind::read: return "read";
    case wait_kind::write: return "write";
    case wait_kind::accept: return "accept";
    case wait_kind::accept_limit: return "accept at max_connections";
    case wait_kind::connect: return "connect";
    case wait_kind::sleep: return "sleep";
    case wait_kind::channel: return "channel";
    case wait_kind::join: return "join";
    case wait_kind::helper: return "helper";
    case wait_kind::other: break;
    }
    return "other";
}

struct wait_list_access {
    static void unlink(wait_list& l, wait_list::node* n) noexcept;
    static bool wait_until(wait_list& l, std::unique_lock<std::mutex>& lock, time_point deadline,
                           wait_kind kind);
};

struct wait_list::node final : park_point {
    task_control* task = nullptr;
    node* next = nullptr;
    node* prev = nullptr;
    wait_list* list = nullptr;
    std::mutex* mutex = nullptr;
    bool linked = false;
    bool notified = false;

    void interrupt(task_control* t) noexcept override {
        std::lock_guard lock(*mutex);
        if (!linked) return;  // notified already: that wake is on its way
        wait_list_access::unlink(*list, this);
        t->owner->ready(t);
    }
};

void wait_list_access::unlink(wait_list& l, wait_list::node* n) noexcept {
    if (n->prev)
        n->prev->next = n->next;
    else
        l.head_ = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l.tail_ = n->prev;
    n->linked = false;
}

void wait_list::wait(std::unique_lock<std::mutex>& lock) {
    // Only channels wait here outside join (which checks for itself first).
    current_task("channel send/receive");
    wait_until(lock, time_point::max());
}

bool wait_list::wait_until(std::unique_lock<std::mutex>& lock, time_point deadline) {
    return wait_list_access::wait_until(*this, lock, deadline, wait_kind::channel);
}

void wait_as(wait_list& list, std::unique_lock<std::mutex>& lock, wait_kind kind) {
    wait_list_access::wait_until(list, lock, time_point::max(), kind);
}

bool wait_as_until(wait_list& list, std::unique_lock<std::mutex>& lock, time_point deadline,
                   wait_kind kind) {
    return wait_list_access::wait_until(list, lock, deadline, kind);
}

bool wait_list_access::wait_until(wait_list& l, std::unique_lock<std::mutex>& lock,
                                  time_point deadline, wait_kind kind) {
    task_control& t = current_task("wait");
    check_cancelled(t);
    wait_list::node n;
    n.kind = kind;
    n.task = &t;
    n.list = &l;
    n.mutex = lock.mutex();
    n.prev = l.tail_;
    if (l.tail_)
        l.tail_->next = &n;
    else
        l.head_ = &n;
    l.tail_ = &n;
    n.linked = true;
    lock.unlock();
    const wake_reason why = t.owner->park(
        &n, deadline == time_point::max() ? std::nullopt : std::optional<time_point>(deadline));
    lock.lock();
    if (why != wake_reason::normal && n.notified)
        l.notify_one();  // that wake goes to the next waiter
    if (why == wake_reason::cancelled) throw task_cancelled();
    return why == wake_reason::normal;
}

bool wait_list::notify_one() noexcept {
    node* n = head_;
    if (!n) return false;
    wait_list_access::unlink(*this, n);
    n->notified = true;
    n->task->owner->ready(n->task);
    return true;
}

void wait_list::notify_all() noexcept {
    while (notify_one()) {}
}

}  // namespace rill::detail
