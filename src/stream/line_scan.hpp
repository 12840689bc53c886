// Finding the next line end in buffered text, the part of read_line every line pays for: the
// first CR or LF (eol styles cr and crlf) or the first LF (lf and none), 16 or 32 bytes a step.
#pragma once

#include <cstddef>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <rill/transcoder.hpp>

namespace rill::detail {

// CR or LF, in one pass: two memchr calls cost more than the scan for a short line.
inline const char* find_cr_or_lf(const char* p, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i)
        if (p[i] == '\n' || p[i] == '\r') return p + i;
    return nullptr;
}

#if defined(__x86_64__)
// 16 bytes a step; the tail goes bytewise.
inline const char* find_cr_or_lf_sse2(const char* p, std::size_t n) noexcept {
    std::size_t i = 0;
    const __m128i lf = _mm_set1_epi8('\n');
    const __m128i cr = _mm_set1_epi8('\r');
    for (; i + 16 <= n; i += 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        const auto hits = static_cast<unsigned>(
            _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, cr))));
        if (hits) return p + i + __builtin_ctz(hits);
    }
    return find_cr_or_lf(p + i, n - i);
}

// 32 bytes a step where the processor has AVX2 (a 64-byte line in two steps); the tail goes
// to the 16-byte scan.
[[gnu::target("avx2")]] inline const char* find_cr_or_lf_avx2(const char* p,
                                                              std::size_t n) noexcept {
    std::size_t i = 0;
    const __m256i lf = _mm256_set1_epi8('\n');
    const __m256i cr = _mm256_set1_epi8('\r');
    for (; i + 32 <= n; i += 32) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
        const auto hits = static_cast<unsigned>(_mm256_movemask_epi8(
            _mm256_or_si256(_mm256_cmpeq_epi8(v, lf), _mm256_cmpeq_epi8(v, cr))));
        if (hits) return p + i + __builtin_ctz(hits);
    }
    return find_cr_or_lf_sse2(p + i, n - i);
}

inline const bool cpu_has_avx2 = [] {
    __builtin_cpu_init();  // static initialisation may run before the library's own
    return __builtin_cpu_supports("avx2") != 0;
}();
#endif

inline const char* find_first_cr_or_lf(const char* p, std::size_t n) noexcept {
#if defined(__x86_64__)
    return cpu_has_avx2 ? find_cr_or_lf_avx2(p, n) : find_cr_or_lf_sse2(p, n);
#else
    return find_cr_or_lf(p, n);
#endif
}

// The first byte that ends a line under `eol`, or null.
[[gnu::always_inline]] inline const char* find_line_end(const char* p, std::size_t n,
                                                        eol_style eol) noexcept {
    if (n == 0) return nullptr;  // an empty buffer holds no memory: memchr(nullptr, ...) is UB
    if (eol == eol_style::lf || eol == eol_style::none)
        return static_cast<const char*>(std::memchr(p, '\n', n));
    return find_first_cr_or_lf(p, n);
}

}  // namespace rill::detail
