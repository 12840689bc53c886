#include "metrics/metrics_endpoint.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <rill/stats.hpp>

#include "metrics/prometheus_text.hpp"

namespace rill_tools {

namespace {

void write_text_bytes(rill::stream& s, std::string_view text) {
    write_bytes(s, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()),
                                                 text.size()));
}

// The whole answer in one write: status line, headers, body. Every answer closes.
void answer(rill::stream& s, std::string_view status, std::string_view content_type,
            std::string_view body, std::string_view extra_headers = {}) {
    std::string head = "HTTP/1.1 ";
    head += status;
    head += "\r\nContent-Type: ";
    head += content_type;
    head += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n";
    head += extra_headers;
    head += "\r\n";
    write_text_bytes(s, head);
    write_text_bytes(s, body);
    rill::flush_writer(s);
}

void answer_plain(rill::stream& s, std::string_view status, std::string_view extra = {}) {
    answer(s, status, "text/plain; charset=utf-8", std::string(status) + "\n", extra);
}

// One request: its request line and headers, then the answer. End of stream or the reader
// timeout before the request is complete: no answer.
void serve_scrape(rill::tcp_client_stream& c) {
    constexpr std::string_view too_large = "431 Request Header Fields Too Large";
    std::optional<std::string> request_line;
    try {
        request_line = rill::read_line(c);
        if (!request_line) return;
        // The headers say nothing this server uses; they are read so that the answer does not
        // cross an unread request (and bounded, in count and length).
        for (std::size_t lines = 0;; ++lines) {
            const std::optional<std::string> header = rill::read_line(c);
            if (!header) return;
            if (header->empty()) break;
            if (lines == max_metrics_request_header_lines) {
                answer_plain(c, too_large);
                return;
            }
        }
    } catch (const rill::line_too_long&) {
        answer_plain(c, too_large);
        return;
    }
    // METHOD SP TARGET SP HTTP-VERSION
    const std::string_view line = *request_line;
    const std::size_t method_end = line.find(' ');
    const std::size_t target_end =
        method_end == std::string_view::npos ? method_end : line.find(' ', method_end + 1);
    if (target_end == std::string_view::npos ||
        line.substr(target_end + 1).rfind("HTTP/", 0) != 0) {
        answer_plain(c, "400 Bad Request");
        return;
    }
    const std::string_view method = line.substr(0, method_end);
    std::string_view target = line.substr(method_end + 1, target_end - method_end - 1);
    target = target.substr(0, target.find('?'));  // a query string changes nothing
    if (target != "/metrics") {
        answer_plain(c, "404 Not Found");
        return;
    }
    if (method != "GET") {
        answer_plain(c, "405 Method Not Allowed", "Allow: GET\r\n");
        return;
    }
    answer(c, "200 OK", prometheus_text_content_type,
           prometheus_text(rill::runtime_stats_snapshot()));
}

}  // namespace

rill::server_options metrics_server_options() {
    rill::server_options o;
    o.stream.max_line_length = max_metrics_request_line_bytes;
    o.stream.reader_timeout = metrics_reader_timeout;
    o.stream.writer_timeout = metrics_writer_timeout;
    o.max_connections = max_metrics_connections;
    return o;
}

void serve_metrics(rill::tcp_server_stream& server) {
    while (auto client = rill::read(server)) {
        rill::spawn([c = std::move(*client)]() mutable {
            try {
                rill::call_with_stream(c, serve_scrape);
            } catch (const rill::task_cancelled&) {
                throw;
            } catch (const rill::error&) {
                // A scraper that reset its connection or passed the writer timeout: its
                // connection is closed, nothing else changes.
            }
        });
    }
}

}  // namespace rill_tools
