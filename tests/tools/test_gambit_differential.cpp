// Differential test against the reference: the seed's echo server run by `rill echo --mode
// persistent --transcoder CODEC,EOL,ERRORS` and by Gambit Scheme 4.9 (gambit_transcoding_echo.scm,
// open-tcp-server with the same char-encoding, eol-encoding and char-encoding-errors), for
// every codec x eol style x error mode (18 x 4 x 3 = 216 combinations). Both get identical
// bytes over the loopback: valid text with ASCII, Latin-1, BMP and non-BMP characters and
// line ends of every kind (with each BOM the codec reads), whole and in segments, and ill-formed
// sequences of the codec's format (one per connection, so raise mode, which ends the echo's
// connection, is compared on each). The bytes that come back must be the same, except for the
// cases listed once in `known_differences` (src/text/DIFFERENCES.md), where rill's bytes are
// asserted instead.
//
// rill's bytes are also checked against a model of its documented behaviour (echo_model):
// the decoded text (given with each case, U+FFFD marking each ill-formed subsequence) cut
// into lines by the eol style and written back through the codec. That is what the known
// differences assert, and what eol style `none` is held to (Gambit refuses `none`; an echo
// under none, no translation, gives what lf gives, so Gambit runs with lf for it).
//
// One Gambit process serves every combination of a codec (a server per combination, port 0);
// one `rill echo` runs per combination. Processes are stopped by PID and reaped.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <rill/transcoder.hpp>

#include "support/child_process.hpp"
#include "support/codecs.hpp"
#include "support/files.hpp"
#include "support/loopback.hpp"
#include "support/rill_tool.hpp"
#include "support/text_model.hpp"
#include "text/codec.hpp"

namespace {

using namespace std::chrono_literals;
using namespace std::string_view_literals;
using rill::codec;
using rill::eol_style;
using rill::error_handling_mode;
using rill_test::child_process;
using rill_test::codec_count;
using rill_test::every_eol_style;
using rill_test::every_error_mode;
using rill_test::hex;
using rill_test::rill_tool;
using rill_test::start_rill_echo;

constexpr auto start_limit = 10s;
// Between the segments of a split send: long enough for each to be read on its own.
constexpr auto segment_pause = 2ms;

const std::string gambit_script = rill_test::source("tests/tools/gambit_transcoding_echo.scm");

// ---- Gambit's names for the settings ---------------------------------------------------------

std::string_view gambit_codec(codec c) {
    constexpr std::string_view names[codec_count] = {"ISO-8859-1",
                                                     "ASCII",
                                                     "UTF-8",
                                                     "UTF-16",
                                                     "UTF-16LE",
                                                     "UTF-16BE",
                                                     "UCS-2",
                                                     "UCS-2LE",
                                                     "UCS-2BE",
                                                     "UCS-4",
                                                     "UCS-4LE",
                                                     "UCS-4BE",
                                                     "UTF",
                                                     "UTF-fallback-ASCII",
                                                     "UTF-fallback-ISO-8859-1",
                                                     "UTF-fallback-UTF-16",
                                                     "UTF-fallback-UTF-16LE",
                                                     "UTF-fallback-UTF-16BE"};
    return names[static_cast<std::size_t>(c)];
}

// Gambit has no eol-encoding none (open-tcp-server refuses it); rill's none, no translation,
// reads lines ended by LF and writes '\n' as LF, which is what lf does.
std::string_view gambit_eol(eol_style e) {
    switch (e) {
    case eol_style::cr: return "cr";
    case eol_style::crlf: return "cr-lf";
    case eol_style::lf:
    case eol_style::none: break;
    }
    return "lf";
}

// Gambit's char-encoding-errors is #t (raise) or #f (replace); Slogan's ignore has nothing to
// map to and raises (DIFFERENCES.md §1).
std::string_view gambit_errors(error_handling_mode m) {
    return m == error_handling_mode::replace ? "replace" : "raise";
}

// ---- Inputs ------------------------------------------------------------------------------------

// A concrete byte format: how a codec reads its input once any BOM is dealt with.
enum class form {
    iso_8859_1,
    ascii,
    utf_8,
    utf_16le,
    utf_16be,
    ucs_2le,
    ucs_2be,
    ucs_4le,
    ucs_4be
};

std::string_view form_name(form f) {
    constexpr std::string_view names[] = {"iso_8859_1", "ascii",    "utf_8",
                                          "utf_16le",   "utf_16be", "ucs_2le",
                                          "ucs_2be",    "ucs_4le",  "ucs_4be"};
    return names[static_cast<std::size_t>(f)];
}

codec codec_of(form f) {
    constexpr codec codecs[] = {codec::iso_8859_1, codec::ascii,    codec::utf_8,
                                codec::utf_16le,   codec::utf_16be, codec::ucs_2le,
                                codec::ucs_2be,    codec::ucs_4le,  codec::ucs_4be};
    return codecs[static_cast<std::size_t>(f)];
}

char32_t largest_character(form f) {
    switch (f) {
    case form::ascii: return 0x7F;
    case form::iso_8859_1: return 0xFF;
    case form::ucs_2le:
    case form::ucs_2be: return 0xFFFF;
    default: return 0x10FFFF;
    }
}

// `utf8` in the format (rill's encoders, whose bytes tests/text checked against Gambit and
// which the valid cases below check again).
std::string encoded(form f, std::string_view utf8) {
    rill::detail::encoder e(
        rill::transcoder(codec_of(f), eol_style::none, error_handling_mode::raise));
    std::string bytes;
    const rill::detail::encode_result r = e.encode(utf8, bytes);
    EXPECT_TRUE(!r.error && r.consumed == utf8.size())
        << "cannot encode the test text in " << form_name(f);
    return bytes;
}

// How a codec reads: with no BOM, and with each BOM it recognises.
struct reading {
    std::string_view bom;  // the bytes the input starts with
    form f;  // the format of what follows
    std::string_view name;
};

std::vector<reading> readings_of(codec c) {
    const auto utf_family = [](form fallback) {
        return std::vector<reading>{{""sv, fallback, "no BOM"sv},
                                    {"\xEF\xBB\xBF"sv, form::utf_8, "UTF-8 BOM"sv},
                                    {"\xFF\xFE"sv, form::utf_16le, "UTF-16LE BOM"sv},
                                    {"\xFE\xFF"sv, form::utf_16be, "UTF-16BE BOM"sv}};
    };
    switch (c) {
    case codec::iso_8859_1: return {{""sv, form::iso_8859_1, ""sv}};
    case codec::ascii: return {{""sv, form::ascii, ""sv}};
    case codec::utf_8: return {{""sv, form::utf_8, ""sv}};
    case codec::utf_16:
        return {{""sv, form::utf_16le, "no BOM"sv},
                {"\xFF\xFE"sv, form::utf_16le, "LE BOM"sv},
                {"\xFE\xFF"sv, form::utf_16be, "BE BOM"sv}};
    case codec::utf_16le: return {{""sv, form::utf_16le, ""sv}};
    case codec::utf_16be: return {{""sv, form::utf_16be, ""sv}};
    case codec::ucs_2:
        return {{""sv, form::ucs_2le, "no BOM"sv},
                {"\xFF\xFE"sv, form::ucs_2le, "LE BOM"sv},
                {"\xFE\xFF"sv, form::ucs_2be, "BE BOM"sv}};
    case codec::ucs_2le: return {{""sv, form::ucs_2le, ""sv}};
    case codec::ucs_2be: return {{""sv, form::ucs_2be, ""sv}};
    case codec::ucs_4:
        return {{""sv, form::ucs_4le, "no BOM"sv},
                {"\xFF\xFE\x00\x00"sv, form::ucs_4le, "LE BOM"sv},
                {"\x00\x00\xFE\xFF"sv, form::ucs_4be, "BE BOM"sv}};
    case codec::ucs_4le: return {{""sv, form::ucs_4le, ""sv}};
    case codec::ucs_4be: return {{""sv, form::ucs_4be, ""sv}};
    case codec::utf: return utf_family(form::utf_8);
    case codec::utf_fallback_ascii: return utf_family(form::ascii);
    case codec::utf_fallback_iso_8859_1: return utf_family(form::iso_8859_1);
    case codec::utf_fallback_utf_16:
    case codec::utf_fallback_utf_16le: return utf_family(form::utf_16le);
    case codec::utf_fallback_utf_16be: return utf_family(form::utf_16be);
    }
    return {};
}

// Every kind of line end (LF, CR LF, CR, LF CR, CR CR, LF LF, none at the end) around ASCII,
// Latin-1, BMP (with U+FEFF inside the text, where it is a character) and non-BMP characters.
constexpr std::string_view valid_text = "ASCII line\nLatin-1 \u00E9 \u00FF\r\nBMP \u20AC \u4E2D "
                                        "\uFEFF\rnon-BMP \U0001F600 \U00010000\n\r"
                                        "CR CR\r\rLF LF\n\nlast"sv;

// The valid text without the characters the format cannot hold.
std::string valid_text_for(form f) {
    return rill_test::characters_up_to(valid_text, largest_character(f));
}

// Where an ill-formed sequence goes in its connection's input.
enum class placement { between_lines, between_cr_and_lf, between_lf_and_cr, at_the_end };

constexpr std::string_view placement_name(placement p) {
    constexpr std::string_view names[] = {"between lines", "between CR and LF", "between LF and CR",
                                          "at the end"};
    return names[static_cast<std::size_t>(p)];
}

// The valid text on each side of the bad bytes.
std::pair<std::string_view, std::string_view> surroundings(placement p) {
    switch (p) {
    case placement::between_lines: return {"A\n"sv, "B\nC\n"sv};
    case placement::between_cr_and_lf: return {"A\r"sv, "\nB\n"sv};
    case placement::between_lf_and_cr: return {"A\n"sv, "\rB\n"sv};
    case placement::at_the_end: return {"A\nB"sv, ""sv};
    }
    return {};
}

// An ill-formed sequence of a format and the text rill decodes it to, U+FFFD per maximal
// ill-formed subsequence (DIFFERENCES.md gives Gambit's reading of each).
struct ill_formed {
    form f;
    std::string_view bytes;
    std::string_view decoded;
    std::vector<placement> placements;
};

const std::vector<placement> around_lines{placement::between_lines};
const std::vector<placement> around_line_ends{
    placement::between_lines, placement::between_cr_and_lf, placement::between_lf_and_cr};
const std::vector<placement> at_end{placement::at_the_end};

const ill_formed ill_formed_sequences[] = {
    {form::ascii, "\x80"sv, "\uFFFD"sv, around_line_ends},
    {form::ascii, "\xFF"sv, "\uFFFD"sv, around_lines},
    {form::ascii, "\xC3\xA9"sv, "\uFFFD\uFFFD"sv, around_lines},
    {form::ascii, "\xC3"sv, "\uFFFD"sv, at_end},
    {form::utf_8, "\x80"sv, "\uFFFD"sv, around_line_ends},
    {form::utf_8, "\xFF"sv, "\uFFFD"sv, around_lines},
    {form::utf_8, "\xC3"sv, "\uFFFD"sv, around_line_ends},
    {form::utf_8, "\xE2\x82"sv, "\uFFFD"sv, around_lines},
    {form::utf_8, "\xF0\x9F\x98"sv, "\uFFFD"sv, around_lines},
    {form::utf_8, "\xF0\x9F\xC3\xA9"sv, "\uFFFD\u00E9"sv, around_lines},
    {form::utf_8, "\xF5"sv, "\uFFFD"sv, around_lines},
    {form::utf_8, "\xC0\x80"sv, "\uFFFD\uFFFD"sv, around_lines},
    {form::utf_8, "\xED\xA0\x80"sv, "\uFFFD\uFFFD\uFFFD"sv, around_lines},
    {form::utf_8, "\xE2\x82"sv, "\uFFFD"sv, at_end},
    {form::utf_8, "\xC3"sv, "\uFFFD"sv, at_end},
    {form::utf_16le, "\x00\xD8"sv, "\uFFFD"sv, around_line_ends},
    {form::utf_16le, "\x00\xDC"sv, "\uFFFD"sv, around_line_ends},
    {form::utf_16le, "\x00\xD8\x00\xD8\x00\xDC"sv, "\uFFFD\U00010000"sv, around_lines},
    {form::utf_16le, "\x42"sv, "\uFFFD"sv, at_end},
    {form::utf_16le, "\x00\xD8"sv, "\uFFFD"sv, at_end},
    {form::utf_16be, "\xD8\x00"sv, "\uFFFD"sv, around_line_ends},
    {form::utf_16be, "\xDC\x00"sv, "\uFFFD"sv, around_line_ends},
    {form::utf_16be, "\xD8\x00\xD8\x00\xDC\x00"sv, "\uFFFD\U00010000"sv, around_lines},
    {form::utf_16be, "\x00"sv, "\uFFFD"sv, at_end},
    {form::utf_16be, "\xD8\x00"sv, "\uFFFD"sv, at_end},
    {form::ucs_2le, "\x00\xD8"sv, "\uFFFD"sv, around_line_ends},
    {form::ucs_2le, "\x3D\xD8\x00\xDE"sv, "\uFFFD\uFFFD"sv, around_lines},
    {form::ucs_2le, "\x42"sv, "\uFFFD"sv, at_end},
    {form::ucs_2be, "\xD8\x00"sv, "\uFFFD"sv, around_line_ends},
    {form::ucs_2be, "\x00"sv, "\uFFFD"sv, at_end},
    {form::ucs_4le, "\x00\xD8\x00\x00"sv, "\uFFFD"sv, around_line_ends},
    {form::ucs_4le, "\x00\x00\x11\x00"sv, "\uFFFD"sv, around_line_ends},
    {form::ucs_4le, "\x00\x00\x00\x80"sv, "\uFFFD"sv, around_lines},
    {form::ucs_4le, "\x42"sv, "\uFFFD"sv, at_end},
    {form::ucs_4le, "\x42\x00\x00"sv, "\uFFFD"sv, at_end},
    {form::ucs_4be, "\x00\x00\xD8\x00"sv, "\uFFFD"sv, around_line_ends},
    {form::ucs_4be, "\x00\x11\x00\x00"sv, "\uFFFD"sv, around_line_ends},
    {form::ucs_4be, "\x80\x00\x00\x00"sv, "\uFFFD"sv, around_lines},
    {form::ucs_4be, "\x00\x00\x00"sv, "\uFFFD"sv, at_end},
};

// Whole inputs about BOMs: a cut BOM, a BOM followed by a cut character, input shorter than
// the BOM it starts like.
struct whole_input {
    codec c;
    std::string_view bytes;
    std::string_view decoded;
};

const whole_input whole_inputs[] = {
    {codec::utf_16, "\xFE"sv, "\uFFFD"sv},
    {codec::utf_16, "\xFF\xFE\x41"sv, "\uFFFD"sv},
    {codec::utf_16, "\xFE\xFF\x00"sv, "\uFFFD"sv},
    {codec::ucs_2, "\xFE\xFF\xD8\x00\x00\x41"sv,
     "\uFFFD"
     "A"sv},
    {codec::ucs_4, "\xFF\xFE"sv, "\uFFFD"sv},
    {codec::ucs_4, "\xFF\xFE\x00\x00\x41"sv, "\uFFFD"sv},
    {codec::utf, "\xEF\xBB"sv, "\uFFFD"sv},
    {codec::utf, "\xEF\xBB\x41\x00"sv,
     "\uFFFD"
     "A\0"sv},
    {codec::utf, "\x41\x00\xE9\x00"sv, "A\0\uFFFD\0"sv},
    {codec::utf_fallback_ascii, "\xEF\xBB"sv, "\uFFFD\uFFFD"sv},
    {codec::utf_fallback_ascii, "\xEF\xBB\xBF\xC3"sv, "\uFFFD"sv},
    {codec::utf_fallback_iso_8859_1, "\xEF\xBB"sv, "\u00EF\u00BB"sv},
    {codec::utf_fallback_iso_8859_1, "\xEF"sv, "\u00EF"sv},
    {codec::utf_fallback_iso_8859_1, "\xFF"sv, "\u00FF"sv},
    {codec::utf_fallback_utf_16, "\xEF\xBB"sv, "\uBBEF"sv},
    {codec::utf_fallback_utf_16, "\x41\xC3\xA9"sv, "\uC341\uFFFD"sv},
};

// One connection's worth of input.
struct echo_case {
    std::string id;  // "utf_8: C3 between lines" (how known_differences names it)
    std::string bytes;  // what both echoes are sent
    std::string decoded;  // the text rill decodes it to, U+FFFD per ill-formed subsequence
    bool split = false;  // sent in segments
};

std::vector<echo_case> cases_for(codec c) {
    std::vector<echo_case> cases;
    for (const reading& r : readings_of(c)) {
        const std::string text = valid_text_for(r.f);
        const std::string bytes = std::string(r.bom) + encoded(r.f, text);
        const std::string name = std::string(rill::to_string(c)) + ": valid text" +
                                 (r.name.empty() ? "" : ", " + std::string(r.name));
        cases.push_back({name, bytes, text, false});
        cases.push_back({name + ", in segments", bytes, text, true});
        for (const ill_formed& bad : ill_formed_sequences) {
            if (bad.f != r.f) continue;
            for (placement p : bad.placements) {
                const auto [before, after] = surroundings(p);
                echo_case k;
                k.id = std::string(form_name(r.f)) + ": " + hex(bad.bytes) + " " +
                       std::string(placement_name(p)) +
                       (r.name.empty() ? "" : ", " + std::string(r.name));
                k.bytes = std::string(r.bom) + encoded(r.f, before) + std::string(bad.bytes) +
                          encoded(r.f, after);
                k.decoded = std::string(before) + std::string(bad.decoded) + std::string(after);
                cases.push_back(std::move(k));
            }
        }
    }
    for (const whole_input& w : whole_inputs)
        if (w.c == c)
            cases.push_back({std::string(rill::to_string(c)) + ": " + hex(w.bytes) + " alone",
                             std::string(w.bytes), std::string(w.decoded), false});
    return cases;
}

// ---- The model of rill's echo -------------------------------------------------------------------

constexpr std::string_view replacement_utf8 = "\uFFFD"sv;

// What `rill echo` writes back for input that decodes to `decoded`: ignore drops each U+FFFD
// that marks an error; the text is cut into lines by the eol style (lf, none: LF; cr: CR or
// LF; crlf: CR, LF, CR LF or LF CR; a last line without line end counts if not empty); raise
// echoes the lines before the first error, then the connection ends; each line goes back with
// '\n' written as the eol style's line end, through the codec in replace mode (so U+FFFD is
// '?' where the codec has no U+FFFD), its BOM before the first character.
std::string echo_model(codec c, eol_style eol, error_handling_mode mode, std::string_view decoded) {
    std::string text;
    for (std::size_t i = 0; i < decoded.size();) {
        if (mode == error_handling_mode::ignore &&
            decoded.substr(i).starts_with(replacement_utf8)) {
            i += replacement_utf8.size();
        } else {
            text.push_back(decoded[i++]);
        }
    }
    const std::vector<std::string> lines = rill_test::lines_of(text, eol);
    const std::string_view line_end = eol == eol_style::crlf ? "\r\n"sv
                                      : eol == eol_style::cr ? "\r"sv
                                                             : "\n"sv;
    std::string out_text;
    for (const std::string& l : lines) {
        if (mode == error_handling_mode::raise && l.find(replacement_utf8) != std::string::npos)
            break;
        out_text.append(l).append(line_end);
    }
    rill::detail::encoder e(rill::transcoder(c, eol_style::none, error_handling_mode::replace));
    std::string bytes;
    e.encode(out_text, bytes);
    return bytes;
}

// ---- Where rill deliberately differs -------------------------------------------------------------

constexpr unsigned mode_bit(error_handling_mode m) { return 1u << static_cast<unsigned>(m); }
constexpr unsigned eol_bit(eol_style e) { return 1u << static_cast<unsigned>(e); }
constexpr unsigned every_mode = 7;
constexpr unsigned replace_only = mode_bit(error_handling_mode::replace);
constexpr unsigned raise_and_replace = mode_bit(error_handling_mode::raise) | replace_only;
constexpr unsigned every_eol = 15;
constexpr unsigned crlf_only = eol_bit(eol_style::crlf);

struct known_difference {
    std::string_view where;  // the section of src/text/DIFFERENCES.md
    std::string_view reason;
    unsigned modes;  // mode_bit()s
    unsigned eols;  // eol_bit()s
    std::string_view cases;  // ECMAScript regex over echo_case::id
};

// Each case where Gambit and rill disagree, once, with the reason; rill's bytes are asserted
// against echo_model there. Everything else must come back from both byte for byte.
const known_difference known_differences[] = {
    {"§1",
     "Gambit has no ignore (char-encoding-errors is #t or #f), so Slogan's ignore raises "
     "there; rill drops the ill-formed bytes and echoes the rest",
     mode_bit(error_handling_mode::ignore), every_eol, ".*"},
    {"§2",
     "Gambit takes a UTF-8 sequence's length from its lead byte (and a high surrogate "
     "takes the next unit) before checking the bytes that follow, so the valid character "
     "after the error (here B, é, U+10000, a line end or the second unit) is lost with it",
     replace_only, every_eol,
     "utf_8: (C3|E2 82|F0 9F 98|F0 9F C3 A9|F5) between .*|"
     "utf_16(le|be): (00 D8|D8 00)( 00 D8 00 DC| D8 00 DC 00)? between .*|"
     "utf: (EF BB 41 00|41 00 E9 00) alone"},
    {"§3",
     "Gambit gives one error for as many bytes as an impossible lead byte announces; "
     "Unicode's recommended practice gives one per maximal subpart",
     replace_only, every_eol, "utf_8: C0 80 .*"},
    {"§4",
     "Gambit accepts UTF-8-encoded surrogates, UCS-2 and UCS-4 surrogate values, and "
     "bytes 80..FF as ASCII (read as Latin-1) without an error",
     raise_and_replace, every_eol,
     "utf_8: ED A0 80 .*|ucs_2(le|be): .* between .*|ucs_4(le|be): (00 D8 00 00|00 00 D8 00) .*|"
     "ascii: (80|FF|C3 A9|C3) .*|ucs_2: FE FF D8 00 00 41 alone"},
    {"§5",
     "a character cut by the end of input: rill reads one ill-formed subsequence at the "
     "end of the last line; Gambit (over TCP) ends the last line before it and then gives "
     "U+FFFD on a line of its own, or writes nothing for a cut BOM",
     replace_only, every_eol,
     "(utf_8: (E2 82|C3)|ucs_2(le|be): (42|00)|ucs_4(le|be): (42|42 00 00|00 00 00)) at the end.*|"
     "(utf_16: (FE|FF FE 41|FE FF 00)|ucs_4: (FF FE|FF FE 00 00 41)|utf: EF BB|"
     "utf_fallback_ascii: EF BB BF C3) alone"},
    {"§5", "a character cut by the end of input, UTF-16: Gambit drops it even under raise",
     raise_and_replace, every_eol,
     "utf_16(le|be): (42|00) at the end.*|utf_fallback_utf_16: 41 C3 A9 alone"},
    {"§6",
     "input shorter than a BOM it starts like: Gambit raises or writes nothing; rill, at "
     "the end of input, knows there is no BOM and decodes the bytes with the fallback",
     every_mode, every_eol, "utf_fallback_(iso_8859_1|utf_16): (EF BB|EF|FF) alone"},
    {"§6",
     "the same with the ASCII fallback: rill's replace gives a U+FFFD per byte, Gambit "
     "nothing (both raise)",
     replace_only, every_eol, "utf_fallback_ascii: EF BB alone"},
    {"§7",
     "an error between the two halves of a CR LF (or LF CR) under crlf: Gambit's U+FFFD "
     "leaves the LF to be skipped as the second half of that line end; rill reads CR, "
     "U+FFFD, LF: two line ends around a line holding the U+FFFD",
     replace_only, crlf_only, ".* between (CR and LF|LF and CR).*"},
};

const known_difference* difference_for(const echo_case& k, eol_style eol,
                                       error_handling_mode mode) {
    static const std::vector<std::regex> patterns = [] {
        std::vector<std::regex> compiled;
        for (const known_difference& d : known_differences)
            compiled.emplace_back(std::string(d.cases));
        return compiled;
    }();
    if (k.decoded.find(replacement_utf8) == std::string::npos &&
        k.id.find(" alone") == std::string::npos)
        return nullptr;  // valid text: no difference is allowed
    for (std::size_t i = 0; i < std::size(known_differences); ++i) {
        const known_difference& d = known_differences[i];
        if ((d.modes & mode_bit(mode)) && (d.eols & eol_bit(eol)) &&
            std::regex_match(k.id, patterns[i]))
            return &d;
    }
    return nullptr;
}

// ---- The two echoes ------------------------------------------------------------------------------

// Sends `bytes` (whole, or in segments with TCP_NODELAY and a pause between them: cut after
// the first byte and at a third and two thirds), half-closes and returns all that comes back.
std::string exchange(int port, const std::string& bytes, bool split) {
    rill_test::raw_client c(port);
    if (!split) {
        c.send(bytes);
    } else {
        int one = 1;
        setsockopt(c.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        const std::size_t cuts[] = {0, 1, bytes.size() / 3, 2 * bytes.size() / 3, bytes.size()};
        for (std::size_t i = 0; i + 1 < std::size(cuts); ++i) {
            if (cuts[i + 1] <= cuts[i]) continue;
            if (i > 0) std::this_thread::sleep_for(segment_pause);
            c.send(bytes.substr(cuts[i], cuts[i + 1] - cuts[i]));
        }
    }
    c.shutdown_write();
    return c.receive_all();
}

// gsi running gambit_transcoding_echo.scm: one echo server per request.
class gambit_echoes {
public:
    gambit_echoes() : gsi_({"gsi", gambit_script}) {}
    // The port of a new Gambit echo server with these settings (0 if Gambit refused them).
    int open(codec c, eol_style eol, error_handling_mode mode) {
        gsi_.write_stdin(std::string(gambit_codec(c)) + " " + std::string(gambit_eol(eol)) + " " +
                         std::string(gambit_errors(mode)) + "\n");
        const auto line = gsi_.read_stdout_line(start_limit);
        if (!line || line->empty() || line->find_first_not_of("0123456789") != std::string::npos)
            return 0;
        return std::stoi(*line);
    }

private:
    child_process gsi_;
};

// Appended: "[" + hex(bytes) draws g++ 12's false -Wrestrict at -O3.
std::string printable(std::string_view bytes) {
    return std::string("[").append(hex(bytes)).append("]");
}

class GambitDifferential : public testing::TestWithParam<codec> {};

TEST_P(GambitDifferential, EchoMatchesGambitForEveryEolStyleAndErrorMode) {
    if (!rill_test::program_available("gsi"))
        GTEST_SKIP() << "gsi (Gambit Scheme, Debian package gambc) is not installed";
    const codec c = GetParam();
    const std::vector<echo_case> cases = cases_for(c);
    gambit_echoes gambit;
    std::map<std::string_view, int> differences_seen;
    int identical = 0;
    for (eol_style eol : every_eol_style) {
        for (error_handling_mode mode : every_error_mode) {
            const std::string spec = std::string(rill::to_string(c)) + "," +
                                     std::string(rill::to_string(eol)) + "," +
                                     std::string(rill::to_string(mode));
            SCOPED_TRACE("--transcoder " + spec);
            child_process rill_echo(
                {rill_tool, "echo", "127.0.0.1:0", "--mode", "persistent", "--transcoder", spec});
            const int rill_port = start_rill_echo(rill_echo);
            ASSERT_GT(rill_port, 0) << "rill echo did not start: " << rill_echo.wait(1s).err;
            const int gambit_port = gambit.open(c, eol, mode);
            ASSERT_GT(gambit_port, 0)
                << "Gambit refused " << gambit_codec(c) << " " << gambit_eol(eol);
            for (const echo_case& k : cases) {
                SCOPED_TRACE(k.id);
                const std::string from_rill = exchange(rill_port, k.bytes, k.split);
                const std::string from_gambit = exchange(gambit_port, k.bytes, k.split);
                EXPECT_EQ(printable(from_rill), printable(echo_model(c, eol, mode, k.decoded)))
                    << "rill's echo is not what rill documents; Gambit gave "
                    << printable(from_gambit);
                if (const known_difference* d = difference_for(k, eol, mode)) {
                    if (from_rill != from_gambit) ++differences_seen[d->where];
                    continue;
                }
                EXPECT_EQ(printable(from_rill), printable(from_gambit)) << "rill and Gambit differ";
                ++identical;
            }
            rill_echo.stop();
        }
    }
    // A summary in the test's output: how much was compared, and which differences showed.
    std::string summary = std::to_string(every_eol_style.size() * every_error_mode.size()) +
                          " combinations, " + std::to_string(cases.size()) +
                          " inputs each: " + std::to_string(identical) +
                          " echoes identical to Gambit's";
    for (const auto& [where, count] : differences_seen)
        summary += ", " + std::to_string(count) + " differ as DIFFERENCES.md " + std::string(where);
    RecordProperty("summary", summary);
    std::printf("%s: %s\n", std::string(rill::to_string(c)).c_str(), summary.c_str());
}

// The seed's client with a transcoder: `rill send --transcoder` against Gambit's echo and
// `rill echo` with the same settings prints each line back.
TEST(GambitDifferentialSend, RillSendWithATranscoderAgainstGambitAndRillEcho) {
    if (!rill_test::program_available("gsi"))
        GTEST_SKIP() << "gsi (Gambit Scheme, Debian package gambc) is not installed";
    gambit_echoes gambit;
    for (codec c : {codec::utf_8, codec::utf_16, codec::ucs_4be, codec::iso_8859_1,
                    codec::utf_fallback_utf_16be}) {
        for (eol_style eol : {eol_style::crlf, eol_style::cr, eol_style::lf}) {
            const std::string spec =
                std::string(rill::to_string(c)) + "," + std::string(rill::to_string(eol));
            SCOPED_TRACE(spec);
            const bool latin1 = c == codec::iso_8859_1;
            const std::vector<std::string> lines{"h\u00E9llo",
                                                 latin1 ? "\u00FF" : "\u20AC \U0001F600", "plain"};
            child_process rill_echo(
                {rill_tool, "echo", "127.0.0.1:0", "--mode", "persistent", "--transcoder", spec});
            const int ports[] = {gambit.open(c, eol, error_handling_mode::raise),
                                 start_rill_echo(rill_echo)};
            for (int port : ports) {
                ASSERT_GT(port, 0);
                std::vector<std::string> args{rill_tool, "send",
                                              "127.0.0.1:" + std::to_string(port)};
                args.insert(args.end(), lines.begin(), lines.end());
                args.insert(args.end(), {"--transcoder", spec});
                child_process send(args);
                const auto o = send.wait(10s);
                EXPECT_EQ(o.exit_status, 0) << o.err;
                EXPECT_EQ(o.out, lines[0] + "\n" + lines[1] + "\n" + lines[2] + "\n")
                    << (port == ports[0] ? "against Gambit" : "against rill echo");
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(EveryCodec, GambitDifferential,
                         testing::ValuesIn(rill_test::every_codec()), rill_test::codec_test_name);

}  // namespace
