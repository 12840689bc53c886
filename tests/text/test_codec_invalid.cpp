// Ill-formed input and unencodable text, in every error mode, whole / one byte per call /
// random cuts. Decoder rows are written as the raise trace ("[!N]" = an error over N bytes);
// ignore must give the same text without the markers and replace one U+FFFD per marker.
// Every row was also run through Gambit 4.9.3 (gsi, char-encoding-errors: #t and #f); where
// Gambit agrees the row says nothing, where it differs the comment says what Gambit does and
// src/text/DIFFERENCES.md says why rill differs.
#include <rill/transcoder.hpp>

#include "codec_test_support.hpp"

namespace rill::test {
namespace {

struct invalid_row {
    codec c;
    std::string_view bytes;
    std::string_view raised;
};

std::ostream& operator<<(std::ostream& os, const invalid_row& row) {
    return os << to_string(row.c);
}

const invalid_row invalid_rows[] = {
    // UTF-8: one error per maximal ill-formed subsequence (Unicode 3.9, Table 3-8).
    {codec::utf_8,
     "A\x80"
     "B"sv,
     "A[!1]B"sv},
    {codec::utf_8,
     "A\xFF"
     "B"sv,
     "A[!1]B"sv},
    {codec::utf_8,
     "A\xC0\x80"
     "B"sv,
     "A[!1][!1]B"sv},  // Gambit: 1 error
    {codec::utf_8,
     "A\xC1\xBF"
     "B"sv,
     "A[!1][!1]B"sv},  // Gambit: 1 error
    {codec::utf_8,
     "A\xE0\x80\x80"
     "B"sv,
     "A[!1][!1][!1]B"sv},  // Gambit: 1 error
    {codec::utf_8,
     "A\xE0\x9F\xBF"
     "B"sv,
     "A[!1][!1][!1]B"sv},  // Gambit: 1 error
    {codec::utf_8,
     "A\xF0\x80\x80\x80"
     "B"sv,
     "A[!1][!1][!1][!1]B"sv},  // Gambit: 1 error
    {codec::utf_8,
     "A\xF4\x90\x80\x80"
     "B"sv,
     "A[!1][!1][!1][!1]B"sv},  // Gambit: 1 error
    {codec::utf_8, "A\xF8\x88\x80\x80\x80"sv, "A[!1][!1][!1][!1][!1]"sv},  // Gambit: 1 error
    {codec::utf_8,
     "A\xED\xA0\x80"
     "B"sv,
     "A[!1][!1][!1]B"sv},  // Gambit: U+D800, no error
    {codec::utf_8,
     "A\xED\xBF\xBF"
     "B"sv,
     "A[!1][!1][!1]B"sv},  // Gambit: U+DFFF, no error
    {codec::utf_8, "\xED\x9F\xBF\xEE\x80\x80"sv,
     "\uD7FF\uE000"sv},  // either side of the surrogates
    {codec::utf_8,
     "A\xF5\x80"
     "B"sv,
     "A[!1][!1]B"sv},  // Gambit: 1 error, B lost
    {codec::utf_8,
     "A\xE2\x82"
     "B"sv,
     "A[!2]B"sv},  // Gambit: B lost
    {codec::utf_8,
     "A\xC3"
     "B"sv,
     "A[!1]B"sv},  // Gambit: B lost
    {codec::utf_8,
     "A\xF0\x9F\xC3\xA9"
     "B"sv,
     "A[!2]\u00E9"
     "B"sv},  // Gambit: é lost
    {codec::utf_8, "A\xE2\xC3\xA9"sv, "A[!1]\u00E9"sv},  // Gambit: é lost
    // A character cut by the end of input is one error in every mode.
    {codec::utf_8, "A\xE2\x82"sv, "A[!2]"sv},  // Gambit replace: dropped without U+FFFD
    {codec::utf_8, "A\xF0\x9F\x98"sv, "A[!3]"sv},  // Gambit replace: dropped without U+FFFD
    {codec::utf_8, "\xC3"sv, "[!1]"sv},  // Gambit replace: dropped without U+FFFD

    // ascii: bytes >= 0x80 are errors (Gambit reads them as Latin-1, no error).
    {codec::ascii,
     "A\x80"
     "B"sv,
     "A[!1]B"sv},
    {codec::ascii, "\xFF\xC3\xA9"sv, "[!1][!1][!1]"sv},

    // UTF-16: unpaired surrogates, cut units.
    {codec::utf_16le, "\x41\x00\x00\xDC\x42\x00"sv, "A[!2]B"sv},
    {codec::utf_16le, "\x41\x00\x00\xD8\x42\x00"sv, "A[!2]B"sv},  // Gambit: B lost
    {codec::utf_16le, "\x41\x00\x00\xD8\x00\xD8\x00\xDC"sv,
     "A[!2]\U00010000"sv},  // Gambit: U+10000 lost
    {codec::utf_16le, "\x41\x00\x00\xD8"sv, "A[!2]"sv},
    {codec::utf_16le, "\x41\x00\x3D\xD8\x00"sv, "A[!3]"sv},  // the cut pair is one error
    {codec::utf_16le, "\x41\x00\x42"sv, "A[!1]"sv},  // Gambit: dropped even under raise
    {codec::utf_16be, "\x00\x41\xD8\x00\x00\x42"sv, "A[!2]B"sv},  // Gambit: B lost
    {codec::utf_16be, "\x00\x41\xDC\x00"sv, "A[!2]"sv},
    // 0x41 cannot start a low surrogate, so the high one is already unpaired; then a cut unit.
    {codec::utf_16be, "\x00\x41\xD8\x00\x41"sv, "A[!2][!1]"sv},  // Gambit: 1 error
    {codec::utf_16be, "\x00\x41\x00"sv, "A[!1]"sv},  // Gambit: dropped even under raise
    {codec::utf_16, "\xFF\xFE\x41"sv, "[!1]"sv},  // Gambit: dropped even under raise
    {codec::utf_16, "\xFE\xFF\x00"sv, "[!1]"sv},  // Gambit: dropped even under raise
    {codec::utf_16, "\xFE"sv, "[!1]"sv},  // Gambit replace: dropped
    {codec::utf_16, "\xFE\xFF\xDC\x00\x00\x41"sv, "[!2]A"sv},

    // UCS-2: a surrogate unit is an error on its own (Gambit returns it as a character).
    {codec::ucs_2le, "\x41\x00\x00\xD8\x42\x00"sv, "A[!2]B"sv},
    {codec::ucs_2le, "\x41\x00\x3D\xD8\x00\xDE"sv, "A[!2][!2]"sv},
    {codec::ucs_2le, "\x41\x00\x42"sv, "A[!1]"sv},  // Gambit replace: dropped
    {codec::ucs_2be, "\xDC\x00\x00\x41"sv, "[!2]A"sv},
    {codec::ucs_2, "\xFE\xFF\xD8\x3D\xDE\x00"sv, "[!2][!2]"sv},

    // UCS-4: surrogates and values above U+10FFFF (Gambit accepts surrogates).
    {codec::ucs_4le, "\x41\x00\x00\x00\x00\xD8\x00\x00\x42\x00\x00\x00"sv, "A[!4]B"sv},
    {codec::ucs_4le, "\x41\x00\x00\x00\x00\x00\x11\x00\x42\x00\x00\x00"sv, "A[!4]B"sv},
    {codec::ucs_4le, "\x00\x00\x00\x80"sv, "[!4]"sv},
    {codec::ucs_4le, "\xFF\xFF\x10\x00"sv, "\U0010FFFF"sv},
    {codec::ucs_4le, "\x41\x00\x00\x00\x42\x00"sv, "A[!2]"sv},  // Gambit replace: dropped
    {codec::ucs_4be, "\x00\x00\x00\x41\x00\x00\xDF\xFF"sv, "A[!4]"sv},
    {codec::ucs_4be, "\x00\x11\x00\x00"sv, "[!4]"sv},
    {codec::ucs_4be, "\x00\x00\x00\x41\x00"sv, "A[!1]"sv},  // Gambit replace: dropped
    {codec::ucs_4, "\xFF\xFE"sv, "[!2]"sv},  // Gambit replace: dropped
    {codec::ucs_4, "\xFF\xFE\x00\x00\x41"sv, "[!1]"sv},

    // The utf family: after the sniff, errors are the chosen decoder's.
    {codec::utf, "\xEF\xBB"sv, "[!2]"sv},  // a cut UTF-8 character (Gambit replace: dropped)
    {codec::utf, "\xEF\xBB\x41\x00"sv, "[!2]A\x00"sv},  // Gambit: A lost
    {codec::utf, "\x41\x00\xE9\x00"sv, "A\x00[!1]\x00"sv},  // Gambit: the last U+0000 lost
    {codec::utf, "\xEF\xBB\xBF\x80"sv, "[!1]"sv},
    {codec::utf, "\xFF\xFE\x41"sv, "[!1]"sv},  // Gambit: dropped even under raise
    {codec::utf_fallback_ascii, "A\xC3\xA9"sv, "A[!1][!1]"sv},  // Gambit: Latin-1, no error
    {codec::utf_fallback_utf_16, "A\xC3\xA9"sv,
     "\uC341[!1]"sv},  // Gambit: dropped even under raise
    {codec::utf_fallback_utf_16be, "\xD8\x00"sv, "[!2]"sv},
};

class CodecInvalidInput : public testing::TestWithParam<invalid_row> {};

TEST_P(CodecInvalidInput, EachModeHandlesEachIllFormedSubsequence) {
    expect_decode_all_modes(GetParam().c, GetParam().bytes, GetParam().raised);
}

INSTANTIATE_TEST_SUITE_P(GambitCompared, CodecInvalidInput, testing::ValuesIn(invalid_rows));

struct unencodable_row {
    codec c;
    std::string_view text;  // the program's UTF-8, valid or not
    std::string_view raised, replaced, ignored;
};

std::ostream& operator<<(std::ostream& os, const unencodable_row& row) {
    return os << to_string(row.c);
}

const unencodable_row unencodable_rows[] = {
    // Outside the repertoire: '?' where the codec has no U+FFFD, else its U+FFFD.
    {codec::ascii,
     "A\u00E9"
     "B"sv,
     "A[!U+00E9/2]B"sv, "A?B"sv, "AB"sv},  // Gambit writes E9
    {codec::ascii, "\u0080"sv, "[!U+0080/2]"sv, "?"sv, ""sv},  // Gambit writes 80
    {codec::iso_8859_1,
     "A\u0100\U0001F600"
     "B"sv,
     "A[!U+0100/2][!U+1F600/4]B"sv, "A??B"sv, "AB"sv},
    {codec::ucs_2le,
     "A\U0001F600"
     "B"sv,
     "A\x00[!U+1F600/4]B\x00"sv,
     "A\x00\xFD\xFF"
     "B\x00"sv,
     "A\x00"
     "B\x00"sv},
    {codec::ucs_2be, "\U0010FFFF"sv, "[!U+10FFFF/4]"sv, "\xFF\xFD"sv, ""sv},
    // The BOM goes before the first character written: in replace mode that is the U+FFFD.
    {codec::ucs_2,
     "\U0001F600"
     "A"sv,
     "[!U+1F600/4]\xFF\xFE\x41\x00"sv, "\xFF\xFE\xFD\xFF\x41\x00"sv, "\xFF\xFE\x41\x00"sv},
    // Invalid UTF-8 from the program: reported as U+DC00 + byte, one per maximal subsequence.
    {codec::utf_8,
     "A\x80"
     "B"sv,
     "A[!U+DC80/1]B"sv,
     "A\xEF\xBF\xBD"
     "B"sv,
     "AB"sv},
    {codec::utf_8,
     "\xE2\x82"
     "B"sv,
     "[!U+DCE2/2]B"sv,
     "\xEF\xBF\xBD"
     "B"sv,
     "B"sv},
    {codec::utf_16le,
     "A\xED\xA0\x80"
     "B"sv,
     "A\x00[!U+DCED/1][!U+DCA0/1][!U+DC80/1]B\x00"sv,
     "A\x00\xFD\xFF\xFD\xFF\xFD\xFF"
     "B\x00"sv,
     "A\x00"
     "B\x00"sv},
    {codec::ascii, "\xFF"sv, "[!U+DCFF/1]"sv, "?"sv, ""sv},
    {codec::ucs_4be, "\xF4\x90\x80\x80"sv, "[!U+DCF4/1][!U+DC90/1][!U+DC80/1][!U+DC80/1]"sv,
     "\x00\x00\xFF\xFD\x00\x00\xFF\xFD\x00\x00\xFF\xFD\x00\x00\xFF\xFD"sv, ""sv},
    {codec::utf,
     "\x80"
     "A"sv,
     "[!U+DC80/1]\xEF\xBB\xBF"
     "A"sv,
     "\xEF\xBB\xBF\xEF\xBF\xBD"
     "A"sv,
     "\xEF\xBB\xBF"
     "A"sv},
    // A sequence cut at the end of the text is held back in every mode, for the next call.
    {codec::iso_8859_1, "A\xC3"sv, "A[cut 1]"sv, "A[cut 1]"sv, "A[cut 1]"sv},
    {codec::utf_16, "\xF0\x9F\x98"sv, "[cut 3]"sv, "[cut 3]"sv, "[cut 3]"sv},
};

class CodecUnencodableText : public testing::TestWithParam<unencodable_row> {};

TEST_P(CodecUnencodableText, EachModeHandlesEachCharacter) {
    const unencodable_row& row = GetParam();
    expect_encode(transcoder(row.c, eol_style::none, error_handling_mode::raise), row.text,
                  row.raised);
    expect_encode(transcoder(row.c, eol_style::none, error_handling_mode::replace), row.text,
                  row.replaced);
    expect_encode(transcoder(row.c, eol_style::none, error_handling_mode::ignore), row.text,
                  row.ignored);
}

INSTANTIATE_TEST_SUITE_P(GambitCompared, CodecUnencodableText, testing::ValuesIn(unencodable_rows));

// The raise contract of codec.hpp, field by field.
TEST(CodecRaise, DecoderStopsBeforeTheBadBytes) {
    detail::decoder d{transcoder(codec::utf_8, eol_style::none, error_handling_mode::raise)};
    std::string out;
    const detail::decode_result r = d.decode("ab\xE2\x82"
                                             "cd"sv,
                                             out, false);
    EXPECT_TRUE(r.error);
    EXPECT_EQ(r.consumed, 2u);
    EXPECT_EQ(r.bad_length, 2u);
    EXPECT_EQ(out, "ab");
    // The caller skips the bad bytes and carries on with the same decoder.
    const detail::decode_result rest = d.decode("cd"sv, out, true);
    EXPECT_FALSE(rest.error);
    EXPECT_EQ(rest.consumed, 2u);
    EXPECT_EQ(out, "abcd");
}

TEST(CodecRaise, EncoderStopsBeforeTheBadCharacter) {
    detail::encoder e{transcoder(codec::iso_8859_1, eol_style::none, error_handling_mode::raise)};
    std::string out;
    const detail::encode_result r = e.encode("ab\u20AC"
                                             "cd"sv,
                                             out);
    EXPECT_TRUE(r.error);
    EXPECT_EQ(r.consumed, 2u);
    EXPECT_EQ(r.bad_char, U'\u20AC');
    EXPECT_EQ(r.bad_length, 3u);
    EXPECT_EQ(out, "ab");
}

// Every codec must obey the fuzzers' properties on every 1-byte input, and on every 2-byte
// input whose second byte is at a boundary of some format (the rest of that space, and the
// 3- and 4-byte space, is the fuzzers' job).
TEST(CodecSweep, ShortInputsObeyTheFuzzProperties) {
    constexpr int no_second_byte = -1;
    const int second_bytes[] = {no_second_byte, 0x00, 0x10, 0x11, 0x41, 0x7F, 0x80, 0x8F, 0x90,
                                0x9F,           0xA0, 0xBB, 0xBF, 0xC0, 0xC2, 0xD8, 0xDB, 0xDC,
                                0xDF,           0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFE, 0xFF};
    for (std::size_t c = 0; c < codec_check::codec_count; ++c) {
        for (unsigned first = 0; first < 256; ++first) {
            for (int second : second_bytes) {
                const std::uint8_t input[] = {static_cast<std::uint8_t>(c), 0, 0,
                                              static_cast<std::uint8_t>(first),
                                              static_cast<std::uint8_t>(second)};
                const std::size_t size = second == no_second_byte ? 4 : 5;
                ASSERT_EQ(codec_check::check_decoder_input(input, size), "")
                    << first << " " << second;
                ASSERT_EQ(codec_check::check_encoder_input(input, size), "")
                    << first << " " << second;
            }
        }
    }
}

}  // namespace
}  // namespace rill::test
