// libFuzzer target: read_line and the character reads over arbitrary chunking of the input, on
// streams with and without a transcoder; see read_line_check.hpp for the input layout, how the
// chunks reach the stream, and the properties checked.
//
// Each input runs in its own rill::run (one worker, epoll: about 25 microseconds to start; an
// io_uring ring costs several times that), so the whole runtime is exercised and instrumented
// as a program would use it.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <rill/runtime.hpp>

#include "read_line_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string failure;
    rill::run([&] { failure = rill::read_line_check::check_read_line_input(data, size); },
              rill::runtime_options{.workers = 1, .backend = rill::backend::epoll});
    if (!failure.empty()) {
        std::fprintf(stderr, "%s\n", failure.c_str());
        std::abort();
    }
    return 0;
}
