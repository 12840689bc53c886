// A raise-mode decoding error waits at the head of the input buffer until the reader reaches it
// (the text before it is read first). Whatever the program does meanwhile must keep that
// mark in step with the bytes: close_reader drops them (no error is left to report), a byte
// read takes them as bytes (the error goes with them), and only what is left is reported.
// Over the memory transport, so each segment arrives exactly as sent.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "stream/stream_state.hpp"
#include "stream/stream_test_support.hpp"

namespace {

using rill::codec;
using rill::eol_style;
using rill::error_handling_mode;
using rill_stream_test::memory_sends;
using rill_stream_test::serve_memory_peer;

const rill::transcoder utf8_raise(codec::utf_8, eol_style::lf, error_handling_mode::raise);

// "ab", a byte no UTF-8 text holds, then "cd\n": one segment, so the decoder sees the bad
// byte in the same receive as the text around it.
const std::string text_with_bad_byte = "ab\xFF"
                                       "cd\n";

TEST(DecodingErrors, CloseReaderDropsAPendingError) {
    std::vector<std::string> got;
    serve_memory_peer(
        [&](rill::stream& s) {
            got.push_back(std::string(1, static_cast<char>(rill::read_char(s).value())));
            rill::close_reader(s);  // the bad byte and what follows are dropped
            EXPECT_EQ(rill::detail::state_of(s).codec->pending_bad_bytes, 0u);
            // Reads after close_reader see end of stream, not an error about bytes that are gone.
            for (int i = 0; i < 3; ++i) {
                const auto c = rill::read_char(s);
                got.push_back(c ? std::string(1, static_cast<char>(*c)) : "end");
            }
            got.push_back(rill::read_line(s) ? "line" : "end");
        },
        memory_sends({text_with_bad_byte}), {}, utf8_raise);
    // What was decoded before close_reader is dropped too: later reads see end of stream.
    EXPECT_EQ(got, (std::vector<std::string>{"a", "end", "end", "end", "end"}));
}

TEST(DecodingErrors, AByteReadTakesThePendingBadBytesWithIt) {
    std::vector<std::string> got;
    serve_memory_peer(
        [&](rill::stream& s) {
            got.push_back(std::string(1, static_cast<char>(rill::read_char(s).value())));
            got.push_back(std::string(1, static_cast<char>(rill::read_char(s).value())));
            // The bad byte is next in the input: a byte read takes it, error and all.
            const auto bad = rill::read_byte(s);
            ASSERT_TRUE(bad);
            EXPECT_EQ(*bad, 0xFF);
            try {
                got.push_back(rill::read_line(s).value_or("end"));
            } catch (const rill::decoding_error& e) {
                got.push_back(std::string("error: ") + e.what());
            }
        },
        memory_sends({text_with_bad_byte}), {}, utf8_raise);
    EXPECT_EQ(got, (std::vector<std::string>{"a", "b", "cd"}));
}

TEST(DecodingErrors, AByteReadOfEverythingLeavesNoErrorBehind) {
    std::vector<std::string> got;
    serve_memory_peer(
        [&](rill::stream& s) {
            got.push_back(std::string(1, static_cast<char>(rill::read_char(s).value())));
            // "b" is decoded text already; the bytes after it, the bad one first, are read
            // as bytes: all of them, so the input buffer runs empty.
            const auto bytes = rill::read_n_bytes(s, 4);
            ASSERT_TRUE(bytes);
            got.push_back(rill_stream_test::as_string(*bytes));
            try {
                // The decoded "b", then end of stream: the bad byte was read, not skipped.
                for (int i = 0; i < 3; ++i) {
                    const auto c = rill::read_char(s);
                    got.push_back(c ? std::string(1, static_cast<char>(*c)) : "end");
                }
            } catch (const rill::decoding_error& e) {
                got.push_back(std::string("error: ") + e.what());
            }
        },
        memory_sends({text_with_bad_byte}), {}, utf8_raise);
    EXPECT_EQ(got, (std::vector<std::string>{"a",
                                             "\xFF"
                                             "cd\n",
                                             "b", "end", "end"}));
}

TEST(DecodingErrors, AShortByteReadLeavesTheRestOfABadSequenceToReport) {
    // E2 82 is a three-byte sequence cut short by "(": one error of two bytes. A byte read of
    // the first leaves the second, which is reported (as what it now is: a lone continuation
    // byte) and skipped.
    std::vector<std::string> got;
    serve_memory_peer(
        [&](rill::stream& s) {
            got.push_back(std::string(1, static_cast<char>(rill::read_char(s).value())));
            EXPECT_EQ(rill::read_byte(s).value(), 0xE2);
            try {
                got.push_back(rill::read_line(s).value_or("end"));
            } catch (const rill::decoding_error& e) {
                const bool names_it =
                    std::string_view(e.what()).find("cannot decode bytes 82") != std::string::npos;
                got.push_back(names_it ? "error 82" : std::string("error: ") + e.what());
            }
            got.push_back(rill::read_line(s).value_or("end"));
        },
        memory_sends({"a\xE2\x82(\n"}), {}, utf8_raise);
    EXPECT_EQ(got, (std::vector<std::string>{"a", "error 82", "("}));
}

}  // namespace
