// prometheus_text without a socket: a snapshot made by hand comes out as the exposition
// format's lines, with HELP and TYPE before each family's samples and label values escaped.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "metrics/prometheus_text.hpp"

namespace {

using testing::HasSubstr;

rill::runtime_stats two_workers_one_server() {
    rill::runtime_stats s;
    s.running = true;
    s.backend = rill::backend::epoll;
    s.backend_reason = rill::backend_choice::io_uring_unavailable;
    s.backend_reason_detail = "io_uring_setup failed: \"Operation\\not permitted\"";
    s.workers = {{.tasks_alive = 3,
                  .tasks_spawned = 10,
                  .run_queue_length = 1,
                  .loop_turns = 42,
                  .time_waiting = std::chrono::milliseconds(1500)},
                 {.tasks_alive = 0, .tasks_spawned = 2, .loop_turns = 7}};
    s.servers = {{.address = "[::1]:2020",
                  .connections_accepted = 5,
                  .connections_open = 2,
                  .accepting_paused_at_limit = 1,
                  .accept_errors = 4}};
    s.streams = {.bytes_in = 1000,
                 .bytes_out = 2000,
                 .lines_in = 11,
                 .lines_out = 12,
                 .lines_too_long = 1,
                 .decoding_errors = 2,
                 .timeouts = 3,
                 .cancellations = 4,
                 .tls_handshakes = 8,
                 .tls_handshake_failures = 9};
    s.events.clients_dropped = 6;
    return s;
}

TEST(MetricsFormat, EveryFamilyHasHelpTypeAndItsSamples) {
    const std::string text = rill_tools::prometheus_text(two_workers_one_server());
    EXPECT_THAT(text, HasSubstr("# HELP rill_worker_tasks_alive "));
    EXPECT_THAT(text, HasSubstr("# TYPE rill_worker_tasks_alive gauge\n"
                                "rill_worker_tasks_alive{worker=\"0\"} 3\n"
                                "rill_worker_tasks_alive{worker=\"1\"} 0\n"));
    EXPECT_THAT(text, HasSubstr("# TYPE rill_worker_tasks_spawned_total counter\n"
                                "rill_worker_tasks_spawned_total{worker=\"0\"} 10\n"));
    EXPECT_THAT(text, HasSubstr("rill_worker_run_queue_length{worker=\"0\"} 1\n"));
    EXPECT_THAT(text, HasSubstr("rill_worker_loop_turns_total{worker=\"1\"} 7\n"));
    EXPECT_THAT(text, HasSubstr("rill_worker_wait_seconds_total{worker=\"0\"} 1.500000000\n"));
    EXPECT_THAT(text,
                HasSubstr("rill_server_connections_accepted_total{server=\"[::1]:2020\"} 5\n"));
    EXPECT_THAT(text, HasSubstr("rill_server_connections_open{server=\"[::1]:2020\"} 2\n"));
    EXPECT_THAT(text, HasSubstr("rill_server_accept_paused_total{server=\"[::1]:2020\"} 1\n"));
    EXPECT_THAT(text, HasSubstr("rill_server_accept_errors_total{server=\"[::1]:2020\"} 4\n"));
    EXPECT_THAT(text, HasSubstr("# TYPE rill_stream_received_bytes_total counter\n"
                                "rill_stream_received_bytes_total 1000\n"));
    EXPECT_THAT(text, HasSubstr("rill_stream_sent_bytes_total 2000\n"));
    EXPECT_THAT(text, HasSubstr("rill_stream_lines_read_total 11\n"));
    EXPECT_THAT(text, HasSubstr("rill_stream_lines_written_total 12\n"));
    EXPECT_THAT(text, HasSubstr("rill_stream_line_too_long_total 1\n"));
    EXPECT_THAT(text, HasSubstr("rill_stream_decoding_errors_total 2\n"));
    EXPECT_THAT(text, HasSubstr("rill_stream_timeouts_total 3\n"));
    EXPECT_THAT(text, HasSubstr("rill_task_cancellations_total 4\n"));
    EXPECT_THAT(text, HasSubstr("# TYPE rill_tls_handshakes_total counter\n"
                                "rill_tls_handshakes_total 8\n"));
    EXPECT_THAT(text, HasSubstr("rill_tls_handshake_failures_total 9\n"));
    EXPECT_THAT(text, HasSubstr("rill_clients_dropped_total 6\n"));
    EXPECT_THAT(text, HasSubstr("rill_running 1\n"));
    // The detail's quotes and backslash escaped as the format asks.
    EXPECT_THAT(text, HasSubstr("rill_backend_info{backend=\"epoll\",reason=\"io_uring_"
                                "unavailable\",detail=\"io_uring_setup failed: \\\"Operation"
                                "\\\\not permitted\\\"\"} 1\n"));
    EXPECT_EQ(text.back(), '\n');
}

TEST(MetricsFormat, OutsideRunOnlyTheProcessCountersHaveSamples) {
    rill::runtime_stats s;  // what a snapshot outside run gives
    s.streams.bytes_in = 9;
    const std::string text = rill_tools::prometheus_text(s);
    EXPECT_THAT(text, HasSubstr("rill_running 0\n"));
    EXPECT_THAT(text, testing::Not(HasSubstr("rill_backend_info")));
    EXPECT_THAT(text, testing::Not(HasSubstr("{worker=")));
    EXPECT_THAT(text, HasSubstr("rill_stream_received_bytes_total 9\n"));
}

}  // namespace
