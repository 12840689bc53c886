// Lines through TLS cut at every position: the client's text goes out as TLS records cut where
// the test says (down to one byte per record), and a relay between the two TLS transports cuts
// the ciphertext into receives of k bytes (down to one byte per receive, so every record and
// every handshake message is split at every position). The server's stream must read the same
// lines whatever the cuts, with and without a transcoder. Also what a cut connection reads as:
// a TCP end between records (end of stream) and inside one (tls_error). In-memory transports
// carry the ciphertext, so each cut is exactly where the test puts it.
#include <gtest/gtest.h>

#if RILL_WITH_TLS

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "net/tls_transport.hpp"
#include "stream/memory_transport.hpp"
#include "stream/stream_state.hpp"
#include "support/errors.hpp"
#include "support/tls_certs.hpp"
#include "support/wait.hpp"

namespace {

using rill::detail::byte_buffer;
using rill::detail::transport;

struct contexts {
    rill_test::tls_test_certificates certificates;
    rill::tls_context server{{.certificate_pem = certificates.server.certificate.pem,
                              .private_key_pem = certificates.server.private_key.pem}};
    rill::tls_context client{{.ca_file = certificates.ca.path.string()}};
};
contexts& tls() {
    static contexts c;
    return c;
}

rill::detail::time_point limit() { return rill::detail::clock::now() + rill_test::wait_limit; }

void send_all(transport& t, std::string_view bytes) {
    while (!bytes.empty()) {
        const long r = t.send(bytes.data(), bytes.size(), limit(), false);
        if (r <= 0) throw std::runtime_error("send: " + std::to_string(r));
        bytes.remove_prefix(static_cast<std::size_t>(r));
    }
}

// Copies what `from` receives to `to` in sends of `cut` bytes at most, holding back the last
// `drop_tail` bytes of the whole conversation once `tail_coming` is set (a connection cut inside
// its last record; before that everything goes, or the handshake would wait for its own
// last bytes), then ends `to`'s writing side.
void relay(transport& from, transport& to, std::size_t cut, std::size_t drop_tail,
           const std::atomic<bool>& tail_coming) {
    std::string held;
    byte_buffer in;
    for (;;) {
        const long r = from.receive(in, limit(), nullptr);
        if (r <= 0) break;
        held.append(in.head(), in.size());
        in.consume(in.size());
        const std::size_t keep = tail_coming.load() ? drop_tail : 0;
        while (held.size() > keep) {
            const std::size_t n = std::min(cut, held.size() - keep);
            try {
                send_all(to, std::string_view(held).substr(0, n));
            } catch (const std::runtime_error&) {
                return;  // the other side is gone
            }
            held.erase(0, n);
        }
    }
    to.shutdown_writer();
}

struct conversation {
    std::vector<std::string> records;  // the client's plaintext, one TLS record each
    std::size_t cipher_cut = 0;  // bytes per receive on the server's side; 0: as sent
    bool close_notify = true;  // the client ends with close_notify (else a bare TCP end)
    std::size_t drop_tail = 0;  // ciphertext bytes lost at the end
    std::optional<rill::transcoder> coding;
};

struct outcome {
    std::vector<std::string> lines;
    std::string error;  // a tls_error's message, if the server's reads ended with one
};

outcome converse(const conversation& c) {
    outcome out;
    rill::run([&] {
        auto [client_lower, up_tap] = rill::detail::make_memory_transport_pair();
        auto [down_tap, server_lower] = rill::detail::make_memory_transport_pair();
        std::unique_ptr<transport> client = rill::detail::make_tls_transport(
            std::move(client_lower), tls().client, rill::detail::tls_role::client, "localhost");
        const std::size_t cut = c.cipher_cut ? c.cipher_cut : std::size_t{1} << 30;
        std::atomic<bool> last_record{false};
        auto up = rill::spawn([&, from = up_tap.get(), to = down_tap.get()] {
            relay(*from, *to, cut, c.drop_tail, last_record);
        });
        auto down = rill::spawn([&, from = down_tap.get(), to = up_tap.get()] {
            relay(*from, *to, std::size_t{1} << 30, 0, last_record);
        });
        auto speaker = rill::spawn([&] {
            for (std::size_t i = 0; i < c.records.size(); ++i) {
                if (i + 1 == c.records.size()) last_record = true;
                send_all(*client, c.records[i]);
            }
            if (c.close_notify) client->finish_output(limit());
            client->shutdown_writer();
            byte_buffer in;
            while (client->receive(in, limit(), nullptr) > 0) in.consume(in.size());
        });
        rill::stream s = rill::detail::make_stream(
            rill::detail::make_tls_transport(std::move(server_lower), tls().server,
                                             rill::detail::tls_role::server),
            {}, c.coding);
        try {
            for (int i = 0; i < 10000; ++i) {
                auto line = rill::read_line(s);
                if (!line) break;
                out.lines.push_back(*line);
            }
        } catch (const rill::tls_error& e) {
            out.error = e.what();
        }
        rill::close_stream(s);
        speaker.join();
        up.join();
        down.join();
    });
    return out;
}

// `text` as records of `size` bytes (the last one shorter).
std::vector<std::string> records_of(const std::string& text, std::size_t size) {
    std::vector<std::string> records;
    for (std::size_t i = 0; i < text.size(); i += size) records.push_back(text.substr(i, size));
    return records;
}

const std::string text = "first line\nsecond, with CR LF\r\nthird \xC3\xA9\xE2\x82\xAC\n\nlast";
const std::vector<std::string> text_lines = {"first line", "second, with CR LF",
                                             "third \xC3\xA9\xE2\x82\xAC", "", "last"};

TEST(TlsSplits, LinesSurviveEveryRecordCutAndEveryCiphertextCut) {
    for (std::size_t record_size : {std::size_t{1}, std::size_t{2}, std::size_t{7}, text.size()}) {
        for (std::size_t cipher_cut :
             {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{5}, std::size_t{13},
              std::size_t{100}, std::size_t{0}}) {
            const outcome o =
                converse({.records = records_of(text, record_size), .cipher_cut = cipher_cut});
            EXPECT_EQ(o.lines, text_lines)
                << "records of " << record_size << " bytes, ciphertext cut every " << cipher_cut;
            EXPECT_EQ(o.error, "");
        }
    }
}

TEST(TlsSplits, TranscodedLinesSurviveTheCutsToo) {
    // UTF-16LE on the wire: a character's two bytes in different records and receives.
    std::string wire;
    const std::u16string utf16 = u"ab\ncd\u00e9\u20ac\n";
    for (char16_t u : utf16) {
        wire.push_back(static_cast<char>(u & 0xFF));
        wire.push_back(static_cast<char>(u >> 8));
    }
    const rill::transcoder coding(rill::codec::utf_16le, rill::eol_style::lf);
    for (std::size_t record_size : {std::size_t{1}, std::size_t{3}, wire.size()}) {
        for (std::size_t cipher_cut : {std::size_t{1}, std::size_t{7}, std::size_t{0}}) {
            const outcome o = converse({.records = records_of(wire, record_size),
                                        .cipher_cut = cipher_cut,
                                        .coding = coding});
            EXPECT_EQ(o.lines, (std::vector<std::string>{"ab", "cd\xC3\xA9\xE2\x82\xAC"}))
                << "records of " << record_size << " bytes, ciphertext cut every " << cipher_cut;
        }
    }
}

TEST(TlsSplits, ATcpEndBetweenRecordsIsTheEndOfTheStream) {
    const outcome o =
        converse({.records = records_of(text, 4), .cipher_cut = 9, .close_notify = false});
    EXPECT_EQ(o.lines, text_lines);
    EXPECT_EQ(o.error, "");
}

TEST(TlsSplits, ATcpEndInsideARecordIsATlsError) {
    const outcome o = converse(
        {.records = {"whole line\n", "cut line\n"}, .close_notify = false, .drop_tail = 5});
    EXPECT_EQ(o.lines, std::vector<std::string>{"whole line"});
    EXPECT_TRUE(rill_test::contains(o.error, "read_line: tls receive from ")) << o.error;
    EXPECT_TRUE(rill_test::contains(o.error, "the connection ended inside a TLS record"))
        << o.error;
}

}  // namespace

#endif  // RILL_WITH_TLS
