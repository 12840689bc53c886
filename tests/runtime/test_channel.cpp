// channel<T>: bounded, blocking, FIFO, closable; usable across workers.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <rill/rill.hpp>

#include "runtime/runtime_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using rill_test::contains;

TEST(Channel, CapacityZeroIsAnArgumentError) {
    try {
        rill::channel<int> ch(0);
        FAIL() << "capacity 0 accepted";
    } catch (const rill::argument_error& e) {
        EXPECT_TRUE(contains(e.what(), "capacity")) << e.what();
    }
}

TEST(Channel, IsFirstInFirstOut) {
    rill::run([] {
        rill::channel<int> ch(1000);
        for (int i = 0; i < 500; ++i) ch.send(i);
        EXPECT_EQ(ch.size(), 500u);
        for (int i = 0; i < 500; ++i) EXPECT_EQ(ch.receive(), i);
        EXPECT_EQ(ch.size(), 0u);
    });
}

TEST(Channel, FifoThroughASmallChannelBetweenTasks) {
    rill::run([] {
        rill::channel<int> ch(3);
        auto producer = rill::spawn([ch]() mutable {
            for (int i = 0; i < 1000; ++i) ch.send(i);
            ch.close();
        });
        int expected = 0;
        while (auto v = ch.receive()) EXPECT_EQ(*v, expected++);
        EXPECT_EQ(expected, 1000);
        producer.join();
    });
}

TEST(Channel, CarriesMoveOnlyValues) {
    rill::run([] {
        rill::channel<std::unique_ptr<std::string>> ch(2);
        ch.send(std::make_unique<std::string>("one"));
        auto v = ch.receive();
        ASSERT_TRUE(v && *v);
        EXPECT_EQ(**v, "one");
    });
}

TEST(Channel, SenderBlocksWhileFullUntilAReceive) {
    rill::run([] {
        rill::channel<int> ch(2);
        std::atomic<int> sent{0};
        auto sender = rill::spawn([&] {
            for (int i = 0; i < 3; ++i) {
                ch.send(i);
                ++sent;
            }
        });
        rill::task_sleep(20ms);
        EXPECT_EQ(sent.load(), 2);  // the third send waits for room
        EXPECT_EQ(ch.size(), 2u);
        EXPECT_EQ(ch.receive(), 0);
        sender.join();  // the room made by the receive let the third send through
        EXPECT_EQ(sent.load(), 3);
        EXPECT_EQ(ch.receive(), 1);
        EXPECT_EQ(ch.receive(), 2);
    });
}

TEST(Channel, ReceiverBlocksWhileEmptyUntilASend) {
    rill::run([] {
        rill::channel<int> ch(1);
        std::atomic<bool> got{false};
        auto receiver = rill::spawn([&] {
            EXPECT_EQ(ch.receive(), 17);
            got = true;
        });
        rill::task_sleep(10ms);
        EXPECT_FALSE(got.load());
        ch.send(17);
        receiver.join();
        EXPECT_TRUE(got.load());
    });
}

TEST(Channel, CloseWakesReceiversWhoDrainThenSeeEmpty) {
    rill::run([] {
        rill::channel<int> ch(10);
        std::atomic<int> woken{0};
        std::vector<rill::task> receivers;
        for (int i = 0; i < 5; ++i)
            receivers.push_back(rill::spawn([&] {
                EXPECT_EQ(ch.receive(), std::nullopt);
                ++woken;
            }));
        rill::task_sleep(10ms);
        EXPECT_EQ(woken.load(), 0);
        ch.close();
        for (auto& r : receivers) r.join();
        EXPECT_EQ(woken.load(), 5);

        // Values sent before close are still delivered, in order, then empty for good.
        rill::channel<int> drain(10);
        drain.send(1);
        drain.send(2);
        drain.send(3);
        drain.close();
        EXPECT_EQ(drain.receive(), 1);
        EXPECT_EQ(drain.receive(), 2);
        EXPECT_EQ(drain.receive(), 3);
        EXPECT_EQ(drain.receive(), std::nullopt);
        EXPECT_EQ(drain.receive(), std::nullopt);
    });
}

TEST(Channel, SendAfterCloseThrows) {
    rill::run([] {
        rill::channel<int> ch(4);
        ch.close();
        try {
            ch.send(1);
            ADD_FAILURE() << "send on a closed channel returned";
        } catch (const rill::channel_closed& e) {
            EXPECT_TRUE(contains(e.what(), "closed")) << e.what();
        } catch (const rill::error& e) {
            ADD_FAILURE() << "send on a closed channel threw another error: " << e.what();
        }
        ch.close();  // twice is harmless
    });
}

TEST(Channel, CloseWakesBlockedSendersWithAnError) {
    rill::run([] {
        rill::channel<int> ch(1);
        ch.send(0);
        std::atomic<int> refused{0};
        std::vector<rill::task> senders;
        for (int i = 0; i < 3; ++i)
            senders.push_back(rill::spawn([&, i] {
                try {
                    ch.send(i + 1);
                } catch (const rill::task_cancelled&) {
                    throw;
                } catch (const rill::error&) {
                    ++refused;
                }
            }));
        rill::task_sleep(10ms);
        ch.close();
        for (auto& s : senders) s.join();
        EXPECT_EQ(refused.load(), 3);
        EXPECT_EQ(ch.receive(), 0);
        EXPECT_EQ(ch.receive(), std::nullopt);
    });
}

// Many producers and consumers; every value arrives exactly once.
void many_producers_and_consumers(int workers) {
    constexpr int producers = 8;
    constexpr int consumers = 5;
    constexpr int per_producer = 2000;
    std::atomic<long long> sum{0};
    std::atomic<long> count{0};
    std::mutex threads_mutex;
    std::set<std::thread::id> consumer_threads;
    rill::run(
        [&] {
            rill::channel<int> ch(16);
            std::vector<rill::task> senders;
            std::vector<rill::task> receivers;
            for (int c = 0; c < consumers; ++c)
                receivers.push_back(rill::spawn([&] {
                    {
                        std::lock_guard lock(threads_mutex);
                        consumer_threads.insert(std::this_thread::get_id());
                    }
                    while (auto v = ch.receive()) {
                        sum += *v;
                        ++count;
                    }
                }));
            for (int p = 0; p < producers; ++p)
                senders.push_back(rill::spawn([&, p] {
                    for (int i = 0; i < per_producer; ++i) ch.send(p * per_producer + i + 1);
                }));
            for (auto& s : senders) s.join();
            ch.close();
            for (auto& r : receivers) r.join();
        },
        {.workers = workers});
    const long long n = static_cast<long long>(producers) * per_producer;
    EXPECT_EQ(count.load(), n);
    EXPECT_EQ(sum.load(), n * (n + 1) / 2);
    if (workers > 1) {  // braced: EXPECT_EQ is an if/else inside (g++ -Wdangling-else)
        EXPECT_EQ(consumer_threads.size(), static_cast<std::size_t>(workers));
    }
}

TEST(Channel, ManyProducersAndConsumersOneWorker) { many_producers_and_consumers(1); }

TEST(Channel, ManyProducersAndConsumersTwoWorkers) { many_producers_and_consumers(2); }

TEST(Channel, PingPongAcrossWorkers) {
    std::thread::id ping_thread, pong_thread;
    int rounds = 0;
    rill::run(
        [&] {
            rill::channel<int> to_pong(1), to_ping(1);
            // Round robin puts consecutive spawns on different workers.
            auto pong = rill::spawn([&] {
                pong_thread = std::this_thread::get_id();
                while (auto v = to_pong.receive()) to_ping.send(*v + 1);
                to_ping.close();
            });
            auto ping = rill::spawn([&] {
                ping_thread = std::this_thread::get_id();
                int v = 0;
                for (int i = 0; i < 2000; ++i) {
                    to_pong.send(v);
                    v = to_ping.receive().value_or(-1);
                }
                rounds = v;
                to_pong.close();
                EXPECT_EQ(to_ping.receive(), std::nullopt);
            });
            ping.join();
            pong.join();
        },
        {.workers = 2});
    EXPECT_EQ(rounds, 2000);
    EXPECT_NE(ping_thread, pong_thread);
}

TEST(Channel, CopiesShareOneChannel) {
    rill::run([] {
        rill::channel<int> a(2);
        rill::channel<int> b = a;
        a.send(5);
        EXPECT_EQ(b.size(), 1u);
        EXPECT_EQ(b.receive(), 5);
        b.close();
        EXPECT_EQ(a.receive(), std::nullopt);
    });
}

}  // namespace
