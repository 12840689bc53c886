// `rill bench`: a single-threaded, edge-triggered epoll load generator for line-echo servers.
//
// One thread and one epoll set drive every connection, so the client's own cost per line is a
// few syscalls and can be read off its CPU share (reported next to the server's). Every echoed
// byte is checked: each line carries a tag naming its connection and sequence number, so a
// misrouted, reordered, duplicated or truncated echo is caught, not only a flipped byte.
//
// options.cpp reads the command line, load_generator.hpp runs the scenario, report.cpp prints
// what it measured.

#include "loadgen/bench_command.hpp"

#include <cstdio>
#include <exception>
#include <memory>
#include <string_view>

#include "loadgen/load_generator.hpp"
#include "loadgen/options.hpp"

int bench_command(int argc, char** argv) {
    using namespace loadgen;
    if (argc >= 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
        std::fputs(usage_text.data(), stdout);
        return 0;
    }
    try {
        bench_options options = parse_options(argc, argv);
        auto generator =
            std::make_unique<load_generator>(options);  // ~130 KiB of buffers: not on the stack
        return generator->run();
    } catch (const usage_error& e) {
        std::fprintf(stderr, "bench: %s (see --help)\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench: %s\n", e.what());
        return 2;
    }
}
