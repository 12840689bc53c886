// Small blocks recycled per thread: the objects every connection allocates and frees (its
// task's control block and body, its stream's state). Connections come and go in bursts (50
// at once in the churn benchmark), which overflow glibc's per-thread cache of 7 blocks a size:
// the rest of the burst then goes through its bins, ~250 instructions an allocation and free
// (bench/callgrind.sh on churn). Here a pair costs a few instructions.
#include <cstddef>
#include <new>

#include "runtime/small_blocks.hpp"

#include <rill/runtime.hpp>

#include "runtime/fiber.hpp"  // RILL_ASAN, RILL_TSAN

namespace rill::detail {

namespace {

// Size classes of 16 k + 8 bytes (8, 24, 40, ... 520): malloc hands out chunks of 16 k
// bytes with an 8-byte header, so a block of a class costs what malloc of its exact size
// would (an idle connection's control block and stream state stay at 192 bytes each).
constexpr std::size_t size_classes = 33;
constexpr std::size_t largest_cached_bytes = 16 * (size_classes - 1) + 8;

constexpr std::size_t class_of(std::size_t bytes) noexcept { return (bytes + 7) / 16; }
constexpr std::size_t class_bytes(std::size_t c) noexcept { return 16 * c + 8; }
static_assert(class_bytes(class_of(184)) == 184 && class_bytes(class_of(185)) == 200);
constexpr bool has_class(std::size_t bytes) noexcept {
    return bytes > 0 && bytes <= largest_cached_bytes;
}

// Gives a block back to malloc, with its size when the compiler declares the sized global
// delete (g++ does; clang up to 18 only with -fsized-deallocation).
void delete_block(void* p, std::size_t bytes) noexcept {
#if defined(__cpp_sized_deallocation)
    ::operator delete(p, bytes);
#else
    (void)bytes;
    ::operator delete(p);
#endif
}

// Free lists linked through the blocks' first bytes. Trivially destructible, so the hot path
// reaches it without a thread-local guard; blocks_at_exit gives the blocks back.
struct free_lists {
    void* head[size_classes];
    unsigned count[size_classes];
    bool thread_ending;  // blocks_at_exit ran: later frees go straight back to malloc
};
thread_local free_lists lists;

struct blocks_at_exit {
    ~blocks_at_exit() {
        for (std::size_t c = 0; c < size_classes; ++c) {
            while (void* b = lists.head[c]) {
                lists.head[c] = *static_cast<void**>(b);
                delete_block(b, class_bytes(c));
            }
            lists.count[c] = 0;
        }
        lists.thread_ending = true;
    }
};
thread_local blocks_at_exit cleanup;

#if defined(RILL_ASAN) || defined(RILL_TSAN)
// The sanitizers watch malloc and free: reuse behind their back would hide a use after free
// from ASan and show TSan blocks moving between threads without the malloc that orders them.
constexpr bool caching = false;
#else
constexpr bool caching = true;
#endif

[[gnu::noinline]] void cache_first_block(void* p, std::size_t c) noexcept {
    if (lists.thread_ending) return delete_block(p, class_bytes(c));
    (void)cleanup;  // constructed now, so the blocks are freed when the thread ends
    *static_cast<void**>(p) = nullptr;
    lists.head[c] = p;
    lists.count[c] = 1;
}

}  // namespace

void* allocate_small(std::size_t bytes) {
    if (!caching || !has_class(bytes)) return ::operator new(bytes);
    const std::size_t c = class_of(bytes);
    if (void* b = lists.head[c]) {
        lists.head[c] = *static_cast<void**>(b);
        --lists.count[c];
        return b;
    }
    return ::operator new(class_bytes(c));
}

void free_small(void* p, std::size_t bytes) noexcept {
    if (!p) return;
    if (!caching || !has_class(bytes)) return delete_block(p, bytes);
    const std::size_t c = class_of(bytes);
    const unsigned n = lists.count[c];
    if (n == 0) return cache_first_block(p, c);
    if (n >= small_blocks_kept_max) return delete_block(p, class_bytes(c));
    *static_cast<void**>(p) = lists.head[c];
    lists.head[c] = p;
    lists.count[c] = n + 1;
}

bool small_blocks_cached() noexcept { return caching; }

std::size_t small_blocks_kept(std::size_t bytes) noexcept {
    return has_class(bytes) ? lists.count[class_of(bytes)] : 0;
}

}  // namespace rill::detail
