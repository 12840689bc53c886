// Property checks for read_line (and the character reads that share its buffer) over arbitrary
// chunking of the input, shared by the libFuzzer target (fuzz_read_line.cpp) and by
// tests/stream/test_read_line_corpus.cpp, which replays the seed corpus in every test run, on
// both backends.
//
// The stream under test is a real rill stream inside rill::run, over one end of an in-memory
// transport pair (stream/memory_transport.hpp): a task sends each chunk into the other end,
// and a receive returns exactly one send, so the chunking the check asks for is the chunking
// the stream sees (TCP would be free to merge segments).
//
// An input is  [codec byte] [settings byte] [split seed] [script seed] payload...
//   codec byte     % 19: 0 = a stream without transcoder, k = codec k-1
//   settings byte  bits 0-1 eol style, bits 2-3 error mode (% 3), bits 4-5 max_line_length
//                  (none, 8, 64 bytes, the default), bits 6-7 the operation mix (see script_mix)
// The payload is what the peer sends. The script (which read comes next) is drawn from the
// script seed, so every chunking runs the same reads.
//
// Checked: no crash or sanitizer report; the same results whatever the chunking (whole, one
// byte per receive, random cuts); every line and character valid UTF-8 on a transcoded stream;
// and, for scripts of plain read_line calls outside raise mode, exactly the lines a model cuts
// from the decoded text.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <rill/error.hpp>
#include <rill/runtime.hpp>
#include <rill/stream.hpp>
#include <rill/transcoder.hpp>

#include "codec_check.hpp"
#include "stream/memory_transport.hpp"
#include "stream/stream_state.hpp"
#include "text/codec.hpp"

namespace rill::read_line_check {

inline constexpr std::size_t header_bytes = 4;  // codec, settings, split seed, script seed
inline constexpr std::size_t transcoder_choices = codec_check::codec_count + 1;
inline constexpr std::size_t max_line_length_choices[] = {0, 8, 64, default_max_line_length_bytes};
// Reads after the first end of stream: it must stay the end.
inline constexpr int reads_after_end = 2;

// Which reads a script is made of (bits 6-7 of the settings byte).
enum class script_mix : std::uint8_t {
    plain_read_line,  // read_line(s) only: the fast path, checked against the line model
    read_line_options,  // read_line with separators, include_separator, max_length, into
    with_char_reads,  // those and read_char, peek_char, read_n_chars
    char_reads_only,  // read_char, peek_char, read_n_chars
};

struct settings {
    std::optional<transcoder> coding;  // empty: a stream without transcoder
    stream_options options;
    script_mix mix = script_mix::plain_read_line;
    std::uint32_t split_seed = 0;
    std::uint32_t script_seed = 0;
    std::string_view payload;
};

inline settings parse_input(const std::uint8_t* data, std::size_t size) {
    settings s;
    const std::size_t choice = data[0] % transcoder_choices;
    const auto eol = static_cast<eol_style>(data[1] & 3);
    const auto mode = static_cast<error_handling_mode>(((data[1] >> 2) & 3) % 3);
    if (choice > 0) s.coding = transcoder(static_cast<codec>(choice - 1), eol, mode);
    s.options.max_line_length = max_line_length_choices[(data[1] >> 4) & 3];
    s.mix = static_cast<script_mix>(data[1] >> 6);
    s.split_seed = data[2];
    s.script_seed = data[3];
    s.payload =
        std::string_view(reinterpret_cast<const char*>(data) + header_bytes, size - header_bytes);
    return s;
}

// The input cut into the chunks one receive each gets.
inline std::vector<std::string> chunks_at(std::string_view payload,
                                          const std::vector<std::size_t>& cuts) {
    std::vector<std::string> chunks;
    std::size_t start = 0;
    for (std::size_t cut : cuts) {
        chunks.emplace_back(payload.substr(start, cut - start));
        start = cut;
    }
    if (start < payload.size() || chunks.empty()) chunks.emplace_back(payload.substr(start));
    return chunks;
}

inline std::string hex_char(char32_t c) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(c));
    return buf;
}

// Runs the script on `s` and returns what each read gave, one entry per read:
// "line:...", "chars:...", "char:U+XXXX", "peek:U+XXXX", "end", "decoding_error:<message>",
// "line_too_long". Bounded: at most a few reads per payload byte.
inline std::vector<std::string> run_script(stream& s, const settings& in) {
    std::vector<std::string> results;
    std::minstd_rand rng(in.script_seed + 1);  // small state: this runs on a task's stack
    const std::size_t max_reads = 4 * in.payload.size() + 16;
    int ends = 0;
    std::string into;
    for (std::size_t n = 0; n < max_reads && ends <= reads_after_end; ++n) {
        const std::uint32_t r = static_cast<std::uint32_t>(rng());
        unsigned op = 0;  // plain read_line
        switch (in.mix) {
        case script_mix::plain_read_line: op = 0; break;
        case script_mix::read_line_options: op = r % 5; break;
        case script_mix::with_char_reads: op = r % 8; break;
        case script_mix::char_reads_only: op = 5 + r % 3; break;
        }
        const std::uint32_t arg = r >> 8;
        std::string result;
        try {
            std::optional<std::string> line;
            switch (op) {
            case 0: line = read_line(s); break;
            case 1: line = read_line(s, {.include_separator = true}); break;
            case 2: line = read_line(s, {.max_length = 1 + arg % 5}); break;
            case 3: {
                constexpr char32_t separators[] = {U' ', U'A', U'\u00E9', U'\r', U'\U0001F600'};
                line = read_line(
                    s, {.separator = separators[arg % 5], .include_separator = (arg & 8) != 0});
                break;
            }
            case 4:
                if (read_line(s, into)) line = into;
                break;
            case 5:
                if (auto c = read_char(s)) result = "char:" + hex_char(*c);
                break;
            case 6:
                if (auto c = peek_char(s)) result = "peek:" + hex_char(*c);
                break;
            case 7:
                if (auto chars = read_n_chars(s, 1 + arg % 4)) result = "chars:" + *chars;
                break;
            }
            if (line) result = "line:" + *line;
            if (result.empty()) {
                result = "end";
                ++ends;
            }
        } catch (const decoding_error& e) {
            result = std::string("decoding_error:") + e.what();
        } catch (const line_too_long&) {
            // Its message counts the bytes skipped so far, which depends on the chunking.
            result = "line_too_long";
        }
        results.push_back(std::move(result));
    }
    return results;
}

// The lines a stream must give for `text` (already decoded) under `eol`: lf and none end a
// line at LF only; cr at CR or LF; crlf at CR, LF, CR LF or LF CR. A last line without line
// end counts when it is not empty. Lines longer than max_line_length are line_too_long.
inline std::vector<std::string> model_lines(std::string_view text, eol_style eol, std::size_t cap) {
    std::vector<std::string> out;
    std::string line;
    const auto finish = [&] {
        out.push_back(cap && line.size() > cap ? "line_too_long" : "line:" + line);
        line.clear();
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        const bool ends =
            c == '\n' || (c == '\r' && (eol == eol_style::cr || eol == eol_style::crlf));
        if (!ends) {
            line.push_back(c);
            continue;
        }
        finish();
        if (eol == eol_style::crlf && i + 1 < text.size() &&
            text[i + 1] == (c == '\r' ? '\n' : '\r'))
            ++i;
    }
    if (!line.empty()) finish();
    return out;
}

// From a task inside rill::run: `body` on a stream with `coding` and `options` that receives
// `chunks`, one receive each (an in-memory transport: exactly these cuts), then the end of
// the stream.
inline std::vector<std::string>
run_with_chunks(const std::vector<std::string>& chunks, const stream_options& options,
                const std::optional<transcoder>& coding,
                const std::function<std::vector<std::string>(stream&)>& body) {
    auto [reader_end, sender_end] = detail::make_memory_transport_pair();
    auto sender = spawn([&chunks, t = std::move(sender_end)] {
        for (const std::string& chunk : chunks) {
            // An empty send would read as nothing at all; the reader gone ends the sending.
            for (std::string_view rest = chunk; !rest.empty();) {
                const long sent = t->send(rest.data(), rest.size(), std::nullopt, false);
                if (sent < 0) return;
                rest.remove_prefix(static_cast<std::size_t>(sent));
            }
        }
        t->shutdown_writer();
    });
    std::vector<std::string> results;
    std::exception_ptr failure;
    try {
        stream s = detail::make_stream(std::move(reader_end), options, coding);
        results = body(s);
    } catch (...) {
        failure = std::current_exception();
    }
    sender.join();  // the reader's end is closed: a sender still waiting gets a reset
    if (failure) std::rethrow_exception(failure);
    return results;
}

inline std::string describe(const std::vector<std::string>& results) {
    std::string s;
    for (const std::string& r : results) s += "[" + r + "]";
    return s;
}

// Checks one input; returns a description of the first failure, or "". Call it from a task
// inside rill::run.
inline std::string check_read_line_input(const std::uint8_t* data, std::size_t size) {
    if (size < header_bytes) return {};
    const settings in = parse_input(data, size);
    const auto body = [&in](stream& s) { return run_script(s, in); };
    const auto run = [&](const std::vector<std::size_t>& cuts) {
        return run_with_chunks(chunks_at(in.payload, cuts), in.options, in.coding, body);
    };
    std::vector<std::string> whole, bytewise, random;
    try {
        whole = run(codec_check::no_cuts(in.payload.size()));
        bytewise = run(codec_check::cuts_every_byte(in.payload.size()));
        random = run(codec_check::random_cuts(in.payload.size(), in.split_seed));
    } catch (const std::exception& e) {
        return std::string("unexpected exception: ") + e.what();
    }
    if (bytewise != whole)
        return "one byte per receive differs from whole: " + describe(bytewise) + " vs " +
               describe(whole);
    if (random != whole)
        return "random cuts differ from whole: " + describe(random) + " vs " + describe(whole);

    if (in.coding) {
        for (const std::string& r : whole) {
            const std::size_t colon = r.find(':');
            if (r.starts_with("line:") || r.starts_with("chars:"))
                if (!codec_check::check_impl::is_valid_utf8(std::string_view(r).substr(colon + 1)))
                    return "a transcoded stream gave invalid UTF-8: " + describe(whole);
        }
    }
    if (in.mix != script_mix::plain_read_line) return {};
    if (in.coding && in.coding->error_handling_mode() == error_handling_mode::raise) return {};
    // The model: the whole payload decoded at once, cut into lines.
    std::string text;
    eol_style eol = eol_style::crlf;  // a stream without transcoder: the reference's default
    if (in.coding) {
        eol = in.coding->eol_style();
        detail::decoder d(*in.coding);
        d.decode(in.payload, text, true);
    } else {
        text = in.payload;
    }
    const std::vector<std::string> expected = model_lines(text, eol, in.options.max_line_length);
    std::vector<std::string> got = whole;
    while (!got.empty() && got.back() == "end") got.pop_back();
    if (got != expected)
        return "lines differ from the model: " + describe(got) + " vs " + describe(expected);
    return {};
}

}  // namespace rill::read_line_check
