// Parsing of `rill bench`'s command line, and its help text.

#include "loadgen/options.hpp"

#include <charconv>
#include <cstdlib>
#include <sstream>
#include <system_error>
#include <type_traits>

namespace loadgen {

namespace {

// --size's upper bound.
constexpr int max_line_size_bytes = 1 << 20;
// One source address per this many idle connections (each address has ~28k ephemeral ports).
constexpr int idle_connections_per_source_address = 5000;
// Churn spreads over this many source addresses so that a reused 4-tuple rarely meets the
// server's TIME_WAIT socket for it (the server closes first, so TIME_WAIT is on its side).
constexpr int churn_source_addresses = 16;
// flood: lines the flooding connection keeps in flight. 65536 lines of 64 bytes (4 MiB) stay
// ahead of the server's reads, so its receives never find the socket empty and never wait
// (with 256 KiB a server often drained its socket, waited, and let the probe in by luck).
constexpr int flood_lines_in_flight = 65536;

template <class T>
T parse_number(std::string_view option, std::string_view text, T low, T high) {
    T value{};
    if constexpr (std::is_floating_point_v<T>) {
        std::string copy(text);
        char* end = nullptr;
        value = T(std::strtod(copy.c_str(), &end));
        if (copy.empty() || *end != '\0')
            throw usage_error(std::string(option) + ": not a number: " + copy);
    } else {
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc{} || end != text.data() + text.size())
            throw usage_error(std::string(option) + ": not an integer: " + std::string(text));
    }
    if (value < low || value > high) {
        std::ostringstream message;
        message << option << " must be " << low << ".." << high << ", got " << text;
        throw usage_error(message.str());
    }
    return value;
}

}  // namespace

const std::string_view usage_text =
    R"(usage: rill bench SCENARIO [options]
scenarios:
  pingpong   one line in flight per connection: requests/s and latency percentiles
  pipeline   --depth lines in flight per connection: lines/s and MB/s
  churn      connect, send a line, read the echo, read to end of stream (the server
             closes: run it in "once" mode), repeat: connections/s and latency
  idle       open --connections connections that exchange one line and stay open,
             report the growth of the server's VmRSS per connection (needs --server-pid)
  flood      connection 1 keeps --depth lines in flight (default 65536: the server's reads
             never wait), the others (default 1) send one line at a time: the flood's
             lines/s and the probes' round-trip percentiles (p50, p99, max) while it floods
options:
  --address HOST:PORT   server address, loopback only (default 127.0.0.1:2020)
  --connections N       concurrent connections (default 1; idle 1000; flood 2)
  --size S              bytes per line including "\n" (default 64)
  --depth P             lines in flight per connection (pipeline, default 16; flood: the
                        flooding connection's, default 65536)
  --duration SECS       measured time (default 5)
  --warmup SECS         unmeasured load first (default 1)
  --timeout SECS        bound on connecting, beyond the duration (default 10)
  --eol lf|crlf|any     accepted line end of the echo (default any)
  --server-pid PID      server process: CPU share; idle: RSS from /proc/PID/status
  --source-addresses K  bind clients to 127.0.0.2..127.0.0.(K+1) (default: idle N/5000,
                        churn 16, others 0)
  --tls                 TLS 1.3 (OpenSSL; TLS_AES_128_GCM_SHA256 only) over every connection:
                        a full handshake per connection, every echoed byte checked after
                        decryption. The server's certificate is NOT verified: this is a
                        loopback benchmark against a self-signed certificate, not a client
                        to trust
  --tls-resume          --tls, and each connection slot resumes the session (ticket) its
                        last connection received: churn then measures resumed handshakes
  --before-measure CMD  run CMD (sh -c) after the warmup, with the load paused, and start
                        the measured time when it ends; a CMD that fails ends the run (exit 2).
                        The connections are the warmup's: in-flight echoes finish meanwhile
  --json                print one JSON line
exit status: 0 all echoes matched, 1 mismatch or connection error, 2 usage or setup error
)";

bench_options parse_options(int argc, char** argv) {
    if (argc < 2) throw usage_error("missing scenario");
    bench_options o;
    std::string_view name = argv[1];
    if (name == "pingpong") {
        o.kind = scenario::pingpong;
    } else if (name == "pipeline") {
        o.kind = scenario::pipeline;
        o.depth = 16;
    } else if (name == "churn") {
        o.kind = scenario::churn;
    } else if (name == "idle") {
        o.kind = scenario::idle;
        o.connections = 1000;
    } else if (name == "flood") {
        o.kind = scenario::flood;
        o.connections = 2;
        o.depth = flood_lines_in_flight;
    } else {
        throw usage_error("unknown scenario: " + std::string(name));
    }

    for (int i = 2; i < argc; ++i) {
        std::string_view option = argv[i];
        if (option == "--json") {
            o.json = true;
            continue;
        }
        if (option == "--tls" || option == "--tls-resume") {
            if (!tls_available)
                throw usage_error(std::string(option) +
                                  ": this load generator was built without OpenSSL 3");
            o.tls = true;
            o.tls_resume = o.tls_resume || option == "--tls-resume";
            continue;
        }
        if (i + 1 >= argc)
            throw usage_error("unknown option or missing value: " + std::string(option));
        std::string_view value = argv[++i];
        if (option == "--address")
            o.address = value;
        else if (option == "--connections")
            o.connections = parse_number(option, value, 1, 1'000'000);
        else if (option == "--size")
            o.line_size_bytes = parse_number(option, value, 1, max_line_size_bytes);
        else if (option == "--depth")
            o.depth = parse_number(option, value, 1, 1'000'000);
        else if (option == "--duration")
            o.duration_s = parse_number(option, value, 0.0, 86400.0);
        else if (option == "--warmup")
            o.warmup_s = parse_number(option, value, 0.0, 86400.0);
        else if (option == "--timeout")
            o.timeout_s = parse_number(option, value, 0.0, 86400.0);
        else if (option == "--server-pid")
            o.server_pid = parse_number(option, value, 1, 1 << 30);
        else if (option == "--before-measure")
            o.before_measure = value;
        else if (option == "--source-addresses")
            o.source_addresses = parse_number(option, value, 0, 250);
        else if (option == "--eol") {
            if (value == "lf")
                o.eol = eol_policy::lf;
            else if (value == "crlf")
                o.eol = eol_policy::crlf;
            else if (value == "any")
                o.eol = eol_policy::any;
            else
                throw usage_error("--eol must be lf, crlf or any, got " + std::string(value));
        } else {
            throw usage_error("unknown option: " + std::string(option));
        }
    }
    if (o.kind == scenario::pingpong || o.kind == scenario::churn || o.kind == scenario::idle)
        o.depth = 1;
    if (o.kind == scenario::idle && o.server_pid == 0) throw usage_error("idle needs --server-pid");
    if (o.kind == scenario::flood && o.connections < 2)
        throw usage_error("flood needs --connections 2 or more (a flooder and a probe)");
    if (o.source_addresses < 0) {
        if (o.kind == scenario::idle)
            o.source_addresses = (o.connections + idle_connections_per_source_address - 1) /
                                 idle_connections_per_source_address;
        else if (o.kind == scenario::churn)
            o.source_addresses = churn_source_addresses;
        else
            o.source_addresses = 0;
    }
    return o;
}

}  // namespace loadgen
