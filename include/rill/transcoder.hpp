// Transcoders: how a stream turns bytes into characters and back (Slogan's `transcoder`,
// Gambit's char-encoding, eol-encoding and char-encoding-errors port settings).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rill {

enum class codec : std::uint8_t {
    iso_8859_1,
    ascii,
    utf_8,
    utf_16,  // BOM read and honoured on input (no BOM: little endian); BOM then LE on output
    utf_16le,  // no BOM processing
    utf_16be,
    ucs_2,  // 16-bit units, BMP only; BOM rules as utf_16
    ucs_2le,
    ucs_2be,
    ucs_4,  // 32-bit units; BOM rules as utf_16
    ucs_4le,
    ucs_4be,
    utf,  // = utf_fallback_utf_8: a BOM selects the decoder, else UTF-8; writes UTF-8 with BOM
    utf_fallback_ascii,
    utf_fallback_iso_8859_1,
    utf_fallback_utf_16,
    utf_fallback_utf_16le,
    utf_fallback_utf_16be,
};

// How a line end is written for '\n' and recognised on input.
enum class eol_style : std::uint8_t {
    lf,  // input: only LF ends a line (a CR stays in the line); output: LF
    cr,  // input: CR or LF each end a line; output: CR
    crlf,  // input: CR, LF, CR LF and LF CR each end one line; output: CR LF
    none,  // no translation in either direction
};

// What happens to bytes that do not decode, or characters that do not encode.
enum class error_handling_mode : std::uint8_t {
    ignore,  // drop the offending bytes or character
    raise,  // throw decoding_error / encoding_error; the stream stays usable after them
    replace,  // U+FFFD on input; on output the codec's U+FFFD, or '?' where it has none
};

class transcoder {
public:
    // Slogan's defaults: eol style crlf, error mode ignore.
    constexpr explicit transcoder(rill::codec c, rill::eol_style e = rill::eol_style::crlf,
                                  rill::error_handling_mode m = rill::error_handling_mode::ignore)
        : codec_(c), eol_(e), mode_(m) {}

    constexpr rill::codec codec() const noexcept { return codec_; }
    constexpr rill::eol_style eol_style() const noexcept { return eol_; }
    constexpr rill::error_handling_mode error_handling_mode() const noexcept { return mode_; }
    friend constexpr bool operator==(const transcoder&, const transcoder&) = default;

private:
    rill::codec codec_;
    rill::eol_style eol_;
    rill::error_handling_mode mode_;
};

constexpr rill::codec transcoder_codec(const transcoder& t) noexcept { return t.codec(); }
constexpr rill::eol_style transcoder_eol_style(const transcoder& t) noexcept {
    return t.eol_style();
}
constexpr rill::error_handling_mode transcoder_error_handling_mode(const transcoder& t) noexcept {
    return t.error_handling_mode();
}

// Canonical names: "utf_16le", "lf", "replace".
std::string_view to_string(codec c) noexcept;
std::string_view to_string(eol_style e) noexcept;
std::string_view to_string(error_handling_mode m) noexcept;

// Parse names from text (command lines): case-insensitive, '-' and '_' alike, common aliases
// ("UTF-16LE", "utf_16le", "latin1", "ISO-8859-1", "us-ascii", "utf8"). Throw
// argument_error naming the text and listing the valid names.
codec parse_codec(std::string_view name);
eol_style parse_eol_style(std::string_view name);
error_handling_mode parse_error_handling_mode(std::string_view name);
// "CODEC[,EOL[,ERRORS]]", as the rill command's --transcoder takes it.
transcoder parse_transcoder(std::string_view spec);

}  // namespace rill
