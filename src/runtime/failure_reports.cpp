// The reports of unjoined task failures: the application's handler, or rate-limited lines
// on stderr written by a reporter thread (a worker only queues them).
#include "runtime/failure_reports.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <rill/error.hpp>
#include <rill/runtime.hpp>

namespace rill::detail {

namespace {

using report_clock = std::chrono::steady_clock;

// The reporter thread leaves after this long without a line to write (and comes back with
// the next one).
constexpr std::chrono::seconds reporter_idle_exit{10};

// Writes all of `line` to stderr, blocking this thread only (the reporter's). Gives up on a
// stderr that is closed or fails.
void write_to_stderr(const std::string& line) noexcept {
    std::size_t done = 0;
    while (done < line.size()) {
        const ssize_t n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        done += static_cast<std::size_t>(n);
    }
}

std::string summary_line(std::uint64_t held_back) {
    return "rill: " + std::to_string(held_back) + " more task failures not reported (at most " +
           std::to_string(failure_reports_per_second) + " a second are)\n";
}

// Never destroyed: its thread may be writing while the process exits.
class failure_reporter {
public:
    static failure_reporter& get() {
        static failure_reporter* const reporter = new failure_reporter;
        return *reporter;
    }

    // From a worker: queues `line` if the rate and the queue allow, else counts it.
    void report(std::string&& line) noexcept {
        std::lock_guard lock(mutex_);
        refill(report_clock::now());
        if (tokens_ < 1.0 || queue_.size() >= failure_reports_queued_max) {
            ++held_back_;
            dropped_.fetch_add(1, std::memory_order_relaxed);
            return;  // the writer sums these up once the rate allows
        }
        tokens_ -= 1.0;
        queue_.push_back(std::move(line));
        wake_writer();
    }

    void count_unreported() noexcept { dropped_.fetch_add(1, std::memory_order_relaxed); }

    void drain() noexcept {
        std::unique_lock lock(mutex_);
        if (held_back_ > 0) {
            // The last word before run returns, whatever the rate: how many were held back.
            try {
                queue_.push_back(summary_line(std::exchange(held_back_, 0)));
            } catch (...) {}
        }
        if (!queue_.empty()) wake_writer();
        idle_.wait_for(lock, failure_reports_drain_limit,
                       [&] { return queue_.empty() && !writing_; });
    }

    std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

private:
    void refill(report_clock::time_point now) noexcept {
        const std::chrono::duration<double> since = now - last_refill_;
        last_refill_ = now;
        tokens_ = std::min<double>(failure_reports_burst_lines,
                                   tokens_ + since.count() * failure_reports_per_second);
    }

    // Starts the writer thread if none runs, else wakes it. With no thread to be had, the
    // queued lines wait for the next report's try.
    void wake_writer() noexcept {
        if (writer_running_) {
            work_.notify_one();
            return;
        }
        // The thread takes no signal: SIGINT and the like stay with the application's threads,
        // and a stderr pipe whose reader is gone fails the write (EPIPE) instead of raising
        // SIGPIPE, which is sent to the writing thread. (The new thread inherits this mask;
        // this thread's own is put back at once.)
        sigset_t all, before;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &before);
        try {
            std::thread([this] { write_lines(); }).detach();
            writer_running_ = true;
        } catch (...) {}
        pthread_sigmask(SIG_SETMASK, &before, nullptr);
    }

    void write_lines() noexcept {
        std::unique_lock lock(mutex_);
        for (;;) {
            if (queue_.empty() && held_back_ > 0) {
                refill(report_clock::now());
                if (tokens_ >= 1.0) {
                    tokens_ -= 1.0;
                    try {
                        queue_.push_back(summary_line(std::exchange(held_back_, 0)));
                    } catch (...) {}
                }
            }
            if (queue_.empty()) {
                idle_.notify_all();
                // With lines held back, look again once the rate allows one more.
                const auto wait =
                    held_back_ > 0
                        ? std::chrono::duration_cast<report_clock::duration>(
                              std::chrono::seconds(1)) /
                              failure_reports_per_second
                        : std::chrono::duration_cast<report_clock::duration>(reporter_idle_exit);
                if (!work_.wait_for(lock, wait, [&] { return !queue_.empty(); }) &&
                    held_back_ == 0) {
                    writer_running_ = false;
                    return;
                }
                continue;
            }
            std::string line = std::move(queue_.front());
            queue_.pop_front();
            writing_ = true;
            lock.unlock();
            write_to_stderr(line);
            lock.lock();
            writing_ = false;
        }
    }

    std::mutex mutex_;
    std::condition_variable work_;  // a line to write
    std::condition_variable idle_;  // the queue is empty and nothing is being written
    std::deque<std::string> queue_;
    double tokens_ = failure_reports_burst_lines;
    report_clock::time_point last_refill_ = report_clock::now();
    std::uint64_t held_back_ = 0;  // not reported since the last summary
    bool writer_running_ = false;
    bool writing_ = false;
    std::atomic<std::uint64_t> dropped_{0};
};

// The application's handler, if it set one.
std::mutex handler_mutex;
std::shared_ptr<const task_failure_handler> handler;

std::shared_ptr<const task_failure_handler> current_handler() {
    std::lock_guard lock(handler_mutex);
    return handler;
}

std::string report_line(std::uint64_t id, const std::exception_ptr& e) {
    const std::string task = "rill: task " + std::to_string(id);
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        std::string what = ex.what();
        if (what.size() > failure_report_message_max_bytes) {
            what.resize(failure_report_message_max_bytes);
            what += "...";
        }
        return task + " ended with an exception nobody joined: " + what + "\n";
    } catch (...) {
        return task + " ended with a non-standard exception nobody joined\n";
    }
}

bool is_cancellation(const std::exception_ptr& e) noexcept {
    try {
        std::rethrow_exception(e);
    } catch (const task_cancelled&) {
        return true;  // how tasks end at shutdown, not an error
    } catch (...) {
        return false;
    }
}

}  // namespace

void report_unjoined_error(std::uint64_t id, const std::exception_ptr& e) noexcept {
    if (!e || is_cancellation(e)) return;
    failure_reporter& reporter = failure_reporter::get();
    try {
        if (auto h = current_handler()) {
            (*h)(id, e);
            return;
        }
        reporter.report(report_line(id, e));
    } catch (...) {
        // The handler threw, or no memory to format the line: nothing more can be said.
        reporter.count_unreported();
    }
}

void drain_failure_reports() noexcept { failure_reporter::get().drain(); }

std::uint64_t failure_reports_dropped() noexcept { return failure_reporter::get().dropped(); }

}  // namespace rill::detail

namespace rill {

void set_task_failure_handler(task_failure_handler h) {
    auto made = h ? std::make_shared<const task_failure_handler>(std::move(h)) : nullptr;
    std::lock_guard lock(detail::handler_mutex);
    detail::handler = std::move(made);
}

}  // namespace rill
