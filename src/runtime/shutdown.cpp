// request_shutdown, end_drain and the signals that call them (runtime_options::
// shutdown_signals): the runs in progress, their servers' hooks, and a signal handler that
// only writes the signal's number down a pipe for a thread of ours to act on.
#include "runtime/shutdown.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <rill/error.hpp>
#include <rill/runtime.hpp>

#include "runtime/scheduler.hpp"

namespace rill::detail {

std::mutex running_mutex;
std::vector<runtime_state*> running_runtimes;

namespace {

shutdown_hook* hooks_head = nullptr;  // under running_mutex

void unlink_hook(shutdown_hook& h) noexcept {
    if (h.prev) {
        h.prev->next = h.next;
    } else if (hooks_head == &h) {
        hooks_head = h.next;
    }
    if (h.next) h.next->prev = h.prev;
    h.prev = h.next = nullptr;
    h.runtime = nullptr;
}

// The write end of the pipe the signal handler writes to (-1: no run takes signals).
std::atomic<int> signal_pipe{-1};

extern "C" void on_shutdown_signal(int signal_number) {
    const int saved = errno;  // a handler must leave errno as it found it
    const auto byte = static_cast<unsigned char>(signal_number);
    const int fd = signal_pipe.load(std::memory_order_relaxed);
    // Non-blocking: a pipe full of unread signals drops this one (the first has started
    // the shutdown already).
    if (fd >= 0 && ::write(fd, &byte, 1) < 0) {
        // Nothing to do about it in a handler.
    }
    errno = saved;
}

}  // namespace

void add_shutdown_hook(shutdown_hook& h) noexcept {
    scheduler* s = scheduler::current();
    if (!s) return;
    runtime_state& rt = s->runtime();
    bool fire_now;
    {
        std::lock_guard lock(running_mutex);
        h.runtime = &rt;
        h.prev = nullptr;
        h.next = hooks_head;
        if (hooks_head) hooks_head->prev = &h;
        hooks_head = &h;
        fire_now = rt.shutting_down();
    }
    if (fire_now) h.fire(&h);
}

void remove_shutdown_hook(shutdown_hook& h) noexcept {
    std::lock_guard lock(running_mutex);
    if (h.runtime) unlink_hook(h);
}

void drop_shutdown_hooks(runtime_state& rt) noexcept {
    std::lock_guard lock(running_mutex);
    for (shutdown_hook* h = hooks_head; h;) {
        shutdown_hook* next = h->next;
        if (h->runtime == &rt) unlink_hook(*h);
        h = next;
    }
}

// With running_mutex held (the run cannot end meanwhile).
void runtime_state::start_shutdown_locked() noexcept {
    {
        std::lock_guard lock(shutdown_mutex_);
        if (shutting_down_.load(std::memory_order_relaxed)) return;
        drain_deadline_ = deadline_after(options_.drain_timeout);
        shutting_down_.store(true, std::memory_order_release);
    }
    // The servers close (each under its own lock): read(server) returns empty.
    for (shutdown_hook* h = hooks_head; h; h = h->next)
        if (h->runtime == this) h->fire(h);
    for (auto& s : schedulers_) s->request_shutdown();
}

void runtime_state::start_shutdown() noexcept {
    std::lock_guard lock(running_mutex);
    start_shutdown_locked();
}

namespace {
void check_signal(const char* option, int sig) {
    if (sig <= 0 || sig >= NSIG)
        throw argument_error(std::string(option) + ": " + std::to_string(sig) +
                             " is not a signal number");
    if (sig == SIGKILL || sig == SIGSTOP)
        throw argument_error(std::string(option) + ": " + std::to_string(sig) + " (" +
                             sigdescr_np(sig) + ") cannot be caught");
}
}  // namespace

void check_shutdown_options(const runtime_options& o) {
    if (o.drain_timeout.count() < 0)
        throw argument_error("drain_timeout must not be negative, got " +
                             std::to_string(o.drain_timeout.count()) + " ms");
    for (int sig : o.shutdown_signals) check_signal("shutdown_signals", sig);
    if (o.task_dump_signal != 0) {
        check_signal("task_dump_signal", o.task_dump_signal);
        for (int sig : o.shutdown_signals)
            if (sig == o.task_dump_signal)
                throw argument_error("task_dump_signal " + std::to_string(sig) +
                                     " is also one of the shutdown_signals");
    }
}

// Installs the handler for the run's signals and acts on them from a thread of its own: the
// first shutdown signal starts the shutdown, the next ends the drain; the dump signal writes
// the task dump on stderr.
class run_registration::signal_watcher {
public:
    signal_watcher(runtime_state& rt, std::vector<int> signals, int dump_signal)
        : rt_(rt), dump_signal_(dump_signal) {
        if (dump_signal != 0) signals.push_back(dump_signal);
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw_os_error(errno, "run: shutdown_signals: pipe2");
        read_fd_ = fds[0];
        write_fd_ = fds[1];
        ::fcntl(write_fd_, F_SETFL, O_NONBLOCK);
        int expected = -1;
        if (!signal_pipe.compare_exchange_strong(expected, write_fd_)) {
            close_pipe();
            throw argument_error("run: another run in this process already takes signals "
                                 "(shutdown_signals, task_dump_signal)");
        }
        struct sigaction action {};
        action.sa_handler = &on_shutdown_signal;
        sigemptyset(&action.sa_mask);
        action.sa_flags = SA_RESTART;
        for (int sig : signals) {
            struct sigaction previous {};
            if (::sigaction(sig, &action, &previous) != 0) {
                const int e = errno;
                restore();
                throw_os_error(e, "run: shutdown_signals: sigaction " + std::to_string(sig));
            }
            previous_.push_back({sig, previous});
        }
        thread_ = std::thread([this] { watch(); });
    }
    ~signal_watcher() {
        restore();
        const unsigned char stop = 0;
        while (::write(write_fd_, &stop, 1) < 0 && errno == EINTR) {}
        thread_.join();
        close_pipe();
    }
    signal_watcher(const signal_watcher&) = delete;
    signal_watcher& operator=(const signal_watcher&) = delete;

private:
    void watch() noexcept {
        int seen = 0;
        for (;;) {
            unsigned char byte = 0;
            const ssize_t r = ::read(read_fd_, &byte, 1);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0 || byte == 0) return;
            if (byte == dump_signal_) {
                write_task_dump(std::cerr);
                continue;
            }
            if (seen++ == 0) {
                rt_.start_shutdown();
            } else {
                rt_.stop();  // a second signal: the drain ends now
            }
        }
    }
    void restore() noexcept {
        for (auto& [sig, previous] : previous_) ::sigaction(sig, &previous, nullptr);
        previous_.clear();
        int mine = write_fd_;
        signal_pipe.compare_exchange_strong(mine, -1);
    }
    void close_pipe() noexcept {
        if (read_fd_ >= 0) ::close(read_fd_);
        if (write_fd_ >= 0) ::close(write_fd_);
        read_fd_ = write_fd_ = -1;
    }

    runtime_state& rt_;
    int dump_signal_;
    int read_fd_ = -1;
    int write_fd_ = -1;
    std::vector<std::pair<int, struct sigaction>> previous_;
    std::thread thread_;
};

run_registration::run_registration(runtime_state& rt) : rt_(rt) {
    const runtime_options& o = rt.options();
    if (!o.shutdown_signals.empty() || o.task_dump_signal != 0)
        signals_ = std::make_unique<signal_watcher>(rt, o.shutdown_signals, o.task_dump_signal);
    std::lock_guard lock(running_mutex);
    running_runtimes.push_back(&rt);
}

run_registration::~run_registration() {
    signals_.reset();
    drop_shutdown_hooks(rt_);
    std::lock_guard lock(running_mutex);
    std::erase(running_runtimes, &rt_);
    fold_stream_counters(rt_);
}

}  // namespace rill::detail

namespace rill {

void request_shutdown() noexcept {
    std::lock_guard lock(detail::running_mutex);
    for (detail::runtime_state* rt : detail::running_runtimes) rt->start_shutdown_locked();
}

void end_drain() noexcept {
    std::lock_guard lock(detail::running_mutex);
    for (detail::runtime_state* rt : detail::running_runtimes)
        if (rt->shutting_down()) rt->stop();
}

bool shutdown_requested() noexcept {
    if (detail::scheduler* s = detail::scheduler::current()) return s->runtime().shutting_down();
    std::lock_guard lock(detail::running_mutex);
    for (detail::runtime_state* rt : detail::running_runtimes)
        if (rt->shutting_down()) return true;
    return false;
}

}  // namespace rill
