#include "metrics/prometheus_text.hpp"

#include <cinttypes>
#include <cstdio>
#include <string_view>

namespace rill_tools {

namespace {

// A label value: backslash, double quote and line feed escaped, as the format asks.
std::string escaped_label_value(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char ch : v) {
        if (ch == '\\')
            out += "\\\\";
        else if (ch == '"')
            out += "\\\"";
        else if (ch == '\n')
            out += "\\n";
        else
            out += ch;
    }
    return out;
}

class exposition {
public:
    // Starts a metric family: its # HELP and # TYPE lines (the help text is ours: no escaping
    // needed, it has no backslash nor line feed).
    void family(std::string_view name, std::string_view type, std::string_view help) {
        text_ += "# HELP ";
        text_ += name;
        text_ += ' ';
        text_ += help;
        text_ += "\n# TYPE ";
        text_ += name;
        text_ += ' ';
        text_ += type;
        text_ += '\n';
    }
    // One sample; `labels` is `key="escaped value",...` or empty.
    void sample(std::string_view name, const std::string& labels, std::uint64_t value) {
        char number[32];
        std::snprintf(number, sizeof number, "%" PRIu64, value);
        line(name, labels, number);
    }
    void sample_seconds(std::string_view name, const std::string& labels, double seconds) {
        char number[64];
        std::snprintf(number, sizeof number, "%.9f", seconds);
        line(name, labels, number);
    }
    std::string take() { return std::move(text_); }

private:
    void line(std::string_view name, const std::string& labels, const char* number) {
        text_ += name;
        if (!labels.empty()) {
            text_ += '{';
            text_ += labels;
            text_ += '}';
        }
        text_ += ' ';
        text_ += number;
        text_ += '\n';
    }
    std::string text_;
};

std::string worker_label(std::size_t i) { return "worker=\"" + std::to_string(i) + "\""; }
std::string server_label(const rill::server_stats& s) {
    return "server=\"" + escaped_label_value(s.address) + "\"";
}

template <class Field>
void per_worker(exposition& e, const rill::runtime_stats& s, std::string_view name,
                std::string_view type, std::string_view help, Field field) {
    e.family(name, type, help);
    for (std::size_t i = 0; i < s.workers.size(); ++i)
        e.sample(name, worker_label(i), s.workers[i].*field);
}

template <class Field>
void per_server(exposition& e, const rill::runtime_stats& s, std::string_view name,
                std::string_view type, std::string_view help, Field field) {
    e.family(name, type, help);
    for (const auto& server : s.servers) e.sample(name, server_label(server), server.*field);
}

void process_counter(exposition& e, std::string_view name, std::string_view help,
                     std::uint64_t value) {
    e.family(name, "counter", help);
    e.sample(name, "", value);
}

}  // namespace

std::string prometheus_text(const rill::runtime_stats& s) {
    exposition e;
    e.family("rill_running", "gauge", "1 while rill::run runs, else 0.");
    e.sample("rill_running", "", s.running ? 1 : 0);
    if (s.running) {
        e.family("rill_backend_info", "gauge",
                 "The I/O backend in use (value 1) and why it was chosen.");
        e.sample("rill_backend_info",
                 "backend=\"" + std::string(rill::to_string(s.backend)) + "\",reason=\"" +
                     rill::to_string(s.backend_reason) + "\",detail=\"" +
                     escaped_label_value(s.backend_reason_detail) + "\"",
                 1);
    }

    using w = rill::worker_stats;
    per_worker(e, s, "rill_worker_tasks_alive", "gauge",
               "Tasks started on the worker and not finished.", &w::tasks_alive);
    per_worker(e, s, "rill_worker_tasks_spawned_total", "counter",
               "Tasks started on the worker since run began.", &w::tasks_spawned);
    per_worker(e, s, "rill_worker_run_queue_length", "gauge",
               "Tasks ready to run on the worker, waiting for their turn.", &w::run_queue_length);
    per_worker(e, s, "rill_worker_loop_turns_total", "counter", "Turns of the worker's loop.",
               &w::loop_turns);
    e.family("rill_worker_wait_seconds_total", "counter",
             "Time the worker spent waiting in its I/O backend (idle).");
    for (std::size_t i = 0; i < s.workers.size(); ++i)
        e.sample_seconds("rill_worker_wait_seconds_total", worker_label(i),
                         static_cast<double>(s.workers[i].time_waiting.count()) / 1e9);

    using sv = rill::server_stats;
    per_server(e, s, "rill_server_connections_accepted_total", "counter",
               "Clients the server accepted.", &sv::connections_accepted);
    per_server(e, s, "rill_server_connections_open", "gauge", "Accepted clients not closed yet.",
               &sv::connections_open);
    per_server(e, s, "rill_server_accept_paused_total", "counter",
               "Times accepting paused with max_connections clients open.",
               &sv::accepting_paused_at_limit);
    per_server(e, s, "rill_server_accept_errors_total", "counter",
               "Accepts that failed and were retried after a back-off.", &sv::accept_errors);

    const rill::stream_totals& t = s.streams;
    process_counter(e, "rill_stream_received_bytes_total", "Plaintext bytes the streams received.",
                    t.bytes_in);
    process_counter(e, "rill_stream_sent_bytes_total", "Plaintext bytes the streams sent.",
                    t.bytes_out);
    process_counter(e, "rill_stream_lines_read_total", "Lines read_line returned.", t.lines_in);
    process_counter(e, "rill_stream_lines_written_total", "Lines showln and newline wrote.",
                    t.lines_out);
    process_counter(e, "rill_stream_line_too_long_total", "line_too_long errors read_line threw.",
                    t.lines_too_long);
    process_counter(e, "rill_stream_decoding_errors_total",
                    "decoding_error exceptions readers threw (error mode raise).",
                    t.decoding_errors);
    process_counter(e, "rill_stream_timeouts_total", "Reader, writer and TLS handshake timeouts.",
                    t.timeouts);
    process_counter(e, "rill_task_cancellations_total", "task_cancelled exceptions thrown.",
                    t.cancellations);
    process_counter(e, "rill_tls_handshakes_total", "TLS handshakes that completed.",
                    t.tls_handshakes);
    process_counter(e, "rill_tls_handshake_failures_total",
                    "TLS handshakes that failed (each also a tls_error).",
                    t.tls_handshake_failures);

    const rill::runtime_counters& c = s.events;
    process_counter(e, "rill_tasks_failed_to_start_total",
                    "Tasks spawn could not start (no stack or memory).", c.tasks_failed_to_start);
    process_counter(e, "rill_accept_errors_retried_total",
                    "Accepts that failed and were retried, over every server.",
                    c.accept_errors_retried);
    process_counter(e, "rill_clients_dropped_total",
                    "Accepted clients closed at once for want of memory.", c.clients_dropped);
    process_counter(e, "rill_task_failures_not_reported_total",
                    "Failures of unjoined tasks not written on stderr (rate limit).",
                    c.task_failures_not_reported);
    return e.take();
}

}  // namespace rill_tools
