// The per-thread block cache for task bodies, task control blocks and stream states: a freed
// block is reused by the next allocation of its size class on the same thread, classes do not
// mix, a thread keeps at most small_blocks_kept_max blocks a class, and blocks freed on
// another thread go to that thread's cache. Under ASan/TSan the cache is off (plain
// new/delete), and the tests that look at reuse say so.
#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

#include <rill/rill.hpp>

#include "runtime/scheduler.hpp"
#include "runtime/small_blocks.hpp"
#include "stream/stream_state.hpp"

namespace {

using rill::detail::allocate_small;
using rill::detail::free_small;
using rill::detail::small_blocks_kept;
using rill::detail::small_blocks_kept_max;

// A size no other code of this test binary allocates through the cache.
constexpr std::size_t probe_bytes = 264;

// Takes every block this thread keeps for `bytes` (so that a test starts from an empty class);
// give_back returns them.
std::vector<void*> drain(std::size_t bytes) {
    std::vector<void*> taken;
    while (small_blocks_kept(bytes) > 0) taken.push_back(allocate_small(bytes));
    return taken;
}
void give_back(const std::vector<void*>& blocks, std::size_t bytes) {
    for (void* b : blocks) free_small(b, bytes);
}

TEST(SmallBlocks, FreedBlockIsReusedBySameClass) {
    if (!rill::detail::small_blocks_cached())
        GTEST_SKIP() << "sanitizer build: blocks go to malloc";
    const auto earlier = drain(probe_bytes);
    void* first = allocate_small(probe_bytes);
    std::memset(first, 0xAB, probe_bytes);  // the whole size is usable
    free_small(first, probe_bytes);
    EXPECT_EQ(small_blocks_kept(probe_bytes), 1u);
    void* again = allocate_small(probe_bytes - 5);  // another size of the same class
    EXPECT_EQ(again, first);
    EXPECT_EQ(small_blocks_kept(probe_bytes), 0u);
    void* other = allocate_small(40);  // another class: not the block just taken back
    EXPECT_NE(other, first);
    free_small(other, 40);
    free_small(again, probe_bytes - 5);
    give_back(earlier, probe_bytes);
}

TEST(SmallBlocks, KeepsAtMostTheCapPerClass) {
    if (!rill::detail::small_blocks_cached())
        GTEST_SKIP() << "sanitizer build: blocks go to malloc";
    const auto earlier = drain(probe_bytes);
    std::vector<void*> blocks;
    for (unsigned i = 0; i < 3 * small_blocks_kept_max; ++i)
        blocks.push_back(allocate_small(probe_bytes));
    give_back(blocks, probe_bytes);
    EXPECT_EQ(small_blocks_kept(probe_bytes), small_blocks_kept_max);
    give_back(earlier, probe_bytes);
    EXPECT_EQ(small_blocks_kept(probe_bytes), small_blocks_kept_max);
}

TEST(SmallBlocks, LargeAndEmptyRequestsBypassTheCache) {
    void* big = allocate_small(4096);
    std::memset(big, 1, 4096);
    free_small(big, 4096);
    EXPECT_EQ(small_blocks_kept(4096), 0u);
    free_small(nullptr, 64);  // like delete of a null pointer: nothing
}

TEST(SmallBlocks, BlockFreedOnAnotherThreadStaysThere) {
    if (!rill::detail::small_blocks_cached())
        GTEST_SKIP() << "sanitizer build: blocks go to malloc";
    const auto earlier = drain(probe_bytes);
    void* b = allocate_small(probe_bytes);
    std::size_t there = 0;
    std::thread([&] {
        free_small(b, probe_bytes);
        there = small_blocks_kept(probe_bytes);
    }).join();  // and that thread's blocks go back to malloc as it ends
    EXPECT_EQ(there, 1u);
    EXPECT_EQ(small_blocks_kept(probe_bytes), 0u);
    give_back(earlier, probe_bytes);
}

TEST(SmallBlocks, TasksAndStreamsComeAndGoThroughIt) {
    // Bursts of connections on one worker (this thread): their tasks' control blocks and
    // their streams' states end up in this thread's cache.
    if (!rill::detail::small_blocks_cached())
        GTEST_SKIP() << "sanitizer build: blocks go to malloc";
    constexpr std::size_t task_bytes = sizeof(rill::detail::task_control);
    constexpr std::size_t stream_bytes = sizeof(rill::detail::stream_state);
    const auto earlier_tasks = drain(task_bytes);
    const auto earlier_streams = drain(stream_bytes);
    // Fewer accepts than one cooperative budget: the accepting task does not yield within a
    // burst, so every connection of a burst is alive at once.
    constexpr int per_burst = static_cast<int>(rill::detail::task_budget_operations) - 1;
    rill::run(
        [] {
            rill::tcp_server_stream server(0);
            const int port = rill::tcp_server_socket_info(server).port_number;
            for (int burst = 0; burst < 2; ++burst) {
                std::vector<rill::task> clients;
                for (int i = 0; i < per_burst; ++i)
                    clients.push_back(rill::spawn([port] {
                        rill::tcp_client_stream c(port);
                        rill::showln(c, "x");
                        rill::flush_writer(c);
                        EXPECT_EQ(rill::read_line(c), "x");
                    }));
                std::vector<rill::task> servers;
                for (int i = 0; i < per_burst; ++i) {
                    auto accepted = rill::read(server);
                    ASSERT_TRUE(accepted);
                    servers.push_back(rill::spawn([c = std::move(*accepted)]() mutable {
                        rill::call_with_stream(c, [](rill::tcp_client_stream& s) {
                            if (auto line = rill::read_line(s)) rill::showln(s, *line);
                        });
                    }));
                }
                for (auto& t : servers) t.join();
                for (auto& t : clients) t.join();
            }
        },
        {.workers = 1});
    // 2 * per_burst tasks and streams at a time (a client and a server end per connection),
    // freed here when they end and taken again by the second burst. (The two may share a
    // class.)
    EXPECT_GE(small_blocks_kept(task_bytes), 2u * per_burst);
    EXPECT_GE(small_blocks_kept(stream_bytes), 2u * per_burst);
    give_back(earlier_tasks, task_bytes);
    give_back(earlier_streams, stream_bytes);
}

}  // namespace
