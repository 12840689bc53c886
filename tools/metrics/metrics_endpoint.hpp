// rill echo --metrics ADDRESS: an HTTP/1.1 server of its own, written with rill's streams,
// that answers GET /metrics with prometheus_text(runtime_stats_snapshot()). One request per
// connection (the answer says Connection: close), a task per connection. A scraper that
// sends too much, too slowly or too many connections at once is cut off by the limits below.
#pragma once

#include <chrono>
#include <cstddef>

#include <rill/rill.hpp>

namespace rill_tools {

// The request line and each header line, in bytes; a longer one is answered 431.
inline constexpr std::size_t max_metrics_request_line_bytes = 4096;
// Header lines a request may carry; more is answered 431.
inline constexpr std::size_t max_metrics_request_header_lines = 64;
// A scraper that sends nothing (or does not read the answer) for this long is closed.
inline constexpr std::chrono::milliseconds metrics_reader_timeout{5000};
inline constexpr std::chrono::milliseconds metrics_writer_timeout{5000};
// Scrape connections open at once; more wait in the listen backlog.
inline constexpr std::size_t max_metrics_connections = 16;

// The options of the metrics server: the limits above.
rill::server_options metrics_server_options();

// Accepts scrapers on `server` until it is closed, serving each on a task of its own.
// Inside run; a task's failure (a reset scraper) ends that connection only.
void serve_metrics(rill::tcp_server_stream& server);

}  // namespace rill_tools
