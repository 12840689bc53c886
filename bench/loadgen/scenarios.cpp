// The scenarios: their phases (connect, warmup, measure; idle's settle), what an echoed line or
// an end of stream means in each, and what is counted and when.

#include "loadgen/load_generator.hpp"

#include <spawn.h>
#include <sys/epoll.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <system_error>

#include "loadgen/clock.hpp"
#include "loadgen/report.hpp"

namespace loadgen {

namespace {

// idle: time given to the server after the last exchange before its RSS is read. Idle means
// idle for a while: a server may reclaim per-connection memory lazily (rill's io_uring
// backend moves a receive that has waited 1-2 s onto shared provided buffers).
constexpr double idle_settle_s = 3.0;

// --before-measure: CMD through `sh -c`, waited for; anything but exit status 0 ends the run.
void run_before_measure(const std::string& command) {
    const char* argv[] = {"sh", "-c", command.c_str(), nullptr};
    pid_t pid = 0;
    // posix_spawn takes char* const[]; it does not change the strings.
    if (const int e =
            posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ);
        e != 0)
        throw std::system_error(e, std::generic_category(), "--before-measure: posix_spawn");
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw std::runtime_error("--before-measure command failed (" +
                                 (WIFEXITED(status)
                                      ? "exit status " + std::to_string(WEXITSTATUS(status))
                                      : std::string("killed by a signal")) +
                                 "): " + command);
}

}  // namespace

// A probe still waiting for its echo when the measurement ends has waited at least this long:
// a server that starves the probes must not show as one with no slow round trip at all.
void load_generator::record_unanswered_probes() {
    const u64 now = now_ns();
    for (const auto& c : table_)
        if (c.id != flooder_id && c.state == connection_state::open && c.echoed < c.sent)
            r_.latency.record(now - c.sent_ns[c.echoed % c.sent_ns.size()]);
}

int load_generator::lines_in_flight(const connection& c) const {
    return o_.kind == scenario::flood && c.id != flooder_id ? 1 : o_.depth;
}

void load_generator::on_line_echoed(connection& c) {
    u64 seq = c.echoed++;
    c.rx_pos = 0;
    c.rx_tag = line_pattern::tag(c.id, c.echoed);
    switch (o_.kind) {
    case scenario::pingpong:
    case scenario::pipeline:
        ++completed_total_;
        if (measuring_) {
            ++r_.completed;
            r_.latency.record(rx_ns_ - c.sent_ns[seq % c.sent_ns.size()]);
        }
        // Stamped with the arrival of the echo that prompts it: the send follows within the
        // same chunk's processing, and one clock read per chunk keeps the client lean.
        if (!stopping_) queue_lines(c, 1, rx_ns_);
        break;
    case scenario::flood:
        ++completed_total_;
        if (measuring_) {
            // The flood's lines make the rate; the probes' round trips the latency.
            if (c.id == flooder_id)
                ++r_.completed;
            else
                r_.latency.record(rx_ns_ - c.sent_ns[seq % c.sent_ns.size()]);
        }
        if (!stopping_) queue_lines(c, 1, rx_ns_);
        break;
    case scenario::churn:
        c.state = connection_state::draining;  // the server closes next
        break;
    case scenario::idle:
        ++completed_total_;  // and stay open
        break;
    }
}

void load_generator::on_end_of_stream(connection& c) {
    if (o_.kind == scenario::churn && c.state == connection_state::draining) {
        ++completed_total_;
        if (measuring_) {
            ++r_.completed;
            r_.latency.record(now_ns() - c.opened_ns);
        }
        close_connection(c);
        if (!stopping_) queue_connect(c);
        return;
    }
    fail(c, false,
         c.rx_pos > 0        ? "server closed the connection in the middle of an echoed line"
         : c.echoed < c.sent ? "server closed the connection with " +
                                   std::to_string(c.sent - c.echoed) + " line(s) unanswered"
                             : std::string("server closed the connection"));
}

template <class Done>
void load_generator::run_until(u64 deadline_ns, Done done) {
    std::array<epoll_event, 512> events;
    for (;;) {
        start_queued_connects();
        u64 now = now_ns();
        if (done() || now >= deadline_ns) return;
        if (now >= next_tick_ns_) show_progress(now);
        u64 wake = std::min(deadline_ns, next_tick_ns_);
        int timeout_ms = int(std::min<u64>((wake - now + 999'999) / 1'000'000, 1000));
        if (!still_readable_.empty()) timeout_ms = 0;  // bytes are waiting: only look
        int n = epoll_wait(epoll_fd_, events.data(), int(events.size()), timeout_ms);
        if (n < 0 && errno != EINTR)
            throw std::system_error(errno, std::generic_category(), "epoll_wait");
        for (int i = 0; i < n; ++i)
            on_event(*static_cast<connection*>(events[std::size_t(i)].data.ptr),
                     events[std::size_t(i)].events);
        read_still_readable();
    }
}

const char* load_generator::phase_name() const {
    switch (phase_) {
    case phase::setup: return "connect";
    case phase::warmup: return "warmup";
    case phase::measure: return "measure";
    case phase::settle: return "settle";
    }
    return "";
}

// Once a second on a terminal: phase, seconds in it, and the rate over the last second.
void load_generator::show_progress(u64 now) {
    if (next_tick_ns_ != 0 && progress_) {
        print_progress(o_, phase_name(), double(now - phase_start_ns_) / 1e9,
                       completed_total_ - completed_at_tick_, completed_total_, established_,
                       errors_ + mismatches_);
        progress_shown_ = true;
    }
    completed_at_tick_ = completed_total_;
    next_tick_ns_ = now + ns_per_s;
}

void load_generator::start_measuring() {
    r_ = {};
    measuring_ = true;
    measure_start_ns_ = now_ns();
    client_cpu_start_ = cpu_seconds_of_self();
    if (o_.server_pid) server_cpu_start_ = cpu_seconds_of(o_.server_pid);
}

void load_generator::stop_measuring() {
    measuring_ = false;
    r_.wall_s = double(now_ns() - measure_start_ns_) / 1e9;
    r_.client_cpu_s = cpu_seconds_of_self() - client_cpu_start_;
    r_.tls_suite = tls_suite_;
    if (o_.server_pid) {
        double end = cpu_seconds_of(o_.server_pid);
        r_.server_cpu_s = end >= 0 && server_cpu_start_ >= 0 ? end - server_cpu_start_ : -1;
    }
}

// Opens every connection (at most max_connects_in_flight at once) and waits until each has
// either connected or failed, or the deadline passes.
void load_generator::establish(u64 deadline_ns) {
    phase_start_ns_ = now_ns();
    for (auto& c : table_) queue_connect(c);
    run_until(deadline_ns, [&] { return connect_queue_.empty() && connecting_ == 0; });
    if (int late = abandon_unfinished(false); late > 0)
        std::fprintf(stderr, "bench: %d of %d connections did not connect within the timeout\n",
                     late, o_.connections);
}

// Gives up on connections still connecting or, with need_echo, still owed their first echo:
// each is closed and counted as one error, so nothing completes later and counts twice.
int load_generator::abandon_unfinished(bool need_echo) {
    int abandoned = 0;
    for (auto& c : table_) {
        bool unfinished = c.state == connection_state::waiting ||
                          c.state == connection_state::connecting ||
                          c.state == connection_state::handshaking ||
                          (need_echo && c.state == connection_state::open && c.echoed == 0);
        if (unfinished) {
            close_connection(c);
            ++errors_;
            ++abandoned;
        }
    }
    connect_queue_.clear();
    return abandoned;
}

int load_generator::run() {
    const u64 setup_deadline = now_ns() + seconds_to_ns(o_.timeout_s + o_.connections / 1000.0);
    if (o_.kind == scenario::idle) {
        long rss_before = rss_kib_of(o_.server_pid);
        if (rss_before < 0)
            throw usage_error("cannot read VmRSS of process " + std::to_string(o_.server_pid));
        phase_start_ns_ = now_ns();
        for (auto& c : table_) queue_connect(c);
        // Each connection ends up exchanged (and held open) or failed (and closed).
        run_until(setup_deadline,
                  [&] { return completed_total_ + errors_ + mismatches_ >= u64(o_.connections); });
        if (int late = abandon_unfinished(true); late > 0)
            std::fprintf(stderr,
                         "bench: %d of %d connections did not exchange a line within the timeout\n",
                         late, o_.connections);
        phase_ = phase::settle;
        phase_start_ns_ = now_ns();
        run_until(now_ns() + seconds_to_ns(idle_settle_s), [] { return false; });
        long rss_after = rss_kib_of(o_.server_pid);
        stopping_ = true;
        if (progress_shown_) clear_progress_line();
        print_idle_report(o_, completed_total_, rss_before, rss_after, {errors_, mismatches_});
        return exit_status();
    }

    if (o_.kind == scenario::churn) {
        // Churn's connections come and go: start them and go straight to warmup.
        for (auto& c : table_) queue_connect(c);
    } else {
        establish(setup_deadline);
    }
    phase_ = phase::warmup;
    phase_start_ns_ = now_ns();
    run_until(phase_start_ns_ + seconds_to_ns(o_.warmup_s), [] { return false; });
    if (!o_.before_measure.empty()) run_before_measure(o_.before_measure);
    phase_ = phase::measure;
    phase_start_ns_ = now_ns();
    start_measuring();
    run_until(measure_start_ns_ + seconds_to_ns(o_.duration_s), [] { return false; });
    if (o_.kind == scenario::flood) record_unanswered_probes();
    stop_measuring();
    stopping_ = true;
    if (progress_shown_) clear_progress_line();
    print_load_report(o_, r_, established_, {errors_, mismatches_});
    int status = exit_status();
    // A server that hangs produces no errors, only silence: that must not pass as a result.
    if (r_.completed == 0) {
        std::fprintf(stderr, "bench: nothing completed in the measured %.1f s\n", r_.wall_s);
        status = 1;
    }
    return status;
}

int load_generator::exit_status() const { return errors_ + mismatches_ > 0 ? 1 : 0; }

}  // namespace loadgen
