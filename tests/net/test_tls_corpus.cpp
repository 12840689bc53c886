// Replays the TLS fuzzer's seed corpus (fuzz/corpus/fuzz_tls/) through the same checks fuzz_tls
// runs (fuzz/tls_check.hpp), so the properties are exercised in every test run, on both
// backends, without clang; and shows that the checks see what the server read.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <utility>
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
// exactly the client's lines, then end of stream, over the version the settings ask for.
TEST(TlsCorpus, EstablishedStreamGivesTheClientsLines) {
#if !RILL_WITH_TLS
    GTEST_SKIP() << "rill built without TLS";
#else
    // Settings 0: TLS 1.3; 8: the client offers TLS 1.2 only.
    for (const auto& [settings, version] : {std::pair{0, "TLSv1.3"}, std::pair{8, "TLSv1.2"}}) {
        const std::string input =
            header(1, static_cast<std::uint8_t>(settings), 5, 9) + "first\r\nsecond\nthird";
        rill::tls_check::server_reads r;
        rill::tls_check::client_report client;
        rill::run([&] {
            const rill::tls_check::settings in = rill::tls_check::parse_input(
                reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
            r = rill::tls_check::run_established(in, in.payload, {}, client);
        });
        EXPECT_EQ(client.failure, "") << version;
        EXPECT_EQ(client.version, version);
        EXPECT_EQ(r.lines, (std::vector<std::string>{"line:first", "line:second", "line:third"}))
            << version;
        EXPECT_EQ(r.end, "end") << version;
        EXPECT_EQ(r.after_end, "end") << version;
        std::string checked;  // the whole check, the version included
        rill::run([&] { checked = check(input); });
        EXPECT_EQ(checked, "") << version;
    }
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

// A bit flipped in the ciphertext after the handshake: inside the one data record (its header
// or TLS 1.2's explicit nonce), no line arrives; in the close_notify after it, every line does;
// either way the server then fails with tls_error. Over TLS 1.3 and TLS 1.2.
TEST(TlsCorpus, FlippedCiphertextEndsTheStreamWithTlsError) {
#if !RILL_WITH_TLS
    GTEST_SKIP() << "rill built without TLS";
#else
    const std::string plaintext = "first\nsecond\n";
    // A record seed that leaves the plaintext whole: one record, then the close_notify.
    std::uint8_t whole_seed = 0;
    while (!rill::codec_check::random_cuts(plaintext.size(), whole_seed).empty()) ++whole_seed;
    const auto run = [&](std::uint8_t mode, std::uint8_t settings, const std::string& corruption,
                         rill::tls_check::client_report& client) {
        // Cipher seed: the plaintext's length (mode 2: the rest is the corruption).
        const std::string input =
            header(mode, settings, whole_seed, static_cast<std::uint8_t>(plaintext.size())) +
            plaintext;
        rill::tls_check::server_reads r;
        rill::run([&] {
            const rill::tls_check::settings in = rill::tls_check::parse_input(
                reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
            r = rill::tls_check::run_established(in, in.payload, corruption, client);
        });
        return r;
    };
    // Settings 4: flip; 8: TLS 1.2 only.
    for (const std::uint8_t version_bit : {0, 8}) {
        // The record overhead of the cipher this version negotiates here (TLS 1.3: 22).
        rill::tls_check::client_report plain;
        run(1, version_bit, {}, plain);
        ASSERT_NE(plain.record_overhead, 0U) << plain.failure;
        const std::size_t ciphertext_bytes = plaintext.size() + plain.record_overhead +
                                             rill::tls_check::close_notify_bytes +
                                             plain.record_overhead;
        struct flip_case {
            std::size_t offset;
            std::vector<std::string> lines;
        };
        const flip_case cases[] = {{10, {}}, {ciphertext_bytes - 1, {"line:first", "line:second"}}};
        for (const flip_case& c : cases) {
            const std::string corruption{static_cast<char>(c.offset & 0xFF),
                                         static_cast<char>(c.offset >> 8), '\x01'};
            rill::tls_check::client_report client;
            const rill::tls_check::server_reads r =
                run(2, static_cast<std::uint8_t>(4 | version_bit), corruption, client);
            EXPECT_EQ(client.version, plain.version);
            EXPECT_TRUE(client.changed) << plain.version << " " << c.offset;
            EXPECT_TRUE(rill::tls_check::is_tls_error(r.end))
                << plain.version << " " << c.offset << ": " << r.end;
            EXPECT_EQ(r.lines, c.lines) << plain.version << " " << c.offset;
        }
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
