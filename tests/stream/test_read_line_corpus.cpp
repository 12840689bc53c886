// Replays the read_line fuzzer's seed corpus (fuzz/corpus/fuzz_read_line/) through the same
// checks fuzz_read_line runs (fuzz/read_line_check.hpp), so the properties are exercised in
// every test run, on both backends, without clang.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "../../fuzz/read_line_check.hpp"

namespace {

std::filesystem::path corpus_dir() {
    return std::filesystem::path(RILL_SOURCE_DIR) / "fuzz" / "corpus" / "fuzz_read_line";
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(read_line_corpus, seeds_pass_the_fuzz_checks) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(corpus_dir()))
        if (entry.is_regular_file()) files.push_back(entry.path());
    ASSERT_FALSE(files.empty()) << "no seeds in " << corpus_dir();
    // One worker, as in fuzz_read_line: the sending task must not run on another thread while
    // the stream receives. On AF_UNIX SOCK_SEQPACKET a non-blocking receive that finds the
    // queue empty and then the peer shut down reports the end of the stream, even when a
    // message was queued in between: with two workers, a sender on the other CPU doing send
    // then shutdown made the first receive return 0 in about 1 run in 150 (the stream saw
    // [end] with the message unread). TCP orders data and FIN in the socket, so it has no such
    // window.
    rill::run([&] {
        for (const std::filesystem::path& file : files) {
            const std::string data = read_file(file);
            EXPECT_EQ(rill::read_line_check::check_read_line_input(reinterpret_cast<const std::uint8_t*>(data.data()),
                                                                   data.size()),
                      "")
                << file.filename();
        }
    }, {.workers = 1});
}

} // namespace
