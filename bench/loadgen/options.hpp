#pragma once

// `rill bench`'s command line: the scenario and the options of a run.

#include <stdexcept>
#include <string>
#include <string_view>

namespace loadgen {

// A wrong command line, or a run this machine cannot set up: exit status 2, "(see --help)".
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

enum class scenario { pingpong, pipeline, churn, idle, flood };
enum class eol_policy { lf, crlf, any };

struct bench_options {
    scenario kind = scenario::pingpong;
    std::string address = "127.0.0.1:2020";  // HOST:PORT of the server; loopback only
    int connections = 1;  // concurrent connections; idle default 1000
    int line_size_bytes = 64;  // S: bytes per line including the trailing "\n"
    int depth = 1;  // lines in flight per connection; pipeline default 16; flood: the flooder's
    double duration_s = 5;  // measured time
    double warmup_s = 1;  // load applied before measuring, not counted
    double timeout_s = 10;  // bound on connecting (+1 s per 1000 connections)
    eol_policy eol = eol_policy::any;  // line end accepted in echoes (default: LF or CR LF)
    bool json = false;  // one JSON line instead of the plain summary
    int server_pid = 0;  // idle: required (RSS); others: adds CPU shares
    int source_addresses = -1;  // bind clients to 127.0.0.2..; -1 = scenario default, 0 = no bind
    bool tls = false;  // TLS 1.3 over every connection, the server's certificate not verified
    bool tls_resume = false;  // (implies tls) resume each slot's last session: ticket resumption
    // Run by `sh -c` between the warmup and the measured time, the load paused meanwhile
    // (bench/callgrind.sh zeroes the server's counters there); empty: none.
    std::string before_measure;
};

// Whether this build has the TLS client (OpenSSL 3 was found when it was configured).
extern const bool tls_available;

// The text of `rill bench --help`.
extern const std::string_view usage_text;

// argv[1] is the scenario, then its options, as usage_text lists them. Throws usage_error.
bench_options parse_options(int argc, char** argv);

}  // namespace loadgen
