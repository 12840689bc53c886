// What a project using rill builds first: one echo over loopback, as the seed's echo server
// and client do, in one process. The packaging tests (scripts/test-packaging.sh) compile it
// against an installed rill (find_package, pkg-config) and an embedded one (add_subdirectory).
// Built without TLS, it also checks that a tls_context is refused with a message.
// Exits 0 when "hello" comes back, 1 with a message on stderr otherwise.
#include <chrono>
#include <exception>
#include <iostream>
#include <optional>
#include <string>

#include <rill/rill.hpp>

namespace {

// Bounds every read and write, so a broken build fails instead of hanging.
constexpr std::chrono::milliseconds echo_io_timeout{10'000};

void echo_one_line(rill::tcp_client_stream& client) {
    if (auto line = rill::read_line(client)) rill::showln(client, *line);
    rill::flush_writer(client);
}

int echo_hello() {
    rill::tcp_server_stream server("127.0.0.1:0", {.stream = {.reader_timeout = echo_io_timeout,
                                                              .writer_timeout = echo_io_timeout}});
    const int port = rill::tcp_server_socket_info(server).port_number;
    rill::task answering = rill::spawn([&server] {
        if (auto client = rill::read(server)) rill::call_with_stream(*client, echo_one_line);
    });

    rill::tcp_client_stream client("127.0.0.1", {.port_number = port,
                                                 .stream = {.reader_timeout = echo_io_timeout,
                                                            .writer_timeout = echo_io_timeout}});
    rill::showln(client, "hello");
    rill::flush_writer(client);
    const std::optional<std::string> answer = rill::read_line(client);
    answering.join();
    if (answer != "hello") {
        std::cerr << "consumer_echo: sent \"hello\" to 127.0.0.1:" << port << ", got "
                  << (answer ? "\"" + *answer + "\"" : std::string("end of stream")) << "\n";
        return 1;
    }
    std::cout << "consumer_echo: \"hello\" came back from 127.0.0.1:" << port << "\n";
    return 0;
}

// Built without TLS (-DRILL_WITH_TLS=OFF), asking for a TLS context must say so.
int tls_context_says_it_is_unavailable() {
    if (rill::tls_available()) return 0;
    try {
        const rill::tls_context context;
        std::cerr << "consumer_echo: rill says TLS is unavailable, yet a tls_context was made\n";
        return 1;
    } catch (const rill::error& e) {
        std::cout << "consumer_echo: without TLS: " << e.what() << "\n";
        return 0;
    }
}

}  // namespace

int main() {
    try {
        if (tls_context_says_it_is_unavailable() != 0) return 1;
        return rill::run(echo_hello, {.workers = 1});
    } catch (const std::exception& e) {
        std::cerr << "consumer_echo: " << e.what() << "\n";
        return 1;
    }
}
