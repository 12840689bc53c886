// A worker's io_uring ring cannot be set up although the probe passed (RLIMIT_MEMLOCK on kernels
// before 5.12 counts every ring against it; ENOMEM): with backend automatic the run starts over
// with epoll on every worker, never a mix of backends and never a hang; with io_uring asked for
// by name the run fails with an os_error that says so. The failure is injected for the test
// (set_ring_setup_failure_for_tests): on Linux 6.x RLIMIT_MEMLOCK no longer limits rings.
// RILL_BACKEND (which ctest sets per backend) is set by each test for its run.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "io/backend.hpp"
#include "runtime/poller.hpp"
#include "runtime/scheduler.hpp"

namespace {

constexpr int workers = 3;

// RILL_BACKEND for one test, restored after; and the injected failure, turned off after.
class backend_environment {
public:
    explicit backend_environment(const char* value) {
        if (const char* old = std::getenv("RILL_BACKEND")) saved_ = old;
        ::setenv("RILL_BACKEND", value, 1);
    }
    ~backend_environment() {
        rill::detail::set_ring_setup_failure_for_tests(0, 0);
        if (saved_)
            ::setenv("RILL_BACKEND", saved_->c_str(), 1);
        else
            ::unsetenv("RILL_BACKEND");
    }

private:
    std::optional<std::string> saved_;
};

bool kernel_offers_io_uring() { return rill::detail::probe_io_uring() == rill::backend::io_uring; }

// The backend of every worker of a run (one task per worker: spawns go round robin), and
// what main returned.
struct run_report {
    std::set<std::string> backends;
    std::set<const void*> schedulers;
    int result = -1;
};

run_report run_on_every_worker() {
    run_report report;
    std::mutex m;
    report.result = rill::run(
        [&] {
            std::vector<rill::task> tasks;
            for (int i = 0; i < workers; ++i)
                tasks.push_back(rill::spawn([&] {
                    std::lock_guard lock(m);
                    report.backends.insert(rill::detail::task_backend("test").name());
                    report.schedulers.insert(rill::detail::scheduler::current());
                }));
            for (auto& t : tasks) t.join();
            return 7;
        },
        {.workers = workers});
    return report;
}

TEST(RingSetupFallback, AutomaticFallsBackToEpollWhenALaterWorkerFails) {
    backend_environment env("automatic");
    if (!kernel_offers_io_uring()) GTEST_SKIP() << "io_uring is refused here: epoll anyway";
    // Worker 0 (the calling thread) sets up its ring, a later one fails.
    rill::detail::set_ring_setup_failure_for_tests(ENOMEM, 1);
    const run_report r = run_on_every_worker();
    EXPECT_EQ(r.result, 7);
    EXPECT_EQ(r.schedulers.size(), static_cast<std::size_t>(workers));
    EXPECT_EQ(r.backends, std::set<std::string>{"epoll"});
}

TEST(RingSetupFallback, AutomaticFallsBackToEpollWhenTheFirstWorkerFails) {
    backend_environment env("automatic");
    if (!kernel_offers_io_uring()) GTEST_SKIP() << "io_uring is refused here: epoll anyway";
    rill::detail::set_ring_setup_failure_for_tests(ENOMEM, 0);
    const run_report r = run_on_every_worker();
    EXPECT_EQ(r.result, 7);
    EXPECT_EQ(r.backends, std::set<std::string>{"epoll"});
}

TEST(RingSetupFallback, AutomaticKeepsIoUringWhenEveryRingSetsUp) {
    backend_environment env("automatic");
    if (!kernel_offers_io_uring()) GTEST_SKIP() << "io_uring is refused here: epoll anyway";
    const run_report r = run_on_every_worker();
    EXPECT_EQ(r.result, 7);
    EXPECT_EQ(r.backends, std::set<std::string>{"io_uring"});
}

TEST(RingSetupFallback, IoUringAskedForByNameFailsClearly) {
    backend_environment env("io_uring");
    rill::detail::set_ring_setup_failure_for_tests(ENOMEM, 1);
    std::string message;
    try {
        run_on_every_worker();
    } catch (const rill::os_error& e) {
        message = e.what();
        EXPECT_EQ(e.code().value(), ENOMEM);
    }
    EXPECT_NE(message.find("io_uring"), std::string::npos) << message;
    EXPECT_NE(message.find("Cannot allocate memory"), std::string::npos) << message;
    // The failed start left nothing behind: the next run works.
    rill::detail::set_ring_setup_failure_for_tests(0, 0);
    if (kernel_offers_io_uring()) {
        const run_report r = run_on_every_worker();
        EXPECT_EQ(r.result, 7);
        EXPECT_EQ(r.backends, std::set<std::string>{"io_uring"});
    }
}

}  // namespace
