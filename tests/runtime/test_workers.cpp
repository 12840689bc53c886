// Several workers: tasks run on every worker thread, and join, channels and sockets work
// between tasks of different workers.
#include <gtest/gtest.h>

#include <sched.h>

#include <atomic>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <rill/rill.hpp>

#include "runtime/runtime_test_support.hpp"
#include "support/descriptors.hpp"
#include "support/loopback.hpp"

namespace {

using namespace std::chrono_literals;

// Thread ids seen by tasks, safe to record from any worker.
struct thread_set {
    std::mutex mutex;
    std::set<std::thread::id> ids;
    void record() {
        std::lock_guard lock(mutex);
        ids.insert(std::this_thread::get_id());
    }
    std::size_t size() {
        std::lock_guard lock(mutex);
        return ids.size();
    }
};

// The threads that tasks of a run with `options` ran on (a task stays on its worker: each
// records its thread before and after a sleep).
std::size_t threads_of_a_run(const rill::runtime_options& options) {
    thread_set seen;
    rill::run(
        [&] {
            std::vector<rill::task> tasks;
            for (int i = 0; i < 30 + options.workers; ++i)  // round robin: every worker gets some
                tasks.push_back(rill::spawn([&] {
                    seen.record();
                    rill::task_sleep(1ms);
                    seen.record();
                }));
            for (auto& t : tasks) t.join();
        },
        options);
    return seen.size();
}

TEST(Workers, TasksRunOnEveryWorker) {
    for (int workers : {2, 3})
        EXPECT_EQ(threads_of_a_run({.workers = workers}), static_cast<std::size_t>(workers));
}

// SPEC: workers defaults to the number of cores, counted as the processors the process may
// run on (taskset, a container's cpuset), as Go's GOMAXPROCS counts them.
TEST(Workers, DefaultIsOnePerAvailableCore) {
    cpu_set_t all;
    ASSERT_EQ(sched_getaffinity(0, sizeof all, &all), 0);
    EXPECT_EQ(rill::runtime_options{}.workers, CPU_COUNT(&all));
    EXPECT_EQ(threads_of_a_run({}), static_cast<std::size_t>(CPU_COUNT(&all)));

    // A thread allowed on one processor only: one worker.
    std::thread pinned([&] {
        cpu_set_t one;
        CPU_ZERO(&one);
        for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
            if (CPU_ISSET(cpu, &all)) {
                CPU_SET(cpu, &one);
                break;
            }
        ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
        EXPECT_EQ(rill::available_cores(), 1);
        EXPECT_EQ(rill::runtime_options{}.workers, 1);
        EXPECT_EQ(threads_of_a_run({}), 1u);
    });
    pinned.join();
}

TEST(Workers, ATaskStaysOnItsWorker) {
    std::atomic<int> moved{0};
    rill::run(
        [&] {
            std::vector<rill::task> tasks;
            for (int i = 0; i < 20; ++i)
                tasks.push_back(rill::spawn([&] {
                    const auto home = std::this_thread::get_id();
                    for (int k = 0; k < 20; ++k) {
                        if (k % 2) {
                            rill::task_yield();
                        } else {
                            rill::task_sleep(100us);
                        }
                        if (std::this_thread::get_id() != home) ++moved;
                    }
                }));
            for (auto& t : tasks) t.join();
        },
        {.workers = 2});
    EXPECT_EQ(moved.load(), 0);
}

TEST(Workers, CrossWorkerJoinWaitsAndRethrows) {
    rill::run(
        [] {
            const auto main_thread = std::this_thread::get_id();
            int on_other_workers = 0;
            for (int i = 0; i < 6; ++i) {
                std::thread::id where;
                bool done = false;
                auto t = rill::spawn([&] {
                    where = std::this_thread::get_id();
                    rill::task_sleep(5ms);
                    done = true;
                });
                t.join();
                EXPECT_TRUE(done);
                if (where != main_thread) ++on_other_workers;

                std::thread::id failed_on;
                auto failing = rill::spawn([&] {
                    failed_on = std::this_thread::get_id();
                    rill::task_sleep(1ms);
                    throw std::runtime_error("from another worker");
                });
                EXPECT_THROW(failing.join(), std::runtime_error);
                if (failed_on != main_thread) ++on_other_workers;
            }
            EXPECT_GT(on_other_workers, 0);  // joins reached across workers, both ways
        },
        {.workers = 2});
}

TEST(Workers, ManyTasksJoinEachOtherAcrossWorkers) {
    // A chain: each task joins the one spawned before it, wherever it runs.
    std::atomic<int> finished{0};
    rill::run(
        [&] {
            std::shared_ptr<rill::task> previous;
            for (int i = 0; i < 200; ++i) {
                auto next = std::make_shared<rill::task>(rill::spawn([&, previous] {
                    if (previous) previous->join();
                    ++finished;
                }));
                previous = next;
            }
            previous->join();
        },
        {.workers = 2});
    EXPECT_EQ(finished.load(), 200);
}

TEST(Workers, SpawnFromEveryWorkerToEveryWorker) {
    thread_set seen;
    std::atomic<int> leaves{0};
    rill::run(
        [&] {
            std::vector<rill::task> parents;
            for (int i = 0; i < 8; ++i)
                parents.push_back(rill::spawn([&] {
                    std::vector<rill::task> children;
                    for (int k = 0; k < 8; ++k)
                        children.push_back(rill::spawn([&] {
                            seen.record();
                            ++leaves;
                        }));
                    for (auto& c : children) c.join();
                }));
            for (auto& p : parents) p.join();
        },
        {.workers = 2});
    EXPECT_EQ(leaves.load(), 64);
    EXPECT_EQ(seen.size(), 2u);
}

TEST(Workers, EchoOverLoopbackWith200Clients) {
    constexpr int clients = 200;
    thread_set server_threads, client_threads;
    std::atomic<int> good{0};
    rill::run(
        [&] {
            // A backlog above the burst: with the default 128, the kernel drops the extra SYNs and
            // those clients retry a second later.
            rill::tcp_server_stream server(0, {.backlog = 1024});
            const int port = rill::tcp_server_socket_info(server).port_number;
            auto acceptor = rill::spawn([&] {
                while (auto client = rill::read(server)) {
                    rill::spawn([&, c = std::move(*client)]() mutable {
                        server_threads.record();
                        rill::call_with_stream(c, [](rill::tcp_client_stream& s) {
                            while (auto line = rill::read_line(s)) {
                                rill::showln(s, *line);
                                rill::flush_writer(s);
                            }
                        });
                    });
                }
            });
            std::vector<rill::task> tasks;
            for (int i = 0; i < clients; ++i)
                tasks.push_back(rill::spawn([&, i] {
                    client_threads.record();
                    rill::tcp_client_stream c(port);
                    bool all_good = true;
                    for (int k = 0; k < 3; ++k) {
                        const std::string line =
                            "client " + std::to_string(i) + " line " + std::to_string(k);
                        rill::showln(c, line);
                        rill::flush_writer(c);
                        auto reply = rill::read_line(c);
                        if (reply != line) {
                            all_good = false;
                            ADD_FAILURE() << "client " << i << " got " << reply.value_or("<eof>");
                            break;
                        }
                    }
                    rill::close_writer(c);
                    if (rill::read_line(c) != std::nullopt) all_good = false;
                    if (all_good) ++good;
                }));
            for (auto& t : tasks) t.join();
            // Closing the server from this worker wakes the acceptor wherever it waits.
            rill::close_stream(server);
            acceptor.join();
        },
        {.workers = 2});
    EXPECT_EQ(good.load(), clients);
    EXPECT_EQ(server_threads.size(), 2u);
    EXPECT_EQ(client_threads.size(), 2u);
}

TEST(Workers, AStreamMovesToATaskOnAnotherWorker) {
    // The accepted stream first blocks in read_line on main's worker (so that worker's backend
    // knows it), then is handed to a task on the other worker, which goes on using it.
    std::string second_reply;
    std::thread::id main_thread, handler_thread;
    rill::run(
        [&] {
            main_thread = std::this_thread::get_id();
            rill::tcp_server_stream server(0);
            const int port = rill::tcp_server_socket_info(server).port_number;
            // Spawn 0 goes to worker 0, spawn 1 to worker 1 (round robin).
            auto peer = rill::spawn([&] {
                rill::tcp_client_stream c(port);
                rill::task_sleep(10ms);  // main is blocked in read_line by now
                rill::showln(c, "one");
                rill::flush_writer(c);
                EXPECT_EQ(rill::read_line(c), "one");
                rill::task_sleep(10ms);  // the handler is blocked in read_line by now
                rill::showln(c, "two");
                rill::flush_writer(c);
                second_reply = rill::read_line(c).value_or("<eof>");
            });
            auto client = rill::read(server);
            ASSERT_TRUE(client);
            auto line = rill::read_line(*client);
            ASSERT_EQ(line, "one");
            rill::showln(*client, *line);
            rill::flush_writer(*client);
            auto handler = rill::spawn([&, c = std::move(*client)]() mutable {
                handler_thread = std::this_thread::get_id();
                if (auto l = rill::read_line(c)) rill::showln(c, *l);
                rill::close_stream(c);
            });
            handler.join();
            peer.join();
        },
        {.workers = 2});
    EXPECT_EQ(second_reply, "two");
    EXPECT_NE(handler_thread, main_thread);
}

TEST(Workers, TasksSpawnedAcrossWorkersWhileStoppingAreNotLost) {
    // A task on the second worker keeps spawning (round robin: onto both workers) while main
    // returns. Whatever it spawned, even onto a worker that had nothing left, runs and is
    // destroyed before run returns.
    for (int round = 0; round < 30; ++round) {
        auto token = std::make_shared<int>(0);
        std::atomic<int> spawned{0};
        rill::run(
            [&] {
                rill::spawn([] {});  // spawn 0: worker 0; the spawner below is spawn 1: worker 1
                rill::spawn([&, token] {
                    for (int i = 0; i < 100'000; ++i) {
                        rill::spawn([token] { rill::task_sleep(1ms); });
                        ++spawned;
                        if (i % 8 == 0) rill::task_yield();
                    }
                });
                rill::task_sleep(std::chrono::microseconds(50 * (round % 10)));
            },
            {.workers = 2});
        ASSERT_GT(spawned.load(), 0);
        ASSERT_EQ(token.use_count(), 1) << "round " << round << ": a spawned task was never run";
    }
}

TEST(Workers, DescriptorsAreReleasedWithEveryWorker) {
    rill::run([] {}, {.workers = 4});
    const int before = rill_test::count_open_fds();
    rill::run(
        [] {
            std::vector<rill::task> tasks;
            for (int i = 0; i < 8; ++i) tasks.push_back(rill::spawn([] { rill::task_sleep(1ms); }));
            for (auto& t : tasks) t.join();
        },
        {.workers = 4});
    EXPECT_EQ(rill_test::count_open_fds(), before);
}

}  // namespace
