// libFuzzer target: every encoder (codec and error mode from the first input bytes); see
// codec_check.hpp for the properties checked.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "codec_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string failure = rill::codec_check::check_encoder_input(data, size);
    if (!failure.empty()) {
        std::fprintf(stderr, "%s\n", failure.c_str());
        std::abort();
    }
    return 0;
}
