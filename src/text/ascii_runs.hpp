// Block-at-a-time conversion of ASCII runs, the bulk of protocol and program text. Each
// function converts the leading run of ASCII code units of p[0..n) between a codec's units
// (1, 2 or 4 bytes, either byte order) and UTF-8 bytes, and returns how many input bytes it
// consumed; the caller handles whatever non-ASCII unit stopped it.
//
// A block is 16 bytes with SSE2 (baseline on x86-64) and 8 bytes, one machine word, elsewhere.
// Stores are whole blocks even when only part of a block is ASCII (the rest is overwritten by
// the caller's next write), so the output needs room for the whole input converted as ASCII:
//   narrow (codec units -> UTF-8):  n / unit_bytes bytes
//   widen  (UTF-8 -> codec units):  n * unit_bytes bytes
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__) && !defined(RILL_TEXT_NO_SIMD)
#define RILL_TEXT_SSE2 1
#include <emmintrin.h>
#else
#define RILL_TEXT_SSE2 0
#endif

namespace rill::detail {

inline constexpr unsigned ascii_limit = 0x80;  // first code unit value that is not ASCII

// The value of the code unit of `UnitBytes` bytes in byte order `Order` at p.
template <std::size_t UnitBytes, std::endian Order>
inline std::uint32_t load_unit(const unsigned char* p) noexcept {
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < UnitBytes; ++i) {
        const std::size_t shift = Order == std::endian::little ? 8 * i : 8 * (UnitBytes - 1 - i);
        value |= std::uint32_t{p[i]} << shift;
    }
    return value;
}

template <std::size_t UnitBytes, std::endian Order>
inline unsigned char* store_unit(std::uint32_t value, unsigned char* w) noexcept {
    for (std::size_t i = 0; i < UnitBytes; ++i) {
        const std::size_t shift = Order == std::endian::little ? 8 * i : 8 * (UnitBytes - 1 - i);
        w[i] = static_cast<unsigned char>(value >> shift);
    }
    return w + UnitBytes;
}

namespace ascii_runs_impl {

inline constexpr std::size_t word_bytes = sizeof(std::uint64_t);

// A word whose bytes are set wherever a unit of an ASCII character must be clear: the top
// bit of the low byte and every bit of the other bytes. Built from bytes and loaded with
// memcpy like the data, so the host's byte order does not matter.
template <std::size_t UnitBytes, std::endian Order>
inline std::uint64_t non_ascii_bits_word() noexcept {
    unsigned char pattern[word_bytes];
    for (std::size_t i = 0; i < word_bytes; ++i) {
        const std::size_t in_unit = i % UnitBytes;
        const bool low_byte =
            Order == std::endian::little ? in_unit == 0 : in_unit == UnitBytes - 1;
        pattern[i] = low_byte ? 0x80 : 0xFF;
    }
    std::uint64_t word;
    std::memcpy(&word, pattern, word_bytes);
    return word;
}

inline std::uint64_t load_word(const unsigned char* p) noexcept {
    std::uint64_t word;
    std::memcpy(&word, p, word_bytes);
    return word;
}

}  // namespace ascii_runs_impl

// Codec units -> UTF-8 (decoding). Returns input bytes consumed, a multiple of UnitBytes.
template <std::size_t UnitBytes, std::endian Order>
inline std::size_t narrow_ascii_run(const unsigned char* p, std::size_t n,
                                    unsigned char* w) noexcept {
    static_assert(UnitBytes == 1 || UnitBytes == 2 || UnitBytes == 4);
    std::size_t i = 0;
#if RILL_TEXT_SSE2
    constexpr std::size_t block_bytes = 16;
    const __m128i zero = _mm_setzero_si128();
    for (; n - i >= block_bytes; i += block_bytes) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        // One bit per input byte, set for the bytes of non-ASCII units; the block's units are
        // stored as bytes whatever they hold, since only the ASCII prefix counts.
        unsigned non_ascii;
        if constexpr (UnitBytes == 1) {
            non_ascii = static_cast<unsigned>(_mm_movemask_epi8(v));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(w + i), v);
        } else if constexpr (UnitBytes == 2) {
            const __m128i high_bits =
                _mm_set1_epi16(static_cast<short>(Order == std::endian::little ? 0xFF80 : 0x80FF));
            non_ascii = ~static_cast<unsigned>(
                            _mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(v, high_bits), zero))) &
                        0xFFFF;
            const __m128i low_bytes = Order == std::endian::little ? v : _mm_srli_epi16(v, 8);
            _mm_storel_epi64(reinterpret_cast<__m128i*>(w + i / 2),
                             _mm_packus_epi16(low_bytes, low_bytes));
        } else {
            const __m128i high_bits = _mm_set1_epi32(
                static_cast<int>(Order == std::endian::little ? 0xFFFFFF80u : 0x80FFFFFFu));
            non_ascii = ~static_cast<unsigned>(
                            _mm_movemask_epi8(_mm_cmpeq_epi32(_mm_and_si128(v, high_bits), zero))) &
                        0xFFFF;
            const __m128i low_bytes = Order == std::endian::little ? v : _mm_srli_epi32(v, 24);
            // Values below 0x80 pass both saturating packs unchanged.
            const __m128i words = _mm_packs_epi32(low_bytes, low_bytes);
            const auto four =
                static_cast<std::uint32_t>(_mm_cvtsi128_si32(_mm_packus_epi16(words, words)));
            std::memcpy(w + i / 4, &four, sizeof four);
        }
        if (non_ascii != 0) {
            const auto ascii_bytes = static_cast<std::size_t>(std::countr_zero(non_ascii));
            return i + ascii_bytes / UnitBytes * UnitBytes;
        }
    }
#else
    using namespace ascii_runs_impl;
    const std::uint64_t non_ascii_bits = non_ascii_bits_word<UnitBytes, Order>();
    for (; n - i >= word_bytes; i += word_bytes) {
        if ((load_word(p + i) & non_ascii_bits) != 0) break;
        constexpr std::size_t low_byte = Order == std::endian::little ? 0 : UnitBytes - 1;
        for (std::size_t k = 0; k < word_bytes / UnitBytes; ++k)
            w[i / UnitBytes + k] = p[i + k * UnitBytes + low_byte];
    }
#endif
    for (; n - i >= UnitBytes; i += UnitBytes) {
        const std::uint32_t unit = load_unit<UnitBytes, Order>(p + i);
        if (unit >= ascii_limit) break;
        w[i / UnitBytes] = static_cast<unsigned char>(unit);
    }
    return i;
}

// UTF-8 -> codec units (encoding). Returns input bytes consumed.
template <std::size_t UnitBytes, std::endian Order>
inline std::size_t widen_ascii_run(const unsigned char* p, std::size_t n,
                                   unsigned char* w) noexcept {
    static_assert(UnitBytes == 1 || UnitBytes == 2 || UnitBytes == 4);
    std::size_t i = 0;
#if RILL_TEXT_SSE2
    constexpr std::size_t block_bytes = 16;
    const __m128i zero = _mm_setzero_si128();
    for (; n - i >= block_bytes; i += block_bytes) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        auto* out = reinterpret_cast<__m128i*>(w + i * UnitBytes);
        if constexpr (UnitBytes == 1) {
            _mm_storeu_si128(out, v);
        } else {
            // Interleaving with zero bytes puts each character in the low byte of its unit;
            // swapping the operands puts it in the high byte, which is big-endian order.
            constexpr bool little = Order == std::endian::little;
            const __m128i lo = little ? _mm_unpacklo_epi8(v, zero) : _mm_unpacklo_epi8(zero, v);
            const __m128i hi = little ? _mm_unpackhi_epi8(v, zero) : _mm_unpackhi_epi8(zero, v);
            if constexpr (UnitBytes == 2) {
                _mm_storeu_si128(out, lo);
                _mm_storeu_si128(out + 1, hi);
            } else {
                const auto widen_lo = [&](__m128i x) {
                    return little ? _mm_unpacklo_epi16(x, zero) : _mm_unpacklo_epi16(zero, x);
                };
                const auto widen_hi = [&](__m128i x) {
                    return little ? _mm_unpackhi_epi16(x, zero) : _mm_unpackhi_epi16(zero, x);
                };
                _mm_storeu_si128(out, widen_lo(lo));
                _mm_storeu_si128(out + 1, widen_hi(lo));
                _mm_storeu_si128(out + 2, widen_lo(hi));
                _mm_storeu_si128(out + 3, widen_hi(hi));
            }
        }
        const auto non_ascii = static_cast<unsigned>(_mm_movemask_epi8(v));
        if (non_ascii != 0) return i + static_cast<std::size_t>(std::countr_zero(non_ascii));
    }
#else
    using namespace ascii_runs_impl;
    const std::uint64_t non_ascii_bits = non_ascii_bits_word<1, Order>();
    for (; n - i >= word_bytes; i += word_bytes) {
        if ((load_word(p + i) & non_ascii_bits) != 0) break;
        for (std::size_t k = 0; k < word_bytes; ++k)
            store_unit<UnitBytes, Order>(p[i + k], w + (i + k) * UnitBytes);
    }
#endif
    for (; i < n && p[i] < ascii_limit; ++i) store_unit<UnitBytes, Order>(p[i], w + i * UnitBytes);
    return i;
}

}  // namespace rill::detail
