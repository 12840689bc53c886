// Replays the fuzzers' seed corpora (fuzz/corpus/<target>/) through the same checks the
// libFuzzer targets run, so the properties are exercised in every build, without clang.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "../../fuzz/codec_check.hpp"

namespace rill::test {
namespace {

std::filesystem::path corpus_dir(const char* target) {
#ifdef RILL_SOURCE_DIR
    const std::filesystem::path source = RILL_SOURCE_DIR;
#else
    const std::filesystem::path source =
        std::filesystem::path(__FILE__).parent_path() / ".." / "..";
#endif
    return source / "fuzz" / "corpus" / target;
}

std::vector<std::filesystem::path> corpus_files(const char* target) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(corpus_dir(target)))
        if (entry.is_regular_file())
            files.push_back(entry.path());
    return files;
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <class Check>
void replay(const char* target, Check check) {
    const std::vector<std::filesystem::path> files = corpus_files(target);
    ASSERT_FALSE(files.empty()) << "no seeds in " << corpus_dir(target);
    for (const std::filesystem::path& file : files) {
        const std::string data = read_file(file);
        EXPECT_EQ(check(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()), "")
            << file.filename();
    }
}

TEST(fuzz_corpus, decoder_seeds_pass_the_fuzz_checks) {
    replay("fuzz_decode", codec_check::check_decoder_input);
}

TEST(fuzz_corpus, encoder_seeds_pass_the_fuzz_checks) {
    replay("fuzz_encode", codec_check::check_encoder_input);
}

} // namespace
} // namespace rill::test
