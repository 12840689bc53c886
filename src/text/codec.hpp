// Incremental decoders and encoders between a codec's bytes and UTF-8, used by the stream
// layer. Line ends are NOT translated here: the stream layer applies the eol style on the
// UTF-8 side (CR and LF are single bytes in UTF-8), so a decoder passes CR and LF through.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <rill/transcoder.hpp>

namespace rill::detail {

// Outcome of one decode call.
struct decode_result {
    std::size_t consumed = 0;  // input bytes consumed (including any bad bytes handled)
    // Only in error mode raise: the decoder stopped at ill-formed input. `out` holds the text
    // decoded before it, `consumed` stops before the bad bytes, and `bad_length` is the length
    // of the maximal ill-formed subsequence (the caller throws, then skips those bytes).
    bool error = false;
    std::size_t bad_length = 0;
};

class decoder {
public:
    explicit decoder(const transcoder& t);

    // Decode a prefix of `in`, appending UTF-8 to `out`. Bytes of a character cut at the end
    // of `in` are left unconsumed (call again with more bytes) unless `end_of_input`, when they
    // are an error handled by the mode. ignore drops bad bytes, replace appends one U+FFFD per
    // maximal ill-formed subsequence, raise stops as described in decode_result.
    // State (BOM detection, the byte order it chose) persists across calls, so any split of
    // the input decodes the same as the whole.
    decode_result decode(std::string_view in, std::string& out, bool end_of_input);

    const transcoder& settings() const noexcept { return settings_; }

private:
    transcoder settings_;
    std::uint8_t state_ = 0;  // codec-specific: BOM seen / byte order chosen
};

// Outcome of one encode call.
struct encode_result {
    std::size_t consumed = 0;  // UTF-8 bytes consumed
    bool error = false;  // raise mode: stopped before a character the codec can't encode
    char32_t bad_char = 0;  // that character; for invalid UTF-8, U+DC00 + its first byte
    std::size_t bad_length = 0;  // its UTF-8 length (the caller throws, then skips it)
};

class encoder {
public:
    explicit encoder(const transcoder& t);

    // Encode a prefix of the UTF-8 text `in`, appending the codec's bytes to `out`. A UTF-8
    // sequence cut at the end of `in` is left unconsumed, unless `end_of_text` says no more of
    // the text follows (the stream layer encodes each write's text whole): then it is invalid
    // UTF-8 like any other. Invalid UTF-8 from the program is an encoding error handled by the
    // mode. Writes the codec's BOM before the first character where the codec has one (utf_16,
    // ucs_2, ucs_4, the utf family).
    encode_result encode(std::string_view in, std::string& out, bool end_of_text = false);

    const transcoder& settings() const noexcept { return settings_; }

private:
    transcoder settings_;
    bool bom_written_ = false;
};

}  // namespace rill::detail
