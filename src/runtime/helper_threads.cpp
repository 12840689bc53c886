// The helper-thread pool behind run_on_helper_thread.
#include "runtime/helper_threads.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#include <rill/channel.hpp>

#include "runtime/scheduler.hpp"

namespace rill::detail {

namespace {

// Helper threads run at most this many jobs at once; each leaves after idle_exit without work.
constexpr int helper_threads_max = 8;
constexpr std::chrono::seconds helper_thread_idle_exit{10};

// Never destroyed: a helper thread may still be running a job while the process exits.
class helper_pool {
public:
    static helper_pool& get() {
        static helper_pool* const pool = new helper_pool;
        return *pool;
    }

    // Runs `job` on a pool thread. Throws std::system_error when no thread can be started.
    void submit(std::function<void()> job) {
        std::lock_guard lock(mutex_);
        jobs_.push_back(std::move(job));
        if (idle_ > 0) {
            work_.notify_one();
            return;
        }
        if (threads_ >= helper_threads_max) return;  // a busy thread takes it next
        try {
            std::thread([this] { serve(); }).detach();
        } catch (...) {
            if (threads_ == 0) {
                jobs_.pop_back();
                throw;
            }
            return;
        }
        ++threads_;
    }

private:
    void serve() {
        std::unique_lock lock(mutex_);
        for (;;) {
            ++idle_;
            const bool got =
                work_.wait_for(lock, helper_thread_idle_exit, [&] { return !jobs_.empty(); });
            --idle_;
            if (!got) {
                --threads_;
                return;
            }
            std::function<void()> job = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            job();
            lock.lock();
        }
    }

    std::mutex mutex_;
    std::condition_variable work_;
    std::deque<std::function<void()>> jobs_;
    int threads_ = 0;
    int idle_ = 0;
};

}  // namespace

void run_on_helper_thread(std::function<void()> job) {
    scheduler* here = scheduler::current();
    if (!here || !here->running()) return job();
    struct completion {
        std::mutex mutex;
        wait_list waiter;
        bool done = false;
    };
    auto finished = std::make_shared<completion>();
    auto work = std::make_shared<std::function<void()>>(std::move(job));
    prepare_to_wait();  // output flush_writer put off leaves before the task waits
    try {
        helper_pool::get().submit([finished, work] {
            (*work)();
            std::lock_guard lock(finished->mutex);
            finished->done = true;
            finished->waiter.notify_all();
        });
    } catch (const std::system_error&) {
        return (*work)();
    }
    // A cancelled task leaves here with task_cancelled; the job finishes on its own and the
    // completion goes with its last reference.
    std::unique_lock lock(finished->mutex);
    while (!finished->done) wait_as(finished->waiter, lock, wait_kind::helper);
}

}  // namespace rill::detail
