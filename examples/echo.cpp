// The seed's echo server: each client sends a line, gets it back, and is closed.
#include <rill/rill.hpp>
using namespace rill;

void echo(tcp_client_stream& client) {
    if (auto line = read_line(client))
        showln(client, *line);  // nothing is sent back at end of stream
    flush_writer(client);
}

int main() {
    return run([] {
        tcp_server_stream s(2020);
        while (auto client = read(s))
            spawn([c = std::move(*client)]() mutable { call_with_stream(c, echo); });
    });
}
