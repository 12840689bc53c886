// Closing: close_stream (flushes, closes both directions, harmless twice, later operations
// throw rill::error), close_writer and close_reader (half-closes), and a peer's half-close.
#include <gtest/gtest.h>

#include <rill/rill.hpp>

#include "stream/stream_test_support.hpp"

namespace {

using namespace rill_stream_test;

TEST(CloseStream, FlushesThenClosesAndTwiceIsHarmless) {
    std::string got;
    serve_raw_peer(
        [](rill::tcp_client_stream& s) {
            rill::showln(s, "bye");
            EXPECT_TRUE(s.is_open());
            rill::close_stream(s);
            EXPECT_FALSE(s.is_open());
            rill::close_stream(s);
            rill::close_writer(s);
            rill::close_reader(s);
            EXPECT_FALSE(s.is_open());
        },
        [&](rill_test::raw_client& c) { got = c.receive_all(); });
    EXPECT_EQ(got, "bye\r\n");
}

// Expects `op` to throw rill::error (and not one of its subclasses for I/O or timeouts).
template <class Op>
void expect_closed_error(const char* what, Op op) {
    SCOPED_TRACE(what);
    try {
        op();
        ADD_FAILURE() << what << " after close_stream did not throw";
    } catch (const rill::os_error& e) {
        ADD_FAILURE() << what << " threw os_error: " << e.what();
    } catch (const rill::error& e) {
        EXPECT_NE(std::string(e.what()).find("closed"), std::string::npos) << e.what();
    }
}

TEST(CloseStream, OperationsAfterCloseThrow) {
    serve_raw_peer(
        [](rill::tcp_client_stream& s) {
            EXPECT_EQ(rill::read_line(s), "unread");
            rill::close_stream(s);
            std::byte buffer[4];
            std::string line;
            expect_closed_error("read_line", [&] { (void)rill::read_line(s); });
            expect_closed_error("read_line into", [&] { (void)rill::read_line(s, line); });
            expect_closed_error("read_char", [&] { (void)rill::read_char(s); });
            expect_closed_error("peek_char", [&] { (void)rill::peek_char(s); });
            expect_closed_error("read_n_chars", [&] { (void)rill::read_n_chars(s, 2); });
            expect_closed_error("read_all_chars", [&] { (void)rill::read_all_chars(s); });
            expect_closed_error("read_byte", [&] { (void)rill::read_byte(s); });
            expect_closed_error("read_n_bytes", [&] { (void)rill::read_n_bytes(s, 2); });
            expect_closed_error("read_all_bytes", [&] { (void)rill::read_all_bytes(s); });
            expect_closed_error("read_some", [&] { (void)rill::read_some(s, buffer); });
            expect_closed_error("write_byte", [&] { rill::write_byte(s, 'x'); });
            expect_closed_error("write_bytes", [&] {
                rill::write_bytes(s, std::vector<std::uint8_t>{1, 2});
            });
            expect_closed_error("write_char", [&] { rill::write_char(s, U'x'); });
            expect_closed_error("write_chars", [&] { rill::write_chars(s, "x"); });
            expect_closed_error("showln", [&] { rill::showln(s, 1); });
            expect_closed_error("newline", [&] { rill::newline(s); });
            expect_closed_error("flush_writer", [&] { rill::flush_writer(s); });
        },
        [](rill_test::raw_client& c) {
            c.send("unread\r\nmore\r\n");
            c.receive_all();
        });
}

TEST(CloseStream, AMovedFromStreamIsClosed) {
    serve_raw_peer(
        [](rill::tcp_client_stream& s) {
            rill::tcp_client_stream moved = std::move(s);
            EXPECT_FALSE(s.is_open());
            EXPECT_TRUE(moved.is_open());
            EXPECT_THROW((void)rill::read_line(s), rill::error);
            EXPECT_THROW(rill::showln(s, "x"), rill::error);
            rill::close_stream(s);  // harmless
            EXPECT_EQ(rill::read_line(moved), "hi");
            rill::showln(moved, "ho");
            rill::close_stream(moved);
        },
        [](rill_test::raw_client& c) {
            c.send("hi\r\n");
            EXPECT_EQ(c.receive_all(), "ho\r\n");
        });
}

TEST(CloseStream, DestructorDropsUnflushedOutput) {
    serve_raw_peer(
        [](rill::tcp_client_stream& s) {
            rill::tcp_client_stream owned = std::move(s);
            rill::showln(owned, "never sent");
        },
        [](rill_test::raw_client& c) { EXPECT_EQ(c.receive_all(), ""); });
}

TEST(CloseWriter, PeerSeesEndOfStreamWhileTheStreamStillReads) {
    std::atomic<bool> writer_closed{false};
    serve_memory_peer(
        [&](rill::stream& s) {
            rill::showln(s, "request");
            rill::close_writer(s);  // flushes
            rill::close_writer(s);  // harmless twice
            writer_closed = true;
            EXPECT_TRUE(s.is_open());
            try {
                rill::showln(s, "too late");
                ADD_FAILURE() << "write after close_writer did not throw";
            } catch (const rill::os_error& e) {
                ADD_FAILURE() << "os_error: " << e.what();
            } catch (const rill::error&) {}
            EXPECT_THROW(rill::flush_writer(s), rill::error);
            EXPECT_EQ(rill::read_line(s), "response");
            EXPECT_EQ(rill::read_line(s), "second");
            EXPECT_EQ(rill::read_line(s), std::nullopt);
            rill::close_stream(s);  // no output left to flush, no error
        },
        [&](memory_peer& c) {
            EXPECT_EQ(c.receive_all(),
                      "request\r\n");  // end of stream while the connection is open
            c.send("response\r\n");  // two sends: two receives of the stream's
            c.send("second\r\n");
            c.shutdown_write();
        });
    EXPECT_TRUE(writer_closed.load());
}

TEST(CloseReader, LaterReadsSeeEndOfStreamAndWritesStillWork) {
    std::atomic<bool> reader_closed{false};
    serve_raw_peer(
        [&](rill::tcp_client_stream& s) {
            EXPECT_EQ(rill::read_line(s), "first");
            rill::close_reader(s);  // "second" may already be buffered: it is dropped too
            rill::close_reader(s);
            reader_closed = true;
            EXPECT_EQ(rill::read_line(s), std::nullopt);
            EXPECT_EQ(rill::read_char(s), std::nullopt);
            EXPECT_EQ(rill::read_byte(s), std::nullopt);
            EXPECT_EQ(rill::read_all_bytes(s), std::nullopt);
            EXPECT_TRUE(s.is_open());
            rill::showln(s, "still writing");
            rill::close_stream(s);
        },
        [&](rill_test::raw_client& c) {
            c.send("first\r\nsecond\r\n");
            ASSERT_TRUE(thread_wait_until([&] { return reader_closed.load(); }));
            EXPECT_EQ(c.receive_all(), "still writing\r\n");
        });
}

// The seed's client shape: the peer half-closes after its request; the server reads to end
// of stream and still answers.
TEST(HalfClose, PeerClosesItsWritingSideFirst) {
    serve_raw_peer(
        [](rill::tcp_client_stream& s) {
            std::vector<std::string> lines = read_all_lines(s);
            EXPECT_EQ(lines, (std::vector<std::string>{"one", "two"}));
            rill::showln(s, lines.size(), " lines");
            rill::close_stream(s);
        },
        [](rill_test::raw_client& c) {
            c.send("one\r\ntwo\r\n");
            c.shutdown_write();
            EXPECT_EQ(c.receive_all(), "2 lines\r\n");
        });
}

// Both half-closes between two rill streams.
TEST(HalfClose, BothDirectionsBetweenRillStreams) {
    serve_rill_peer(
        [](rill::tcp_client_stream& s) {
            EXPECT_EQ(read_all_lines(s), (std::vector<std::string>{"from client"}));
            rill::showln(s, "from server");
            rill::close_writer(s);
            EXPECT_EQ(rill::read_line(s), std::nullopt);
            rill::close_stream(s);
        },
        [](rill::tcp_client_stream& c) {
            rill::showln(c, "from client");
            rill::close_writer(c);
            EXPECT_EQ(read_all_lines(c), (std::vector<std::string>{"from server"}));
            rill::close_stream(c);
        });
}

}  // namespace
