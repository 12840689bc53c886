// close_stream from a task other than the one using the stream, as Go's net.Conn.Close
// unblocks a pending Read: the user parked in a receive wakes and sees end of stream (a last
// partial line first), a user parked in a send gets "the stream was closed", the peer reads end
// of stream, and the descriptor is closed once, by the user. On the same worker and across
// workers; run under the asan-ubsan preset too, where a receive into a released buffer (io_uring
// writes into the stream's own buffer while a partial line waits) or a waiter left in epoll's
// table would show.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "runtime/scheduler.hpp"
#include "stream/memory_transport.hpp"
#include "stream/stream_state.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using rill_test::task_wait_until;

// How long the woken user may take: far more than a loop turn, far less than the test's limit.
constexpr auto wake_limit = 5s;
// Bytes a writer sends per call while the peer reads nothing: its send soon waits.
constexpr std::size_t chunk_bytes = 256 * 1024;
// A bound on the writer's calls (the socket buffers hold a few MiB at most).
constexpr int chunks_max = 4096;

bool descriptor_open(int fd) { return fd >= 0 && ::fcntl(fd, F_GETFD) != -1; }

// What the parked reader saw.
struct reader_outcome {
    std::vector<std::optional<std::string>> reads;  // until end of stream
    std::string write_error;  // what a write after end of stream threw
    std::chrono::steady_clock::duration woke_after{};
    bool done = false;
};

// The user: reads lines until end of stream (sets `reading` first), then writes once more and,
// once `may_close`, closes its stream.
void read_until_end(rill::stream& s, std::atomic<bool>& reading, reader_outcome& out,
                    std::atomic<std::int64_t>& closed_at_ns, const std::atomic<bool>& may_close) {
    reading = true;
    for (int i = 0; i < 4; ++i) {
        auto line = rill::read_line(s);
        out.reads.push_back(line);
        if (!line) break;
    }
    const auto closed_at =
        std::chrono::steady_clock::time_point(std::chrono::nanoseconds(closed_at_ns.load()));
    out.woke_after = std::chrono::steady_clock::now() - closed_at;
    try {
        rill::showln(s, "after close");
        rill::flush_writer(s);
        rill::close_stream(s);  // the flush fails here at the latest
    } catch (const rill::error& e) {
        out.write_error = e.what();
    }
    EXPECT_TRUE(task_wait_until([&] { return may_close.load(); }));
    rill::close_stream(s);  // the user's close: releases the descriptor (once)
    out.done = true;
}

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// A connected pair inside the runtime: the accepted end (the one closed from another task)
// and the client end (its peer).
struct tcp_pair {
    std::optional<rill::tcp_client_stream> accepted;
    std::optional<rill::tcp_client_stream> client;
};

tcp_pair connect_pair() {
    rill::tcp_server_stream server("127.0.0.1:0");
    tcp_pair p;
    p.client.emplace("127.0.0.1:" +
                     std::to_string(rill::tcp_server_socket_info(server).port_number));
    auto a = rill::read(server);
    if (a) p.accepted.emplace(std::move(*a));
    return p;
}

// The reader parks with a partial line buffered ("partial", no line end): io_uring's receive
// then goes into the stream's own buffer, the buffer a close from another task must not free.
void close_parked_reader(int workers) {
    reader_outcome out;
    int fd = -1;
    int spare[2] = {-1, -1};
    bool spare_open_after = false;
    bool fd_open_while_user_parked = false;
    std::optional<std::string> peer_read = "not read";
    bool other_worker = false;
    rill::run(
        [&] {
            tcp_pair p = connect_pair();
            ASSERT_TRUE(p.accepted);
            fd = rill::detail::state_of(*p.accepted).io->native_handle();
            rill::showln(*p.client, "first");
            rill::write_chars(*p.client, "partial");
            rill::flush_writer(*p.client);
            std::atomic<bool> reading{false};
            std::atomic<std::int64_t> closed_at_ns{now_ns()};
            std::atomic<bool> closer_checked{false};
            rill::detail::scheduler* reader_worker = nullptr;
            auto reader = rill::spawn([&] {
                reader_worker = rill::detail::scheduler::current();
                read_until_end(*p.accepted, reading, out, closed_at_ns, closer_checked);
            });
            // The closer: a task of its own, so that with two workers it runs on the other one
            // (spawns go round robin).
            auto closer = rill::spawn([&] {
                ASSERT_TRUE(task_wait_until([&] { return reading.load(); }));
                // The reader gets "first" and parks on the rest of "partial".
                rill::task_sleep(20ms);
                other_worker = reader_worker != rill::detail::scheduler::current();
                closed_at_ns = now_ns();
                rill::close_stream(*p.accepted);
                // Descriptors opened now must survive the reader's own close: the socket's
                // number is still taken (closed once, later, by its user).
                fd_open_while_user_parked = descriptor_open(fd);
                if (::pipe2(spare, O_CLOEXEC) != 0) spare[0] = spare[1] = -1;
                closer_checked = true;
            });
            closer.join();
            reader.join();
            spare_open_after = descriptor_open(spare[0]) && descriptor_open(spare[1]);
            peer_read = rill::read_line(*p.client);
        },
        {.workers = workers});
    for (int s : spare)
        if (s >= 0) ::close(s);

    EXPECT_EQ(other_worker, workers > 1);
    ASSERT_TRUE(out.done);
    // The partial line is the last line before end of stream, then end of stream.
    ASSERT_EQ(out.reads.size(), 3u);
    EXPECT_EQ(out.reads[0], std::optional<std::string>("first"));
    EXPECT_EQ(out.reads[1], std::optional<std::string>("partial"));
    EXPECT_EQ(out.reads[2], std::nullopt);
    EXPECT_LT(out.woke_after, wake_limit);
    EXPECT_NE(out.write_error.find("closed"), std::string::npos) << out.write_error;
    EXPECT_TRUE(fd_open_while_user_parked) << "the closer closed the user's descriptor";
    EXPECT_TRUE(spare_open_after) << "a descriptor was closed twice";
    EXPECT_FALSE(descriptor_open(fd) && fd != spare[0] && fd != spare[1])
        << "the user's close left the descriptor open";
    EXPECT_EQ(peer_read, std::nullopt) << "the peer did not see end of stream";
}

TEST(HostileCloseFromOtherTask, ParkedReaderOnSameWorkerWakesAtEndOfStream) {
    close_parked_reader(1);
}

TEST(HostileCloseFromOtherTask, ParkedReaderOnOtherWorkerWakesAtEndOfStream) {
    close_parked_reader(2);
}

// A writer parked because the peer reads nothing: its write throws "the stream was closed".
void close_parked_writer(int workers) {
    std::string write_error;
    int chunks_sent = 0;
    bool writer_done = false;
    std::optional<std::string> peer_line;
    rill::run(
        [&] {
            tcp_pair p = connect_pair();
            ASSERT_TRUE(p.accepted);
            std::atomic<bool> writing{false};
            auto writer = rill::spawn([&] {
                const std::string chunk(chunk_bytes, 'x');
                try {
                    rill::showln(*p.accepted, "hello");
                    rill::flush_writer(*p.accepted);
                    rill::task_yield();  // the put-off flush leaves: the writer used the stream
                    writing = true;
                    for (; chunks_sent < chunks_max; ++chunks_sent) {
                        rill::write_chars(*p.accepted, chunk);
                        rill::flush_writer(*p.accepted);
                        rill::task_yield();
                    }
                } catch (const rill::error& e) {
                    write_error = e.what();
                }
                rill::close_stream(*p.accepted);
                writer_done = true;
            });
            auto closer = rill::spawn([&] {
                ASSERT_TRUE(task_wait_until([&] { return writing.load(); }));
                rill::task_sleep(20ms);  // the writer fills the socket buffers and parks
                rill::close_stream(*p.accepted);
            });
            closer.join();
            writer.join();
            peer_line = rill::read_line(*p.client);
        },
        {.workers = workers});
    EXPECT_TRUE(writer_done);
    EXPECT_LT(chunks_sent, chunks_max) << "the writer never stopped";
    EXPECT_NE(write_error.find("closed"), std::string::npos) << write_error;
    EXPECT_EQ(peer_line, std::optional<std::string>("hello"));
}

TEST(HostileCloseFromOtherTask, ParkedWriterOnSameWorkerThrowsStreamClosed) {
    close_parked_writer(1);
}

TEST(HostileCloseFromOtherTask, ParkedWriterOnOtherWorkerThrowsStreamClosed) {
    close_parked_writer(2);
}

// The in-memory transport behaves the same: the parked reader sees end of stream, and so does
// the peer.
TEST(HostileCloseFromOtherTask, MemoryStreamParkedReaderWakesAtEndOfStream) {
    reader_outcome out;
    std::optional<std::string> peer_read = "not read";
    rill::run(
        [&] {
            auto pair = rill::detail::make_memory_stream_pair();
            rill::showln(pair.second, "first");
            rill::flush_writer(pair.second);
            std::atomic<bool> reading{false};
            std::atomic<std::int64_t> closed_at_ns{now_ns()};
            const std::atomic<bool> may_close{true};
            auto reader = rill::spawn(
                [&] { read_until_end(pair.first, reading, out, closed_at_ns, may_close); });
            auto closer = rill::spawn([&] {
                ASSERT_TRUE(task_wait_until([&] { return reading.load(); }));
                rill::task_sleep(20ms);
                closed_at_ns = now_ns();
                rill::close_stream(pair.first);
            });
            closer.join();
            reader.join();
            peer_read = rill::read_line(pair.second);
        },
        {.workers = 2});
    ASSERT_TRUE(out.done);
    ASSERT_EQ(out.reads.size(), 2u);
    EXPECT_EQ(out.reads[0], std::optional<std::string>("first"));
    EXPECT_EQ(out.reads[1], std::nullopt);
    EXPECT_LT(out.woke_after, wake_limit);
    EXPECT_NE(out.write_error.find("closed"), std::string::npos) << out.write_error;
    EXPECT_EQ(peer_read, std::nullopt);
}

// The single-user path is unchanged: a task closing the stream it uses closes it at once.
TEST(HostileCloseFromOtherTask, ClosingOwnStreamReleasesDescriptorAtOnce) {
    int fd = -1;
    bool open_after = true;
    rill::run([&] {
        tcp_pair p = connect_pair();
        ASSERT_TRUE(p.accepted);
        fd = rill::detail::state_of(*p.accepted).io->native_handle();
        rill::showln(*p.accepted, "bye");
        rill::flush_writer(*p.accepted);
        rill::close_stream(*p.accepted);
        open_after = descriptor_open(fd);
        EXPECT_EQ(rill::read_line(*p.client), std::optional<std::string>("bye"));
        EXPECT_EQ(rill::read_line(*p.client), std::nullopt);
    });
    EXPECT_FALSE(open_after);
}

}  // namespace
