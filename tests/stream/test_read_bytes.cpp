// Byte input: read_byte, read_n_bytes, read_all_bytes, read_some. Bytes are never translated
// (a CR LF is two bytes); each returns empty (or 0) at end of stream.
#include <gtest/gtest.h>

#include <cstddef>
#include <numeric>

#include <rill/rill.hpp>

#include "stream/stream_test_support.hpp"

namespace {

using namespace rill_stream_test;
using bytes = std::vector<std::uint8_t>;

TEST(ReadByte, EveryByteUntranslated) {
    serve_memory_peer(
        [](rill::stream& s) {
            bytes got;
            for (int i = 0; i < 100; ++i) {
                auto b = rill::read_byte(s);
                if (!b) break;
                got.push_back(*b);
            }
            EXPECT_EQ(got, (bytes{'a', '\r', '\n', 0, 0xFF, '\n', '\r', 0xC3}));
            EXPECT_EQ(rill::read_byte(s), std::nullopt);
        },
        memory_sends({std::string("a\r\n\0\xFF", 5), "\n\r\xC3"}));
}

TEST(ReadNBytes, ExactCountsAndFewerAtEnd) {
    serve_memory_peer(
        [](rill::stream& s) {
            EXPECT_EQ(rill::read_n_bytes(s, 3), (bytes{'a', 'b', 'c'}));
            EXPECT_EQ(rill::read_n_bytes(s, 0), bytes{});
            // Waits across segments for the whole count.
            EXPECT_EQ(rill::read_n_bytes(s, 5), (bytes{'d', '\r', '\n', 'e', 'f'}));
            EXPECT_EQ(rill::read_n_bytes(s, 10), (bytes{'g'}));
            EXPECT_EQ(rill::read_n_bytes(s, 1), std::nullopt);
        },
        memory_sends({"abcd\r", "\nef", "g"}));
}

TEST(ReadAllBytes, EverythingUntilEndOfStream) {
    std::string big(300000, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i % 251);
    serve_memory_peer(
        [&](rill::stream& s) {
            EXPECT_EQ(rill::read_byte(s), 0);
            auto rest = rill::read_all_bytes(s);
            ASSERT_TRUE(rest);
            EXPECT_TRUE(as_string(*rest) == big.substr(1));
            EXPECT_EQ(rill::read_all_bytes(s), std::nullopt);
        },
        memory_sends({big.substr(0, 100000), big.substr(100000)}));
}

TEST(ReadSome, WhateverIsAvailable) {
    serve_memory_peer(
        [&](rill::stream& s) {
            std::byte buffer[64];
            std::size_t n = rill::read_some(s, buffer);  // does not wait for the buffer to fill
            EXPECT_EQ(std::string(reinterpret_cast<char*>(buffer), n), "first");
            n = rill::read_some(s, std::span(buffer, 3));
            EXPECT_EQ(std::string(reinterpret_cast<char*>(buffer), n), "sec");
            n = rill::read_some(s, buffer);
            EXPECT_EQ(std::string(reinterpret_cast<char*>(buffer), n), "ond\r\n");
            EXPECT_EQ(rill::read_some(s, buffer), 0u);
            EXPECT_EQ(rill::read_some(s, buffer), 0u);
        },
        [&](memory_peer& c) {
            c.send("first");  // one receive: read_some returns it without waiting for more
            c.send("second\r\n");
            c.shutdown_write();
            c.receive_all();
        });
}

TEST(ReadBytes, EmptyStream) {
    serve_memory_peer(
        [](rill::stream& s) {
            std::byte buffer[8];
            EXPECT_EQ(rill::read_byte(s), std::nullopt);
            EXPECT_EQ(rill::read_n_bytes(s, 4), std::nullopt);
            EXPECT_EQ(rill::read_all_bytes(s), std::nullopt);
            EXPECT_EQ(rill::read_some(s, buffer), 0u);
        },
        memory_sends({}));
}

// Text and byte reads share one buffer: what a line read leaves is what the byte reads see,
// and the second half of a CR LF belongs to the line end however the segments fell.
TEST(ReadBytes, AfterALineReadTheLineEndIsGone) {
    for (const auto& segments :
         {std::vector<std::string>{"a\r\nb"}, std::vector<std::string>{"a\r", "\nb"},
          std::vector<std::string>{"a\n", "\rb"}}) {
        SCOPED_TRACE(std::to_string(segments.size()) + " segments, line end " +
                     std::to_string(int(segments[0][1])));
        serve_memory_peer(
            [](rill::stream& s) {
                EXPECT_EQ(rill::read_line(s), "a");
                EXPECT_EQ(rill::read_byte(s), 'b');
                EXPECT_EQ(rill::read_byte(s), std::nullopt);
            },
            memory_sends(segments));
        serve_memory_peer(
            [](rill::stream& s) {
                EXPECT_EQ(rill::read_line(s), "a");
                EXPECT_EQ(rill::read_n_bytes(s, 5), (bytes{'b'}));
            },
            memory_sends(segments));
        serve_memory_peer(
            [](rill::stream& s) {
                EXPECT_EQ(rill::read_line(s), "a");
                std::byte buffer[8];
                std::size_t n = rill::read_some(s, buffer);
                EXPECT_EQ(std::string(reinterpret_cast<char*>(buffer), n), "b");
            },
            memory_sends(segments));
    }
}

TEST(ReadBytes, MixedWithCharacters) {
    serve_memory_peer(
        [](rill::stream& s) {
            EXPECT_EQ(rill::peek_char(s), U'\u00E9');
            EXPECT_EQ(rill::read_byte(s), 0xC3);  // peek consumed nothing
            EXPECT_EQ(rill::read_byte(s), 0xA9);
            EXPECT_EQ(rill::read_char(s), U'x');
            EXPECT_EQ(rill::read_n_bytes(s, 2), (bytes{'y', 'z'}));
            EXPECT_EQ(rill::read_line(s), "end");
        },
        memory_sends({"\xC3\xA9xyzend"}));
}

}  // namespace
