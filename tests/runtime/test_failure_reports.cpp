// Reports of exceptions that end tasks nobody joins: the application's handler, the default
// line's rate limit, and a stderr that nobody reads never stalling a worker.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <rill/rill.hpp>

#include "runtime/failure_reports.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;

namespace {

struct task_failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Restores the default report when the test ends, also when it fails.
struct handler_reset {
    ~handler_reset() { rill::set_task_failure_handler({}); }
};

int count_occurrences(const std::string& text, const std::string& what) {
    int n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

// The sum of N over the lines "rill: N more task failures not reported".
int count_summed_up(const std::string& text) {
    const std::string tail = " more task failures not reported";
    int sum = 0;
    for (auto at = text.find(tail); at != std::string::npos; at = text.find(tail, at + 1)) {
        const auto start = text.rfind("rill: ", at);
        if (start != std::string::npos) sum += std::stoi(text.substr(start + 6, at - start - 6));
    }
    return sum;
}

}  // namespace

TEST(FailureReports, HandlerGetsEachFailureButNotCancellations) {
    handler_reset reset;
    std::mutex m;
    std::vector<std::pair<std::uint64_t, std::string>> seen;
    rill::set_task_failure_handler([&](std::uint64_t id, const std::exception_ptr& e) {
        std::string what;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            what = ex.what();
        }
        std::lock_guard lock(m);
        seen.emplace_back(id, what);
    });
    std::vector<std::uint64_t> ids;
    testing::internal::CaptureStderr();
    rill::run(
        [&] {
            for (int i = 0; i < 3; ++i)
                ids.push_back(
                    rill::spawn([i] { throw task_failure("failure " + std::to_string(i)); }).id());
            rill::spawn([] { throw rill::task_cancelled(); });
            // Left asleep: cancelled when main returns, and not reported.
            rill::spawn([] { rill::task_sleep(1h); });
            ASSERT_TRUE(rill_test::task_wait_until([&] {
                std::lock_guard lock(m);
                return seen.size() == 3;
            }));
        },
        {.workers = 2});
    EXPECT_EQ(testing::internal::GetCapturedStderr(), "");  // the handler replaced the line
    std::lock_guard lock(m);
    ASSERT_EQ(seen.size(), 3u);
    for (int i = 0; i < 3; ++i) {
        bool found = false;
        for (const auto& [id, what] : seen)
            if (id == ids[static_cast<std::size_t>(i)] && what == "failure " + std::to_string(i))
                found = true;
        EXPECT_TRUE(found) << "task " << ids[static_cast<std::size_t>(i)];
    }
}

TEST(FailureReports, EmptyHandlerRestoresTheDefaultLine) {
    handler_reset reset;
    std::atomic<int> calls{0};
    rill::set_task_failure_handler([&](std::uint64_t, const std::exception_ptr&) { ++calls; });
    rill::set_task_failure_handler({});
    std::uint64_t id = 0;
    testing::internal::CaptureStderr();
    rill::run([&] { id = rill::spawn([] { throw task_failure("back to stderr"); }).id(); });
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(calls.load(), 0);
    EXPECT_EQ(err, "rill: task " + std::to_string(id) +
                       " ended with an exception nobody joined: back to stderr\n");
}

TEST(FailureReports, AThrowingHandlerIsSwallowed) {
    handler_reset reset;
    std::atomic<int> calls{0};
    rill::set_task_failure_handler([&](std::uint64_t, const std::exception_ptr&) {
        ++calls;
        throw std::runtime_error("the handler itself failed");
    });
    bool after = false;
    rill::run([&] {
        rill::spawn([] { throw task_failure("x"); });
        ASSERT_TRUE(rill_test::task_wait_until([&] { return calls.load() == 1; }));
        after = true;
    });
    EXPECT_TRUE(after);
}

// A burst of failures: the first lines are written, the rest are counted and summed up in
// one line, so every failure is accounted for and stderr gets a bounded number of lines.
TEST(FailureReports, LinesOverTheRateAreSummedUp) {
    constexpr int failures = 500;
    const std::uint64_t unreported_before = rill::counters_snapshot().task_failures_not_reported;
    testing::internal::CaptureStderr();
    const auto started = std::chrono::steady_clock::now();
    rill::run(
        [&] {
            for (int i = 0; i < failures; ++i)
                rill::spawn([] { throw task_failure("one of many"); });
        },
        {.workers = 2});
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    // run waited up to a second for the lines; a loaded machine may need longer.
    for (int i = 0; i < 10; ++i) rill::detail::drain_failure_reports();
    const std::string err = testing::internal::GetCapturedStderr();
    const int lines = count_occurrences(err, "ended with an exception nobody joined");
    const int summed = count_summed_up(err);
    EXPECT_EQ(lines + summed, failures) << err;
    EXPECT_EQ(rill::counters_snapshot().task_failures_not_reported - unreported_before,
              static_cast<std::uint64_t>(summed));
    // The burst, plus what the rate allows over the run (it lasts well under a second).
    EXPECT_LE(lines, 20 + static_cast<int>(seconds * 10) + 1) << err;
    // The burst (less what earlier tests of the same process took from it).
    EXPECT_GE(lines, 15) << err;
}

// stderr a pipe nobody reads, already full: a write to it would block for ever. Tasks that
// fail keep failing and the worker keeps running the others; run returns (after a bounded
// wait for the lines it could not write).
TEST(FailureReports, AFullStderrPipeNeverStallsTheWorker) {
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    const int saved_stderr = ::dup(STDERR_FILENO);
    ASSERT_GE(saved_stderr, 0);
    // Fill the pipe (non-blocking on our end only), then make it stderr.
    const int flags = ::fcntl(pipe_fds[1], F_GETFL);
    ::fcntl(pipe_fds[1], F_SETFL, flags | O_NONBLOCK);
    std::string block(4096, 'x');
    while (::write(pipe_fds[1], block.data(), block.size()) > 0) {}
    ::fcntl(pipe_fds[1], F_SETFL, flags);
    ::dup2(pipe_fds[1], STDERR_FILENO);

    constexpr int failures = 300;
    std::atomic<int> after_failures{0};
    std::atomic<bool> finished{false};
    std::thread runner([&] {
        rill::run(
            [&] {
                for (int i = 0; i < failures; ++i) {
                    rill::spawn([] { throw task_failure("nobody reads this"); });
                    rill::task_yield();  // the failing task runs (and is reported) now
                    after_failures.fetch_add(1);
                }
            },
            {.workers = 1});
        finished = true;
    });
    const bool done = rill_test::thread_wait_until([&] { return finished.load(); }, 20s);
    // Whatever happened, unblock any writer (read the pipe) and put stderr back.
    ::dup2(saved_stderr, STDERR_FILENO);
    ::close(saved_stderr);
    const int rflags = ::fcntl(pipe_fds[0], F_GETFL);
    ::fcntl(pipe_fds[0], F_SETFL, rflags | O_NONBLOCK);
    std::vector<char> sink(65536);
    const auto drain_until = std::chrono::steady_clock::now() + 30s;
    while (!finished && std::chrono::steady_clock::now() < drain_until)
        if (::read(pipe_fds[0], sink.data(), sink.size()) <= 0) std::this_thread::sleep_for(1ms);
    runner.join();
    // The reporter thread may still be writing its last lines: closing the pipe now fails
    // that write (EPIPE) and must not kill the process with SIGPIPE.
    while (::read(pipe_fds[0], sink.data(), sink.size()) > 0) {}
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    EXPECT_TRUE(done) << "the worker stalled writing to stderr after " << after_failures.load()
                      << " of " << failures << " failures";
    EXPECT_EQ(after_failures.load(), failures);
}
