// run, spawn, join, sleep and yield: the public face of the scheduler.
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <thread>

#include <rill/error.hpp>
#include <rill/runtime.hpp>

#include "runtime/counters.hpp"
#include "runtime/scheduler.hpp"
#include "runtime/shutdown.hpp"

namespace rill {

int available_cores() noexcept {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
    const unsigned online = std::thread::hardware_concurrency();
    return online > 0 ? static_cast<int>(online) : 1;
}
namespace detail {

namespace {
bool is_backend_setup_error(const std::exception_ptr& e) noexcept {
    try {
        std::rethrow_exception(e);
    } catch (const backend_setup_error&) {
        return true;
    } catch (...) {
        return false;
    }
}

// Owns a task body until it is destroyed (also on the error paths of run).
struct body_owner {
    task_body* body;
    explicit body_owner(task_body* b) : body(b) {}
    body_owner(body_owner&& o) noexcept : body(std::exchange(o.body, nullptr)) {}
    body_owner(const body_owner&) = delete;
    ~body_owner() {
        if (body) body->destroy(body);
    }
};

// Set by run_runtime for the run it starts again with epoll: why (the setup error's text).
thread_local const std::string* falling_back_because = nullptr;
}  // namespace

runtime_state::runtime_state(const runtime_options& options, rill::backend kind)
    : options_(options), kind_(kind), worker_counters_(std::make_unique<worker_counters[]>(
                                          static_cast<std::size_t>(options.workers))) {
    schedulers_.resize(static_cast<std::size_t>(options.workers));
}

scheduler& runtime_state::next_scheduler() noexcept {
    // While stopping, a task spawned by a dying task stays on its worker, which is sure to be
    // running until it has no task left.
    if (schedulers_.size() == 1 || stopping()) return *scheduler::current();
    unsigned i = next_worker_.fetch_add(1, std::memory_order_relaxed);
    return *schedulers_[i % schedulers_.size()];
}

void runtime_state::stop() noexcept {
    stopping_.store(true, std::memory_order_release);
    for (auto& s : schedulers_) s->request_cancel_all();
}

void runtime_state::task_ended() noexcept {
    if (live_tasks_.fetch_sub(1, std::memory_order_acq_rel) == 1)
        for (auto& s : schedulers_)
            if (s) s->wake_loop();
}

namespace {
// The handle spawn returns when not even a task's control block could be allocated: one for
// the whole process, finished from the start with bad_alloc, shared by every such spawn and
// never freed (so handing it out allocates nothing).
// Made by the first such spawn; release_task looks for it without making it.
std::atomic<task_control*> unallocated_task_made{nullptr};
task_control& unallocated_task() {
    static task_control* const shared = [] {
        static task_control t;
        t.error = std::make_exception_ptr(std::bad_alloc());
        t.finished = true;
        unallocated_task_made.store(&t, std::memory_order_relaxed);
        return &t;
    }();
    return *shared;
}

}  // namespace

task_control* spawn_without_memory() noexcept {
    count(counters.tasks_failed_to_start);
    return &unallocated_task();
}

task_control* spawn_task(task_body* body) {
    scheduler* here = scheduler::current();
    if (!here || !here->running()) {
        body->destroy(body);
        throw error("spawn: called outside a rill task (inside rill::run only)");
    }
    // Output the spawner's flush_writer promised leaves first: the new task may run on another
    // worker at once, and may own one of the spawner's streams (moved into its captures).
    if (here->running()->deferred) {
        try {
            run_deferred(*here->running());
        } catch (...) {
            body->destroy(body);
            throw;
        }
    }
    // The spawner's own runtime: runs on other threads have theirs.
    runtime_state& rt = here->runtime();
    // Failing to start a task ends that task, not its spawner: a server that spawns a task
    // per client drops the one client it could not start and goes on accepting.
    task_control* t;
    try {
        t = new task_control;
    } catch (const std::bad_alloc&) {
        body->destroy(body);
        return spawn_without_memory();
    }
    t->body = body;
    t->id = rt.next_task_id();
    rt.task_added();
    try {
        // Throws here only when this worker cannot map a stack; on another worker, its
        // take_remote ends the task the same way.
        rt.next_scheduler().start(t);
    } catch (...) {
        end_unstarted_task(t, std::current_exception(), rt);
        return t;
    }
    return t;
}

void release_task(task_control* t, bool joined) noexcept {
    // Relaxed: a handle to it was handed out after it was made, by a spawn that happened
    // before this release.
    if (t == unallocated_task_made.load(std::memory_order_relaxed)) {
        if (!joined) report_unjoined_error(0, t->error);
        return;  // shared and never freed
    }
    bool report = false;
    {
        std::lock_guard lock(t->join_mutex);
        if (t->finished) {
            report = !joined;
        } else {
            t->detached = true;
        }
    }
    if (report) report_unjoined_error(t->id, t->error);
    drop_ref(t);
}

void join_task(task_control* t) {
    task_control& self = current_task("task.join");
    if (&self == t) throw error("task.join: a task cannot join itself");
    run_deferred(self);
    std::unique_lock lock(t->join_mutex);
    while (!t->finished) wait_as(t->joiners, lock, wait_kind::join);
}

std::uint64_t task_id(const task_control* t) noexcept { return t->id; }

int run_runtime(task_body* main_body, const int* main_result, const runtime_options& options) {
    body_owner owner(main_body);
    if (scheduler::current()) {
        throw error("run: already running on this thread (rill::run does not nest)");
    }
    if (options.workers < 1) {
        throw argument_error("workers must be at least 1, got " + std::to_string(options.workers));
    }
    if (options.stack_size > max_stack_size_bytes) {
        throw argument_error("stack_size must be at most " + std::to_string(max_stack_size_bytes) +
                             " bytes, got " + std::to_string(options.stack_size));
    }
    check_shutdown_options(options);
    const std::string* fallback = std::exchange(falling_back_because, nullptr);
    const rill::backend kind = choose_backend(options.backend);
    runtime_state rt(options, kind);
    if (fallback) {
        rt.set_backend_reason({rill::backend_choice::io_uring_setup_failed, *fallback});
    } else {
        rt.set_backend_reason(explain_backend_choice(options.backend, kind));
    }
    auto& scheds = rt.schedulers();

    // Worker 0 is this thread. The others construct their scheduler (and ring: io_uring's
    // SINGLE_ISSUER wants the creating thread to be the submitting one) on their own thread.
    std::vector<std::thread> threads;
    std::exception_ptr start_error;
    // A worker whose backend cannot be set up after all (its io_uring ring refused, the probe
    // having passed) fails the whole start: under `automatic` the run starts over with epoll
    // on every worker, never with a mix of backends.
    const bool may_fall_back =
        kind != rill::backend::epoll && backend_may_fall_back(options.backend);
    auto start_over_with_epoll = [&](const std::exception_ptr& e) {
        std::string why;
        try {
            std::rethrow_exception(e);
        } catch (const backend_setup_error& setup) {
            std::fprintf(stderr, "rill: using the epoll backend: %s\n", setup.what());
            why = setup.what();
        }
        runtime_options epoll_options = options;
        epoll_options.backend = rill::backend::epoll;
        falling_back_because = &why;
        return run_runtime(std::exchange(owner.body, nullptr), main_result, epoll_options);
    };
    try {
        scheds[0] = std::make_unique<scheduler>(rt, kind, options.stack_size, 0);
    } catch (const backend_setup_error&) {
        if (!may_fall_back) throw;
        return start_over_with_epoll(std::current_exception());
    }
    std::mutex started_mutex;
    std::condition_variable started_cv;
    int started = 1;
    for (int i = 1; i < options.workers; ++i) {
        threads.emplace_back([&, i] {
            try {
                scheds[i] = std::make_unique<scheduler>(rt, kind, options.stack_size,
                                                        static_cast<std::size_t>(i));
            } catch (...) {
                std::lock_guard lock(started_mutex);
                if (!start_error) start_error = std::current_exception();
            }
            {
                std::lock_guard lock(started_mutex);
                ++started;
            }
            started_cv.notify_all();
            if (!scheds[i]) return;
            {
                // Wait until every worker exists, so request_cancel_all can reach them all.
                std::unique_lock lock(started_mutex);
                started_cv.wait(lock, [&] { return started == options.workers; });
            }
            // The scheduler is destroyed by run, once every worker has left its loop: until
            // then other workers may still touch it (stop, a wake, a remote ready).
            scheds[i]->run_loop();
        });
    }
    {
        std::unique_lock lock(started_mutex);
        started_cv.wait(lock, [&] { return started == options.workers; });
    }

    if (start_error && may_fall_back && is_backend_setup_error(start_error)) {
        // Tear down the workers that did start (they have no task: they just leave).
        for (auto& s : scheds)
            if (s) s->request_cancel_all();
        for (auto& th : threads) th.join();
        for (auto& s : scheds) s.reset();
        return start_over_with_epoll(start_error);
    }

    // request_shutdown, the task dump and the stats reach this run from here on; its signals
    // are watched.
    std::optional<run_registration> registration;
    if (!start_error) {
        try {
            registration.emplace(rt);
        } catch (...) {
            start_error = std::current_exception();
        }
    }
    task_control* main_task = nullptr;
    const spawn_site main_site = owner.body->site;
    if (!start_error) {
        // Main's end stops the runtime; its captures are destroyed on the task, like any task's.
        auto wrapper = [owned = std::move(owner), &rt]() {
            struct stopper {
                runtime_state& rt;
                ~stopper() {
                    // During a shutdown's drain the other tasks may finish first: the workers
                    // stop the run once they have, or once the drain's time is up.
                    if (!rt.shutting_down()) rt.stop();
                }
            } stop{rt};
            owned.body->invoke(owned.body);
        };
        main_task = new task_control;
        main_task->body = new task_body_of<decltype(wrapper)>(std::move(wrapper), main_site);
        main_task->id = rt.next_task_id();
        rt.task_added();
        try {
            scheds[0]->start(main_task);  // throws when no stack can be mapped
        } catch (...) {
            start_error = std::current_exception();
            main_task->body->destroy(main_task->body);
            delete main_task;
            main_task = nullptr;
            rt.task_ended();
        }
    }
    if (start_error) {
        // Tear down the workers that did start (they have no task: they just leave).
        for (auto& s : scheds)
            if (s) s->request_cancel_all();
    } else {
        scheds[0]->run_loop();
    }
    for (auto& th : threads) th.join();
    // Every worker has left its loop (nothing counts any more); before the schedulers go, as
    // request_shutdown and a task dump reach them through the list.
    registration.reset();
    for (auto& s : scheds) s.reset();
    // The reports of the tasks' failures reach stderr before run returns (bounded: a stderr
    // nobody reads delays run's return by failure_reports_drain_limit at most).
    drain_failure_reports();
    if (start_error) std::rethrow_exception(start_error);

    std::exception_ptr main_error = main_task->error;
    // The handle's reference: nobody else joins main.
    drop_ref(main_task);
    if (main_error) std::rethrow_exception(main_error);
    return *main_result;
}

}  // namespace detail

void task::join() {
    if (!control_)
        throw argument_error("task.join: the task handle is empty (moved from or joined)");
    detail::join_task(control_);
    std::exception_ptr e = control_->error;
    detail::release_task(std::exchange(control_, nullptr), true);
    if (e) std::rethrow_exception(e);
}

namespace detail {
namespace {
// A sleep waits on its deadline alone: an interrupt (the deadline, a cancellation) wakes it.
struct sleep_point final : park_point {
    sleep_point() noexcept { kind = wait_kind::sleep; }
    void interrupt(task_control* t) noexcept override { t->owner->ready(t); }
};
}  // namespace
}  // namespace detail

void task_sleep(std::chrono::nanoseconds d) {
    detail::task_control& t = detail::current_task("task_sleep");
    detail::check_cancelled(t);
    detail::run_deferred(t);
    detail::sleep_point sleeping;
    if (d <= std::chrono::nanoseconds::zero()) {
        t.owner->yield();
    } else if (t.owner->park(&sleeping, detail::deadline_after(d)) ==
               detail::wake_reason::timeout) {
        return;
    }
    detail::check_cancelled(t);
}

void task_yield() {
    detail::task_control& t = detail::current_task("task_yield");
    detail::check_cancelled(t);
    detail::run_deferred(t);
    t.owner->yield();
    detail::check_cancelled(t);
}

bool in_task() noexcept {
    auto* s = detail::scheduler::current();
    return s && s->running();
}

}  // namespace rill
