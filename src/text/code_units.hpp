// The nine concrete byte formats behind the 18 codecs, as small policy structs. Each one says
// only what differs between formats: how one character is scanned from its bytes, which
// characters it can hold and how one is written, and how a run of ASCII converts in blocks.
// The error modes, BOMs and buffering are common and live once, in codec.cpp.
//
// Policy interface (all static):
//   unit_bytes, order               size and byte order of a code unit
//   scan(p, n)                      one character at p[0..n), n >= 1 (scan_step contract)
//   max_utf8_bytes(n)               bound on UTF-8 produced by decoding n valid bytes
//   encodable(c), put(c, w)         whether a scalar value has a form here; write it
//   max_encoded_bytes(n)            bound on bytes produced by encoding n bytes of valid UTF-8
//   replacement                     what replace mode writes for an unencodable character
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

#include "text/ascii_runs.hpp"
#include "text/utf8.hpp"

namespace rill::detail {

// Written by replace mode where a codec has no form for U+FFFD.
inline constexpr char32_t substitute_character = '?';
inline constexpr char32_t max_latin1_code_point = 0xFF;
inline constexpr char32_t max_bmp_code_point = 0xFFFF;

// Single-byte formats share everything but their repertoire: iso_8859_1 maps bytes to
// U+0000..U+00FF, ascii accepts only bytes < 0x80.
template <char32_t MaxCodePoint>
struct single_byte_units {
    static constexpr std::size_t unit_bytes = 1;
    static constexpr std::endian order = std::endian::little;  // irrelevant for one byte
    static constexpr char32_t replacement = substitute_character;

    static scan_step scan(const unsigned char* p, std::size_t) noexcept {
        if (p[0] > MaxCodePoint) return {scan_status::ill_formed, 1, 0};
        return {scan_status::character, 1, p[0]};
    }
    static constexpr std::size_t max_utf8_bytes(std::size_t n) noexcept {
        return MaxCodePoint < ascii_limit ? n : 2 * n;
    }
    static constexpr bool encodable(char32_t c) noexcept { return c <= MaxCodePoint; }
    static unsigned char* put(char32_t c, unsigned char* w) noexcept {
        *w = static_cast<unsigned char>(c);
        return w + 1;
    }
    static constexpr std::size_t max_encoded_bytes(std::size_t n) noexcept { return n; }
};

using iso_8859_1_units = single_byte_units<max_latin1_code_point>;
using ascii_units = single_byte_units<ascii_limit - 1>;

struct utf8_units {
    static constexpr std::size_t unit_bytes = 1;
    static constexpr std::endian order = std::endian::little;  // irrelevant for one byte
    static constexpr char32_t replacement = replacement_character;

    static scan_step scan(const unsigned char* p, std::size_t n) noexcept {
        return scan_utf8(p, n);
    }
    static constexpr std::size_t max_utf8_bytes(std::size_t n) noexcept { return n; }
    static constexpr bool encodable(char32_t) noexcept { return true; }
    static unsigned char* put(char32_t c, unsigned char* w) noexcept { return encode_utf8(c, w); }
    static constexpr std::size_t max_encoded_bytes(std::size_t n) noexcept { return n; }
};

// 16-bit units. `Surrogates` false is UCS-2: BMP only, and a surrogate unit is ill-formed on
// its own. true is UTF-16: a high surrogate followed by a low one is one character.
template <std::endian Order, bool Surrogates>
struct units16 {
    static constexpr std::size_t unit_bytes = 2;
    static constexpr std::endian order = Order;
    static constexpr char32_t replacement = replacement_character;

    static scan_step scan(const unsigned char* p, std::size_t n) noexcept {
        if (n < unit_bytes) return {scan_status::incomplete, static_cast<std::uint8_t>(n), 0};
        const char32_t unit = load_unit<2, Order>(p);
        if (!is_surrogate(unit)) return {scan_status::character, 2, unit};
        if (!Surrogates || is_low_surrogate(unit)) return {scan_status::ill_formed, 2, 0};
        if (n < 2 * unit_bytes) {
            // Big-endian: the third byte is the high byte of the next unit, which can only
            // start a low surrogate if it is DC..DF; otherwise the pair is already broken.
            if (n == 3 && Order == std::endian::big && !is_low_surrogate(char32_t{p[2]} << 8))
                return {scan_status::ill_formed, 2, 0};
            return {scan_status::incomplete, static_cast<std::uint8_t>(n), 0};
        }
        const char32_t next = load_unit<2, Order>(p + 2);
        if (!is_low_surrogate(next)) return {scan_status::ill_formed, 2, 0};
        return {scan_status::character, 4,
                first_supplementary + ((unit - first_surrogate) << 10) +
                    (next - first_low_surrogate)};
    }
    // 2 bytes give at most 3 of UTF-8 (U+0800..U+FFFF); a 4-byte pair gives 4.
    static constexpr std::size_t max_utf8_bytes(std::size_t n) noexcept { return n / 2 * 3; }
    static constexpr bool encodable(char32_t c) noexcept {
        return Surrogates || c <= max_bmp_code_point;
    }
    static unsigned char* put(char32_t c, unsigned char* w) noexcept {
        if (c < first_supplementary) return store_unit<2, Order>(c, w);
        const char32_t offset = c - first_supplementary;
        w = store_unit<2, Order>(first_surrogate + (offset >> 10), w);
        return store_unit<2, Order>(first_low_surrogate + (offset & 0x3FF), w);
    }
    // 1 byte of UTF-8 (ASCII) becomes 2; every longer sequence at most doubles.
    static constexpr std::size_t max_encoded_bytes(std::size_t n) noexcept { return 2 * n; }
};

template <std::endian Order>
using utf16_units = units16<Order, true>;
template <std::endian Order>
using ucs2_units = units16<Order, false>;

template <std::endian Order>
struct ucs4_units {
    static constexpr std::size_t unit_bytes = 4;
    static constexpr std::endian order = Order;
    static constexpr char32_t replacement = replacement_character;

    static scan_step scan(const unsigned char* p, std::size_t n) noexcept {
        if (n < unit_bytes) return {scan_status::incomplete, static_cast<std::uint8_t>(n), 0};
        const char32_t unit = load_unit<4, Order>(p);
        if (unit > max_code_point || is_surrogate(unit)) return {scan_status::ill_formed, 4, 0};
        return {scan_status::character, 4, unit};
    }
    static constexpr std::size_t max_utf8_bytes(std::size_t n) noexcept { return n / 4 * 4; }
    static constexpr bool encodable(char32_t) noexcept { return true; }
    static unsigned char* put(char32_t c, unsigned char* w) noexcept {
        return store_unit<4, Order>(c, w);
    }
    static constexpr std::size_t max_encoded_bytes(std::size_t n) noexcept { return 4 * n; }
};

}  // namespace rill::detail
