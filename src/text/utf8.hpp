// UTF-8 primitives shared by every codec: each decoder produces UTF-8 and each encoder reads
// it, so the one scanner below decides what "valid" means for all 18 codecs.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rill::detail {

inline constexpr char32_t replacement_character = 0xFFFD;
inline constexpr char32_t max_code_point = 0x10FFFF;
inline constexpr std::size_t max_utf8_char_bytes = 4;
inline constexpr char32_t first_surrogate = 0xD800;
inline constexpr char32_t first_low_surrogate = 0xDC00;
inline constexpr char32_t last_surrogate = 0xDFFF;
inline constexpr char32_t first_supplementary = 0x10000;  // first code point needing 4 bytes

constexpr bool is_surrogate(char32_t c) noexcept {
    return c >= first_surrogate && c <= last_surrogate;
}
constexpr bool is_high_surrogate(char32_t c) noexcept {
    return c >= first_surrogate && c < first_low_surrogate;
}
constexpr bool is_low_surrogate(char32_t c) noexcept {
    return c >= first_low_surrogate && c <= last_surrogate;
}

// What one step of a scanner found at the current position. Every codec's scanner has this
// contract, which is what lets one driver (codec.cpp) handle the error modes for all of them.
enum class scan_status : std::uint8_t {
    character,  // a complete, valid character of `length` bytes
    ill_formed,  // `length` = the maximal ill-formed subsequence (Unicode 3.9, D93b)
    incomplete,  // all remaining bytes are a proper prefix of a valid character
};

struct scan_step {
    scan_status status;
    std::uint8_t length;
    char32_t code_point;  // only for `character`
};

// Scans one UTF-8 character at p[0..n), n >= 1, following Unicode's Table 3-7 of well-formed
// byte sequences: overlongs (C0, C1, E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and values
// above U+10FFFF (F4 90.., F5..FF) stop at the first byte that cannot continue a valid
// sequence, so a bad lead is a 1-byte subsequence and a valid neighbour is never swallowed.
inline scan_step scan_utf8(const unsigned char* p, std::size_t n) noexcept {
    const unsigned lead = p[0];
    if (lead < 0x80) return {scan_status::character, 1, lead};
    std::size_t length;
    char32_t code_point;
    unsigned second_min = 0x80;
    unsigned second_max = 0xBF;
    if (lead < 0xC2) {
        return {scan_status::ill_formed, 1, 0};  // continuation byte, or overlong C0/C1
    } else if (lead < 0xE0) {
        length = 2;
        code_point = lead & 0x1F;
    } else if (lead < 0xF0) {
        length = 3;
        code_point = lead & 0x0F;
        if (lead == 0xE0)
            second_min = 0xA0;  // below: overlong
        else if (lead == 0xED)
            second_max = 0x9F;  // above: a surrogate
    } else if (lead < 0xF5) {
        length = 4;
        code_point = lead & 0x07;
        if (lead == 0xF0)
            second_min = 0x90;  // below: overlong
        else if (lead == 0xF4)
            second_max = 0x8F;  // above: beyond U+10FFFF
    } else {
        return {scan_status::ill_formed, 1, 0};
    }
    for (std::size_t i = 1; i < length; ++i) {
        if (i == n) return {scan_status::incomplete, static_cast<std::uint8_t>(n), 0};
        const unsigned byte = p[i];
        if (byte < second_min || byte > second_max)
            return {scan_status::ill_formed, static_cast<std::uint8_t>(i), 0};
        second_min = 0x80;
        second_max = 0xBF;
        code_point = (code_point << 6) | (byte & 0x3F);
    }
    return {scan_status::character, static_cast<std::uint8_t>(length), code_point};
}

// Writes the UTF-8 form of a Unicode scalar value (not a surrogate, <= U+10FFFF) at w and
// returns the end; w needs room for max_utf8_char_bytes.
inline unsigned char* encode_utf8(char32_t c, unsigned char* w) noexcept {
    if (c < 0x80) {
        *w++ = static_cast<unsigned char>(c);
    } else if (c < 0x800) {
        *w++ = static_cast<unsigned char>(0xC0 | (c >> 6));
        *w++ = static_cast<unsigned char>(0x80 | (c & 0x3F));
    } else if (c < first_supplementary) {
        *w++ = static_cast<unsigned char>(0xE0 | (c >> 12));
        *w++ = static_cast<unsigned char>(0x80 | ((c >> 6) & 0x3F));
        *w++ = static_cast<unsigned char>(0x80 | (c & 0x3F));
    } else {
        *w++ = static_cast<unsigned char>(0xF0 | (c >> 18));
        *w++ = static_cast<unsigned char>(0x80 | ((c >> 12) & 0x3F));
        *w++ = static_cast<unsigned char>(0x80 | ((c >> 6) & 0x3F));
        *w++ = static_cast<unsigned char>(0x80 | (c & 0x3F));
    }
    return w;
}

// The character an encoder reports (encode_result::bad_char) for a byte of invalid UTF-8:
// U+DC80 + byte, the same lone-surrogate escape rill uses for such bytes in untranscoded text.
constexpr char32_t invalid_utf8_byte_marker(unsigned char byte) noexcept { return 0xDC00 + byte; }

}  // namespace rill::detail
