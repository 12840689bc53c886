#pragma once

// The monotonic clock the load generator reads, in nanoseconds.

#include <time.h>

#include <algorithm>

#include "loadgen/integers.hpp"

namespace loadgen {

constexpr u64 ns_per_s = 1'000'000'000;

inline u64 now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return u64(ts.tv_sec) * ns_per_s + u64(ts.tv_nsec);
}

inline u64 seconds_to_ns(double s) { return u64(std::max(0.0, s) * 1e9); }

}  // namespace loadgen
