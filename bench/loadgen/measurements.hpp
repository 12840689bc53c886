#pragma once

// What a run measures: latencies, the lines or connections completed, and the CPU and memory of
// the load generator and the server.

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <string>

#include "loadgen/integers.hpp"

namespace loadgen {

// Log-linear buckets as in HdrHistogram: 128 linear sub-buckets per power of two keep the
// relative error under 1% from 1 ns to centuries in 7.4k counters, so recording is O(1) and
// never allocates, however long the run.
class latency_histogram {
public:
    void record(u64 ns) {
        ++counts_[index_of(ns)];
        ++total_;
        max_ = std::max(max_, ns);
    }
    void clear() { *this = {}; }
    u64 count() const { return total_; }
    u64 max() const { return max_; }
    u64 percentile(double q) const {
        if (total_ == 0) return 0;
        u64 rank = std::max<u64>(1, u64(std::ceil(q * double(total_))));
        u64 seen = 0;
        for (std::size_t i = 0; i < counts_.size(); ++i)
            if ((seen += counts_[i]) >= rank) return std::min(midpoint(i), max_);
        return max_;
    }

private:
    static constexpr int sub_bits = 7;
    static constexpr std::size_t sub_count = std::size_t{1} << sub_bits;
    // Index = shift * 128 + top 8 bits of the value; values below 256 are their own index.
    static std::size_t index_of(u64 v) {
        int shift = std::max(0, int(std::bit_width(v)) - (sub_bits + 1));
        return std::size_t(shift) * sub_count + std::size_t(v >> shift);
    }
    static u64 midpoint(std::size_t i) {
        if (i < 2 * sub_count) return i;
        std::size_t shift = i / sub_count - 1;
        return (u64(i - shift * sub_count) << shift) + (u64{1} << shift) / 2;
    }
    std::array<u64, (64 - sub_bits + 1) * sub_count> counts_{};
    u64 total_ = 0, max_ = 0;
};

// What the measured phase saw.
struct results {
    u64 completed = 0;  // lines (pingpong, pipeline), connections (churn), exchanges (idle)
    double wall_s = 0, client_cpu_s = 0, server_cpu_s = -1;
    latency_histogram latency;
    u64 tls_handshakes = 0;  // --tls: handshakes completed while measuring
    u64 tls_resumed = 0;  // of those, the ones that resumed a session
    std::string tls_suite;  // --tls: "CIPHER GROUP" the first handshake negotiated
};

// utime + stime of this process, in seconds.
double cpu_seconds_of_self();
// utime + stime of the whole process (all threads), from /proc/PID/stat; -1 if unreadable.
double cpu_seconds_of(int pid);
// VmRSS in KiB from /proc/PID/status, or -1.
long rss_kib_of(int pid);

}  // namespace loadgen
