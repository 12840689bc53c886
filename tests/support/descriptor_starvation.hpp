// The process out of descriptors on purpose: every free descriptor number taken and
// RLIMIT_NOFILE lowered to match, so the next accept (or open, or socket) fails with EMFILE.
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
    descriptor_starvation() {
        getrlimit(RLIMIT_NOFILE, &saved_);
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
        rlimit lowered = saved_;
        lowered.rlim_cur = static_cast<rlim_t>(limit);
        active_ = setrlimit(RLIMIT_NOFILE, &lowered) == 0;
    }
    descriptor_starvation(const descriptor_starvation&) = delete;
    descriptor_starvation& operator=(const descriptor_starvation&) = delete;
    ~descriptor_starvation() { end(); }
    // False when the limit could not be lowered (the process is then not starved).
    bool active() const { return active_; }
    // Ends the starvation early: the limit restored, the placeholders closed.
    void end() {
        if (active_) setrlimit(RLIMIT_NOFILE, &saved_);
        active_ = false;
        for (int fd : placeholders_) ::close(fd);
        placeholders_.clear();
    }

private:
    rlimit saved_{};
    std::vector<int> placeholders_;
    bool active_ = false;
};

}  // namespace rill_test
