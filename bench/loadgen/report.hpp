#pragma once

// What `rill bench` prints: the progress line on a terminal and the summary at the end, plain or
// one JSON line (--json), which bench/run.sh and bench/callgrind.sh parse.

#include "loadgen/integers.hpp"
#include "loadgen/measurements.hpp"
#include "loadgen/options.hpp"

namespace loadgen {

// The failures of a whole run, every phase included.
struct failure_counts {
    u64 errors = 0;  // connections that failed: connect, send, receive, early close, timeout
    u64 mismatches = 0;  // echoes that differed from the line sent
};

// pingpong, pipeline and churn: the measured rate, latency percentiles and CPU shares.
// established: connects completed (churn: every reconnect counts).
void print_load_report(const bench_options& o, const results& r, int established,
                       failure_counts failures);

// idle: the growth of the server's VmRSS per connection held open.
void print_idle_report(const bench_options& o, u64 held, long rss_before_kib, long rss_after_kib,
                       failure_counts failures);

// The progress line, redrawn in place: the phase, seconds in it, and the completions of the last
// second (idle: the connections established and exchanged).
void print_progress(const bench_options& o, const char* phase, double seconds_in_phase,
                    u64 completed_last_second, u64 completed_total, int established, u64 failed);

// Erases the progress line, so that what is printed next starts on a clean line.
void clear_progress_line();

}  // namespace loadgen
