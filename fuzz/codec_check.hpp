// Property checks for rill's decoders and encoders, shared by the libFuzzer targets
// (fuzz_decode.cpp, fuzz_encode.cpp) and by tests/text/test_fuzz_corpus.cpp, which replays the
// seed corpora without clang. The drivers here call detail::decoder / detail::encoder exactly
// as the stream layer does: unconsumed bytes are presented again with the next chunk, and
// after a raise error the bad bytes are skipped.
//
// An input is  [codec byte] [mode byte] [split seed byte] payload...  (check_*_input below).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <rill/transcoder.hpp>

#include "text/codec.hpp"
#include "text/utf8.hpp"

namespace rill::codec_check {

inline constexpr std::size_t codec_count = 18;
inline constexpr std::size_t error_mode_count = 3;
inline constexpr std::size_t header_bytes = 3;  // codec, mode, split seed
// A decoder may hold back at most this many bytes between calls: a cut character (up to 3
// bytes of 4) or a cut BOM (up to 3 bytes of ucs_4's 4).
inline constexpr std::size_t max_held_back_bytes = 3;

struct raised_error {
    std::size_t output_offset;  // where in the output the error was raised
    std::size_t bad_length;
    char32_t bad_char;  // encoders only
    friend bool operator==(const raised_error&, const raised_error&) = default;
};

// Everything a whole conversion produced. Two drives of the same input must be equal.
struct trace {
    std::string output;
    std::vector<raised_error> errors;
    std::string unconsumed;  // encoders: a cut UTF-8 sequence left at the end of the text
    std::string broken;  // a violated contract; empty when the codec behaved
    friend bool operator==(const trace&, const trace&) = default;
};

// Offsets at which to cut an input of `size` bytes into chunks.
inline std::vector<std::size_t> no_cuts(std::size_t) { return {}; }
inline std::vector<std::size_t> cuts_every_byte(std::size_t size) {
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < size; ++i) cuts.push_back(i);
    return cuts;
}
inline std::vector<std::size_t> random_cuts(std::size_t size, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<std::size_t> cuts;
    if (size < 2) return cuts;
    std::uniform_int_distribution<std::size_t> offset(1, size - 1);
    const std::size_t count = std::uniform_int_distribution<std::size_t>(0, size / 2)(rng);
    for (std::size_t k = 0; k < count; ++k) cuts.push_back(offset(rng));
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    return cuts;
}

namespace check_impl {

// Feeds `input` cut at `cuts` to `step(pending, last_chunk, output)`, which returns a
// decode_result or encode_result, handling raise errors as the stream layer does.
template <class Step>
trace drive(std::string_view input, const std::vector<std::size_t>& cuts, Step step) {
    trace t;
    std::string pending;
    std::size_t start = 0;
    for (std::size_t k = 0; k <= cuts.size(); ++k) {
        const std::size_t end = k < cuts.size() ? cuts[k] : input.size();
        const bool last = k == cuts.size();
        pending.append(input.substr(start, end - start));
        start = end;
        for (;;) {
            const auto r = step(pending, last, t.output);
            if (r.consumed > pending.size() || r.bad_length > pending.size() - r.consumed) {
                t.broken = "consumed or bad_length beyond the input";
                return t;
            }
            if (!r.error) {
                pending.erase(0, r.consumed);
                break;
            }
            if (r.bad_length == 0) {
                t.broken = "raise error with bad_length 0";
                return t;
            }
            char32_t bad_char = 0;
            if constexpr (requires { r.bad_char; }) bad_char = r.bad_char;
            t.errors.push_back({t.output.size(), r.bad_length, bad_char});
            pending.erase(0, r.consumed + r.bad_length);
        }
        if (pending.size() > max_held_back_bytes) {
            t.broken = "held back more than " + std::to_string(max_held_back_bytes) + " bytes";
            return t;
        }
    }
    t.unconsumed = pending;
    return t;
}

inline bool is_valid_utf8(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    for (std::size_t i = 0; i < s.size();) {
        const detail::scan_step step = detail::scan_utf8(p + i, s.size() - i);
        if (step.status != detail::scan_status::character) return false;
        i += step.length;
    }
    return true;
}

}  // namespace check_impl

inline trace decode_with_cuts(const transcoder& t, std::string_view input,
                              const std::vector<std::size_t>& cuts) {
    detail::decoder d(t);
    trace result =
        check_impl::drive(input, cuts, [&](std::string_view in, bool last, std::string& out) {
            return d.decode(in, out, last);
        });
    if (result.broken.empty() && !result.unconsumed.empty())
        result.broken = "bytes left over after end_of_input";
    return result;
}

inline trace encode_with_cuts(const transcoder& t, std::string_view input,
                              const std::vector<std::size_t>& cuts) {
    detail::encoder e(t);
    return check_impl::drive(input, cuts, [&](std::string_view in, bool, std::string& out) {
        return e.encode(in, out);
    });
}

// The output with each raise error shown where it happened, as "[!N]" (N bad bytes) for a
// decoder and "[!U+XXXX/N]" for an encoder; a cut sequence left at the end as "[cut N]".
inline std::string render(const trace& t, bool show_char) {
    std::string s;
    std::size_t at = 0;
    for (const raised_error& e : t.errors) {
        s.append(t.output, at, e.output_offset - at);
        at = e.output_offset;
        char marker[32];
        if (show_char)
            std::snprintf(marker, sizeof marker, "[!U+%04X/%zu]", static_cast<unsigned>(e.bad_char),
                          e.bad_length);
        else
            std::snprintf(marker, sizeof marker, "[!%zu]", e.bad_length);
        s += marker;
    }
    s.append(t.output, at);
    if (!t.unconsumed.empty()) s += "[cut " + std::to_string(t.unconsumed.size()) + "]";
    if (!t.broken.empty()) s += "[broken: " + t.broken + "]";
    return s;
}

namespace check_impl {

// What the three error modes must agree on: ignore drops each bad subsequence that raise
// reports and replace puts `replacement` in its place, with the same text around them.
inline std::string compare_modes(const trace& raised, const trace& ignored, const trace& replaced,
                                 std::string_view replacement) {
    if (!ignored.errors.empty() || !replaced.errors.empty())
        return "ignore or replace reported a raise error";
    std::string expect_ignored, expect_replaced;
    std::size_t at = 0;
    for (const raised_error& e : raised.errors) {
        const std::string_view before(raised.output.data() + at, e.output_offset - at);
        expect_ignored += before;
        expect_replaced.append(before).append(replacement);
        at = e.output_offset;
    }
    expect_ignored.append(raised.output, at);
    expect_replaced.append(raised.output, at);
    if (ignored.output != expect_ignored)
        return "ignore output differs from raise output without its errors";
    if (replaced.output != expect_replaced)
        return "replace output differs from raise output with replacements";
    return {};
}

inline std::string_view output_bom(codec c) {
    using namespace std::string_view_literals;
    switch (c) {
    case codec::utf_16:
    case codec::ucs_2: return "\xFF\xFE"sv;
    case codec::ucs_4: return "\xFF\xFE\x00\x00"sv;
    case codec::utf:
    case codec::utf_fallback_ascii:
    case codec::utf_fallback_iso_8859_1:
    case codec::utf_fallback_utf_16:
    case codec::utf_fallback_utf_16le:
    case codec::utf_fallback_utf_16be: return "\xEF\xBB\xBF"sv;
    default: return {};
    }
}

// The BOMs a codec recognises on input other than the one it writes.
inline std::vector<std::string_view> other_input_boms(codec c) {
    using namespace std::string_view_literals;
    switch (c) {
    case codec::utf_16:
    case codec::ucs_2: return {"\xFE\xFF"sv};
    case codec::ucs_4: return {"\x00\x00\xFE\xFF"sv};
    default:
        if (output_bom(c).empty()) return {};
        return {"\xFF\xFE"sv, "\xFE\xFF"sv};  // the utf family's UTF-16 BOMs
    }
}

// The bytes encoding should give back for a valid `payload`, or false where the decoder read
// a form the encoder does not write (a big-endian BOM, a fallback other than UTF-8).
inline bool expected_reencoding(codec c, std::string_view payload, std::string& expected) {
    const std::string_view bom = output_bom(c);
    if (payload.starts_with(bom)) {
        // Only a BOM: no character, so the encoder writes no BOM either.
        expected = payload.size() == bom.size() ? std::string() : std::string(payload);
        return true;
    }
    for (std::string_view other : other_input_boms(c))
        if (payload.starts_with(other)) return false;
    // Without a BOM the utf family reads its fallback; only the UTF-8 and ASCII fallbacks
    // read bytes that the UTF-8 encoder writes back unchanged.
    const bool utf_family = bom.size() == 3;
    if (utf_family && c != codec::utf && c != codec::utf_fallback_ascii) return false;
    expected = payload.empty() ? std::string() : std::string(bom).append(payload);
    return true;
}

constexpr std::size_t mode_index(error_handling_mode m) { return static_cast<std::size_t>(m); }

// `t` without the BOM at the front of its output. A BOM is written before the first character,
// so whether an error at the start lands before or after it depends on the mode; the modes
// are compared on the text after it.
inline trace without_bom(trace t, std::string_view bom) {
    if (bom.empty() || !t.output.starts_with(bom)) return t;
    t.output.erase(0, bom.size());
    for (raised_error& e : t.errors)
        e.output_offset = e.output_offset < bom.size() ? 0 : e.output_offset - bom.size();
    return t;
}

struct parsed_input {
    transcoder settings;
    std::uint32_t seed;
    std::string_view payload;
};

inline parsed_input parse_input(const std::uint8_t* data, std::size_t size) {
    const auto c = static_cast<codec>(data[0] % codec_count);
    const auto m = static_cast<error_handling_mode>(data[1] % error_mode_count);
    return {
        transcoder(c, eol_style::none, m), data[2],
        std::string_view(reinterpret_cast<const char*>(data) + header_bytes, size - header_bytes)};
}

inline transcoder with_mode(const transcoder& t, error_handling_mode m) {
    return transcoder(t.codec(), t.eol_style(), m);
}

// Runs `convert` whole, one byte per call and at random cuts; a non-empty result says how
// the three differed or which contract broke.
template <class Convert>
std::string check_splits(std::string_view payload, std::uint32_t seed, Convert convert,
                         trace& whole) {
    whole = convert(payload, no_cuts(payload.size()));
    if (!whole.broken.empty()) return "whole input: " + whole.broken;
    const trace bytewise = convert(payload, cuts_every_byte(payload.size()));
    if (bytewise != whole)
        return "one byte per call differs from whole: " + render(bytewise, true) + " vs " +
               render(whole, true);
    const trace random = convert(payload, random_cuts(payload.size(), seed));
    if (random != whole)
        return "random cuts differ from whole: " + render(random, true) + " vs " +
               render(whole, true);
    return {};
}

}  // namespace check_impl

// Decoder properties for one fuzz input; returns a description of the first failure, or "".
// Output is valid UTF-8; any split decodes like the whole; the error modes agree with each
// other; valid input re-encodes to the same bytes (or, where the decoder accepts a form the
// encoder does not write, to bytes that decode to the same text).
inline std::string check_decoder_input(const std::uint8_t* data, std::size_t size) {
    using namespace check_impl;
    if (size < header_bytes) return {};
    const parsed_input in = parse_input(data, size);
    const std::string_view name = to_string(in.settings.codec());
    trace whole;
    const auto decode = [&](const transcoder& t) {
        return [t](std::string_view s, const std::vector<std::size_t>& cuts) {
            return decode_with_cuts(t, s, cuts);
        };
    };
    if (std::string failure = check_splits(in.payload, in.seed, decode(in.settings), whole);
        !failure.empty())
        return std::string(name) + " decode: " + failure;
    if (!is_valid_utf8(whole.output))
        return std::string(name) + " decode: output is not valid UTF-8";

    trace by_mode[error_mode_count];
    for (std::size_t m = 0; m < error_mode_count; ++m)
        by_mode[m] = decode_with_cuts(with_mode(in.settings, static_cast<error_handling_mode>(m)),
                                      in.payload, {});
    const std::string failure =
        compare_modes(by_mode[mode_index(error_handling_mode::raise)],
                      by_mode[mode_index(error_handling_mode::ignore)],
                      by_mode[mode_index(error_handling_mode::replace)], "\xEF\xBF\xBD");
    if (!failure.empty()) return std::string(name) + " decode: " + failure;

    const trace& raised = by_mode[mode_index(error_handling_mode::raise)];
    if (!raised.errors.empty()) return {};
    const trace encoded =
        encode_with_cuts(with_mode(in.settings, error_handling_mode::raise), raised.output, {});
    if (!encoded.errors.empty() || !encoded.unconsumed.empty())
        return std::string(name) + " re-encode of valid input failed: " + render(encoded, true);
    std::string expected;
    if (expected_reencoding(in.settings.codec(), in.payload, expected)) {
        if (encoded.output != expected)
            return std::string(name) + " re-encode of valid input gave different bytes";
    } else if (decode_with_cuts(in.settings, encoded.output, {}).output != raised.output) {
        return std::string(name) + " re-encode of valid input decodes to different text";
    }
    return {};
}

// Encoder properties for one fuzz input (the payload is the program's UTF-8, valid or not):
// any split encodes like the whole; the error modes agree; the output always decodes without
// error, and to the input itself when nothing needed handling.
inline std::string check_encoder_input(const std::uint8_t* data, std::size_t size) {
    using namespace check_impl;
    if (size < header_bytes) return {};
    const parsed_input in = parse_input(data, size);
    const std::string_view name = to_string(in.settings.codec());
    trace whole;
    const auto encode = [&](const transcoder& t) {
        return [t](std::string_view s, const std::vector<std::size_t>& cuts) {
            return encode_with_cuts(t, s, cuts);
        };
    };
    if (std::string failure = check_splits(in.payload, in.seed, encode(in.settings), whole);
        !failure.empty())
        return std::string(name) + " encode: " + failure;

    trace by_mode[error_mode_count];
    for (std::size_t m = 0; m < error_mode_count; ++m)
        by_mode[m] = encode_with_cuts(with_mode(in.settings, static_cast<error_handling_mode>(m)),
                                      in.payload, {});
    // What replace writes: the codec's U+FFFD, or '?' where it has none.
    const std::string_view bom = output_bom(in.settings.codec());
    std::string replacement;
    detail::encoder(with_mode(in.settings, error_handling_mode::replace))
        .encode("\xEF\xBF\xBD", replacement);
    replacement.erase(0, bom.size());
    for (const trace& t : by_mode)
        if (!t.output.empty() && !t.output.starts_with(bom))
            return std::string(name) + " encode: output does not start with the BOM";
    const trace& raised = by_mode[mode_index(error_handling_mode::raise)];
    const std::string failure = compare_modes(
        without_bom(raised, bom),
        without_bom(by_mode[mode_index(error_handling_mode::ignore)], bom),
        without_bom(by_mode[mode_index(error_handling_mode::replace)], bom), replacement);
    if (!failure.empty()) return std::string(name) + " encode: " + failure;

    for (std::size_t m = 0; m < error_mode_count; ++m) {
        const trace decoded = decode_with_cuts(with_mode(in.settings, error_handling_mode::raise),
                                               by_mode[m].output, {});
        if (!decoded.errors.empty() || !decoded.broken.empty())
            return std::string(name) + " encode: output does not decode: " + render(decoded, false);
        if (raised.errors.empty()) {
            const std::string_view consumed =
                in.payload.substr(0, in.payload.size() - raised.unconsumed.size());
            if (decoded.output != consumed)
                return std::string(name) + " encode: valid text does not survive the round trip";
        }
    }
    return {};
}

}  // namespace rill::codec_check
