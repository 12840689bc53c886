// The seed's test client for the echo server.
#include <iostream>

#include <rill/rill.hpp>
using namespace rill;

int main() {
    return run([] {
        tcp_client_stream c("localhost:2020");
        showln(c, "hello");
        flush_writer(c);
        if (auto line = read_line(c)) std::cout << *line << "\n";  //> hello
    });
}
