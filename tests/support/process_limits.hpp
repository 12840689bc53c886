// This process's resource limits lowered for a scope: a soft limit set lower (RLIMIT_AS: no new
// slab of task stacks can be mapped), and the process out of descriptors on purpose (every free
// descriptor number taken and RLIMIT_NOFILE lowered to match, so the next accept, open or
// socket fails with EMFILE). For a child's limits, see child_limits.hpp.
#pragma once

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace rill_test {

// The soft limit of `resource` set to `value` for the scope; the destructor (or end()) restores
// it. Lowering needs no privilege, raising the soft limit back up to the hard one neither.
class lowered_soft_limit {
public:
    lowered_soft_limit(__rlimit_resource resource, rlim_t value) : resource_(resource) {
        getrlimit(resource_, &saved_);
        rlimit lowered = saved_;
        lowered.rlim_cur = value;
        active_ = setrlimit(resource_, &lowered) == 0;
    }
    lowered_soft_limit(const lowered_soft_limit&) = delete;
    lowered_soft_limit& operator=(const lowered_soft_limit&) = delete;
    ~lowered_soft_limit() { end(); }
    // False when setrlimit refused the value (the limit is then unchanged).
    bool active() const { return active_; }
    // Restores the limit early.
    void end() {
        if (active_) setrlimit(resource_, &saved_);
        active_ = false;
    }

private:
    __rlimit_resource resource_;
    rlimit saved_{};
    bool active_ = false;
};

// The highest descriptor open now: with RLIMIT_NOFILE one above it and every lower number
// taken, the process cannot open anything.
inline int highest_open_fd() {
    int highest = -1;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec))
        highest = std::max(highest, std::stoi(entry.path().filename().string()));
    return highest;
}

// Takes every free descriptor number below the limit it then sets, so that the process is
// out of descriptors; the destructor gives them back and restores the limit.
class descriptor_starvation {
public:
    descriptor_starvation() : limit_(take_free_descriptors()) {}
    descriptor_starvation(const descriptor_starvation&) = delete;
    descriptor_starvation& operator=(const descriptor_starvation&) = delete;
    ~descriptor_starvation() { end(); }
    // False when the limit could not be lowered (the process is then not starved).
    bool active() const { return limit_.active(); }
    // Ends the starvation early: the limit restored, the placeholders closed.
    void end() {
        limit_.end();
        for (int fd : placeholders_) ::close(fd);
        placeholders_.clear();
    }

private:
    // Opens placeholders on every free number below the highest open descriptor + 1, and
    // returns that limit.
    lowered_soft_limit take_free_descriptors() {
        const int limit = highest_open_fd() + 1;
        for (int i = 0; i < limit; ++i) {
            int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (fd < 0) break;
            if (fd >= limit) {
                ::close(fd);
                break;
            }
            placeholders_.push_back(fd);
        }
        return lowered_soft_limit(RLIMIT_NOFILE, static_cast<rlim_t>(limit));
    }

    std::vector<int> placeholders_;  // before limit_: filled while limit_ is made
    lowered_soft_limit limit_;
};

}  // namespace rill_test
