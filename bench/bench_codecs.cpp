// Decode and encode throughput of every concrete codec against glibc iconv on the same input.
// Two texts of about 64 KiB: protocol-like lines that are mostly ASCII (the case the block fast
// paths are for), and mixed-script prose (Cyrillic, Greek, CJK, emoji) where they rarely apply.
// Throughput counts the input bytes of the direction measured (codec bytes when decoding,
// UTF-8 when encoding), so rill and iconv rows of one conversion compare directly.
//
//   bench_codecs --benchmark_filter='decode/utf_8/'
#include <benchmark/benchmark.h>
#include <iconv.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <deque>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <rill/transcoder.hpp>

#include "text/codec.hpp"

namespace {

using rill::codec;

constexpr std::size_t text_target_bytes = 64 * 1024;

std::string repeat_to_target(std::string_view unit) {
    std::string s;
    while (s.size() < text_target_bytes) s += unit;
    return s;
}

// Mostly ASCII, with a Latin-1 letter every line or so (so every codec can hold it).
const std::string& mostly_ascii_text() {
    static const std::string text = repeat_to_target(
        "GET /api/v1/users?id=1234&sort=name HTTP/1.1\r\nHost: example.com\r\n"
        "User-Agent: rill-bench/0.1\r\nAccept: text/plain; charset=utf-8\r\n"
        "X-Comment: caf\u00E9 cr\u00E8me br\u00FBl\u00E9e, na\u00EFve fa\u00E7ade\r\n\r\n"
        "The quick brown fox jumps over the lazy dog. 0123456789 !@#$%^&*()\n");
    return text;
}

const std::string& pure_ascii_text() {
    static const std::string text =
        repeat_to_target("GET /api/v1/users?id=1234&sort=name HTTP/1.1\r\nHost: example.com\r\n"
                         "The quick brown fox jumps over the lazy dog. 0123456789 !@#$%^&*()\n");
    return text;
}

const std::string& mixed_script_text() {
    static const std::string text = repeat_to_target(
        "\u0421\u044A\u0435\u0448\u044C \u0436\u0435 \u0435\u0449\u0451 \u044D\u0442\u0438\u0445 "
        "\u043C\u044F\u0433\u043A\u0438\u0445 \u0431\u0443\u043B\u043E\u043A. "
        "\u039E\u03B5\u03C3\u03BA\u03B5\u03C0\u03AC\u03B6\u03C9 \u03C4\u03B7\u03BD "
        "\u03C8\u03C5\u03C7\u03BF\u03C6\u03B8\u03CC\u03C1\u03B1. "
        "\u6211\u80FD\u541E\u4E0B\u73BB\u7483\u800C\u4E0D\u4F24\u8EAB\u4F53\u3002 "
        "\u3044\u308D\u306F\u306B\u307B\u3078\u3068 \U0001F600\U0001F680 ok\n");
    return text;
}

// The mixed text without characters outside the BMP, for UCS-2.
const std::string& mixed_bmp_text() {
    static const std::string text = [] {
        std::string s;
        for (std::size_t i = 0; i < mixed_script_text().size(); ++i) {
            if (static_cast<unsigned char>(mixed_script_text()[i]) >= 0xF0)
                i += 3;  // skip a 4-byte sequence
            else
                s += mixed_script_text()[i];
        }
        return s;
    }();
    return text;
}

struct codec_case {
    codec c;
    const char* iconv_name;  // glibc's name for the same byte format
};

const codec_case codec_cases[] = {
    {codec::iso_8859_1, "ISO-8859-1"}, {codec::ascii, "ASCII"},       {codec::utf_8, "UTF-8"},
    {codec::utf_16le, "UTF-16LE"},     {codec::utf_16be, "UTF-16BE"}, {codec::ucs_2le, "UCS-2LE"},
    {codec::ucs_2be, "UCS-2BE"},       {codec::ucs_4le, "UCS-4LE"},   {codec::ucs_4be, "UCS-4BE"},
};

// The text a codec can hold, by kind; nullptr where the kind does not apply.
const std::string* text_for(codec c, std::string_view kind) {
    const bool bmp_only = c == codec::ucs_2le || c == codec::ucs_2be;
    if (kind == "mostly_ascii")
        return c == codec::ascii ? &pure_ascii_text() : &mostly_ascii_text();
    if (c == codec::ascii || c == codec::iso_8859_1) return nullptr;
    return bmp_only ? &mixed_bmp_text() : &mixed_script_text();
}

std::string rill_encode(codec c, const std::string& text) {
    rill::detail::encoder e(
        rill::transcoder(c, rill::eol_style::none, rill::error_handling_mode::raise));
    std::string out;
    const rill::detail::encode_result r = e.encode(text, out);
    if (r.error || r.consumed != text.size())
        throw std::runtime_error("bench text does not encode in " +
                                 std::string(rill::to_string(c)));
    return out;
}

void decode_with_rill(benchmark::State& state, codec c, const std::string& bytes) {
    const rill::transcoder t(c, rill::eol_style::none, rill::error_handling_mode::replace);
    std::string out;
    for (auto _ : state) {
        out.clear();
        rill::detail::decoder d(t);
        benchmark::DoNotOptimize(d.decode(bytes, out, true));
        benchmark::DoNotOptimize(out.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes.size()));
}

void encode_with_rill(benchmark::State& state, codec c, const std::string& text) {
    const rill::transcoder t(c, rill::eol_style::none, rill::error_handling_mode::replace);
    std::string out;
    for (auto _ : state) {
        out.clear();
        rill::detail::encoder e(t);
        benchmark::DoNotOptimize(e.encode(text, out));
        benchmark::DoNotOptimize(out.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}

// One conversion with iconv, into a buffer sized for the worst case so it runs in one call.
void convert_with_iconv(benchmark::State& state, const char* to, const char* from,
                        const std::string& input) {
    constexpr std::size_t max_expansion = 4;  // UTF-8 -> UCS-4 of ASCII
    iconv_t cd = iconv_open(to, from);
    if (cd == reinterpret_cast<iconv_t>(-1)) {
        state.SkipWithError("iconv_open failed");
        return;
    }
    std::vector<char> out(input.size() * max_expansion + 16);
    for (auto _ : state) {
        iconv(cd, nullptr, nullptr, nullptr, nullptr);  // reset the shift state
        char* in_ptr = const_cast<char*>(input.data());
        std::size_t in_left = input.size();
        char* out_ptr = out.data();
        std::size_t out_left = out.size();
        if (iconv(cd, &in_ptr, &in_left, &out_ptr, &out_left) == static_cast<std::size_t>(-1)) {
            state.SkipWithError("iconv failed");
            break;
        }
        benchmark::DoNotOptimize(out.data());
    }
    iconv_close(cd);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * input.size()));
}

void register_benchmarks() {
    for (const codec_case& cc : codec_cases) {
        for (std::string_view kind : {"mostly_ascii", "mixed_script"}) {
            const std::string* text = text_for(cc.c, kind);
            if (text == nullptr) continue;
            const std::string prefix = std::string(rill::to_string(cc.c)) + "/" + std::string(kind);
            // A deque never moves its elements, and the registered lambdas keep references.
            static std::deque<std::string> encoded_texts;
            encoded_texts.push_back(rill_encode(cc.c, *text));
            const std::string& bytes = encoded_texts.back();
            const codec c = cc.c;
            const char* name = cc.iconv_name;
            benchmark::RegisterBenchmark(
                ("decode/" + prefix + "/rill").c_str(),
                [c, &bytes](benchmark::State& s) { decode_with_rill(s, c, bytes); });
            benchmark::RegisterBenchmark(("decode/" + prefix + "/iconv").c_str(),
                                         [name, &bytes](benchmark::State& s) {
                                             convert_with_iconv(s, "UTF-8", name, bytes);
                                         });
            benchmark::RegisterBenchmark(
                ("encode/" + prefix + "/rill").c_str(),
                [c, text](benchmark::State& s) { encode_with_rill(s, c, *text); });
            benchmark::RegisterBenchmark(
                ("encode/" + prefix + "/iconv").c_str(),
                [name, text](benchmark::State& s) { convert_with_iconv(s, name, "UTF-8", *text); });
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    register_benchmarks();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
