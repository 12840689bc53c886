#pragma once

// The lines the load generator sends, each tagged with its connection and sequence number, and
// the check of their echoes against it.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <string>

#include "loadgen/integers.hpp"

namespace loadgen {

// Line k of connection c: a 16-hex-digit tag of (c << 40 | k), then a fixed printable filler,
// then "\n". Neither part contains CR or LF, so any line end in the echo is the server's.
class line_pattern {
public:
    static constexpr std::size_t tag_capacity = 16;
    using tag_bytes = std::array<char, tag_capacity>;

    explicit line_pattern(std::size_t line_bytes) : content_(line_bytes - 1, ' ') {
        for (std::size_t i = 0; i < content_.size(); ++i) content_[i] = char('!' + (i * 7) % 94);
        tag_size_ = std::min(tag_capacity, content_.size());
    }
    std::size_t content_size() const { return content_.size(); }
    std::size_t line_size() const { return content_.size() + 1; }

    static tag_bytes tag(u32 connection, u64 seq) {
        u64 v = (u64(connection) << 40) | (seq & ((u64{1} << 40) - 1));
        tag_bytes t;
        for (int i = 15; i >= 0; --i, v >>= 4) t[std::size_t(i)] = "0123456789abcdef"[v & 15];
        return t;
    }
    void append_line(std::string& out, u32 connection, u64 seq) const {
        std::size_t at = out.size();
        out.append(content_);
        out.push_back('\n');
        auto t = tag(connection, seq);
        std::memcpy(out.data() + at, t.data(), tag_size_);
    }
    // Offset of the first byte of [data, data + n) that differs from the line's content at
    // [from, from + n), or n when all match.
    std::size_t first_difference(const tag_bytes& t, std::size_t from, const char* data,
                                 std::size_t n) const {
        std::size_t i = 0;
        for (; i < n && from + i < tag_size_; ++i)
            if (data[i] != t[from + i]) return i;
        if (i < n && std::memcmp(data + i, content_.data() + from + i, n - i) != 0)
            for (; i < n; ++i)
                if (data[i] != content_[from + i]) return i;
        return n;
    }
    char expected(const tag_bytes& t, std::size_t at) const {
        return at < tag_size_ ? t[at] : content_[at];
    }

private:
    std::string content_;
    std::size_t tag_size_ = 0;
};

// A byte as a mismatch report shows it: itself if printable, else an escape (\n, \r, \x1b).
std::string printable(char c);

}  // namespace loadgen
