// The rill command: the seed's echo server and client with every option exposed, and the
// benchmark load generator.
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <rill/rill.hpp>

#include "loadgen/bench_command.hpp"
#include "metrics/metrics_endpoint.hpp"

namespace {

constexpr int default_echo_port = 2020;  // the seed's port

const char* const usage_text =
    "usage:\n"
    "  rill echo [ADDRESS] [--port-number N] [--backlog N] [--no-reuse-address]\n"
    "            [--transcoder CODEC[,EOL[,ERRORS]]] [--mode once|persistent] [--workers N]\n"
    "            [--defer-accept SECS] [--reader-timeout D] [--writer-timeout D]\n"
    "            [--max-connections N] [--tls-cert FILE --tls-key FILE]\n"
    "            [--tls-handshake-timeout D] [--drain-timeout D] [--metrics ADDRESS]\n"
    "      The seed's echo server. ADDRESS is PORT, INTF:PORT or INTF (default 127.0.0.1:2020).\n"
    "      once: one line per connection, then close (the seed); persistent: every line until\n"
    "      end of stream. Prints the bound address on its first line. --workers: worker\n"
    "      threads (default: the processors this process may run on). --defer-accept: hand\n"
    "      out a connection once its first bytes arrive, or after SECS (TCP_DEFER_ACCEPT).\n"
    "      --reader-timeout D: a client that sends nothing for D is closed; --writer-timeout\n"
    "      D: one that does not read its answers for D is closed (D: 500ms, 30s, 2m, 1h).\n"
    "      --max-connections N: at most N clients open at once; more wait in the backlog.\n"
    "      --tls-cert FILE --tls-key FILE: serve TLS (1.2 and 1.3) with this PEM certificate\n"
    "      chain (leaf first) and private key; --tls-handshake-timeout D: a client that has\n"
    "      not completed its handshake after D is closed (default 10s).\n"
    "      SIGINT or SIGTERM: stop accepting, close idle clients, answer the lines already\n"
    "      received (for --drain-timeout D at most, default 30s; a second signal: at once),\n"
    "      print a summary line and exit 0. SIGQUIT: write every task (what it waits on,\n"
    "      for how long, where it was spawned) on stderr and go on.\n"
    "      --metrics ADDRESS: serve the runtime's counters (workers, servers, bytes, lines,\n"
    "      errors) at http://ADDRESS/metrics in the Prometheus text format; prints that bound\n"
    "      address on its second line.\n"
    "  rill send ADDRESS [LINE ...] [--keep-alive] [--no-coalesce] [--transcoder ...]\n"
    "            [--tls [--tls-ca FILE] [--insecure] [--server-name NAME]\n"
    "                   [--tls-cert FILE --tls-key FILE]]\n"
    "      The seed's client: sends each LINE (or each line of standard input) and prints the\n"
    "      reply to it. --tls: speak TLS, verifying the server's certificate against the\n"
    "      system's CAs, or only those in --tls-ca FILE (PEM), and its name against\n"
    "      --server-name (default: the host in ADDRESS); --insecure: verify nothing;\n"
    "      --tls-cert FILE --tls-key FILE: present this client certificate (PEM) and key.\n"
    "  rill bench SCENARIO [OPTIONS]   (rill bench --help)\n";

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

constexpr const char* key_needs_certificate =
    "--tls-key needs --tls-cert (the certificate it is the key of)";

int parse_int(std::string_view option, const std::string& value) {
    std::size_t used = 0;
    int n = 0;
    try {
        n = std::stoi(value, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != value.size() || value.empty())
        throw usage_error(std::string(option) + " takes a whole number, got \"" + value + "\"");
    return n;
}

// A duration with its unit: 500ms, 30s, 2m, 1h. A bare number is refused: its unit would be a
// guess.
std::chrono::milliseconds parse_duration(std::string_view option, const std::string& value) {
    const auto bad = [&](const char* why) {
        return usage_error(std::string(option) + " " + why + ", got \"" + value + "\"");
    };
    const std::size_t digits = value.find_first_not_of("0123456789");
    if (digits == 0 || value.empty()) throw bad("takes a duration such as 500ms, 30s or 2m");
    if (digits == std::string::npos) throw bad("needs a unit (ms, s, m or h), as in 500ms or 30s");
    const std::string_view unit = std::string_view(value).substr(digits);
    std::int64_t per_unit_ms = 0;
    if (unit == "ms")
        per_unit_ms = 1;
    else if (unit == "s")
        per_unit_ms = 1000;
    else if (unit == "m")
        per_unit_ms = 60 * 1000;
    else if (unit == "h")
        per_unit_ms = 60 * 60 * 1000;
    else
        throw bad("has an unknown unit (ms, s, m or h)");
    std::int64_t count = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + digits, count);
    if (ec != std::errc() || end != value.data() + digits ||
        count > std::numeric_limits<std::int64_t>::max() / per_unit_ms)
        throw bad("is too long");
    if (count == 0) throw bad("must be longer than 0");
    return std::chrono::milliseconds(count * per_unit_ms);
}

// A whole number of at least 1.
std::size_t parse_positive_count(std::string_view option, const std::string& value) {
    std::size_t n = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (value.empty() || ec != std::errc() || end != value.data() + value.size() || n == 0)
        throw usage_error(std::string(option) + " takes a whole number of at least 1, got \"" +
                          value + "\"");
    return n;
}

// Walks argv: options with their values, and positional arguments.
class arguments {
public:
    arguments(int argc, char** argv, int first) : args_(argv + first, argv + argc) {}
    bool next(std::string& arg) {
        if (i_ >= args_.size()) return false;
        arg = args_[i_++];
        return true;
    }
    std::string value(std::string_view option) {
        if (i_ >= args_.size()) throw usage_error(std::string(option) + " needs a value");
        return args_[i_++];
    }

private:
    std::vector<std::string> args_;
    std::size_t i_ = 0;
};

// A file named by `option` that this process can read: checked here, so that the error names
// the flag and the file before any connection is made.
void require_readable_file(std::string_view option, const std::string& path) {
    std::ifstream file(path);
    if (!file)
        throw std::runtime_error(std::string(option) + " " + path + ": " + std::strerror(errno));
}

// Refuses a TLS flag up front in a build without TLS, before its files are looked at.
void require_tls(std::string_view option) {
    if (!rill::tls_available())
        throw std::runtime_error(std::string(option) +
                                 ": this rill was built without TLS (RILL_WITH_TLS=OFF)");
}

// --tls-cert and --tls-key (rill echo's certificate, rill send's client certificate): both or
// neither, and both readable.
void check_certificate_flags(const rill::tls_options& tls) {
    if (tls.certificate_file.empty() != tls.private_key_file.empty())
        throw usage_error(tls.certificate_file.empty()
                              ? key_needs_certificate
                              : "--tls-cert needs --tls-key (the certificate's private key)");
    if (tls.certificate_file.empty()) return;
    require_readable_file("--tls-cert", tls.certificate_file);
    require_readable_file("--tls-key", tls.private_key_file);
}

// A bare number is a port on the loopback, as tcp_server_stream(2020) takes it; anything else
// is an address string ("INTF:PORT", "INTF").
rill::address parse_address(const std::string& text) {
    if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos)
        return rill::address(parse_int("ADDRESS", text));
    return rill::address(text);
}

// What rill echo served, for its summary line. Each connection adds its own tally when it
// ends: no shared counter on the path of a line.
struct echo_totals {
    std::atomic<std::uint64_t> connections{0};
    std::atomic<std::uint64_t> lines{0};
    std::atomic<std::uint64_t> bytes{0};  // of the lines echoed, line ends not counted
};

struct connection_tally {
    explicit connection_tally(echo_totals& t) : totals(t) {}
    connection_tally(const connection_tally&) = delete;
    connection_tally& operator=(const connection_tally&) = delete;
    ~connection_tally() {
        totals.connections.fetch_add(1, std::memory_order_relaxed);
        totals.lines.fetch_add(lines, std::memory_order_relaxed);
        totals.bytes.fetch_add(bytes, std::memory_order_relaxed);
    }
    echo_totals& totals;
    std::uint64_t lines = 0;
    std::uint64_t bytes = 0;
};

int echo_command(int argc, char** argv) {
    std::optional<std::string> where;
    rill::server_options options;
    rill::runtime_options runtime;
    bool persistent = false;
    rill::tls_options tls;
    std::optional<std::chrono::milliseconds> tls_handshake_timeout;
    std::optional<std::string> metrics_where;
    arguments args(argc, argv, 2);
    for (std::string a; args.next(a);) {
        if (a == "--port-number")
            options.port_number = parse_int(a, args.value(a));
        else if (a == "--backlog")
            options.backlog = parse_int(a, args.value(a));
        else if (a == "--no-reuse-address")
            options.reuse_address = false;
        else if (a == "--transcoder")
            options.transcoder = rill::parse_transcoder(args.value(a));
        else if (a == "--workers")
            runtime.workers = parse_int(a, args.value(a));
        else if (a == "--defer-accept")
            options.defer_accept = std::chrono::seconds(parse_int(a, args.value(a)));
        else if (a == "--reader-timeout")
            options.stream.reader_timeout = parse_duration(a, args.value(a));
        else if (a == "--writer-timeout")
            options.stream.writer_timeout = parse_duration(a, args.value(a));
        else if (a == "--max-connections")
            options.max_connections = parse_positive_count(a, args.value(a));
        else if (a == "--tls-cert")
            tls.certificate_file = args.value(a);
        else if (a == "--tls-key")
            tls.private_key_file = args.value(a);
        else if (a == "--tls-handshake-timeout")
            tls_handshake_timeout = parse_duration(a, args.value(a));
        else if (a == "--drain-timeout")
            runtime.drain_timeout = parse_duration(a, args.value(a));
        else if (a == "--metrics")
            metrics_where = args.value(a);
        else if (a == "--mode") {
            std::string mode = args.value(a);
            if (mode != "once" && mode != "persistent")
                throw usage_error("--mode is once or persistent, got \"" + mode + "\"");
            persistent = mode == "persistent";
        } else if (!a.empty() && a[0] == '-' && a != "-")
            throw usage_error("unknown option " + a);
        else if (where)
            throw usage_error("more than one ADDRESS: " + *where + " and " + a);
        else
            where = a;
    }
    if (!tls.private_key_file.empty() && tls.certificate_file.empty())
        throw usage_error(key_needs_certificate);
    if (tls_handshake_timeout && tls.certificate_file.empty())
        throw usage_error("--tls-handshake-timeout needs --tls-cert and --tls-key");
    if (!tls.certificate_file.empty()) {
        require_tls("--tls-cert");
        check_certificate_flags(tls);
        if (tls_handshake_timeout) tls.handshake_timeout = *tls_handshake_timeout;
        options.tls = rill::tls_context(tls);
    }
    rill::address address = where ? parse_address(*where) : rill::address(default_echo_port);
    // "INTF" alone takes the default port, as the usage says (the library wants a port).
    if (!address.port() && !options.port_number) options.port_number = default_echo_port;
    std::optional<rill::address> metrics_address;
    if (metrics_where) {
        try {
            metrics_address = parse_address(*metrics_where);
        } catch (const rill::argument_error& e) {
            throw usage_error("--metrics: " + std::string(e.what()));
        }
    }
    runtime.shutdown_signals = {SIGINT, SIGTERM};
    runtime.task_dump_signal = SIGQUIT;
    echo_totals totals;
    std::chrono::steady_clock::time_point drain_started;
    const int status = rill::run(
        [&] {
            rill::tcp_server_stream server(address, options);
            std::cout << rill::tcp_server_socket_info(server) << std::endl;
            if (metrics_address) {
                rill::tcp_server_stream metrics(*metrics_address,
                                                rill_tools::metrics_server_options());
                std::cout << rill::tcp_server_socket_info(metrics) << std::endl;
                rill::spawn([metrics = std::move(metrics)]() mutable {
                    rill_tools::serve_metrics(metrics);
                });
            }
            while (auto client = rill::read(server)) {
                rill::spawn([c = std::move(*client), persistent, &totals]() mutable {
                    connection_tally tally(totals);
                    rill::call_with_stream(c, [persistent, &tally](rill::tcp_client_stream& s) {
                        std::string line;
                        while (rill::read_line(s, line)) {
                            rill::showln(s, line);
                            rill::flush_writer(s);
                            tally.lines += 1;
                            tally.bytes += line.size();
                            if (!persistent) break;
                        }
                        rill::flush_writer(s);
                    });
                });
            }
            // read(server) returns empty only once a shutdown has closed the server.
            drain_started = std::chrono::steady_clock::now();
        },
        runtime);
    const auto drain = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - drain_started);
    std::cout << "rill echo: shut down: " << totals.connections.load() << " connections, "
              << totals.lines.load() << " lines (" << totals.bytes.load()
              << " bytes) echoed; the drain took " << drain.count() << " ms" << std::endl;
    return status;
}

int send_command(int argc, char** argv) {
    std::optional<std::string> where;
    std::vector<std::string> lines;
    rill::client_options options;
    bool use_tls = false;
    bool insecure = false;
    rill::tls_options tls;
    arguments args(argc, argv, 2);
    for (std::string a; args.next(a);) {
        if (a == "--tls")
            use_tls = true;
        else if (a == "--tls-ca")
            tls.ca_file = args.value(a);
        else if (a == "--insecure")
            insecure = true;
        else if (a == "--server-name")
            tls.server_name = args.value(a);
        else if (a == "--tls-cert")
            tls.certificate_file = args.value(a);
        else if (a == "--tls-key")
            tls.private_key_file = args.value(a);
        else if (a == "--keep-alive")
            options.keep_alive = true;
        else if (a == "--no-coalesce")
            options.coalesce = false;
        else if (a == "--transcoder")
            options.transcoder = rill::parse_transcoder(args.value(a));
        else if (!a.empty() && a[0] == '-' && a != "-")
            throw usage_error("unknown option " + a);
        else if (!where)
            where = a;
        else
            lines.push_back(a);
    }
    if (!where) throw usage_error("rill send needs an ADDRESS");
    if (!use_tls) {
        if (!tls.ca_file.empty()) throw usage_error("--tls-ca needs --tls");
        if (insecure) throw usage_error("--insecure needs --tls");
        if (!tls.server_name.empty()) throw usage_error("--server-name needs --tls");
        if (!tls.certificate_file.empty()) throw usage_error("--tls-cert needs --tls");
        if (!tls.private_key_file.empty()) throw usage_error("--tls-key needs --tls");
    } else {
        require_tls("--tls");
        check_certificate_flags(tls);
        if (insecure && !tls.ca_file.empty())
            throw usage_error("--insecure verifies nothing: --tls-ca has no use with it");
        if (!tls.ca_file.empty()) require_readable_file("--tls-ca", tls.ca_file);
        if (insecure) {
            tls.verify_peer = false;
            tls.check_host_name = false;
            std::cerr << "rill send: --insecure: the server's certificate and name are not "
                         "verified\n";
        }
        options.tls = rill::tls_context(tls);
    }
    const rill::address address = parse_address(*where);
    const bool from_stdin = lines.empty();
    return rill::run([&]() -> int {
        rill::tcp_client_stream c(address, options);
        std::string line;
        std::size_t next = 0;
        for (;;) {
            if (from_stdin) {
                if (!std::getline(std::cin, line)) break;
            } else {
                if (next == lines.size()) break;
                line = lines[next++];
            }
            rill::showln(c, line);
            rill::flush_writer(c);
            auto reply = rill::read_line(c);
            if (!reply) {
                std::cerr << "rill send: the server closed the connection before replying\n";
                return 1;
            }
            std::cout << *reply << std::endl;
        }
        rill::close_stream(c);
        return 0;
    });
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fputs(usage_text, stderr);
        return 2;
    }
    const std::string_view command = argv[1];
    try {
        if (command == "echo") return echo_command(argc, argv);
        if (command == "send") return send_command(argc, argv);
        if (command == "bench") return bench_command(argc - 1, argv + 1);
        if (command == "--help" || command == "-h" || command == "help") {
            std::fputs(usage_text, stdout);
            return 0;
        }
        throw usage_error("unknown command \"" + std::string(command) + "\"");
    } catch (const usage_error& e) {
        // One line, as every error: the usage is one `rill --help` away.
        std::fprintf(stderr, "rill %s: %s (rill --help shows the usage)\n", argv[1], e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rill %s: %s\n", argv[1], e.what());
        return 1;
    }
}
