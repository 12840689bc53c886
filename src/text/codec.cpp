// One driver for every codec in both directions: decoding is transcoding from a format's units
// to UTF-8, encoding from UTF-8 to them. The policies in code_units.hpp say how a format scans
// and writes characters; this file adds what all formats share: the ASCII fast path, the
// three error modes, BOM sniffing and writing, and output buffering.
#include "text/codec.hpp"

#include <array>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>

#include "text/code_units.hpp"

namespace rill::detail {
namespace {

using namespace std::string_view_literals;

// Appends to a std::string through a raw pointer: a run sizes the string once for its worst
// case, writes without per-byte checks, and the slack is trimmed when the buffer goes away.
class output_buffer {
public:
    explicit output_buffer(std::string& s) noexcept : s_(s), used_(s.size()) {}
    output_buffer(const output_buffer&) = delete;
    output_buffer& operator=(const output_buffer&) = delete;
    ~output_buffer() { s_.resize(used_); }  // shrinking never allocates, so never throws

    // A pointer to room for at least `bytes` more bytes after what has been committed.
    unsigned char* room(std::size_t bytes) {
        if (s_.size() - used_ < bytes) s_.resize(used_ + bytes);
        return data() + used_;
    }
    void commit(unsigned char* end) noexcept { used_ = static_cast<std::size_t>(end - data()); }
    void append(std::string_view bytes) {
        std::memcpy(room(bytes.size()), bytes.data(), bytes.size());
        used_ += bytes.size();
    }
    std::size_t size() const noexcept { return used_; }
    void truncate(std::size_t size) noexcept { used_ = size; }

private:
    unsigned char* data() noexcept { return reinterpret_cast<unsigned char*>(s_.data()); }

    std::string& s_;
    std::size_t used_;
};

// Source and Sink are unit policies, one of them UTF-8: <format, utf8_units> decodes and
// <utf8_units, format> encodes.
template <class Source, class Sink>
concept transcoding = std::is_same_v<Source, utf8_units> || std::is_same_v<Sink, utf8_units>;

template <class Source, class Sink>
requires transcoding<Source, Sink>
constexpr std::size_t max_output_bytes(std::size_t input_bytes) noexcept {
    if constexpr (std::is_same_v<Sink, utf8_units>)
        return Source::max_utf8_bytes(input_bytes);
    else
        return Sink::max_encoded_bytes(input_bytes);
}

template <class Source, class Sink>
requires transcoding<Source, Sink> std::size_t ascii_run(const unsigned char* p, std::size_t n,
                                                         unsigned char* w)
noexcept {
    if constexpr (std::is_same_v<Sink, utf8_units>)
        return narrow_ascii_run<Source::unit_bytes, Source::order>(p, n, w);
    else
        return widen_ascii_run<Sink::unit_bytes, Sink::order>(p, n, w);
}

// ASCII characters in a row, met one at a time, after which the block path is tried again.
// 2 lets the single spaces between words in other scripts pass without a block attempt each
// (+20-30% on the mixed-script benchmark for UTF-16 and UCS-4) while mostly-ASCII text goes
// back to blocks soon after each non-ASCII letter (1 was at most 15% faster there; 4 cost up
// to 30%).
constexpr std::size_t ascii_streak_for_block_path = 2;

// Transcodes the longest prefix of p[0..n) made of complete characters that are valid in
// Source and representable in Sink; returns the input bytes consumed.
template <class Source, class Sink>
std::size_t transcode_valid_run(const unsigned char* p, std::size_t n, output_buffer& out) {
    // Every step below writes at most max_output_bytes of what it consumes, and the ASCII run
    // stores whole blocks only within that bound (see ascii_runs.hpp).
    unsigned char* w = out.room(max_output_bytes<Source, Sink>(n));
    std::size_t i = 0;
    while (i < n) {
        const std::size_t ascii = ascii_run<Source, Sink>(p + i, n - i, w);
        i += ascii;
        w += ascii / Source::unit_bytes * Sink::unit_bytes;
        // Then one character at a time, ASCII included, until a few ASCII characters in a row
        // suggest a run worth a block attempt: in other scripts the spaces and punctuation
        // between words would otherwise each pay for one.
        std::size_t ascii_in_a_row = 0;
        while (i < n && ascii_in_a_row < ascii_streak_for_block_path) {
            const scan_step step = Source::scan(p + i, n - i);
            if (step.status != scan_status::character || !Sink::encodable(step.code_point)) {
                out.commit(w);
                return i;
            }
            w = Sink::put(step.code_point, w);
            i += step.length;
            ascii_in_a_row = step.code_point < ascii_limit ? ascii_in_a_row + 1 : 0;
        }
    }
    out.commit(w);
    return i;
}

struct transcode_result {
    std::size_t consumed = 0;
    bool error = false;  // raise mode stopped at bad input
    std::size_t bad_length = 0;
    char32_t bad_char = 0;
};

// The driver: valid runs at full speed, and at each stop the one place where the error mode
// decides. `end_of_input` false leaves a character cut at the end unconsumed.
template <class Source, class Sink>
transcode_result transcode(std::string_view in, output_buffer& out, bool end_of_input,
                           error_handling_mode mode) {
    const auto* p = reinterpret_cast<const unsigned char*>(in.data());
    const std::size_t n = in.size();
    transcode_result result;
    std::size_t i = 0;
    while (i < n) {
        i += transcode_valid_run<Source, Sink>(p + i, n - i, out);
        if (i == n) break;
        scan_step bad = Source::scan(p + i, n - i);
        if (bad.status == scan_status::incomplete) {
            if (!end_of_input) break;
            bad.length = static_cast<std::uint8_t>(n - i);  // a cut character is one subsequence
        }
        if (mode == error_handling_mode::raise) {
            result.error = true;
            result.bad_length = bad.length;
            result.bad_char = bad.status == scan_status::character
                                  ? bad.code_point  // valid, but Sink cannot hold it
                                  : invalid_utf8_byte_marker(p[i]);
            break;
        }
        if (mode == error_handling_mode::replace)
            out.commit(Sink::put(Sink::replacement, out.room(max_utf8_char_bytes)));
        i += bad.length;
    }
    result.consumed = i;
    return result;
}

// Calls f.template operator()<Units>() with the unit policy of a concrete codec (one
// without BOM processing).
template <class F>
decltype(auto) with_units(codec c, F&& f) {
    constexpr auto le = std::endian::little;
    constexpr auto be = std::endian::big;
    switch (c) {
    case codec::iso_8859_1: return f.template operator()<iso_8859_1_units>();
    case codec::ascii: return f.template operator()<ascii_units>();
    case codec::utf_16le: return f.template operator()<utf16_units<le>>();
    case codec::utf_16be: return f.template operator()<utf16_units<be>>();
    case codec::ucs_2le: return f.template operator()<ucs2_units<le>>();
    case codec::ucs_2be: return f.template operator()<ucs2_units<be>>();
    case codec::ucs_4le: return f.template operator()<ucs4_units<le>>();
    case codec::ucs_4be: return f.template operator()<ucs4_units<be>>();
    case codec::utf_8:
    default:  // the BOM codecs never get here: layout_of and the sniff resolve them first
        return f.template operator()<utf8_units>();
    }
}

struct byte_order_mark {
    std::string_view bytes;
    codec selects;  // the concrete codec that decodes what follows
};

constexpr std::array utf16_boms{byte_order_mark{"\xFF\xFE"sv, codec::utf_16le},
                                byte_order_mark{"\xFE\xFF"sv, codec::utf_16be}};
constexpr std::array ucs2_boms{byte_order_mark{"\xFF\xFE"sv, codec::ucs_2le},
                               byte_order_mark{"\xFE\xFF"sv, codec::ucs_2be}};
constexpr std::array ucs4_boms{byte_order_mark{"\xFF\xFE\x00\x00"sv, codec::ucs_4le},
                               byte_order_mark{"\x00\x00\xFE\xFF"sv, codec::ucs_4be}};
constexpr std::array utf_boms{byte_order_mark{"\xEF\xBB\xBF"sv, codec::utf_8},
                              byte_order_mark{"\xFF\xFE"sv, codec::utf_16le},
                              byte_order_mark{"\xFE\xFF"sv, codec::utf_16be}};

// How a codec uses BOMs. Input: the BOMs it recognises at the start and the codec used
// without one. Output: the concrete codec it writes and the BOM before the first character.
struct codec_layout {
    std::span<const byte_order_mark> input_boms;
    codec without_bom;
    codec output_as;
    std::string_view output_bom;
};

codec_layout layout_of(codec c) noexcept {
    const auto utf_family = [](codec fallback) {
        return codec_layout{utf_boms, fallback, codec::utf_8, utf_boms[0].bytes};
    };
    switch (c) {
    case codec::utf_16: return {utf16_boms, codec::utf_16le, codec::utf_16le, utf16_boms[0].bytes};
    case codec::ucs_2: return {ucs2_boms, codec::ucs_2le, codec::ucs_2le, ucs2_boms[0].bytes};
    case codec::ucs_4: return {ucs4_boms, codec::ucs_4le, codec::ucs_4le, ucs4_boms[0].bytes};
    case codec::utf: return utf_family(codec::utf_8);
    case codec::utf_fallback_ascii: return utf_family(codec::ascii);
    case codec::utf_fallback_iso_8859_1: return utf_family(codec::iso_8859_1);
    // The fallback utf_16 has nothing left to sniff (its BOMs are the utf family's own), so
    // it is little endian, as Gambit's UTF-fallback-UTF-16 reads it.
    case codec::utf_fallback_utf_16: return utf_family(codec::utf_16le);
    case codec::utf_fallback_utf_16le: return utf_family(codec::utf_16le);
    case codec::utf_fallback_utf_16be: return utf_family(codec::utf_16be);
    default: return {{}, c, c, {}};
    }
}

struct sniffed {
    std::size_t bom_bytes;
    codec selects;
};

// Which BOM `in` starts with; nullopt while `in` is still a proper prefix of one and more
// input may come.
std::optional<sniffed> sniff_bom(const codec_layout& layout, std::string_view in,
                                 bool end_of_input) noexcept {
    for (const byte_order_mark& bom : layout.input_boms)
        if (in.starts_with(bom.bytes)) return sniffed{bom.bytes.size(), bom.selects};
    if (!end_of_input)
        for (const byte_order_mark& bom : layout.input_boms)
            if (bom.bytes.starts_with(in)) return std::nullopt;
    return sniffed{0, layout.without_bom};
}

// decoder::state_ holds the concrete codec + 1 once chosen.
constexpr std::uint8_t codec_not_chosen = 0;
constexpr std::uint8_t chosen_state(codec c) noexcept { return static_cast<std::uint8_t>(c) + 1; }
constexpr codec chosen_codec(std::uint8_t state) noexcept { return static_cast<codec>(state - 1); }

}  // namespace

decoder::decoder(const transcoder& t) : settings_(t) {
    const codec_layout layout = layout_of(t.codec());
    state_ = layout.input_boms.empty() ? chosen_state(t.codec()) : codec_not_chosen;
}

decode_result decoder::decode(std::string_view in, std::string& out, bool end_of_input) {
    std::size_t bom_bytes = 0;
    if (state_ == codec_not_chosen) {
        const std::optional<sniffed> found =
            sniff_bom(layout_of(settings_.codec()), in, end_of_input);
        if (!found) return {};
        state_ = chosen_state(found->selects);
        bom_bytes = found->bom_bytes;
        in.remove_prefix(bom_bytes);
    }
    output_buffer buffer(out);
    const transcode_result r = with_units(chosen_codec(state_), [&]<class Units>() {
        return transcode<Units, utf8_units>(in, buffer, end_of_input,
                                            settings_.error_handling_mode());
    });
    return {bom_bytes + r.consumed, r.error, r.bad_length};
}

encoder::encoder(const transcoder& t) : settings_(t) {}

encode_result encoder::encode(std::string_view in, std::string& out, bool end_of_text) {
    const codec_layout layout = layout_of(settings_.codec());
    output_buffer buffer(out);
    const std::size_t start = buffer.size();
    // The BOM goes in first and comes out again if this call writes no character, so it is
    // written exactly once, right before the first character, however the text is split.
    const bool bom_pending = !bom_written_ && !layout.output_bom.empty();
    if (bom_pending) buffer.append(layout.output_bom);
    const transcode_result r = with_units(layout.output_as, [&]<class Units>() {
        return transcode<utf8_units, Units>(in, buffer, end_of_text,
                                            settings_.error_handling_mode());
    });
    if (bom_pending) {
        if (buffer.size() == start + layout.output_bom.size())
            buffer.truncate(start);
        else
            bom_written_ = true;
    }
    return {r.consumed, r.error, r.bad_char, r.bad_length};
}

}  // namespace rill::detail
