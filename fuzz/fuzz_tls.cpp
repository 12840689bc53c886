// libFuzzer target: rill's TLS transport as a server under hostile input (raw handshake bytes,
// application data in random records and ciphertext cuts, ciphertext corrupted after the
// handshake); see tls_check.hpp for the input layout and the properties checked.
//
// Each input runs in its own rill::run (one worker, epoll), with the real runtime, stream
// layer and OpenSSL; only the sockets are replaced by in-memory transports.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <rill/runtime.hpp>

#include "tls_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string failure;
    rill::run([&] { failure = rill::tls_check::check_tls_input(data, size); },
              rill::runtime_options{.workers = 1, .backend = rill::backend::epoll});
    if (!failure.empty()) {
        std::fprintf(stderr, "%s\n", failure.c_str());
        std::abort();
    }
    return 0;
}
