// Valid text through every codec, in every error mode, both directions, whole / one byte per
// call / random cuts. The byte columns were checked against Gambit 4.9.3 (gsi), writing each
// text with (open-output-file (list path: f char-encoding: 'UTF-16 ...)) and reading the
// bytes back with (open-input-file (list path: f char-encoding: ...)): Gambit writes and
// reads exactly these bytes for every row here.
#include <rill/transcoder.hpp>

#include "codec_test_support.hpp"

namespace rill::test {
namespace {

struct valid_row {
    codec c;
    std::string_view text;  // UTF-8
    std::string_view bytes;  // in the codec, as Gambit writes them
};

std::ostream& operator<<(std::ostream& os, const valid_row& row) { return os << to_string(row.c); }

// "A\r\né€😀" (U+0041 U+000D U+000A U+00E9 U+20AC U+1F600): ASCII, CR LF passed through
// untranslated, Latin-1, BMP and non-BMP; cut to what the codec can hold.
constexpr std::string_view mixed_text = "A\r\n\u00E9\u20AC\U0001F600"sv;
constexpr std::string_view mixed_latin1 = "A\r\n\u00E9"sv;
constexpr std::string_view mixed_ascii = "A\r\n"sv;
constexpr std::string_view mixed_bmp = "A\r\n\u00E9\u20AC"sv;
constexpr std::string_view utf_family_bytes =
    "\xEF\xBB\xBF\x41\x0D\x0A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"sv;

// U+0000 U+007F U+0080 U+07FF U+0800 U+FEFF U+FFFD U+FFFF U+10000 U+10FFFF: every UTF-8 and
// UTF-16 length boundary, and U+FEFF inside the text, where it is a character, not a BOM.
constexpr std::string_view edges_text =
    "\x00\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBB\xBF\xEF\xBF\xBD\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"sv;
constexpr std::string_view edges_bmp =
    "\x00\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBB\xBF\xEF\xBF\xBD\xEF\xBF\xBF"sv;

const valid_row valid_rows[] = {
    {codec::iso_8859_1, mixed_latin1, "\x41\x0D\x0A\xE9"sv},
    {codec::ascii, mixed_ascii, "\x41\x0D\x0A"sv},
    {codec::utf_8, mixed_text, "\x41\x0D\x0A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"sv},
    {codec::utf_16, mixed_text,
     "\xFF\xFE\x41\x00\x0D\x00\x0A\x00\xE9\x00\xAC\x20\x3D\xD8\x00\xDE"sv},
    {codec::utf_16le, mixed_text, "\x41\x00\x0D\x00\x0A\x00\xE9\x00\xAC\x20\x3D\xD8\x00\xDE"sv},
    {codec::utf_16be, mixed_text, "\x00\x41\x00\x0D\x00\x0A\x00\xE9\x20\xAC\xD8\x3D\xDE\x00"sv},
    {codec::ucs_2, mixed_bmp, "\xFF\xFE\x41\x00\x0D\x00\x0A\x00\xE9\x00\xAC\x20"sv},
    {codec::ucs_2le, mixed_bmp, "\x41\x00\x0D\x00\x0A\x00\xE9\x00\xAC\x20"sv},
    {codec::ucs_2be, mixed_bmp, "\x00\x41\x00\x0D\x00\x0A\x00\xE9\x20\xAC"sv},
    {codec::ucs_4, mixed_text,
     "\xFF\xFE\x00\x00\x41\x00\x00\x00\x0D\x00\x00\x00\x0A\x00\x00\x00\xE9\x00\x00\x00\xAC\x20\x00\x00\x00\xF6\x01\x00"sv},
    {codec::ucs_4le, mixed_text,
     "\x41\x00\x00\x00\x0D\x00\x00\x00\x0A\x00\x00\x00\xE9\x00\x00\x00\xAC\x20\x00\x00\x00\xF6\x01\x00"sv},
    {codec::ucs_4be, mixed_text,
     "\x00\x00\x00\x41\x00\x00\x00\x0D\x00\x00\x00\x0A\x00\x00\x00\xE9\x00\x00\x20\xAC\x00\x01\xF6\x00"sv},
    {codec::utf, mixed_text, utf_family_bytes},
    {codec::utf_fallback_ascii, mixed_text, utf_family_bytes},
    {codec::utf_fallback_iso_8859_1, mixed_text, utf_family_bytes},
    {codec::utf_fallback_utf_16, mixed_text, utf_family_bytes},
    {codec::utf_fallback_utf_16le, mixed_text, utf_family_bytes},
    {codec::utf_fallback_utf_16be, mixed_text, utf_family_bytes},

    {codec::iso_8859_1, "\x00\x7F\xC2\x80\xC3\xBF"sv, "\x00\x7F\x80\xFF"sv},
    {codec::ascii, "\x00\x7F"sv, "\x00\x7F"sv},
    {codec::utf_8, edges_text, edges_text},
    {codec::utf_16, edges_text,
     "\xFF\xFE\x00\x00\x7F\x00\x80\x00\xFF\x07\x00\x08\xFF\xFE\xFD\xFF\xFF\xFF\x00\xD8\x00\xDC\xFF\xDB\xFF\xDF"sv},
    {codec::utf_16le, edges_text,
     "\x00\x00\x7F\x00\x80\x00\xFF\x07\x00\x08\xFF\xFE\xFD\xFF\xFF\xFF\x00\xD8\x00\xDC\xFF\xDB\xFF\xDF"sv},
    {codec::utf_16be, edges_text,
     "\x00\x00\x00\x7F\x00\x80\x07\xFF\x08\x00\xFE\xFF\xFF\xFD\xFF\xFF\xD8\x00\xDC\x00\xDB\xFF\xDF\xFF"sv},
    {codec::ucs_2, edges_bmp,
     "\xFF\xFE\x00\x00\x7F\x00\x80\x00\xFF\x07\x00\x08\xFF\xFE\xFD\xFF\xFF\xFF"sv},
    {codec::ucs_2le, edges_bmp,
     "\x00\x00\x7F\x00\x80\x00\xFF\x07\x00\x08\xFF\xFE\xFD\xFF\xFF\xFF"sv},
    {codec::ucs_2be, edges_bmp,
     "\x00\x00\x00\x7F\x00\x80\x07\xFF\x08\x00\xFE\xFF\xFF\xFD\xFF\xFF"sv},
    {codec::ucs_4, edges_text,
     "\xFF\xFE\x00\x00\x00\x00\x00\x00\x7F\x00\x00\x00\x80\x00\x00\x00\xFF\x07\x00\x00\x00\x08\x00"
     "\x00"
     "\xFF\xFE\x00\x00\xFD\xFF\x00\x00\xFF\xFF\x00\x00\x00\x00\x01\x00\xFF\xFF\x10\x00"sv},
    {codec::ucs_4le, edges_text,
     "\x00\x00\x00\x00\x7F\x00\x00\x00\x80\x00\x00\x00\xFF\x07\x00\x00\x00\x08\x00\x00"
     "\xFF\xFE\x00\x00\xFD\xFF\x00\x00\xFF\xFF\x00\x00\x00\x00\x01\x00\xFF\xFF\x10\x00"sv},
    {codec::ucs_4be, edges_text,
     "\x00\x00\x00\x00\x00\x00\x00\x7F\x00\x00\x00\x80\x00\x00\x07\xFF\x00\x00\x08\x00"
     "\x00\x00\xFE\xFF\x00\x00\xFF\xFD\x00\x00\xFF\xFF\x00\x01\x00\x00\x00\x10\xFF\xFF"sv},
    {codec::utf, edges_text,
     "\xEF\xBB\xBF\x00\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBB\xBF\xEF\xBF\xBD\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"sv},

    // No text, no bytes: a BOM is written before the first character, so none here.
    {codec::utf_16, ""sv, ""sv},
    {codec::ucs_4, ""sv, ""sv},
    {codec::utf, ""sv, ""sv},
};

class CodecValidText : public testing::TestWithParam<valid_row> {};

TEST_P(CodecValidText, DecodesInEveryMode) {
    expect_decode_all_modes(GetParam().c, GetParam().bytes, GetParam().text);
}

TEST_P(CodecValidText, EncodesInEveryMode) {
    expect_encode_all_modes(GetParam().c, GetParam().text, GetParam().bytes);
}

INSTANTIATE_TEST_SUITE_P(GambitChecked, CodecValidText, testing::ValuesIn(valid_rows));

// Input-only forms: the other byte order's BOM, and BOMs where a codec has none. Checked
// against gsi too (Gambit reads each of these the same way).
struct decode_row {
    codec c;
    std::string_view bytes;
    std::string_view text;
};

std::ostream& operator<<(std::ostream& os, const decode_row& row) { return os << to_string(row.c); }

const decode_row bom_rows[] = {
    // utf_16, ucs_2, ucs_4 take the byte order from the BOM, little endian without one.
    {codec::utf_16, "\xFE\xFF\x00\x41\x00\xE9\xD8\x3D\xDE\x00"sv, "A\u00E9\U0001F600"sv},
    {codec::utf_16, "\x41\x00\xE9\x00"sv, "A\u00E9"sv},
    {codec::utf_16, "\xFF\xFE"sv, ""sv},
    {codec::utf_16, "\xFF\xFE\xFF\xFE\x41\x00"sv, "\uFEFFA"sv},  // only the first is a BOM
    {codec::utf_16, "\xFE\xFF\x00\x41\xFF\xFE"sv, "A\uFFFE"sv},
    {codec::ucs_2, "\xFE\xFF\x00\x41\x20\xAC"sv, "A\u20AC"sv},
    {codec::ucs_2, "\x41\x00\xE9\x00"sv, "A\u00E9"sv},
    {codec::ucs_4, "\x00\x00\xFE\xFF\x00\x00\x00\x41\x00\x01\xF6\x00"sv, "A\U0001F600"sv},
    {codec::ucs_4, "\x41\x00\x00\x00"sv, "A"sv},
    {codec::ucs_4, "\xFF\xFE\x00\x00\xFF\xFE\x00\x00"sv, "\uFEFF"sv},
    // The LE/BE variants and utf_8 have no BOM processing: U+FEFF is a character.
    {codec::utf_8, "\xEF\xBB\xBF\x41"sv, "\uFEFFA"sv},
    {codec::utf_16le, "\xFF\xFE\x41\x00"sv, "\uFEFFA"sv},
    {codec::utf_16le, "\xFE\xFF\x00\x41"sv, "\uFFFE\u4100"sv},
    {codec::utf_16be, "\xFE\xFF\x00\x41"sv, "\uFEFFA"sv},
    {codec::ucs_2le, "\xFF\xFE\x41\x00"sv, "\uFEFFA"sv},
    {codec::ucs_2be, "\xFE\xFF\x00\x41"sv, "\uFEFFA"sv},
    {codec::ucs_4le, "\xFF\xFE\x00\x00\x41\x00\x00\x00"sv, "\uFEFFA"sv},
    {codec::ucs_4be, "\x00\x00\xFE\xFF\x00\x00\x00\x41"sv, "\uFEFFA"sv},
    // The utf family: a UTF-8 / UTF-16LE / UTF-16BE BOM selects the decoder, else the fallback.
    {codec::utf, "\xFF\xFE\x41\x00\xE9\x00\x3D\xD8\x00\xDE"sv, "A\u00E9\U0001F600"sv},
    {codec::utf, "\xFE\xFF\x00\x41\x00\xE9\xD8\x3D\xDE\x00"sv, "A\u00E9\U0001F600"sv},
    {codec::utf, "\x41\xC3\xA9"sv, "A\u00E9"sv},
    {codec::utf, "\xEF\xBB\xBF\xEF\xBB\xBF"sv, "\uFEFF"sv},
    {codec::utf_fallback_ascii, "\xFF\xFE\x41\x00\xE9\x00"sv, "A\u00E9"sv},
    {codec::utf_fallback_ascii, "\x41\x00\x42"sv,
     "A\x00"
     "B"sv},
    {codec::utf_fallback_iso_8859_1, "\x41\xC3\xA9"sv, "A\u00C3\u00A9"sv},
    {codec::utf_fallback_iso_8859_1, "\xEF\xBB\xBF\x41\xC3\xA9"sv, "A\u00E9"sv},
    {codec::utf_fallback_iso_8859_1, "\xEF\xBB\x41"sv, "\u00EF\u00BBA"sv},  // not a whole BOM
    {codec::utf_fallback_utf_16, "\x41\x00\xE9\x00"sv, "A\u00E9"sv},  // fallback: little endian
    {codec::utf_fallback_utf_16, "\xEF\xBB\xBF\x41"sv, "A"sv},
    {codec::utf_fallback_utf_16le, "\x41\x00\xE9\x00"sv, "A\u00E9"sv},
    {codec::utf_fallback_utf_16be, "\x00\x41\x00\xE9"sv, "A\u00E9"sv},
    {codec::utf_fallback_utf_16be, "\xFF\xFE\x41\x00"sv, "A"sv},
    // Input shorter than any BOM it starts like is decoded by the fallback (Gambit raises
    // here instead; see src/text/DIFFERENCES.md).
    {codec::utf_fallback_iso_8859_1, "\xEF\xBB"sv, "\u00EF\u00BB"sv},
    {codec::utf_fallback_iso_8859_1, "\xFF"sv, "\u00FF"sv},
    {codec::utf_fallback_utf_16, "\xEF\xBB"sv, "\uBBEF"sv},
};

class CodecBomInput : public testing::TestWithParam<decode_row> {};

TEST_P(CodecBomInput, DecodesInEveryMode) {
    expect_decode_all_modes(GetParam().c, GetParam().bytes, GetParam().text);
}

INSTANTIATE_TEST_SUITE_P(GambitChecked, CodecBomInput, testing::ValuesIn(bom_rows));

// Long mostly-ASCII text with one non-ASCII character at every offset around the 8- and
// 16-byte block boundaries of the fast paths, in every codec that can hold it: decoding and
// encoding must agree with the one-byte-per-call drive, which never takes a block path.
TEST(CodecFastPaths, NonAsciiAtEveryBlockOffset) {
    constexpr std::size_t ascii_run_bytes = 70;
    const std::string_view specials[] = {"\u00E9"sv, "\u20AC"sv, "\U0001F600"sv, "\x7F"sv};
    for (codec c : rill_test::every_codec()) {
        for (std::string_view special : specials) {
            for (std::size_t at = 0; at <= ascii_run_bytes; ++at) {
                std::string text(ascii_run_bytes, 'a');
                for (std::size_t i = 0; i < text.size(); ++i)
                    text[i] = static_cast<char>('a' + i % 26);
                text.insert(at, special);
                const transcoder t(c, eol_style::none, error_handling_mode::raise);
                const codec_check::trace encoded = codec_check::encode_with_cuts(t, text, {});
                const codec_check::trace encoded_bytewise = codec_check::encode_with_cuts(
                    t, text, codec_check::cuts_every_byte(text.size()));
                ASSERT_EQ(encoded, encoded_bytewise) << to_string(c) << " at " << at;
                if (!encoded.errors.empty()) continue;  // the codec cannot hold `special`
                const codec_check::trace decoded =
                    codec_check::decode_with_cuts(t, encoded.output, {});
                ASSERT_EQ(decoded.output, text) << to_string(c) << " at " << at;
                ASSERT_EQ(decoded, codec_check::decode_with_cuts(
                                       t, encoded.output,
                                       codec_check::cuts_every_byte(encoded.output.size())))
                    << to_string(c) << " at " << at;
            }
        }
    }
}

// Output is appended: whatever the caller's string already holds stays in front.
TEST(CodecOutput, AppendsToExistingText) {
    detail::decoder d{transcoder(codec::utf_16le)};
    std::string out = "kept:";
    const detail::decode_result r = d.decode("\x41\x00\x42\x00"sv, out, true);
    EXPECT_EQ(out, "kept:AB");
    EXPECT_EQ(r.consumed, 4u);

    detail::encoder e{transcoder(codec::utf_16)};
    std::string bytes = "kept:";
    EXPECT_EQ(e.encode("A", bytes).consumed, 1u);
    EXPECT_EQ(e.encode("B", bytes).consumed, 1u);
    EXPECT_EQ(bytes, "kept:\xFF\xFE\x41\x00\x42\x00"sv);  // one BOM across calls
}

// A cut character is left for the next call and completes exactly as if whole.
TEST(CodecOutput, CutCharacterIsLeftUnconsumed) {
    detail::decoder d{transcoder(codec::utf_8, eol_style::none, error_handling_mode::raise)};
    std::string out;
    detail::decode_result r = d.decode("A\xF0\x9F"sv, out, false);
    EXPECT_EQ(r.consumed, 1u);
    EXPECT_FALSE(r.error);
    r = d.decode("\xF0\x9F\x98\x80"sv, out, false);
    EXPECT_EQ(r.consumed, 4u);
    EXPECT_EQ(out, "A\U0001F600");

    detail::encoder e{transcoder(codec::utf_16be, eol_style::none, error_handling_mode::raise)};
    std::string bytes;
    EXPECT_EQ(e.encode("A\xE2\x82"sv, bytes).consumed, 1u);
    EXPECT_EQ(e.encode("\xE2\x82\xAC"sv, bytes).consumed, 3u);
    EXPECT_EQ(bytes, "\x00\x41\x20\xAC"sv);
}

// A BOM cut between calls is waited for, not taken as the start of the text.
TEST(CodecOutput, CutBomIsLeftUnconsumed) {
    detail::decoder d{transcoder(codec::ucs_4)};
    std::string out;
    EXPECT_EQ(d.decode("\x00\x00\xFE"sv, out, false).consumed, 0u);
    EXPECT_EQ(d.decode("\x00\x00\xFE\xFF\x00\x00\x00\x41"sv, out, false).consumed, 8u);
    EXPECT_EQ(out, "A");
}

}  // namespace
}  // namespace rill::test
