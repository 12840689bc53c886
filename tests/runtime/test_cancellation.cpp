// When main returns, every task still alive is cancelled: its blocking call throws
// task_cancelled, destructors run, and run returns promptly without leaking descriptors.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <rill/rill.hpp>

#include "runtime/runtime_test_support.hpp"
#include "support/descriptors.hpp"
#include "support/loopback.hpp"

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using rill_test::count_on_destroy;

// How long run may take to return after main does; cancellation itself takes microseconds.
constexpr auto prompt_return = 2s;

// What each blocked task reports about its cancellation.
struct cancel_witness {
    std::atomic<int> cancelled{0};  // task_cancelled reached the task's body
    std::atomic<int> unwound{0};  // a guard object's destructor ran
    std::atomic<int> other{0};  // anything else happened (a wrong exception, a return)

    // Runs `blocking` expecting task_cancelled out of it.
    template <class F>
    void expect_cancelled(F&& blocking) {
        count_on_destroy guard{unwound};
        try {
            blocking();
            ++other;
        } catch (const rill::task_cancelled&) {
            ++cancelled;
            throw;
        } catch (...) {
            ++other;
            throw;
        }
    }
};

// Sockets of plain test peers: they stay open and silent until run has returned.
using raw_peers = std::vector<std::unique_ptr<rill_test::raw_client>>;

// Runs `main` with the given options, checking that run returns soon after main does and
// that, once `after_run` has closed what the test kept open past run, the process has the
// same descriptors as before. A first run warms up anything the process opens once (the
// io_uring probe, say).
template <class Main>
void run_and_check(Main&& main, rill::runtime_options options = {},
                   const std::function<void()>& after_run = {}) {
    rill::run([] { rill::task_sleep(1ms); }, options);
    const int fds_before = rill_test::count_open_fds();
    steady::time_point main_returned{};
    rill::run(
        [&] {
            main();
            main_returned = steady::now();
        },
        options);
    const auto after = steady::now();
    EXPECT_LT(after - main_returned, prompt_return);
    if (after_run) after_run();
    EXPECT_EQ(rill_test::count_open_fds(), fds_before);
}

TEST(Cancellation, SleepingTasks) {
    cancel_witness w;
    run_and_check([&] {
        for (int i = 0; i < 10; ++i)
            rill::spawn([&] { w.expect_cancelled([] { rill::task_sleep(1h); }); });
        rill::task_sleep(5ms);
    });
    EXPECT_EQ(w.cancelled.load(), 10);
    EXPECT_EQ(w.unwound.load(), 10);
    EXPECT_EQ(w.other.load(), 0);
}

TEST(Cancellation, ReadyAndYieldingTasks) {
    // A task that never blocks but yields is cancelled at its next yield.
    cancel_witness w;
    run_and_check([&] {
        rill::spawn([&] {
            w.expect_cancelled([] {
                for (long i = 0; i < 100'000'000; ++i) rill::task_yield();
            });
        });
        rill::task_yield();
    });
    EXPECT_EQ(w.cancelled.load(), 1);
    EXPECT_EQ(w.unwound.load(), 1);
}

TEST(Cancellation, ChannelReceiveAndSend) {
    cancel_witness w;
    run_and_check([&] {
        rill::channel<int> empty(1), full(1);
        full.send(1);
        for (int i = 0; i < 3; ++i) {
            rill::spawn(
                [&w, empty]() mutable { w.expect_cancelled([&] { (void)empty.receive(); }); });
            rill::spawn([&w, full]() mutable { w.expect_cancelled([&] { full.send(2); }); });
        }
        rill::task_sleep(5ms);
    });
    EXPECT_EQ(w.cancelled.load(), 6);
    EXPECT_EQ(w.unwound.load(), 6);
    EXPECT_EQ(w.other.load(), 0);
}

TEST(Cancellation, Join) {
    cancel_witness w;
    run_and_check([&] {
        auto sleeper = std::make_shared<rill::task>(
            rill::spawn([&] { w.expect_cancelled([] { rill::task_sleep(1h); }); }));
        rill::spawn([&, sleeper] { w.expect_cancelled([&] { sleeper->join(); }); });
        rill::task_sleep(5ms);
    });
    EXPECT_EQ(w.cancelled.load(), 2);
    EXPECT_EQ(w.unwound.load(), 2);
    EXPECT_EQ(w.other.load(), 0);
}

TEST(Cancellation, ReadServer) {
    cancel_witness w;
    run_and_check([&] {
        std::atomic<bool> listening{false};
        rill::spawn([&] {
            rill::tcp_server_stream server(0);
            listening = true;
            w.expect_cancelled([&] { (void)rill::read(server); });
        });
        ASSERT_TRUE(rill_test::task_wait_until([&] { return listening.load(); }));
        rill::task_sleep(5ms);
    });
    EXPECT_EQ(w.cancelled.load(), 1);
    EXPECT_EQ(w.unwound.load(), 1);
    EXPECT_EQ(w.other.load(), 0);
}

TEST(Cancellation, ReadLineOnASocket) {
    // The peers are plain sockets that stay open and silent until run has returned, so the
    // only way out of read_line is cancellation.
    cancel_witness w;
    raw_peers peers;
    std::optional<rill::tcp_client_stream> accepted;
    run_and_check(
        [&] {
            rill::tcp_server_stream server(0);
            const int port = rill::tcp_server_socket_info(server).port_number;
            for (int i = 0; i < 3; ++i) {
                peers.push_back(
                    std::make_unique<rill_test::raw_client>(port));  // loopback: no wait
                auto client = rill::read(server);
                ASSERT_TRUE(client);
                rill::spawn([&w, c = std::move(*client)]() mutable {
                    w.expect_cancelled([&] { (void)rill::read_line(c); });
                });
            }
            // And the connecting side: a rill client reading from a silent accepted socket, kept
            // open (outside run) until run has returned.
            rill::spawn([&w, port] {
                rill::tcp_client_stream c(port);
                w.expect_cancelled([&] { (void)rill::read_line(c); });
            });
            accepted = rill::read(server);
            ASSERT_TRUE(accepted.has_value());
            rill::task_sleep(10ms);
        },
        {},
        [&] {
            peers.clear();
            accepted.reset();
        });
    EXPECT_EQ(w.cancelled.load(), 4);
    EXPECT_EQ(w.unwound.load(), 4);
    EXPECT_EQ(w.other.load(), 0);
}

TEST(Cancellation, WriteBlockedOnAFullSocketBuffer) {
    cancel_witness w;
    raw_peers peers;  // never reads
    std::atomic<long> chunks{0};
    run_and_check(
        [&] {
            rill::tcp_server_stream server(0);
            peers.push_back(std::make_unique<rill_test::raw_client>(
                rill::tcp_server_socket_info(server).port_number));
            auto client = rill::read(server);
            ASSERT_TRUE(client);
            rill::spawn([&, c = std::move(*client)]() mutable {
                const std::string chunk(64 * 1024, 'x');
                w.expect_cancelled([&] {
                    // Bounded: loopback buffers hold a few MiB at most, far below 1 GiB.
                    for (int i = 0; i < 16 * 1024; ++i) {
                        rill::write_chars(c, chunk);
                        rill::flush_writer(c);
                        ++chunks;
                    }
                });
            });
            // Wait until the writer stops making progress: it is blocked on the full buffer.
            long seen = -1;
            const auto limit = steady::now() + 10s;
            while (steady::now() < limit) {
                rill::task_sleep(30ms);
                const long now = chunks.load();
                if (now == seen && now > 0) break;
                seen = now;
            }
            EXPECT_GT(chunks.load(), 0);
        },
        {}, [&] { peers.clear(); });
    EXPECT_EQ(w.cancelled.load(), 1);
    EXPECT_EQ(w.unwound.load(), 1);
    EXPECT_EQ(w.other.load(), 0);
    EXPECT_LT(chunks.load(), 16 * 1024);
}

TEST(Cancellation, EveryLaterBlockingCallThrowsToo) {
    std::atomic<int> throws{0};
    run_and_check([&] {
        rill::spawn([&] {
            for (int i = 0; i < 3; ++i) {
                try {
                    rill::task_sleep(1h);
                } catch (const rill::task_cancelled&) {
                    ++throws;
                }
            }
            try {
                rill::task_yield();
            } catch (const rill::task_cancelled&) {
                ++throws;
            }
            try {
                rill::channel<int> ch(1);
                (void)ch.receive();
            } catch (const rill::task_cancelled&) {
                ++throws;
            }
        });
        rill::task_sleep(5ms);
    });
    EXPECT_EQ(throws.load(), 5);
}

TEST(Cancellation, TaskSpawnedDuringShutdownAlsoEnds) {
    std::atomic<int> late_started{0};
    std::atomic<int> late_cancelled{0};
    std::atomic<int> late_finished{0};
    std::atomic<int> unwound{0};
    run_and_check([&] {
        rill::spawn([&] {
            try {
                rill::task_sleep(1h);
            } catch (const rill::task_cancelled&) {
                // Spawning while the runtime shuts down: one task that blocks, one that doesn't.
                rill::spawn([&] {
                    ++late_started;
                    count_on_destroy guard{unwound};
                    try {
                        rill::task_sleep(1h);
                    } catch (const rill::task_cancelled&) {
                        ++late_cancelled;
                        throw;
                    }
                });
                rill::spawn([&] {
                    ++late_started;
                    ++late_finished;
                });
                throw;
            }
        });
        rill::task_sleep(5ms);
    });
    EXPECT_EQ(late_started.load(), 2);
    EXPECT_EQ(late_cancelled.load(), 1);
    EXPECT_EQ(late_finished.load(), 1);
    EXPECT_EQ(unwound.load(), 1);
}

TEST(Cancellation, TasksOnSeveralWorkers) {
    cancel_witness w;
    raw_peers peers;
    run_and_check(
        [&] {
            rill::channel<int> empty(1);
            rill::tcp_server_stream server(0);
            const int port = rill::tcp_server_socket_info(server).port_number;
            for (int i = 0; i < 8; ++i) {
                rill::spawn([&] { w.expect_cancelled([] { rill::task_sleep(1h); }); });
                rill::spawn(
                    [&w, empty]() mutable { w.expect_cancelled([&] { (void)empty.receive(); }); });
                peers.push_back(std::make_unique<rill_test::raw_client>(port));
                auto client = rill::read(server);
                ASSERT_TRUE(client);
                rill::spawn([&w, c = std::move(*client)]() mutable {
                    w.expect_cancelled([&] { (void)rill::read_line(c); });
                });
            }
            rill::task_sleep(10ms);
        },
        {.workers = 2}, [&] { peers.clear(); });
    EXPECT_EQ(w.cancelled.load(), 24);
    EXPECT_EQ(w.unwound.load(), 24);
    EXPECT_EQ(w.other.load(), 0);
}

TEST(Cancellation, NoDescriptorLeakAcrossManyRuns) {
    rill::run([] {}, {.workers = 2});
    const int before = rill_test::count_open_fds();
    for (int i = 0; i < 20; ++i) {
        rill::run(
            [] {
                rill::spawn([] { rill::task_sleep(1h); });
                rill::task_yield();
            },
            {.workers = 2});
    }
    EXPECT_EQ(rill_test::count_open_fds(), before);
}

}  // namespace
