// Names of codecs, eol styles and error modes: canonical spelling out, forgiving parsing in.
#include <rill/error.hpp>
#include <rill/transcoder.hpp>

#include <gtest/gtest.h>

#include <string>

namespace rill {
namespace {

using namespace std::string_view_literals;

TEST(TranscoderNames, EveryCanonicalNameRoundTrips) {
    for (int i = 0; i < 18; ++i) {
        const auto c = static_cast<codec>(i);
        EXPECT_EQ(parse_codec(to_string(c)), c) << to_string(c);
    }
    for (int i = 0; i < 4; ++i) {
        const auto e = static_cast<eol_style>(i);
        EXPECT_EQ(parse_eol_style(to_string(e)), e) << to_string(e);
    }
    for (int i = 0; i < 3; ++i) {
        const auto m = static_cast<error_handling_mode>(i);
        EXPECT_EQ(parse_error_handling_mode(to_string(m)), m) << to_string(m);
    }
}

TEST(TranscoderNames, CanonicalSpellings) {
    EXPECT_EQ(to_string(codec::iso_8859_1), "iso_8859_1");
    EXPECT_EQ(to_string(codec::utf_16le), "utf_16le");
    EXPECT_EQ(to_string(codec::utf), "utf");
    EXPECT_EQ(to_string(codec::utf_fallback_utf_16be), "utf_fallback_utf_16be");
    EXPECT_EQ(to_string(eol_style::crlf), "crlf");
    EXPECT_EQ(to_string(eol_style::none), "none");
    EXPECT_EQ(to_string(error_handling_mode::replace), "replace");
}

TEST(TranscoderNames, CodecAliasesCaseAndSeparators) {
    const std::pair<std::string_view, codec> cases[] = {
        {"UTF-16LE", codec::utf_16le},
        {"utf_16le", codec::utf_16le},
        {"Utf16Le", codec::utf_16le},
        {"utf8", codec::utf_8},
        {"UTF-8", codec::utf_8},
        {"latin1", codec::iso_8859_1},
        {"Latin-1", codec::iso_8859_1},
        {"ISO-8859-1", codec::iso_8859_1},
        {"iso8859-1", codec::iso_8859_1},
        {"us-ascii", codec::ascii},
        {"US_ASCII", codec::ascii},
        {"ASCII", codec::ascii},
        {"UCS-4BE", codec::ucs_4be},
        {"ucs2", codec::ucs_2},
        {"UTF", codec::utf},
        // Gambit's names for the utf family.
        {"UTF-fallback-UTF-8", codec::utf},
        {"UTF-fallback-ASCII", codec::utf_fallback_ascii},
        {"UTF-fallback-ISO-8859-1", codec::utf_fallback_iso_8859_1},
        {"utf-fallback-latin1", codec::utf_fallback_iso_8859_1},
        {"UTF-fallback-UTF-16BE", codec::utf_fallback_utf_16be},
        {"  utf-8 ", codec::utf_8},
    };
    for (const auto& [name, expected] : cases) EXPECT_EQ(parse_codec(name), expected) << name;
}

TEST(TranscoderNames, OtherAliases) {
    EXPECT_EQ(parse_eol_style("CRLF"), eol_style::crlf);
    EXPECT_EQ(parse_eol_style("cr-lf"), eol_style::crlf);
    EXPECT_EQ(parse_eol_style("LF"), eol_style::lf);
    EXPECT_EQ(parse_error_handling_mode("Raise"), error_handling_mode::raise);
    EXPECT_EQ(parse_error_handling_mode("strict"), error_handling_mode::raise);
    EXPECT_EQ(parse_error_handling_mode("IGNORE"), error_handling_mode::ignore);
}

// The message names the text and lists what would have been accepted.
TEST(TranscoderNames, UnknownNamesThrowArgumentErrorListingValidNames) {
    try {
        parse_codec("utf-7");
        FAIL() << "no exception";
    } catch (const argument_error& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("\"utf-7\""), std::string::npos) << message;
        EXPECT_NE(message.find("utf_16le"), std::string::npos) << message;
        EXPECT_NE(message.find("utf_fallback_iso_8859_1"), std::string::npos) << message;
        EXPECT_NE(message.find("latin1"), std::string::npos) << message;
    }
    try {
        parse_eol_style("crcr");
        FAIL() << "no exception";
    } catch (const argument_error& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("\"crcr\""), std::string::npos) << message;
        EXPECT_NE(message.find("lf, cr, crlf, none"), std::string::npos) << message;
    }
    try {
        parse_error_handling_mode("skip");
        FAIL() << "no exception";
    } catch (const argument_error& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("\"skip\""), std::string::npos) << message;
        EXPECT_NE(message.find("ignore, raise, replace"), std::string::npos) << message;
    }
    EXPECT_THROW(parse_codec(""), argument_error);
    EXPECT_THROW(parse_codec("utf_"), argument_error);
    EXPECT_THROW(parse_codec("utf-fallback-ucs-4"), argument_error);  // not a utf fallback
}

TEST(TranscoderNames, ParseTranscoderFieldsAndDefaults) {
    EXPECT_EQ(parse_transcoder("UTF-16LE"), transcoder(codec::utf_16le));
    EXPECT_EQ(parse_transcoder("utf8"),
              transcoder(codec::utf_8, eol_style::crlf, error_handling_mode::ignore));
    EXPECT_EQ(parse_transcoder("latin1,lf"), transcoder(codec::iso_8859_1, eol_style::lf));
    EXPECT_EQ(parse_transcoder("ucs-4,none,replace"),
              transcoder(codec::ucs_4, eol_style::none, error_handling_mode::replace));
    EXPECT_EQ(parse_transcoder("utf, cr , raise"),
              transcoder(codec::utf, eol_style::cr, error_handling_mode::raise));
}

TEST(TranscoderNames, ParseTranscoderErrorsNameTheWholeSpec) {
    const std::string_view bad[] = {"", "utf8,", "utf8,lf,raise,extra", "utf8,lf,oops", "nope,lf"};
    for (std::string_view spec : bad) {
        try {
            parse_transcoder(spec);
            ADD_FAILURE() << "no exception for \"" << spec << "\"";
        } catch (const argument_error& e) {
            EXPECT_NE(std::string(e.what()).find("\"" + std::string(spec) + "\""),
                      std::string::npos)
                << e.what();
        }
    }
}

TEST(TranscoderNames, AccessorsAndSloganDefaults) {
    constexpr transcoder t(codec::ucs_2be);
    static_assert(transcoder_codec(t) == codec::ucs_2be);
    static_assert(transcoder_eol_style(t) == eol_style::crlf);
    static_assert(transcoder_error_handling_mode(t) == error_handling_mode::ignore);
}

}  // namespace
}  // namespace rill
