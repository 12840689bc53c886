// Fiber stacks and the one place where execution switches between fibers. Every switch goes
// through switch_context so the sanitizer annotations can't be forgotten.
#pragma once

#include <cstddef>
#include <vector>

namespace rill::detail {

using context = void*;  // a Boost.Context fcontext_t

// A task stack: [base, base + guard) is the guard page, [base + guard, top) is usable.
struct stack_block {
    char* base = nullptr;
    std::size_t usable_bytes = 0;
    char* top() const noexcept { return base + guard_bytes() + usable_bytes; }
    char* bottom() const noexcept { return base + guard_bytes(); }
    static std::size_t guard_bytes() noexcept;
};

// Stacks of one size, pooled per scheduler. Reserving does not commit memory; a page is
// committed when the task first touches it.
class stack_pool {
public:
    explicit stack_pool(std::size_t usable_bytes);
    ~stack_pool();
    stack_pool(const stack_pool&) = delete;
    stack_pool& operator=(const stack_pool&) = delete;

    stack_block acquire();
    // Keeps the stack for reuse. Past the first few free stacks, the pages are given back to
    // the kernel, so a burst of tasks does not pin its peak memory forever.
    void release(stack_block s) noexcept;

    // Which guard mechanism this process uses: MADV_GUARD_INSTALL (Linux 6.13+, no extra
    // mapping per stack) or mprotect (one more mapping per stack).
    static const char* guard_mechanism() noexcept;

private:
    void grow();
    std::size_t usable_bytes_;
    std::vector<stack_block> free_;
    std::vector<std::pair<char*, std::size_t>> slabs_;
};

#if defined(__SANITIZE_ADDRESS__)
#define RILL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RILL_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define RILL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RILL_TSAN 1
#endif
#endif

// Per-fiber bookkeeping for the sanitizers: empty without them, so a parked task's control
// block does not carry it.
struct fiber_sanitizer_state {
#ifdef RILL_ASAN
    void* asan_fake_stack = nullptr;
    const void* stack_bottom = nullptr;  // this fiber's stack, for the switch that enters it
    std::size_t stack_size = 0;
#endif
#ifdef RILL_TSAN
    void* tsan_fiber = nullptr;
#endif
    void set_stack([[maybe_unused]] const void* bottom,
                   [[maybe_unused]] std::size_t size) noexcept {
#ifdef RILL_ASAN
        stack_bottom = bottom;
        stack_size = size;
#endif
    }
    void* tsan() const noexcept {
#ifdef RILL_TSAN
        return tsan_fiber;
#else
        return nullptr;
#endif
    }
    void set_tsan([[maybe_unused]] void* fiber) noexcept {
#ifdef RILL_TSAN
        tsan_fiber = fiber;
#endif
    }
};

struct transfer {
    context from;  // where the fiber that switched to us is suspended
    void* data;
};

// Creates a context that starts `entry` on stack `s` at the first switch to it. `entry` must
// call fiber_entered first, and must never return: its last act is a switch away with
// `finishing` = true.
// The top `reserved` bytes of the stack are left out (they hold the task's body).
context make_context(const stack_block& s, std::size_t reserved, void (*entry)(transfer));

// Switches from the running fiber (`self`) to `to` (`target`), passing `data`; returns when
// something switches back. `finishing` tells the sanitizers `self` will never run again.
transfer switch_context(context to, void* data, fiber_sanitizer_state& self,
                        const fiber_sanitizer_state& target, bool finishing = false);

// First call on a new fiber: completes the sanitizers' view of the switch that started it and
// records the bounds of the stack it came from into `from` (the scheduler's stack).
void fiber_entered(fiber_sanitizer_state& self, fiber_sanitizer_state& from);

void* tsan_create_fiber() noexcept;
void tsan_destroy_fiber(void* fiber) noexcept;
void* tsan_current_fiber() noexcept;

}  // namespace rill::detail
