// Plain models of text for tests to compare rill with.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rill/transcoder.hpp>

namespace rill_test {

// The reference's line splitting: under lf and none a LF ends a line; under cr a CR or a LF;
// under crlf a CR, a LF, CR LF or LF CR (the second half of a pair belongs to the same line
// end). A last line without line end counts if it is not empty.
inline std::vector<std::string> lines_of(std::string_view text, rill::eol_style eol) {
    using rill::eol_style;
    std::vector<std::string> lines;
    std::string line;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\n' || (c == '\r' && (eol == eol_style::cr || eol == eol_style::crlf))) {
            lines.push_back(std::exchange(line, {}));
            if (eol == eol_style::crlf && i + 1 < text.size() &&
                text[i + 1] == (c == '\r' ? '\n' : '\r'))
                ++i;
        } else {
            line.push_back(c);
        }
    }
    if (!line.empty()) lines.push_back(line);
    return lines;
}

// The characters of valid UTF-8 `utf8` that are at most `largest` (what a codec can hold).
inline std::string characters_up_to(std::string_view utf8, char32_t largest) {
    std::string out;
    const auto* p = reinterpret_cast<const unsigned char*>(utf8.data());
    for (std::size_t i = 0; i < utf8.size();) {
        const std::size_t length = p[i] < 0x80 ? 1 : p[i] < 0xE0 ? 2 : p[i] < 0xF0 ? 3 : 4;
        char32_t c = length == 1 ? p[i] : p[i] & (0x3F >> (length - 1));
        for (std::size_t k = 1; k < length; ++k) c = (c << 6) | (p[i + k] & 0x3F);
        if (c <= largest) out.append(utf8.substr(i, length));
        i += length;
    }
    return out;
}

}  // namespace rill_test
