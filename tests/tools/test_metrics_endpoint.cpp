// rill echo --metrics: the endpoint answers curl and raw HTTP requests, its body parses with
// the Prometheus text parser of python3-prometheus-client, and the values are what the
// echo traffic of the test made (exact: the clients are plain sockets, so every counted byte
// and line is the server's). Also 404, 405, and a request line over the limit.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "metrics/metrics_endpoint.hpp"
#include "support/child_process.hpp"
#include "support/loopback.hpp"
#include "support/rill_tool.hpp"

namespace {

using namespace std::chrono_literals;

constexpr auto tool_limit = 10s;  // curl or python3 must be done by then
constexpr auto settle_limit = 10s;  // the counters must reach what the test did by then
constexpr int echo_clients = 3;
constexpr int lines_per_echo_client = 5;

// The Debian python3: apt's python3-prometheus-client lives in its dist-packages (a python3
// earlier on PATH, pyenv's say, does not see it).
const char* const debian_python = "/usr/bin/python3";

// Reads an exposition on stdin with prometheus_client's own parser and prints each sample as
// NAME TAB LABEL=VALUE,... (sorted) TAB VALUE.
const char* const parse_script = R"(
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(k + "=" + v for k, v in sorted(s.labels.items()))
        print(s.name + "\t" + labels + "\t" + repr(float(s.value)))
)";

// Samples by "name{labels}" (labels as the script prints them).
using samples = std::map<std::string, double>;

void require_tools() {
    ASSERT_TRUE(rill_test::program_available("curl"))
        << "curl is not installed: scripts/install-deps.sh installs it (apt package curl)";
    rill_test::child_process probe({debian_python, "-c", "import prometheus_client"});
    ASSERT_EQ(probe.wait(tool_limit).exit_status, 0)
        << debian_python << " cannot import prometheus_client: scripts/install-deps.sh installs "
        << "it (apt package python3-prometheus-client)";
}

samples parse_exposition(const std::string& body) {
    rill_test::child_process python({debian_python, "-c", parse_script});
    python.write_stdin(body);
    auto o = python.wait(tool_limit);
    EXPECT_EQ(o.exit_status, 0) << "the Prometheus parser refused the body: " << o.err << "\n"
                                << body;
    samples out;
    std::istringstream lines(o.out);
    for (std::string line; std::getline(lines, line);) {
        const auto tab1 = line.find('\t');
        const auto tab2 = line.find('\t', tab1 + 1);
        out[line.substr(0, tab1) + "{" + line.substr(tab1 + 1, tab2 - tab1 - 1) + "}"] =
            std::stod(line.substr(tab2 + 1));
    }
    return out;
}

std::optional<double> value_of(const samples& s, const std::string& key) {
    auto it = s.find(key);
    if (it == s.end()) return std::nullopt;
    return it->second;
}

// One raw HTTP exchange on a fresh connection: the whole answer (the server closes).
std::string exchange(int port, const std::string& request) {
    rill_test::raw_client c(port);
    c.send(request);
    return c.receive_all();
}

std::string body_of(const std::string& response) {
    const auto end = response.find("\r\n\r\n");
    return end == std::string::npos ? std::string() : response.substr(end + 4);
}

int port_of(const std::string& address) {
    return std::stoi(address.substr(address.rfind(':') + 1));
}

class rill_echo_with_metrics {
public:
    rill_echo_with_metrics()
        : echo_({rill_test::rill_tool, "echo", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
                 "--workers", "2", "--mode", "persistent"}) {
        echo_port_ = rill_test::start_rill_echo(echo_);
        auto second = echo_.read_stdout_line(rill_test::rill_tool_start_limit);
        if (second) metrics_address_ = *second;
    }
    ~rill_echo_with_metrics() { echo_.stop(); }
    int echo_port() const { return echo_port_; }
    const std::string& metrics_address() const { return metrics_address_; }
    int metrics_port() const { return port_of(metrics_address_); }

private:
    rill_test::child_process echo_;
    int echo_port_ = 0;
    std::string metrics_address_;
};

TEST(MetricsEndpoint, CurlScrapeParsesAndCountsTheEchoTraffic) {
    require_tools();
    if (HasFatalFailure()) return;
    rill_echo_with_metrics echo;
    ASSERT_NE(echo.echo_port(), 0);
    ASSERT_THAT(echo.metrics_address(), testing::MatchesRegex("127\\.0\\.0\\.1:[0-9]+"))
        << "the metrics address is the second line of stdout";
    const std::string echo_server = "server=127.0.0.1:" + std::to_string(echo.echo_port());
    const std::string metrics_server = "server=" + echo.metrics_address();

    // The echo traffic: three clients, five lines each; the first then leaves.
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::vector<std::unique_ptr<rill_test::raw_client>> clients;
    for (int i = 0; i < echo_clients; ++i) {
        clients.push_back(std::make_unique<rill_test::raw_client>(echo.echo_port()));
        for (int j = 0; j < lines_per_echo_client; ++j) {
            const std::string line = "client " + std::to_string(i) + " line " + std::to_string(j);
            clients.back()->send(line + "\n");
            ASSERT_EQ(clients.back()->receive_line(), line + "\r\n");
            bytes_in += line.size() + 1;
            bytes_out += line.size() + 2;  // a plain stream's showln ends lines with CR LF
        }
    }
    clients.front()->close();
    const std::uint64_t echo_lines = echo_clients * lines_per_echo_client;

    // Raw scrapes (their own bytes are known exactly) until the server has seen the close and
    // finished the earlier scrapes: then every value is exact.
    const std::string request = "GET /metrics HTTP/1.1\r\nHost: metrics\r\n\r\n";
    const std::uint64_t request_lines = 3;  // request line, Host, the empty line
    std::uint64_t scrapes = 0;
    std::uint64_t answered_before = 0;  // bytes of the answers to the scrapes so far
    std::uint64_t answered_before_last = 0;  // ... before the last one
    samples s;
    const auto deadline = std::chrono::steady_clock::now() + settle_limit;
    for (;;) {
        const std::string response = exchange(echo.metrics_port(), request);
        ++scrapes;
        ASSERT_THAT(response, testing::StartsWith("HTTP/1.1 200 OK\r\n"));
        EXPECT_THAT(
            response,
            testing::HasSubstr("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        s = parse_exposition(body_of(response));
        // A connection counts as closed when its socket closes, its task ends just after.
        double alive_now = 0;
        for (const auto& [key, value] : s)
            if (key.rfind("rill_worker_tasks_alive{", 0) == 0) alive_now += value;
        const bool settled =
            alive_now == 5 &&
            value_of(s, "rill_server_connections_open{" + echo_server + "}") == 2 &&
            value_of(s, "rill_server_connections_open{" + metrics_server + "}") == 1 &&
            value_of(s, "rill_stream_sent_bytes_total{}") == bytes_out + answered_before;
        answered_before_last = answered_before;
        answered_before += response.size();
        if (settled || std::chrono::steady_clock::now() > deadline) break;
    }
    const std::uint64_t scrape_bytes_in = scrapes * request.size();
    EXPECT_EQ(value_of(s, "rill_running{}"), 1);
    EXPECT_EQ(value_of(s, "rill_server_connections_accepted_total{" + echo_server + "}"),
              echo_clients);
    EXPECT_EQ(value_of(s, "rill_server_connections_open{" + echo_server + "}"), 2);
    EXPECT_EQ(value_of(s, "rill_server_accept_paused_total{" + echo_server + "}"), 0);
    EXPECT_EQ(value_of(s, "rill_server_accept_errors_total{" + echo_server + "}"), 0);
    EXPECT_EQ(value_of(s, "rill_server_connections_accepted_total{" + metrics_server + "}"),
              scrapes);
    EXPECT_EQ(value_of(s, "rill_server_connections_open{" + metrics_server + "}"), 1);
    EXPECT_EQ(value_of(s, "rill_stream_received_bytes_total{}"), bytes_in + scrape_bytes_in);
    EXPECT_EQ(value_of(s, "rill_stream_sent_bytes_total{}"), bytes_out + answered_before_last)
        << "the echo answers and the earlier scrapes' answers";
    EXPECT_EQ(value_of(s, "rill_stream_lines_read_total{}"), echo_lines + scrapes * request_lines);
    EXPECT_EQ(value_of(s, "rill_stream_lines_written_total{}"), echo_lines);  // scrapes: bytes
    EXPECT_EQ(value_of(s, "rill_stream_line_too_long_total{}"), 0);
    EXPECT_EQ(value_of(s, "rill_stream_decoding_errors_total{}"), 0);
    EXPECT_EQ(value_of(s, "rill_stream_timeouts_total{}"), 0);
    EXPECT_EQ(value_of(s, "rill_task_cancellations_total{}"), 0);
    EXPECT_EQ(value_of(s, "rill_tls_handshakes_total{}"), 0);
    EXPECT_EQ(value_of(s, "rill_tls_handshake_failures_total{}"), 0);
    // Tasks: main, the metrics server's, two open echo clients and this scrape are alive; the
    // closed client's and the earlier scrapes' have ended.
    double alive = 0;
    double spawned = 0;
    for (const std::string w : {"0", "1"}) {
        const std::string label = "{worker=" + w + "}";
        ASSERT_TRUE(value_of(s, "rill_worker_tasks_alive" + label)) << "worker " << w;
        alive += *value_of(s, "rill_worker_tasks_alive" + label);
        spawned += value_of(s, "rill_worker_tasks_spawned_total" + label).value_or(-1);
        EXPECT_GT(value_of(s, "rill_worker_loop_turns_total" + label).value_or(0), 0);
        EXPECT_TRUE(value_of(s, "rill_worker_run_queue_length" + label));
        EXPECT_TRUE(value_of(s, "rill_worker_wait_seconds_total" + label));
    }
    EXPECT_EQ(alive, 5);
    EXPECT_EQ(spawned, 2 + echo_clients + static_cast<double>(scrapes));
    // The backend, and why: ctest sets RILL_BACKEND (the child inherits it).
    bool backend_listed = false;
    for (const auto& [key, value] : s)
        if (key.rfind("rill_backend_info{", 0) == 0) {
            backend_listed = true;
            EXPECT_EQ(value, 1);
            if (const char* env = std::getenv("RILL_BACKEND"); env && *env) {
                EXPECT_THAT(key, testing::HasSubstr("reason=asked_by_environment"));
            }
        }
    EXPECT_TRUE(backend_listed);

    // The real curl: its answer parses the same way and counts the same echo traffic.
    rill_test::child_process curl({"curl", "--silent", "--show-error", "--fail", "--max-time", "10",
                                   "http://" + echo.metrics_address() + "/metrics"});
    auto o = curl.wait(tool_limit + 1s);
    ASSERT_EQ(o.exit_status, 0) << "curl: " << o.err;
    const samples c = parse_exposition(o.out);
    EXPECT_EQ(value_of(c, "rill_server_connections_accepted_total{" + echo_server + "}"),
              echo_clients);
    EXPECT_EQ(value_of(c, "rill_server_connections_open{" + echo_server + "}"), 2);
    EXPECT_EQ(value_of(c, "rill_server_connections_accepted_total{" + metrics_server + "}"),
              scrapes + 1);
    EXPECT_EQ(value_of(c, "rill_stream_lines_written_total{}"), echo_lines);
    // curl's request is its own business: at least its request line and the empty line.
    EXPECT_GE(value_of(c, "rill_stream_lines_read_total{}").value_or(0),
              echo_lines + scrapes * request_lines + 2);
    EXPECT_GT(value_of(c, "rill_stream_received_bytes_total{}").value_or(0),
              bytes_in + scrape_bytes_in);
}

TEST(MetricsEndpoint, OtherPathsAndMethodsAreRefused) {
    rill_echo_with_metrics echo;
    ASSERT_FALSE(echo.metrics_address().empty());
    EXPECT_THAT(exchange(echo.metrics_port(), "GET / HTTP/1.1\r\nHost: m\r\n\r\n"),
                testing::StartsWith("HTTP/1.1 404 Not Found\r\n"));
    EXPECT_THAT(exchange(echo.metrics_port(), "GET /metricsx HTTP/1.1\r\n\r\n"),
                testing::StartsWith("HTTP/1.1 404 Not Found\r\n"));
    const std::string post = exchange(echo.metrics_port(), "POST /metrics HTTP/1.1\r\n\r\n");
    EXPECT_THAT(post, testing::StartsWith("HTTP/1.1 405 Method Not Allowed\r\n"));
    EXPECT_THAT(post, testing::HasSubstr("\r\nAllow: GET\r\n"));
    EXPECT_THAT(exchange(echo.metrics_port(), "nonsense\r\n\r\n"),
                testing::StartsWith("HTTP/1.1 400 Bad Request\r\n"));
    // A query string is not part of the path.
    EXPECT_THAT(exchange(echo.metrics_port(), "GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
                testing::StartsWith("HTTP/1.1 200 OK\r\n"));
}

TEST(MetricsEndpoint, HostileRequestsAreCutOff) {
    rill_echo_with_metrics echo;
    ASSERT_FALSE(echo.metrics_address().empty());
    // A request line over the limit: refused, not buffered.
    const std::string huge(rill_tools::max_metrics_request_line_bytes + 1, 'a');
    EXPECT_THAT(exchange(echo.metrics_port(), "GET /" + huge + " HTTP/1.1\r\n\r\n"),
                testing::StartsWith("HTTP/1.1 431 "));
    // Endless headers: refused after the limit.
    std::string many = "GET /metrics HTTP/1.1\r\n";
    for (std::size_t i = 0; i <= rill_tools::max_metrics_request_header_lines; ++i)
        many += "X-Filler: " + std::to_string(i) + "\r\n";
    EXPECT_THAT(exchange(echo.metrics_port(), many + "\r\n"), testing::StartsWith("HTTP/1.1 431 "));
    // A scraper that says nothing is closed after the reader timeout, and meanwhile the
    // endpoint answers others.
    rill_test::raw_client silent(echo.metrics_port());
    EXPECT_THAT(exchange(echo.metrics_port(), "GET /metrics HTTP/1.1\r\n\r\n"),
                testing::StartsWith("HTTP/1.1 200 OK\r\n"));
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(silent.receive_all(), "") << "closed without an answer";
    const auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_GE(waited, rill_tools::metrics_reader_timeout - 100ms);
    EXPECT_LT(waited, rill_tools::metrics_reader_timeout + 4s);
}

TEST(MetricsEndpoint, ABadAddressIsRefusedWithOneLine) {
    rill_test::child_process echo(
        {rill_test::rill_tool, "echo", "127.0.0.1:0", "--metrics", "127.0.0.1:70000"});
    auto o = echo.wait(tool_limit);
    EXPECT_EQ(o.exit_status, 2);
    EXPECT_EQ(o.out, "") << "no server was started";
    EXPECT_THAT(o.err, testing::HasSubstr("--metrics: "));
    EXPECT_THAT(o.err, testing::HasSubstr("70000"));
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
}

}  // namespace
