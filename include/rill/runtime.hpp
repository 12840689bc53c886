// Tasks: Slogan's `task` and `!`. A task is a fiber with a small pooled stack, run by the
// scheduler of one worker thread; blocking calls suspend only the calling task.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iosfwd>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace rill {

// Which I/O backend the workers use.
enum class backend {
    automatic,  // io_uring, falling back to epoll when the kernel or a seccomp profile refuses it
    io_uring,
    epoll,
};

// Reserved per task stack; pages are committed only when touched, and a guard page sits below.
inline constexpr std::size_t default_stack_size_bytes = 64 * 1024;
// Largest stack_size run accepts (each stack is only reserved, but a slab holds 16 of them).
inline constexpr std::size_t max_stack_size_bytes = std::size_t{1} << 30;

// The processors this process may run on (its CPU affinity, as taskset or a container's
// cpuset leave it), at least 1: the default number of workers.
int available_cores() noexcept;

// How long a shutdown lets the tasks in the middle of a request finish (request_shutdown).
inline constexpr std::chrono::milliseconds default_drain_timeout{30'000};

struct runtime_options {
    int workers = available_cores();  // worker threads, each with its own scheduler
    rill::backend backend = rill::backend::automatic;  // env RILL_BACKEND=epoll|io_uring overrides
    std::size_t stack_size = default_stack_size_bytes;  // per task; rounded up to whole pages
    // After request_shutdown, how long tasks still working may go on before they are
    // cancelled (as when main returns). Not negative.
    std::chrono::milliseconds drain_timeout = default_drain_timeout;
    // Signals that start a graceful shutdown while this run lasts, e.g. {SIGINT, SIGTERM}:
    // the first one calls request_shutdown, the next one end_drain. rill installs its handler
    // for them when run starts and puts the previous dispositions back when it returns. Empty
    // (the default): rill leaves every signal alone. One run in the process at a time may
    // take signals (argument_error otherwise).
    std::vector<int> shutdown_signals;
    // A signal that writes the task dump (write_task_dump) on stderr while this run lasts,
    // e.g. SIGQUIT as Go does; the run goes on. Installed and put back like shutdown_signals,
    // under the same one-run-at-a-time rule. 0 (the default): none.
    int task_dump_signal = 0;
};

// Where a task was spawned: the call of spawn (or run, for main) that made it, as the task dump
// shows it ("file:line in function"). A default argument of spawn and run makes it at the
// caller's line; a helper that spawns on its callers' behalf takes one itself and passes it on.
// (Not std::source_location: clang 14 with libstdc++ 12 has none.)
struct spawn_site {
    const char* file = "";
    const char* function = "";
    std::uint_least32_t line = 0;

    static constexpr spawn_site current(const char* file = __builtin_FILE(),
                                        const char* function = __builtin_FUNCTION(),
                                        std::uint_least32_t line = __builtin_LINE()) noexcept {
        return spawn_site{file, function, line};
    }
};

namespace detail {
struct task_control;

// A type-erased task body: the callable lives in the block that holds this header, first on
// the heap; when the task starts, a small body whose move cannot throw moves to the top of
// the task's stack, so a parked task holds no heap block for it.
struct task_body {
    void (*invoke)(task_body*);
    void (*destroy)(task_body*);  // destroys the body and frees it, wherever it lives
    // Moves the body to `where` (`size` bytes, max_align_t-aligned) and frees the original;
    // null when the callable's move may throw.
    task_body* (*relocate)(task_body*, void* where) noexcept;
    std::size_t size;
    // Kept with the body (at the top of the task's stack once it runs, in a page committed
    // anyway) rather than in the control block, which stays one small block per connection.
    spawn_site site;
};

// Blocks of up to 520 bytes recycled per thread (task bodies, task control blocks, stream
// states): a connection's objects come and go without a trip through malloc's bins.
void* allocate_small(std::size_t bytes);
void free_small(void* p, std::size_t bytes) noexcept;

// Derive from this to be allocated through allocate_small (an empty base: no size). Types
// aligned beyond max_align_t keep the global aligned new.
struct small_block_allocated {
    static void* operator new(std::size_t n) { return allocate_small(n); }
    static void operator delete(void* p, std::size_t n) noexcept { free_small(p, n); }
    static void* operator new(std::size_t n, std::align_val_t a) { return ::operator new(n, a); }
    // The unsized global form: clang declares the sized one only with -fsized-deallocation
    // (off by default up to clang 18), and this header must compile for every user.
    static void operator delete(void* p, std::size_t, std::align_val_t a) noexcept {
        ::operator delete(p, a);
    }
};

template <class F>
struct task_body_of final : task_body, small_block_allocated {
    F fn;
    task_body_of(F&& f, spawn_site where)
        : task_body{&call, &drop, relocator(), sizeof(task_body_of), where}, fn(std::move(f)) {}
    static void call(task_body* b) { static_cast<task_body_of*>(b)->fn(); }
    static void drop(task_body* b) { delete static_cast<task_body_of*>(b); }
    static void drop_in_place(task_body* b) { static_cast<task_body_of*>(b)->~task_body_of(); }
    static task_body* move_to(task_body* b, void* where) noexcept {
        auto* self = static_cast<task_body_of*>(b);
        auto* moved = ::new (where) task_body_of(std::move(self->fn), self->site);
        moved->destroy = &drop_in_place;  // its memory is the stack's
        delete self;
        return moved;
    }
    static constexpr task_body* (*relocator())(task_body*, void*) noexcept {
        if constexpr (std::is_nothrow_move_constructible_v<F> &&
                      alignof(F) <= alignof(std::max_align_t))
            return &move_to;
        else
            return nullptr;
    }
};

task_control* spawn_task(task_body* body);
// What spawn returns when its body could not be allocated: a task that ended with bad_alloc.
task_control* spawn_without_memory() noexcept;
void release_task(task_control* t, bool joined) noexcept;
void join_task(task_control* t);
std::uint64_t task_id(const task_control* t) noexcept;
int run_runtime(task_body* main_body, const int* main_result, const runtime_options& options);
}  // namespace detail

// Handle to a spawned task. Dropping it detaches the task (it keeps running); an exception
// that ends a detached task is reported (set_task_failure_handler: by default a line on
// stderr with the task id), never rethrown.
class task {
public:
    task() noexcept = default;
    explicit task(detail::task_control* t) noexcept : control_(t) {}
    task(task&& other) noexcept : control_(std::exchange(other.control_, nullptr)) {}
    task& operator=(task&& other) noexcept {
        if (this != &other) {
            reset();
            control_ = std::exchange(other.control_, nullptr);
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    ~task() { reset(); }

    // Waits for the task to finish and rethrows the exception that ended it, if any.
    // Throws argument_error on an empty handle, task_cancelled if the caller is cancelled.
    void join();
    bool joinable() const noexcept { return control_ != nullptr; }
    std::uint64_t id() const noexcept { return control_ ? detail::task_id(control_) : 0; }

private:
    void reset() noexcept {
        if (control_) detail::release_task(std::exchange(control_, nullptr), false);
    }
    detail::task_control* control_ = nullptr;
};

// Slogan's `!`: starts `fn` in a new task on one of the workers and returns at once.
// Must be called from inside run(). A task that cannot be started (no memory, no stack can be
// mapped) ends at once with that error, for its joiner (or the failure report) to see: spawn
// itself does not throw for it, so a server that spawns a task per client drops only that
// client.
//
// Tasks are scheduled cooperatively: a task gives its worker to the others when it waits
// (I/O, sleep, join, a channel), calls task_yield, or has completed 16 stream operations in a
// row without waiting (receives, sends, accepted connections: a peer that floods a connection
// cannot hold the worker). Nothing else preempts a task (no signals): a loop that computes
// without touching a stream holds its worker, and every other task on it, until it ends;
// call task_yield in such a loop every millisecond or so.
//
// `where` is the caller's line by default; write_task_dump shows it.
template <class F>
task spawn(F&& fn, spawn_site where = spawn_site::current()) {
    using body = detail::task_body_of<std::decay_t<F>>;
    detail::task_body* made;
    try {
        made = new body(std::decay_t<F>(std::forward<F>(fn)), where);
    } catch (const std::bad_alloc&) {
        return task(detail::spawn_without_memory());
    }
    return task(detail::spawn_task(made));
}

// Starts the runtime on this thread (plus workers - 1 more threads) and runs `main` as the
// first task. When `main` returns, every task still alive is cancelled: its blocking call
// throws task_cancelled, so destructors run and streams close. Returns main's int (0 for a
// void main) once every task has ended; an exception from `main` is rethrown here. `where`
// (the caller's line by default) is main's spawn site in write_task_dump.
template <class F>
int run(F&& main, const runtime_options& options = {}, spawn_site where = spawn_site::current()) {
    int result = 0;
    auto wrapper = [&result, fn = std::forward<F>(main)]() mutable {
        if constexpr (std::is_void_v<std::invoke_result_t<decltype(fn)&>>) {
            (void)result;  // captured for the int-returning case only (clang: unused capture)
            fn();
        } else {
            result = static_cast<int>(fn());
        }
    };
    using body = detail::task_body_of<decltype(wrapper)>;
    return detail::run_runtime(new body(std::move(wrapper), where), &result, options);
}

// Called with the id of a task nobody joins and the exception that ended it (never
// task_cancelled). It runs on the worker that ran the task, so it must not block: queue the
// report, count it, hand it to a logger that does not wait.
using task_failure_handler =
    std::function<void(std::uint64_t task_id, const std::exception_ptr& error)>;
// Replaces the default report of such failures for the whole process, from any thread; an
// empty function restores it. The default writes one line per failure on stderr ("rill: task
// 12 ended with an exception nobody joined: ..."), from a thread of its own so that a stderr
// nobody reads never stalls a worker, at most 20 lines at once and then 10 a second; the
// lines held back are counted and summed up in one line ("rill: 153 more task failures not
// reported"). An exception thrown by the handler is swallowed.
void set_task_failure_handler(task_failure_handler handler);

// Suspends the calling task for at least `d`. Throws task_cancelled when cancelled.
void task_sleep(std::chrono::nanoseconds d);
// Lets the other ready tasks of this worker run before this one goes on. The only way for a
// long computation without I/O to share its worker: tasks are never preempted (see spawn).
// Throws task_cancelled when cancelled.
void task_yield();
// True inside a task (inside run()).
bool in_task() noexcept;

// Starts a graceful shutdown of every run() in this process, from any thread or task (not
// from a signal handler: see runtime_options::shutdown_signals). At once:
// - every tcp_server_stream is closed: read(server) returns empty, new clients are refused;
// - a client read(server) handed out that waits for input with nothing buffered (an idle
//   connection) reads end of stream at once, after the bytes that had already arrived; so
//   does every later read of such a client that would wait with nothing buffered. A task in
//   the middle of a request (part of a line read, or writing) carries on.
// Then run() returns as soon as every task has ended (main included), or, once
// runtime_options::drain_timeout has passed, cancels the tasks left as when main returns.
// When main returns during the drain, the other tasks are not cancelled before that. Calling
// it again changes nothing; end_drain cuts the drain short.
void request_shutdown() noexcept;
// Ends the drain of a shutdown at once: every task left is cancelled, as when main returns.
// Does nothing before request_shutdown.
void end_drain() noexcept;
// True once request_shutdown has been called (for loops of your own that should stop too).
bool shutdown_requested() noexcept;

// How long write_task_dump waits for each worker's part of the dump.
inline constexpr std::chrono::milliseconds task_dump_answer_timeout_ms{1000};

// Writes every live task of the running runtime to `out`, as Go's goroutine dump does, one
// line per task, grouped by worker (ids ascending):
//
//   rill task dump: 5 tasks on 2 workers (io_uring)
//   worker 0: 3 tasks
//   task 1 worker 0 running spawned at /src/a.cpp:40 in main
//   task 4 worker 0 ready spawned at /src/a.cpp:52 in operator()
//   task 7 worker 0 waiting read from 127.0.0.1:40522 for 1523 ms spawned at /src/a.cpp:61 in f
//   worker 1: not answering within 1000 ms (a task computing without yielding holds it)
//
// The header counts every task not yet ended (also those of a worker that did not answer, or
// spawned and not yet started). A task is running (the caller), ready (runnable, waiting for
// its turn) or waiting: read or write (with the stream's peer address), accept (with the
// listening address; "at max_connections" when the server is at its limit), connect (with the
// address connected to), sleep, channel, join, helper (a blocking call on a helper thread: a
// name lookup), for how long (milliseconds, to the coarse clock's 1-4 ms). The spawn site is
// spawn's (or run's) caller.
//
// Each worker lists its own tasks on its own thread, between two tasks; the caller waits up to
// task_dump_answer_timeout_ms for each and reports a worker that did not answer in time (a task
// computing without yielding holds it) rather than waiting on. Callable from a task (the
// caller's worker writes its part at once; the task then waits, its worker serving the
// others) or from any other thread while run() runs (a thread that handles SIGQUIT, say).
// Outside run() it writes one line, "rill task dump: no runtime is running". From a task, its
// own run() is dumped; from another thread, every run() under way, one after the other.
// Throws what `out` throws; std::bad_alloc; task_cancelled when the calling task is cancelled
// while it waits.
//
// Cost when nobody dumps: a read of the coarse monotonic clock each time a task starts to
// wait (not when an operation completes at once), and the spawn site (three words) beside
// each task's body.
void write_task_dump(std::ostream& out);

}  // namespace rill
