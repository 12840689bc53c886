// Reports of exceptions that ended tasks nobody joins. A worker never waits on them: the
// default report is a line on stderr written by a thread of its own, at a bounded rate, so a
// stderr that nobody reads (a full pipe) or a flood of failing connections cannot stall a
// worker or fill memory.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>

namespace rill::detail {

// The default report: at most this many lines at once, then this many a second; the lines
// over the rate are counted and summed up in one line when the rate allows again.
inline constexpr int failure_reports_burst_lines = 20;
inline constexpr int failure_reports_per_second = 10;
// Lines formatted and waiting for the writer thread; more are counted as not reported.
inline constexpr std::size_t failure_reports_queued_max = 64;
// A task's what() is cut to this many bytes in its report line.
inline constexpr std::size_t failure_report_message_max_bytes = 1024;
// run waits at most this long, once its tasks are done, for the queued lines to be written.
inline constexpr std::chrono::milliseconds failure_reports_drain_limit{1000};

// Reports the exception that ended task `id`, which nobody joins: to the application's handler
// (set_task_failure_handler) or the default report. task_cancelled is not reported. Never
// blocks and never throws.
void report_unjoined_error(std::uint64_t id, const std::exception_ptr& e) noexcept;

// Waits (up to failure_reports_drain_limit) until the queued report lines are written, with a
// line summing up those the rate limit held back. run calls it once every task has ended.
void drain_failure_reports() noexcept;

// Failures handed to the default report and not written (over the rate, the queue full, or no
// memory to format them), since the process started.
std::uint64_t failure_reports_dropped() noexcept;

}  // namespace rill::detail
