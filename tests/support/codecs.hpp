// Every codec, eol style and error mode, for tests that sweep them, and a hex dump of bytes
// for failure messages.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <rill/transcoder.hpp>

namespace rill_test {

inline constexpr std::size_t codec_count = 18;  // the enumerators of rill::codec
inline constexpr std::array every_eol_style{rill::eol_style::lf, rill::eol_style::cr,
                                            rill::eol_style::crlf, rill::eol_style::none};
inline constexpr std::array every_error_mode{rill::error_handling_mode::ignore,
                                             rill::error_handling_mode::raise,
                                             rill::error_handling_mode::replace};

inline std::vector<rill::codec> every_codec() {
    std::vector<rill::codec> codecs;
    for (std::size_t i = 0; i < codec_count; ++i) codecs.push_back(static_cast<rill::codec>(i));
    return codecs;
}

// A parameterized test's name for its codec ("utf_16le").
inline std::string codec_test_name(const testing::TestParamInfo<rill::codec>& info) {
    return std::string(rill::to_string(info.param));
}

// "C3 A9": bytes as a failure message shows them.
inline std::string hex(std::string_view bytes) {
    std::string s;
    char buf[4];
    for (unsigned char b : bytes) {
        std::snprintf(buf, sizeof buf, "%s%02X", s.empty() ? "" : " ", b);
        s += buf;
    }
    return s;
}

}  // namespace rill_test
