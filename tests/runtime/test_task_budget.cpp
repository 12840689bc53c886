// The cooperative budget: a task whose stream operations never wait yields to the other tasks
// of its worker after task_budget_operations of them, on any transport (here the in-memory
// one, which never goes near a backend).
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <span>
#include <vector>

#include <rill/rill.hpp>

#include "runtime/runtime_test_support.hpp"
#include "stream/memory_transport.hpp"

namespace {

using rill::detail::task_budget_operations;

// Larger than the output buffer, so that write_bytes sends at once from the caller's memory
// (nothing is put off to the task's next wait), and small enough that the memory transport's
// capacity never makes the send wait.
constexpr std::size_t chunk_bytes = 2 * rill::default_output_buffer_bytes;
static_assert(chunk_bytes < rill::detail::default_memory_transport_capacity_bytes);
// A read that would wait (it must not) sees end of stream after this, instead of hanging.
constexpr rill::stream_options bounded_reads{.reader_timeout = std::chrono::seconds(10)};
// The busy task stops after this many round trips (each one send and at least one receive)
// if nothing else ran: far more than one budget.
constexpr long busy_round_trips_limit = 20L * task_budget_operations;

// Sends one chunk on `from` and reads it back on `to`; neither operation has to wait. Returns
// the bytes read (the whole chunk unless the stream broke).
std::size_t round_trip(rill::stream& from, rill::stream& to, const std::vector<std::byte>& chunk,
                       std::vector<std::byte>& received) {
    rill::write_bytes(from, std::span<const std::byte>(chunk));
    std::size_t got = 0;
    while (got < chunk.size()) {
        const std::size_t n =
            rill::read_some(to, std::span<std::byte>(received.data() + got, chunk.size() - got));
        if (n == 0) break;
        got += n;
    }
    return got;
}

TEST(TaskBudget, NonWaitingStreamOperationsLetAnotherTaskOfTheWorkerRun) {
    long round_trips_before_other_ran = -1;
    long round_trips = 0;
    std::size_t bytes_read = 0;
    rill::run(
        [&] {
            auto [first, second] = rill::detail::make_memory_stream_pair(bounded_reads);
            std::atomic<bool> other_ran{false};
            // Ready now, on the same (only) worker: it runs only when the busy task below
            // gives the worker back.
            auto other = rill::spawn([&] {
                round_trips_before_other_ran = round_trips;
                other_ran = true;
            });
            const std::vector<std::byte> chunk(chunk_bytes, std::byte{'x'});
            std::vector<std::byte> received(chunk_bytes);
            // Bounded: a budget that never yields ends the loop at busy_round_trips_limit.
            while (!other_ran.load() && round_trips < busy_round_trips_limit) {
                bytes_read += round_trip(first, second, chunk, received);
                ++round_trips;
            }
            other.join();
            EXPECT_EQ(received, chunk);  // the last chunk arrived intact through the yields
        },
        {.workers = 1});
    ASSERT_GE(round_trips_before_other_ran, 0) << "the other task never ran";
    // Each round trip spends at least two operations (a send and a receive).
    EXPECT_LE(round_trips_before_other_ran, static_cast<long>(task_budget_operations / 2))
        << "the busy task ran " << round_trips_before_other_ran
        << " round trips without waiting before the other task of its worker ran";
    EXPECT_EQ(bytes_read, static_cast<std::size_t>(round_trips) * chunk_bytes);
}

TEST(TaskBudget, AWaitRefillsTheBudget) {
    // A task that waits between operations never spends its budget: it yields only when it
    // waits, so another ready task runs once per wait, never in between.
    int yields_seen_by_other = 0;
    rill::run(
        [&] {
            auto [first, second] = rill::detail::make_memory_stream_pair(bounded_reads);
            const std::vector<std::byte> chunk(chunk_bytes, std::byte{'y'});
            std::vector<std::byte> received(chunk_bytes);
            std::atomic<bool> done{false};
            std::atomic<int> turn{0};
            auto other = rill::spawn([&] {
                // Counts how often it got the worker while the main task was mid-sequence.
                while (!done.load()) {
                    if (turn.load() % 2 == 1) ++yields_seen_by_other;
                    rill::task_yield();
                }
            });
            for (std::uint32_t i = 0; i < 4 * task_budget_operations; ++i) {
                turn = 1;  // a stretch of task_budget_operations / 4 operations, then a wait
                for (std::uint32_t j = 0; j < task_budget_operations / 8; ++j)
                    round_trip(first, second, chunk, received);
                turn = 2;
                rill::task_yield();
            }
            done = true;
            other.join();
        },
        {.workers = 1});
    EXPECT_EQ(yields_seen_by_other, 0)
        << "the budget made a task yield although it yielded every few operations";
}

}  // namespace
