// The process's descriptors: how many are open, and a raised RLIMIT_NOFILE for tests that
// open many.
#pragma once

#include <dirent.h>
#include <sys/resource.h>

namespace rill_test {

// Descriptors open in this process right now.
inline int count_open_fds() {
    int n = 0;
    if (DIR* d = opendir("/proc/self/fd")) {
        while (dirent* e = readdir(d))
            if (e->d_name[0] != '.') ++n;
        closedir(d);
        --n;  // the DIR's own descriptor
    }
    return n;
}

// RLIMIT_NOFILE raised (soft, up to the hard limit) for the scope; false from ok() when the
// hard limit is below what the test needs.
class descriptor_limit_at_least {
public:
    explicit descriptor_limit_at_least(rlim_t wanted) {
        getrlimit(RLIMIT_NOFILE, &saved_);
        if (saved_.rlim_cur >= wanted) return;
        if (saved_.rlim_max != RLIM_INFINITY && saved_.rlim_max < wanted) {
            ok_ = false;
            return;
        }
        rlimit raised = saved_;
        raised.rlim_cur = wanted;
        ok_ = setrlimit(RLIMIT_NOFILE, &raised) == 0;
        changed_ = ok_;
    }
    descriptor_limit_at_least(const descriptor_limit_at_least&) = delete;
    descriptor_limit_at_least& operator=(const descriptor_limit_at_least&) = delete;
    ~descriptor_limit_at_least() {
        if (changed_) setrlimit(RLIMIT_NOFILE, &saved_);
    }
    bool ok() const { return ok_; }

private:
    rlimit saved_{};
    bool ok_ = true;
    bool changed_ = false;
};

}  // namespace rill_test
