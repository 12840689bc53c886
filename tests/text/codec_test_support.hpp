// Helpers for the codec tests: every expectation is checked three ways, with the input whole,
// one byte per call and cut at random (fixed seed), because a decoder or encoder must give the
// same result however the stream layer happens to split its buffers.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>

#include <rill/transcoder.hpp>

#include "../../fuzz/codec_check.hpp"
#include "support/codecs.hpp"

namespace rill::test {

using namespace std::string_view_literals;

inline constexpr std::uint32_t split_seed = 20240601;  // fixed so a failure reproduces

static_assert(rill_test::codec_count == codec_check::codec_count);

// Expectations are written as rill's raise-mode trace (codec_check::render): the output with
// "[!N]" (decoder, N bad bytes) or "[!U+XXXX/N]" (encoder) where each error was raised. The
// other modes follow from it: ignore drops the markers, replace puts `replacement` there.
inline std::string expected_in_mode(std::string_view raised, error_handling_mode mode,
                                    std::string_view replacement) {
    if (mode == error_handling_mode::raise) return std::string(raised);
    std::string out;
    for (std::size_t i = 0; i < raised.size();) {
        if (raised.substr(i, 2) == "[!") {
            i = raised.find(']', i) + 1;
            if (mode == error_handling_mode::replace) out += replacement;
        } else {
            out += raised[i++];
        }
    }
    return out;
}

template <class Convert>
void expect_all_splits(std::string_view input, std::string_view expected, bool encoder,
                       Convert convert) {
    EXPECT_EQ(codec_check::render(convert(input, codec_check::no_cuts(input.size())), encoder),
              expected)
        << "whole input";
    EXPECT_EQ(
        codec_check::render(convert(input, codec_check::cuts_every_byte(input.size())), encoder),
        expected)
        << "one byte per call";
    EXPECT_EQ(codec_check::render(
                  convert(input, codec_check::random_cuts(input.size(), split_seed)), encoder),
              expected)
        << "random cuts";
}

// Decodes `bytes` under `t` and expects `raised` turned into t's mode (U+FFFD for replace).
inline void expect_decode(const transcoder& t, std::string_view bytes, std::string_view raised) {
    SCOPED_TRACE(std::string("decode ") + std::string(to_string(t.codec())) + " " +
                 std::string(to_string(t.error_handling_mode())));
    const std::string expected = expected_in_mode(raised, t.error_handling_mode(), "\xEF\xBF\xBD");
    expect_all_splits(bytes, expected, false,
                      [&](std::string_view in, const std::vector<std::size_t>& cuts) {
                          return codec_check::decode_with_cuts(t, in, cuts);
                      });
}

// Encodes UTF-8 `text` under `t` and expects `expected` (in render form for raise mode).
// Encoder expectations are spelled out per mode: replace writes the BOM before a replacement
// at the start, where raise writes it only before the first good character.
inline void expect_encode(const transcoder& t, std::string_view text, std::string_view expected) {
    SCOPED_TRACE(std::string("encode ") + std::string(to_string(t.codec())) + " " +
                 std::string(to_string(t.error_handling_mode())));
    expect_all_splits(text, expected, true,
                      [&](std::string_view in, const std::vector<std::size_t>& cuts) {
                          return codec_check::encode_with_cuts(t, in, cuts);
                      });
}

inline void expect_decode_all_modes(codec c, std::string_view bytes, std::string_view raised) {
    for (error_handling_mode m : rill_test::every_error_mode)
        expect_decode(transcoder(c, eol_style::none, m), bytes, raised);
}

// For text every mode must encode the same way (nothing to handle).
inline void expect_encode_all_modes(codec c, std::string_view text, std::string_view bytes) {
    for (error_handling_mode m : rill_test::every_error_mode)
        expect_encode(transcoder(c, eol_style::none, m), text, bytes);
}

}  // namespace rill::test
