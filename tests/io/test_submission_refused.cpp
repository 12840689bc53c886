// A kernel that keeps refusing io_uring submissions (short of memory: -ENOMEM, or -EBUSY) once
// the submission queue is full: the operation that finds no slot fails with an os_error naming
// it and the errno, the others carry on, and the worker never spins for ever. The queue is
// shrunk to 8 entries and the refusal injected for the test (set_submit_failure_for_tests);
// before the change, next_sqe retried such a submit without end and the worker hung. On the
// epoll backend nothing is submitted: every reader gets its line.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <rill/rill.hpp>

#include "io/backend.hpp"
#include "runtime/scheduler.hpp"
#include "support/loopback.hpp"
#include "support/wait.hpp"

namespace {

using rill_test::task_wait_until;
using rill_test::thread_wait_until;

constexpr unsigned submission_entries = 8;
// More readers park in one loop turn than the queue holds.
constexpr int readers = 3 * static_cast<int>(submission_entries);

struct refusing_kernel {
    refusing_kernel() { rill::detail::set_ring_sizes_for_tests(submission_entries, 0); }
    ~refusing_kernel() {
        rill::detail::set_submit_failure_for_tests(0);
        rill::detail::set_ring_sizes_for_tests(0, 0);
    }
};

TEST(SubmissionRefused, OperationWithoutSlotFailsAndOthersCarryOn) {
    refusing_kernel knobs;
    std::atomic<int> port{0};
    std::atomic<bool> send_now{false};
    std::atomic<bool> peers_done{false};
    std::atomic<int> finished{0};
    std::vector<std::string> outcome(readers);
    bool uring = false;

    std::thread peers([&] {
        if (!thread_wait_until([&] { return port.load() != 0; })) return;
        std::vector<std::unique_ptr<rill_test::raw_client>> c;
        for (int i = 0; i < readers; ++i)
            c.push_back(std::make_unique<rill_test::raw_client>(port.load()));
        if (thread_wait_until([&] { return send_now.load(); }))
            for (int i = 0; i < readers; ++i) c[i]->send("line " + std::to_string(i) + "\n");
        thread_wait_until([&] { return finished.load() == readers; });
        peers_done = true;
    });

    rill::run(
        [&] {
            uring = std::string(rill::detail::task_backend("test").name()) == "io_uring";
            rill::tcp_server_stream server("127.0.0.1:0", {.backlog = readers});
            port = rill::tcp_server_socket_info(server).port_number;
            std::vector<rill::tcp_client_stream> accepted;
            for (int i = 0; i < readers; ++i) {
                auto client = rill::read(server);
                ASSERT_TRUE(client);
                accepted.push_back(std::move(*client));
            }
            // From now on the kernel refuses every submit made to find room in a full queue:
            // the readers spawned together park in one loop turn, and those past the queue's
            // 8 entries find no slot.
            rill::detail::set_submit_failure_for_tests(ENOMEM);
            std::vector<rill::task> tasks;
            for (int i = 0; i < readers; ++i) {
                tasks.push_back(rill::spawn([&, i] {
                    try {
                        auto line = rill::read_line(accepted[i]);
                        outcome[i] = line ? *line : "(end of stream)";
                    } catch (const rill::os_error& e) {
                        outcome[i] = std::string("error: ") + e.what();
                    }
                    ++finished;
                }));
            }
            // Every reader has either parked or failed once the refusals show up.
            const auto failed = [&] {
                int n = 0;
                for (auto& o : outcome) n += o.rfind("error: ", 0) == 0;
                return n;
            };
            if (uring) {
                EXPECT_TRUE(task_wait_until([&] { return failed() > 0; }));
            }
            rill::detail::set_submit_failure_for_tests(0);
            send_now = true;
            EXPECT_TRUE(task_wait_until([&] { return finished.load() == readers; }));
            for (auto& t : tasks) t.join();
            // The readers that had a slot got their lines: the worker went on.
            EXPECT_TRUE(task_wait_until([&] { return peers_done.load(); }));
        },
        {.workers = 1});
    peers.join();

    int failures = 0;
    for (int i = 0; i < readers; ++i) {
        if (outcome[i].rfind("error: ", 0) == 0) {
            ++failures;
            // The operation and the errno, as the stream reports any receive error.
            EXPECT_NE(outcome[i].find("read_line: receive from 127.0.0.1:"), std::string::npos)
                << outcome[i];
            EXPECT_NE(outcome[i].find("Cannot allocate memory"), std::string::npos) << outcome[i];
        } else {
            EXPECT_EQ(outcome[i], "line " + std::to_string(i)) << "reader " << i;
        }
    }
    if (uring) {
        EXPECT_GT(failures, 0) << "no reader found the queue full: the refusal was not reached";
        EXPECT_LE(failures, readers - static_cast<int>(submission_entries) + 1)
            << "readers that had a slot failed too";
    } else {
        EXPECT_EQ(failures, 0);
    }
}

}  // namespace
