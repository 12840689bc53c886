// Resource limits of a running child (prlimit(2), so the child starts normally and is squeezed
// only once it serves), and what it holds now: its open descriptors, its mapped bytes.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace rill_test {

// Sets the soft and hard `resource` limit of process `pid` to `value`; false when refused.
inline bool limit_child(pid_t pid, __rlimit_resource resource, rlim_t value) {
    rlimit lim{value, value};
    return ::prlimit(pid, resource, &lim, nullptr) == 0;
}

// Descriptors process `pid` has open now (-1 when /proc cannot tell).
inline int open_fds_of(pid_t pid) {
    std::error_code ec;
    int n = 0;
    for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end;
         !ec && it != end; it.increment(ec))
        ++n;
    return ec ? -1 : n;
}

// Bytes of address space process `pid` has mapped now (its VmSize; 0 when /proc cannot tell).
inline rlim_t mapped_bytes_of(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmSize:", 0) == 0) return std::stoull(line.substr(7)) * 1024;
    return 0;
}

// Threads process `pid` runs now (0 when /proc cannot tell).
inline int threads_of(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
    return 0;
}

}  // namespace rill_test
