// Replays the fuzzers' seed corpora (fuzz/corpus/<target>/) through the same checks the
// libFuzzer targets run, so the properties are exercised in every build, without clang.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "../../fuzz/codec_check.hpp"
#include "support/files.hpp"

namespace rill::test {
namespace {

using rill_test::fuzz_corpus_dir;
using rill_test::fuzz_corpus_files;
using rill_test::read_file;

template <class Check>
void replay(const char* target, Check check) {
    const std::vector<std::filesystem::path> files = fuzz_corpus_files(target);
    ASSERT_FALSE(files.empty()) << "no seeds in " << fuzz_corpus_dir(target);
    for (const std::filesystem::path& file : files) {
        const std::string data = read_file(file);
        EXPECT_EQ(check(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()), "")
            << file.filename();
    }
}

TEST(FuzzCorpus, DecoderSeedsPassTheFuzzChecks) {
    replay("fuzz_decode", codec_check::check_decoder_input);
}

TEST(FuzzCorpus, EncoderSeedsPassTheFuzzChecks) {
    replay("fuzz_encode", codec_check::check_encoder_input);
}

}  // namespace
}  // namespace rill::test
