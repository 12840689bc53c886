// Replays the read_line fuzzer's seed corpus (fuzz/corpus/fuzz_read_line/) through the same
// checks fuzz_read_line runs (fuzz/read_line_check.hpp), so the properties are exercised in
// every test run, on both backends, without clang.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "../../fuzz/read_line_check.hpp"
#include "support/files.hpp"

namespace {

using rill_test::read_file;

TEST(ReadLineCorpus, SeedsPassTheFuzzChecks) {
    const std::vector<std::filesystem::path> files = rill_test::fuzz_corpus_files("fuzz_read_line");
    ASSERT_FALSE(files.empty()) << "no seeds in " << rill_test::fuzz_corpus_dir("fuzz_read_line");
    // Every worker: the sending task may run on another thread than the stream's. (Over an
    // AF_UNIX SOCK_SEQPACKET pair, as before the in-memory transport, a receive could see the
    // peer's shutdown before a message queued in between: about 1 run in 150 with two workers.)
    rill::run([&] {
        for (const std::filesystem::path& file : files) {
            const std::string data = read_file(file);
            EXPECT_EQ(rill::read_line_check::check_read_line_input(
                          reinterpret_cast<const std::uint8_t*>(data.data()), data.size()),
                      "")
                << file.filename();
        }
    });
}

}  // namespace
