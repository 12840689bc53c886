// Which backend a runtime uses and what happens when it cannot be set up: RILL_BACKEND wins
// over runtime_options::backend, a name it does not know is an argument error, and a backend
// that cannot be created (no descriptor left for the ring or the epoll set) makes run throw
// and leaves nothing behind.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "io/backend.hpp"
#include "support/descriptors.hpp"
#include "support/errors.hpp"

namespace {

using rill_test::contains;

// Sets (or unsets, with nullopt) an environment variable for one scope, then restores it.
class scoped_env {
public:
    scoped_env(const char* name, std::optional<std::string> value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        if (value) {
            ::setenv(name, value->c_str(), 1);
        } else {
            ::unsetenv(name);
        }
    }
    ~scoped_env() {
        if (old_) {
            ::setenv(name_, old_->c_str(), 1);
        } else {
            ::unsetenv(name_);
        }
    }
    scoped_env(const scoped_env&) = delete;
    scoped_env& operator=(const scoped_env&) = delete;

private:
    const char* name_;
    std::optional<std::string> old_;
};

// The backend this test binary was asked to use (ctest sets RILL_BACKEND per registration).
std::string requested_backend() {
    const char* env = std::getenv("RILL_BACKEND");
    return env ? env : "";
}

// The backend the calling task's worker really uses. Only inside a task.
std::string current_backend_name() {
    return rill::detail::task_backend("current_backend_name").name();
}

TEST(BackendSetup, UsesTheBackendNamedByTheEnvironment) {
    const std::string wanted = requested_backend();
    if (wanted.empty()) GTEST_SKIP() << "RILL_BACKEND is not set (ctest sets it)";
    std::string used;
    // RILL_BACKEND wins over the option.
    const auto other = wanted == "epoll" ? rill::backend::io_uring : rill::backend::epoll;
    rill::run([&] { used = current_backend_name(); }, {.backend = other});
    EXPECT_EQ(used, wanted);
}

TEST(BackendSetup, BogusBackendEnvironmentIsAnArgumentError) {
    {
        scoped_env env("RILL_BACKEND", "bogus");
        bool ran = false;
        try {
            rill::run([&] { ran = true; });
            FAIL() << "run accepted RILL_BACKEND=bogus";
        } catch (const rill::argument_error& e) {
            EXPECT_TRUE(contains(e.what(), "RILL_BACKEND")) << e.what();
            EXPECT_TRUE(contains(e.what(), "bogus")) << e.what();
        }
        EXPECT_FALSE(ran);
    }
    // Restored: run works again.
    EXPECT_EQ(rill::run([] { return 5; }), 5);
}

TEST(BackendSetup, SetupFailureThrowsAndLeavesNoTrace) {
    // With no descriptor left, the worker's ring (or epoll set) cannot be made: run throws
    // os_error, and afterwards run works as before (nothing half-built stays behind).
    rill::run([] {});
    // Throw and catch one os_error first: UBSan checks an object's type through a pipe
    // the first time it meets that type, which it cannot open once descriptors run out.
    try {
        rill::detail::throw_os_error(EMFILE, "warm-up");
    } catch (const rill::os_error& e) {
        EXPECT_TRUE(contains(e.what(), "warm-up"));
    }
    rlimit old{};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    const int fds = rill_test::count_open_fds();
    int highest = -1;
    for (int fd = 0; fd < 4096; ++fd)
        if (fcntl(fd, F_GETFD) != -1) highest = fd;
    rlimit tight = old;
    tight.rlim_cur = static_cast<rlim_t>(highest + 1);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
    // Fill the holes below the limit too.
    std::vector<int> fillers;
    for (int i = 0; i < 4096; ++i) {
        const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) break;
        fillers.push_back(fd);
    }
    bool ran = false;
    std::string message;
    try {
        rill::run([&] { ran = true; });
    } catch (const rill::os_error& e) {
        message = e.what();
    }
    for (int fd : fillers) ::close(fd);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    EXPECT_FALSE(ran);
    EXPECT_FALSE(message.empty()) << "run did not throw os_error";
    EXPECT_EQ(rill_test::count_open_fds(), fds);
    EXPECT_EQ(rill::run([] { return 6; }), 6);
    EXPECT_EQ(rill::run([] { return 7; }, {.workers = 2}), 7);
}

}  // namespace
