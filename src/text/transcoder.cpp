// Names of codecs, eol styles and error modes, in both directions. Parsing is for command
// lines (rill --transcoder UTF-16LE,lf,raise), so it is forgiving about case, '-' vs '_' and
// the everyday aliases, and an unknown name lists what would have been accepted.
#include <rill/error.hpp>
#include <rill/transcoder.hpp>

#include <array>
#include <span>
#include <string>
#include <string_view>

namespace rill {
namespace {

using namespace std::string_view_literals;

template <class Enum>
struct name_entry {
    std::string_view name;  // lower case, '_' as separator
    Enum value;
};

// Canonical names first, in enum order (to_string indexes them); aliases after.
constexpr name_entry<codec> codec_names[]{
    {"iso_8859_1", codec::iso_8859_1},
    {"ascii", codec::ascii},
    {"utf_8", codec::utf_8},
    {"utf_16", codec::utf_16},
    {"utf_16le", codec::utf_16le},
    {"utf_16be", codec::utf_16be},
    {"ucs_2", codec::ucs_2},
    {"ucs_2le", codec::ucs_2le},
    {"ucs_2be", codec::ucs_2be},
    {"ucs_4", codec::ucs_4},
    {"ucs_4le", codec::ucs_4le},
    {"ucs_4be", codec::ucs_4be},
    {"utf", codec::utf},
    {"utf_fallback_ascii", codec::utf_fallback_ascii},
    {"utf_fallback_iso_8859_1", codec::utf_fallback_iso_8859_1},
    {"utf_fallback_utf_16", codec::utf_fallback_utf_16},
    {"utf_fallback_utf_16le", codec::utf_fallback_utf_16le},
    {"utf_fallback_utf_16be", codec::utf_fallback_utf_16be},
    // Aliases: IANA and everyday spellings, and Gambit's own names for the utf family.
    {"iso8859_1", codec::iso_8859_1},
    {"latin1", codec::iso_8859_1},
    {"latin_1", codec::iso_8859_1},
    {"l1", codec::iso_8859_1},
    {"us_ascii", codec::ascii},
    {"utf8", codec::utf_8},
    {"utf16", codec::utf_16},
    {"utf16le", codec::utf_16le},
    {"utf16be", codec::utf_16be},
    {"ucs2", codec::ucs_2},
    {"ucs2le", codec::ucs_2le},
    {"ucs2be", codec::ucs_2be},
    {"ucs4", codec::ucs_4},
    {"ucs4le", codec::ucs_4le},
    {"ucs4be", codec::ucs_4be},
    {"utf_fallback_utf_8", codec::utf},
    {"utf_fallback_utf8", codec::utf},
    {"utf_fallback_us_ascii", codec::utf_fallback_ascii},
    {"utf_fallback_latin1", codec::utf_fallback_iso_8859_1},
    {"utf_fallback_utf16", codec::utf_fallback_utf_16},
    {"utf_fallback_utf16le", codec::utf_fallback_utf_16le},
    {"utf_fallback_utf16be", codec::utf_fallback_utf_16be},
};
constexpr std::size_t codec_count = 18;

constexpr name_entry<eol_style> eol_style_names[]{
    {"lf", eol_style::lf},     {"cr", eol_style::cr},      {"crlf", eol_style::crlf},
    {"none", eol_style::none}, {"cr_lf", eol_style::crlf},
};
constexpr std::size_t eol_style_count = 4;

constexpr name_entry<error_handling_mode> error_handling_mode_names[]{
    {"ignore", error_handling_mode::ignore},
    {"raise", error_handling_mode::raise},
    {"replace", error_handling_mode::replace},
    {"strict", error_handling_mode::raise},  // Python's name for raise
};
constexpr std::size_t error_handling_mode_count = 3;

template <class Enum>
constexpr bool canonical_names_in_enum_order(std::span<const name_entry<Enum>> names,
                                             std::size_t count) {
    for (std::size_t i = 0; i < count; ++i)
        if (static_cast<std::size_t>(names[i].value) != i) return false;
    return true;
}
static_assert(canonical_names_in_enum_order<codec>(codec_names, codec_count));
static_assert(canonical_names_in_enum_order<eol_style>(eol_style_names, eol_style_count));
static_assert(canonical_names_in_enum_order<error_handling_mode>(error_handling_mode_names,
                                                                 error_handling_mode_count));

template <class Enum>
std::string_view name_of(std::span<const name_entry<Enum>> names, std::size_t count,
                         Enum value) noexcept {
    const auto index = static_cast<std::size_t>(value);
    return index < count ? names[index].name : "unknown"sv;
}

std::string normalized(std::string_view name) {
    std::string key(name);
    for (char& c : key) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
        else if (c == '-')
            c = '_';
    }
    return key;
}

std::string_view trimmed(std::string_view s) noexcept {
    constexpr std::string_view blanks = " \t";
    const std::size_t first = s.find_first_not_of(blanks);
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(blanks) - first + 1);
}

// `what` names the kind of name in the error: "codec", "eol style", "error handling mode".
template <class Enum>
Enum parse_name(std::span<const name_entry<Enum>> names, std::size_t count, std::string_view what,
                std::string_view text) {
    const std::string key = normalized(trimmed(text));
    for (const name_entry<Enum>& entry : names)
        if (entry.name == key) return entry.value;
    std::string message =
        "unknown " + std::string(what) + " \"" + std::string(text) + "\"; valid names: ";
    for (std::size_t i = 0; i < count; ++i)
        message.append(i == 0 ? "" : ", ").append(names[i].name);
    if (count < names.size()) {
        message += " (aliases: ";
        for (std::size_t i = count; i < names.size(); ++i)
            message.append(i == count ? "" : ", ").append(names[i].name);
        message += ")";
    }
    message += "; case-insensitive, '-' and '_' alike";
    throw argument_error(message);
}

}  // namespace

std::string_view to_string(codec c) noexcept { return name_of<codec>(codec_names, codec_count, c); }
std::string_view to_string(eol_style e) noexcept {
    return name_of<eol_style>(eol_style_names, eol_style_count, e);
}
std::string_view to_string(error_handling_mode m) noexcept {
    return name_of<error_handling_mode>(error_handling_mode_names, error_handling_mode_count, m);
}

codec parse_codec(std::string_view name) {
    return parse_name<codec>(codec_names, codec_count, "codec", name);
}
eol_style parse_eol_style(std::string_view name) {
    return parse_name<eol_style>(eol_style_names, eol_style_count, "eol style", name);
}
error_handling_mode parse_error_handling_mode(std::string_view name) {
    return parse_name<error_handling_mode>(error_handling_mode_names, error_handling_mode_count,
                                           "error handling mode", name);
}

transcoder parse_transcoder(std::string_view spec) {
    constexpr std::size_t max_fields = 3;  // CODEC, EOL, ERRORS
    std::array<std::string_view, max_fields> fields{};
    std::size_t count = 0;
    std::string_view rest = spec;
    for (;;) {
        const std::size_t comma = rest.find(',');
        if (count == max_fields)
            throw argument_error("transcoder \"" + std::string(spec) +
                                 "\": expected CODEC[,EOL[,ERRORS]], got more than 3 fields");
        fields[count++] = rest.substr(0, comma);
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
    }
    const transcoder defaults(codec::utf_8);
    try {
        return transcoder(
            parse_codec(fields[0]), count > 1 ? parse_eol_style(fields[1]) : defaults.eol_style(),
            count > 2 ? parse_error_handling_mode(fields[2]) : defaults.error_handling_mode());
    } catch (const argument_error& e) {
        throw argument_error("transcoder \"" + std::string(spec) + "\": " + e.what());
    }
}

}  // namespace rill
