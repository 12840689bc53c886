// Stream operations over the in-memory transport: the transport seam carries every stream
// behaviour without a socket (timeouts, half-close, a peer that never reads, cancellation), and
// each send arrives as one receive, so a test splits the bytes exactly.
#include <gtest/gtest.h>

#include <rill/rill.hpp>

#include "stream/memory_transport.hpp"
#include "stream/stream_state.hpp"
#include "stream/stream_test_support.hpp"

namespace {

using namespace rill_stream_test;

TEST(MemoryTransport, LinesSplitAtEveryByteReadTheSame) {
    const std::string text = "h\xC3\xA9llo\r\nworld\n\rlast";
    for (std::size_t cut = 0; cut <= text.size(); ++cut) {
        std::vector<std::string> got;
        serve_memory_peer([&](rill::stream& s) { got = read_all_lines(s); },
                          memory_sends({text.substr(0, cut), text.substr(cut)}));
        EXPECT_EQ(got, (std::vector<std::string>{"h\xC3\xA9llo", "world", "last"}))
            << "cut at " << cut;
    }
}

TEST(MemoryTransport, EchoBothWays) {
    serve_memory_peer(
        [](rill::stream& s) {
            while (auto line = rill::read_line(s)) {
                rill::showln(s, *line);
                rill::flush_writer(s);
            }
        },
        [](memory_peer& c) {
            c.send("one\r\ntwo\r\n");
            EXPECT_EQ(c.receive_some(), "one\r\ntwo\r\n");  // both answers in one send
            c.shutdown_write();
            EXPECT_EQ(c.receive_all(), "");
        });
}

TEST(MemoryTransport, ReaderTimeoutIsEndOfStreamAndTheLineStillComes) {
    rill::channel<int> timed_out(1);
    serve_memory_peer(
        [&](rill::stream& s) {
            rill::reader_timeout(s, std::chrono::milliseconds(20));
            EXPECT_EQ(rill::read_line(s), std::nullopt);  // the partial line stays in the stream
            timed_out.send(1);
            rill::reader_timeout(s, std::nullopt);
            EXPECT_EQ(rill::read_line(s), "partial line");
        },
        [&](memory_peer& c) {
            c.send("partial ");
            ASSERT_TRUE(timed_out.receive());
            c.send("line\r\n");
            c.receive_all();
        });
}

TEST(MemoryTransport, WriterTimeoutWhenThePeerNeverReads) {
    rill::channel<int> done(1);
    rill::run([&] {
        auto [mine, theirs] = rill::detail::make_memory_transport_pair(4096);
        rill::stream s = rill::detail::make_stream(
            std::move(mine), {.writer_timeout = std::chrono::milliseconds(20)});
        const std::string chunk(1000, 'x');
        EXPECT_THROW(
            {
                for (int i = 0; i < 1000; ++i) {
                    rill::write_chars(s, chunk);
                    rill::flush_writer(s);
                    rill::task_yield();  // the put-off send runs
                }
            },
            rill::timeout_error);
        done.send(1);
    });
    EXPECT_TRUE(done.receive());
}

TEST(MemoryTransport, CloseWriterIsEndOfStreamForThePeerWhichCanStillAnswer) {
    serve_memory_peer(
        [](rill::stream& s) {
            rill::write_chars(s, "request\n");
            rill::close_writer(s);
            EXPECT_EQ(rill::read_line(s), "response");
            EXPECT_EQ(rill::read_line(s), std::nullopt);
        },
        [](memory_peer& c) {
            EXPECT_EQ(c.receive_all(), "request\r\n");
            c.send("response\r\n");
            c.shutdown_write();
        });
}

TEST(MemoryTransport, ClosingWhileThePeerSendsResetsItsSends) {
    serve_memory_peer([](rill::stream& s) { EXPECT_EQ(rill::read_line(s), "only"); },
                      [](memory_peer& c) {
                          c.send("only\r\n");
                          EXPECT_EQ(c.receive_all(), "");  // the stream closed
                          EXPECT_THROW(c.send("more"), std::runtime_error);
                      });
}

TEST(MemoryTransport, AWaitingReadIsCancelledWhenRunEnds) {
    std::atomic<bool> cancelled{false};
    rill::run([&] {
        auto pair = std::make_shared<rill::detail::memory_stream_pair>(
            rill::detail::make_memory_stream_pair());
        rill::spawn([pair, &cancelled] {
            try {
                (void)rill::read_line(pair->first);  // nothing ever comes
            } catch (const rill::task_cancelled&) {
                cancelled = true;
                throw;
            }
        });
        rill::task_yield();
    });
    EXPECT_TRUE(cancelled.load());
}

TEST(MemoryTransport, AnIdleStreamHoldsNoBuffer) {
    rill::channel<int> waiting(1);
    serve_memory_peer(
        [&](rill::stream& s) {
            rill::write_chars(s, std::string(10000, 'a'));
            rill::flush_writer(s);
            EXPECT_EQ(rill::read_line(s), "x");
            EXPECT_EQ(rill::detail::state_of(s).in.capacity(), 0u);
            waiting.send(1);
            EXPECT_EQ(rill::read_line(s), std::nullopt);
        },
        [&](memory_peer& c) {
            c.send("x\r\n");
            ASSERT_TRUE(waiting.receive());
            EXPECT_EQ(c.receive_some().size(), 10000u);
            c.shutdown_write();
            c.receive_all();
        });
}

TEST(MemoryTransport, TranscodedStreamsOnBothEnds) {
    const rill::transcoder utf16(rill::codec::utf_16le, rill::eol_style::lf);
    rill::run([&] {
        auto [a, b] = rill::detail::make_memory_stream_pair({}, utf16, utf16);
        rill::showln(a, "h\xC3\xA9llo \xF0\x9F\x98\x80");
        rill::close_writer(a);
        EXPECT_EQ(rill::read_line(b), "h\xC3\xA9llo \xF0\x9F\x98\x80");
        EXPECT_EQ(rill::read_line(b), std::nullopt);
    });
}

}  // namespace
