// rill echo --metrics: runtime_stats_snapshot in the Prometheus text exposition format, version
// 0.0.4 (# HELP and # TYPE lines, then one sample per line, `name{label="value"} number`).
// A pure function of the snapshot, so that it is tested without a socket.
#pragma once

#include <string>

#include <rill/stats.hpp>

namespace rill_tools {

// The Content-Type a scrape's answer carries.
inline constexpr const char* prometheus_text_content_type =
    "text/plain; version=0.0.4; charset=utf-8";

// Every metric of `stats`: per worker (label worker="0"...), per server (label
// server="127.0.0.1:2020"), the process's stream totals and rare events, and the backend as an
// info gauge (rill_backend_info{backend,reason,detail} 1). Counters end in _total; durations
// are in seconds.
std::string prometheus_text(const rill::runtime_stats& stats);

}  // namespace rill_tools
