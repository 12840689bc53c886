// Files a test uses: the built tools and examples, seed corpora and other inputs kept in the
// source tree (the test binary knows both directories).
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace rill_test {

// A built tool or example ("tools/rill").
inline std::string built(const std::string& relative) {
    return std::string(RILL_BINARY_DIR) + "/" + relative;
}
// A file of the source tree ("tests/tools/gambit_transcoding_echo.scm").
inline std::string source(const std::string& relative) {
    return std::string(RILL_SOURCE_DIR) + "/" + relative;
}

// The whole file, as bytes (empty if it cannot be opened).
inline std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// fuzz/corpus/<target>/ in the source tree: a fuzz target's seeds.
inline std::filesystem::path fuzz_corpus_dir(const std::string& target) {
    return std::filesystem::path(RILL_SOURCE_DIR) / "fuzz" / "corpus" / target;
}

// The seed files of fuzz/corpus/<target>/, in directory order.
inline std::vector<std::filesystem::path> fuzz_corpus_files(const std::string& target) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(fuzz_corpus_dir(target)))
        if (entry.is_regular_file()) files.push_back(entry.path());
    return files;
}

}  // namespace rill_test
