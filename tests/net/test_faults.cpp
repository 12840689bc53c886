// Faults the echo server must ride out: clients that reset instead of closing, and a process
// out of descriptors (accept fails with EMFILE) — the clients it has keep being served, the
// server does not spin, and new clients get in once descriptors are freed.
#include <sys/resource.h>
#include <sys/time.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "net/net_test_support.hpp"
#include "support/process_limits.hpp"

namespace {

using namespace std::chrono_literals;

TEST(NetFaults, ClientResetsBeforeReadingItsEcho) {
    for (bool persistent : {false, true}) {
        SCOPED_TRACE(persistent ? "persistent" : "once");
        rill_test::echo_server_thread server({.persistent = persistent});
        for (int i = 0; i < 20; ++i) {
            rill_test::raw_client rude(server.port());
            if (i % 4 == 3) {
                // Resets with nothing sent: the server's task sees end of stream or a reset.
                rude.reset();
                continue;
            }
            rude.send("never read " + std::to_string(i) + "\n");
            if (i % 2 == 1) {
                // A second line after the echo is on its way: the server writes to a peer
                // that reset (EPIPE or ECONNRESET), which must only end that client's task.
                rude.send("second\n");
            }
            rude.reset();
        }
        // The server is alive and serves the next client.
        rill_test::raw_client polite(server.port());
        polite.send("hello\n");
        EXPECT_EQ(polite.receive_line(), "hello\r\n");
    }
}

double cpu_seconds_of_process() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    auto seconds = [](const timeval& tv) {
        return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6;
    };
    return seconds(u.ru_utime) + seconds(u.ru_stime);
}

TEST(NetFaults, OutOfDescriptorsKeepsServingAndRecovers) {
    rill_test::echo_server_thread server({.persistent = true});
    std::vector<std::unique_ptr<rill_test::raw_client>> existing;
    for (int i = 0; i < 3; ++i) {
        existing.push_back(std::make_unique<rill_test::raw_client>(server.port()));
        existing.back()->send("warm up\n");
        ASSERT_EQ(existing.back()->receive_line(), "warm up\r\n");
    }
    // The newcomers' sockets exist before the starvation; they connect during it, so their
    // handshakes complete in the backlog and the server's accept fails with EMFILE. Two of
    // them, because io_uring takes the descriptor limit when an accept is submitted: the
    // accept already waiting when the limit drops may still get the first one in.
    int newcomers[2];
    for (int& fd : newcomers) {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(fd, 0);
        timeval tv{10, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    struct closer {
        int* fds;
        ~closer() {
            for (int i = 0; i < 2; ++i) ::close(fds[i]);
        }
    } close_newcomers{newcomers};

    rill_test::descriptor_starvation starvation;
    ASSERT_TRUE(starvation.active());
    ASSERT_LT(::dup(0), 0) << "the process should be out of descriptors";
    const rill_test::loopback_sockaddr to(server.port(), false);
    for (int i = 0; i < 2; ++i) {
        ASSERT_EQ(::connect(newcomers[i], to.get(), to.length), 0) << std::strerror(errno);
        const std::string line = "newcomer " + std::to_string(i) + "\n";
        ASSERT_EQ(::send(newcomers[i], line.data(), line.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(line.size()));
        std::this_thread::sleep_for(20ms);
    }

    std::this_thread::sleep_for(100ms);  // the server has met EMFILE by now
    const double cpu_before = cpu_seconds_of_process();
    const auto start = std::chrono::steady_clock::now();
    int rounds = 0;
    while (std::chrono::steady_clock::now() - start < 1s && rounds < 50) {
        for (auto& c : existing) {
            c->send("round " + std::to_string(rounds) + "\n");
            EXPECT_EQ(c->receive_line(), "round " + std::to_string(rounds) + "\r\n");
        }
        ++rounds;
        std::this_thread::sleep_for(50ms);
    }
    const double cpu_starved = cpu_seconds_of_process() - cpu_before;
    pollfd p[2] = {{newcomers[0], POLLIN, 0}, {newcomers[1], POLLIN, 0}};
    ::poll(p, 2, 0);
    std::printf("CPU time of the process over %.2f s out of descriptors: %.3f s (%d rounds served; "
                "first newcomer %s)\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                cpu_starved, rounds, p[0].revents ? "served" : "waiting");
    EXPECT_LT(cpu_starved, 0.3) << "the server spins while accept fails";
    EXPECT_EQ(p[1].revents, 0) << "the second newcomer cannot have been served yet";

    // One client leaves: its descriptor on both sides is freed, and the newcomers get in.
    const auto freed_at = std::chrono::steady_clock::now();
    existing.front()->close();
    std::string got[2];
    for (int i = 0; i < 2; ++i) {
        char reply[64];
        while (got[i].find('\n') == std::string::npos) {
            ssize_t n = rill_test::retry_interrupted(
                [&] { return ::recv(newcomers[i], reply, sizeof reply, 0); });
            if (n <= 0) break;
            got[i].append(reply, static_cast<std::size_t>(n));
        }
    }
    const auto waited = std::chrono::steady_clock::now() - freed_at;
    starvation.end();
    EXPECT_EQ(got[0], "newcomer 0\r\n");
    EXPECT_EQ(got[1], "newcomer 1\r\n");
    EXPECT_LT(waited, 2s);

    // And after the starvation, everything works as before.
    rill_test::raw_client later(server.port());
    later.send("later\n");
    EXPECT_EQ(later.receive_line(), "later\r\n");
    existing[1]->send("still\n");
    EXPECT_EQ(existing[1]->receive_line(), "still\r\n");
}

TEST(NetFaults, OpeningStreamsOutOfDescriptorsNamesTheStep) {
    rill::run([] {
        rill::tcp_server_stream server(0);
        const int port = rill::tcp_server_socket_info(server).port_number;
        // The errors are looked at once descriptors are back: UBSan's type check of a virtual
        // call tests memory through a pipe, and reports a false error when it cannot make one.
        std::exception_ptr client_failure, server_failure;
        {
            rill_test::descriptor_starvation starvation;
            ASSERT_TRUE(starvation.active());
            try {
                rill::tcp_client_stream c(port);
            } catch (...) {
                client_failure = std::current_exception();
            }
            try {
                rill::tcp_server_stream s("127.0.0.1:0");
            } catch (...) {
                server_failure = std::current_exception();
            }
        }
        ASSERT_TRUE(client_failure && server_failure);
        std::string client_message, server_message;
        const int client_error = rill_test::os_error_code(
            [&] { std::rethrow_exception(client_failure); }, &client_message);
        const int server_error = rill_test::os_error_code(
            [&] { std::rethrow_exception(server_failure); }, &server_message);
        EXPECT_EQ(client_error, EMFILE);
        EXPECT_EQ(client_message, "tcp_client_stream: socket for 127.0.0.1:" +
                                      std::to_string(port) + ": Too many open files");
        EXPECT_EQ(server_error, EMFILE);
        EXPECT_EQ(server_message, "tcp_server_stream: socket for 127.0.0.1:0: Too many open files");
        // With descriptors back, both work.
        rill::tcp_client_stream c(port);
        EXPECT_TRUE(rill::read(server));
    });
}

}  // namespace
