#include "loadgen/report.hpp"

#include <cstdio>
#include <string>

namespace loadgen {

namespace {

const char* const scenario_names[] = {"pingpong", "pipeline", "churn", "idle", "flood"};

const char* name_of(scenario kind) { return scenario_names[int(kind)]; }

}  // namespace

void print_load_report(const bench_options& o, const results& r, int established,
                       failure_counts failures) {
    const double wall = r.wall_s > 0 ? r.wall_s : 1;
    const double rate = double(r.completed) / wall;
    const double mb_s = o.kind == scenario::churn ? 0 : rate * double(o.line_size_bytes) / 1e6;
    auto us = [&](double q) { return double(r.latency.percentile(q)) / 1e3; };
    const char* unit = o.kind == scenario::pingpong                                ? "req/s"
                       : o.kind == scenario::pipeline || o.kind == scenario::flood ? "lines/s"
                                                                                   : "conn/s";
    const double client_cpu = r.client_cpu_s / wall;
    const double server_cpu = r.server_cpu_s >= 0 ? r.server_cpu_s / wall : -1;
    const auto errors = static_cast<unsigned long long>(failures.errors);
    const auto mismatches = static_cast<unsigned long long>(failures.mismatches);
    if (o.json) {
        std::string server_cpu_json = "null";  // unknown without --server-pid
        if (server_cpu >= 0) server_cpu_json = std::to_string(server_cpu);
        std::printf(
            "{\"scenario\":\"%s\",\"address\":\"%s\",\"connections\":%d,\"size\":%d,\"depth\":%d,"
            "\"duration_s\":%.3f,\"completed\":%llu,\"rate\":%.1f,\"rate_unit\":\"%s\",\"mb_s\":%."
            "2f,"
            "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"established\":%d,"
            "\"errors\":%llu,\"mismatches\":%llu,\"client_cpu\":%.3f,\"server_cpu\":%s,"
            "\"latency_count\":%llu,\"tls\":%s,\"tls_handshakes\":%llu,\"tls_resumed\":%llu,\"tls_"
            "suite\":\"%s\"}\n",
            name_of(o.kind), o.address.c_str(), o.connections, o.line_size_bytes, o.depth, wall,
            static_cast<unsigned long long>(r.completed), rate, unit, mb_s, us(0.5), us(0.99),
            us(0.999), double(r.latency.max()) / 1e3, established, errors, mismatches, client_cpu,
            server_cpu_json.c_str(), static_cast<unsigned long long>(r.latency.count()),
            o.tls ? "true" : "false", static_cast<unsigned long long>(r.tls_handshakes),
            static_cast<unsigned long long>(r.tls_resumed), r.tls_suite.c_str());
    } else {
        std::printf("%s %s: %d %sconnections, %d-byte lines, depth %d, %.2f s measured\n",
                    name_of(o.kind), o.address.c_str(), o.connections, o.tls ? "TLS " : "",
                    o.line_size_bytes, o.depth, wall);
        std::printf("  %-10s %llu (%.0f %s", o.kind == scenario::churn ? "conns" : "lines",
                    static_cast<unsigned long long>(r.completed), rate, unit);
        if (mb_s > 0) std::printf(", %.2f MB/s sent", mb_s);
        // flood: the rate is the flood's, the latency the probes' round trips.
        std::printf(")\n  %-10s p50 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us",
                    o.kind == scenario::flood ? "probes" : "latency", us(0.5), us(0.99), us(0.999),
                    double(r.latency.max()) / 1e3);
        if (o.kind == scenario::flood)
            std::printf(" (%llu round trips)", static_cast<unsigned long long>(r.latency.count()));
        std::printf("\n");
        std::printf("  %-10s client %.0f%%", "cpu", client_cpu * 100);
        if (server_cpu >= 0) std::printf("  server %.0f%%", server_cpu * 100);
        std::printf("\n");
        if (o.tls)
            std::printf("  %-10s TLS 1.3 %s, %llu handshakes measured, %llu of them resumed\n",
                        "tls", r.tls_suite.c_str(),
                        static_cast<unsigned long long>(r.tls_handshakes),
                        static_cast<unsigned long long>(r.tls_resumed));
        std::printf("  %-10s %llu errors, %llu mismatches\n", "checks", errors, mismatches);
    }
    std::fflush(stdout);
}

void print_idle_report(const bench_options& o, u64 held, long rss_before_kib, long rss_after_kib,
                       failure_counts failures) {
    const double per_connection =
        held > 0 && rss_after_kib >= 0 ? double(rss_after_kib - rss_before_kib) / double(held) : 0;
    const auto errors = static_cast<unsigned long long>(failures.errors);
    const auto mismatches = static_cast<unsigned long long>(failures.mismatches);
    if (o.json) {
        std::printf(
            "{\"scenario\":\"idle\",\"address\":\"%s\",\"connections\":%d,\"established\":%llu,"
            "\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,\"rss_per_conn_kib\":%.2f,\"errors\":%"
            "llu,"
            "\"mismatches\":%llu,\"tls\":%s}\n",
            o.address.c_str(), o.connections, static_cast<unsigned long long>(held), rss_before_kib,
            rss_after_kib, per_connection, errors, mismatches, o.tls ? "true" : "false");
    } else {
        std::printf("idle %s: %llu of %d %sconnections open after one exchange each\n",
                    o.address.c_str(), static_cast<unsigned long long>(held), o.connections,
                    o.tls ? "TLS " : "");
        std::printf("  %-10s before %ld KiB, after %ld KiB: %.2f KiB per connection\n",
                    "server rss", rss_before_kib, rss_after_kib, per_connection);
        std::printf("  %-10s %llu errors, %llu mismatches\n", "checks", errors, mismatches);
    }
    std::fflush(stdout);
}

void print_progress(const bench_options& o, const char* phase, double seconds_in_phase,
                    u64 completed_last_second, u64 completed_total, int established, u64 failed) {
    static constexpr const char* units[] = {"req/s", "lines/s", "conn/s", "exchanged", "lines/s"};
    if (o.kind == scenario::idle)
        std::printf("\r\033[K%-8s %3.0fs  established %d/%d  exchanged %llu  errors %llu", phase,
                    seconds_in_phase, established, o.connections,
                    static_cast<unsigned long long>(completed_total),
                    static_cast<unsigned long long>(failed));
    else
        std::printf("\r\033[K%-8s %3.0fs  %10llu %s  errors %llu", phase, seconds_in_phase,
                    static_cast<unsigned long long>(completed_last_second), units[int(o.kind)],
                    static_cast<unsigned long long>(failed));
    std::fflush(stdout);
}

void clear_progress_line() { std::printf("\r\033[K"); }

}  // namespace loadgen
