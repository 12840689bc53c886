// Replays the TLS fuzzer's seed corpus (fuzz/corpus/fuzz_tls/) through the same checks fuzz_tls
// runs (fuzz/tls_check.hpp), so the properties are exercised in every test run, on both
// backends, without clang; and shows that the checks see what the server read.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "support/files.hpp"

#if RILL_WITH_TLS
#include "../../fuzz/tls_check.hpp"
#endif

namespace {

using rill_test::read_file;

#if RILL_WITH_TLS

std::string check(const std::string& input) {
    return rill::tls_check::check_tls_input(reinterpret_cast<const std::uint8_t*>(input.data()),
                                            input.size());
}

// The settings of an input as a string, for inputs built here.
std::string header(std::uint8_t mode, std::uint8_t settings, std::uint8_t record_seed,
                   std::uint8_t cipher_seed) {
    return std::string{static_cast<char>(mode), static_cast<char>(settings),
                       static_cast<char>(record_seed), static_cast<char>(cipher_seed)};
}

#endif

TEST(TlsCorpus, SeedsPassTheFuzzChecks) {
#if !RILL_WITH_TLS
    GTEST_SKIP() << "rill built without TLS";
#else
    const std::vector<std::filesystem::path> files = rill_test::fuzz_corpus_files("fuzz_tls");
    ASSERT_FALSE(files.empty()) << "no seeds in " << rill_test::fuzz_corpus_dir("fuzz_tls");
    // Every worker: the client, the relays and the server may run on different threads.
    rill::run([&] {
        for (const std::filesystem::path& file : files)
            EXPECT_EQ(check(read_file(file)), "") << file.filename();
    });
#endif
}

// The reads the checks judge are the server's: a handshake and records cut at random carry
// exactly the client's lines, then end of stream.
TEST(TlsCorpus, EstablishedStreamGivesTheClientsLines) {
#if !RILL_WITH_TLS
    GTEST_SKIP() << "rill built without TLS";
#else
    const std::string input = header(1, 0, 5, 9) + "first\r\nsecond\nthird";
    rill::tls_check::server_reads r;
    rill::tls_check::client_report client;
    rill::run([&] {
        const rill::tls_check::settings in = rill::tls_check::parse_input(
            reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
        r = rill::tls_check::run_established(in, in.payload, {}, client);
    });
    EXPECT_EQ(client.failure, "");
    EXPECT_EQ(r.lines, (std::vector<std::string>{"line:first", "line:second", "line:third"}));
    EXPECT_EQ(r.end, "end");
    EXPECT_EQ(r.after_end, "end");
#endif
}

// Bytes injected into the ciphertext after two records: the first record's lines arrive, the
// line the second one began is lost, and the server fails with tls_error from then on.
TEST(TlsCorpus, InjectedCiphertextEndsTheStreamWithTlsError) {
#if !RILL_WITH_TLS
    GTEST_SKIP() << "rill built without TLS";
#else
    const std::string input = header(2, 0, 1, 3) + "one\ntwo";
    rill::tls_check::server_reads r;
    rill::tls_check::client_report client;
    rill::run([&] {
        const rill::tls_check::settings in = rill::tls_check::parse_input(
            reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
        r = rill::tls_check::run_established(in, in.payload,
                                             "\x17\x03\x03\x00\x05"
                                             "abcde",
                                             client);
    });
    EXPECT_EQ(client.failure, "");
    EXPECT_EQ(r.lines, (std::vector<std::string>{"line:one"}));
    EXPECT_TRUE(rill::tls_check::is_tls_error(r.end)) << r.end;
    EXPECT_TRUE(rill::tls_check::is_tls_error(r.after_end)) << r.after_end;
#endif
}

// A bit flipped in the ciphertext after the handshake: inside the one data record, no line
// arrives; in the close_notify after it, every line does; either way the server then fails
// with tls_error.
TEST(TlsCorpus, FlippedCiphertextEndsTheStreamWithTlsError) {
#if !RILL_WITH_TLS
    GTEST_SKIP() << "rill built without TLS";
#else
    const std::string plaintext = "first\nsecond\n";
    // A record seed that leaves the plaintext whole: one record of 13 + 22 bytes, then the
    // close_notify's 24.
    std::uint8_t whole_seed = 0;
    while (!rill::codec_check::random_cuts(plaintext.size(), whole_seed).empty()) ++whole_seed;
    const std::size_t ciphertext_bytes = plaintext.size() + 22 + 24;
    struct flip_case {
        std::size_t offset;
        std::vector<std::string> lines;
    };
    const flip_case cases[] = {{10, {}}, {ciphertext_bytes - 1, {"line:first", "line:second"}}};
    for (const flip_case& c : cases) {
        // Settings 4: flip; cipher seed: the plaintext's length, the rest is the corruption.
        const std::string input =
            header(2, 4, whole_seed, static_cast<std::uint8_t>(plaintext.size())) + plaintext;
        const std::string corruption{static_cast<char>(c.offset & 0xFF),
                                     static_cast<char>(c.offset >> 8), '\x01'};
        rill::tls_check::server_reads r;
        rill::tls_check::client_report client;
        rill::run([&] {
            const rill::tls_check::settings in = rill::tls_check::parse_input(
                reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
            r = rill::tls_check::run_established(in, in.payload, corruption, client);
        });
        EXPECT_TRUE(client.changed) << c.offset;
        EXPECT_TRUE(rill::tls_check::is_tls_error(r.end)) << c.offset << ": " << r.end;
        EXPECT_EQ(r.lines, c.lines) << c.offset;
    }
#endif
}

// A real ClientHello and then the end: the server answers, then fails the handshake with
// tls_error saying the peer closed, and gives no line.
TEST(TlsCorpus, ClientHelloThenEndFailsTheHandshake) {
#if !RILL_WITH_TLS
    GTEST_SKIP() << "rill built without TLS";
#else
    const std::string input =
        read_file(rill_test::fuzz_corpus_dir("fuzz_tls") / "raw_client_hello_tls13");
    ASSERT_GT(input.size(), rill::tls_check::header_bytes);
    rill::tls_check::server_reads r;
    rill::run([&] {
        r = rill::tls_check::run_raw(rill::tls_check::parse_input(
            reinterpret_cast<const std::uint8_t*>(input.data()), input.size()));
    });
    EXPECT_TRUE(r.lines.empty());
    EXPECT_TRUE(rill::tls_check::is_tls_error(r.end)) << r.end;
    EXPECT_NE(r.end.find("closed the connection during the handshake"), std::string::npos) << r.end;
#endif
}

}  // namespace
