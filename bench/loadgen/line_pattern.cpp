#include "loadgen/line_pattern.hpp"

#include <cstdio>

namespace loadgen {

std::string printable(char c) {
    if (c == '\n') return "\\n";
    if (c == '\r') return "\\r";
    if (c >= 0x20 && c < 0x7f) return std::string(1, c);
    char hex[8];
    std::snprintf(hex, sizeof hex, "\\x%02x", unsigned(static_cast<unsigned char>(c)));
    return hex;
}

}  // namespace loadgen
