// The per-thread pool of one-page buffer blocks, and byte_buffer's growth.
#include "io/byte_buffer.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <new>
#include <vector>

namespace rill::detail {

namespace {
// Blocks come from mappings of their own, not the heap: freed buffers scattered between live
// objects would otherwise keep the heap's peak size resident for good. A thread keeps up to
// up to warm_buffer_blocks_busy_max free blocks with their pages, down to
// warm_buffer_blocks_max once its worker goes idle; beyond that a freed block's pages go back
// to the kernel (the block stays mapped for reuse, since a stream may free it on any thread).
constexpr std::size_t blocks_per_chunk = 64;
constexpr std::size_t warm_blocks_max = warm_buffer_blocks_busy_max;

// The warm blocks: a stack linked through the blocks' first bytes. Trivially destructible,
// so the per-request acquire and release reach it without a thread-local guard.
struct warm_stack {
    char* head = nullptr;
    std::size_t count = 0;
    char* pop() noexcept {
        char* b = head;
        head = *reinterpret_cast<char**>(b);
        --count;
        return b;
    }
    void push(char* b) noexcept {
        *reinterpret_cast<char**>(b) = head;
        head = b;
        ++count;
    }
};
thread_local warm_stack warm;

// Blocks whose pages went back to the kernel; at thread exit, the warm ones join them.
struct block_arena {
    std::vector<char*> cold;
    ~block_arena() {
        while (warm.head) madvise(warm.pop(), initial_buffer_bytes, MADV_DONTNEED);
    }
    void grow() {
        const std::size_t bytes = blocks_per_chunk * initial_buffer_bytes;
        void* chunk = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (chunk == MAP_FAILED) throw std::bad_alloc();
        for (std::size_t i = blocks_per_chunk; i-- > 0;)
            cold.push_back(static_cast<char*>(chunk) + i * initial_buffer_bytes);
    }
};
thread_local block_arena arena;
}  // namespace

namespace {
std::atomic<unsigned> allocation_failures_for_tests{0};

[[gnu::cold]] void fail_allocation_for_tests() {
    unsigned left = allocation_failures_for_tests.load(std::memory_order_relaxed);
    while (left && !allocation_failures_for_tests.compare_exchange_weak(
                       left, left - 1, std::memory_order_relaxed)) {}
    if (left) throw std::bad_alloc();
}
}  // namespace

void fail_buffer_allocations_for_tests(unsigned count) noexcept {
    allocation_failures_for_tests.store(count, std::memory_order_relaxed);
}

char* acquire_buffer_block() {
    if (warm.head) return warm.pop();
    // The test hook costs nothing on the usual path: it is checked only once no warm block is
    // left (a test takes them all first).
    if (allocation_failures_for_tests.load(std::memory_order_relaxed)) fail_allocation_for_tests();
    if (arena.cold.empty()) arena.grow();
    char* b = arena.cold.back();
    arena.cold.pop_back();
    return b;
}

namespace {
[[gnu::noinline]] void release_cold(char* block) noexcept {
    madvise(block, initial_buffer_bytes, MADV_DONTNEED);
    try {
        arena.cold.push_back(block);
    } catch (const std::bad_alloc&) {
        // No room to remember it: the block stays mapped, unused.
    }
}
[[gnu::noinline]] void release_first_warm(char* block) noexcept {
    (void)arena;  // constructed now, so its destructor gives the warm pages back at exit
    warm.push(block);
}
}  // namespace

void release_buffer_block(char* block) noexcept {
    if (warm.count - 1 < warm_blocks_max - 1) [[likely]] {  // 1 .. max-1 blocks warm
        warm.push(block);
        return;
    }
    if (warm.count == 0) return release_first_warm(block);
    release_cold(block);
}

void trim_warm_buffer_blocks() noexcept {
    if (warm.count <= warm_buffer_blocks_max) [[likely]]
        return;
    thread_local std::chrono::steady_clock::time_point last_trim{};
    const auto now = std::chrono::steady_clock::now();
    if (now - last_trim < warm_buffer_trim_interval) return;
    last_trim = now;
    while (warm.count > warm_buffer_blocks_max) release_cold(warm.pop());
}

void byte_buffer::make_room(std::size_t min_free) {
    if (!data_ &&
        min_free <= initial_buffer_bytes) {  // the usual case: an empty buffer's first bytes
        data_ = acquire_buffer_block();
        begin_ = end_ = 0;
        capacity_ = initial_buffer_bytes;
        return;
    }
    const std::size_t used = size();
    if (data_ && begin_ > 0 && capacity_ - used >= min_free && used <= capacity_ / 2) {
        std::memmove(data_, data_ + begin_, used);  // compact
        begin_ = 0;
        end_ = used;
        return;
    }
    std::size_t cap = std::max(capacity_, initial_buffer_bytes);
    while (cap - used < min_free) cap *= 2;
    char* fresh = cap == initial_buffer_bytes ? acquire_buffer_block() : new char[cap];
    if (used) std::memcpy(fresh, data_ + begin_, used);
    const std::size_t kept = used;
    release();
    data_ = fresh;
    end_ = kept;
    capacity_ = cap;
}

}  // namespace rill::detail
