#include "runtime/fiber.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <boost/context/detail/fcontext.hpp>
#include <cerrno>
#include <cstdio>
#include <new>

#include <rill/error.hpp>

#ifdef RILL_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef RILL_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace ctx = boost::context::detail;

namespace rill::detail {

namespace {
// Linux 6.13 added guard regions installed by madvise: they need no mapping of their own, so
// a process can hold far more stacks than vm.max_map_count / 2 (about 32k with mprotect).
constexpr int madv_guard_install = 102;  // MADV_GUARD_INSTALL; glibc 2.36 has no name for it
// Stacks per mmap: fewer system calls and mappings than one mmap per stack.
constexpr std::size_t stacks_per_slab = 16;
// Free stacks kept with their pages; beyond these a released stack's pages go back.
constexpr std::size_t hot_free_stacks = 64;

std::size_t page_bytes() noexcept {
    static const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    return page;
}

enum class guard_kind { unknown, madvise_guard, mprotect };
// Decided at the first slab; atomic because every worker's stack pool grows on its own thread.
std::atomic<guard_kind> process_guard_kind{guard_kind::unknown};

void install_guard(char* page_start) {
    if (process_guard_kind.load(std::memory_order_relaxed) != guard_kind::mprotect) {
        if (madvise(page_start, page_bytes(), madv_guard_install) == 0) {
            process_guard_kind.store(guard_kind::madvise_guard, std::memory_order_relaxed);
            return;
        }
        // EINVAL: kernel older than 6.13
        process_guard_kind.store(guard_kind::mprotect, std::memory_order_relaxed);
    }
    if (mprotect(page_start, page_bytes(), PROT_NONE) != 0)
        throw_os_error(errno, "spawn: mprotect stack guard page");
}
}  // namespace

std::size_t stack_block::guard_bytes() noexcept { return page_bytes(); }

stack_pool::stack_pool(std::size_t usable_bytes) {
    const std::size_t page = page_bytes();
    usable_bytes_ = (usable_bytes + page - 1) / page * page;
    if (usable_bytes_ < 4 * page) usable_bytes_ = 4 * page;
}

stack_pool::~stack_pool() {
    for (auto [base, bytes] : slabs_) munmap(base, bytes);
}

void stack_pool::grow() {
    const std::size_t each = usable_bytes_ + stack_block::guard_bytes();
    const std::size_t bytes = each * stacks_per_slab;
    void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (mem == MAP_FAILED) throw_os_error(errno, "spawn: mmap task stacks");
    char* base = static_cast<char*>(mem);
    slabs_.emplace_back(base, bytes);
    // Reverse order so acquire (pop_back) hands out the lowest stack first.
    for (std::size_t i = stacks_per_slab; i-- > 0;) {
        char* stack_base = base + i * each;
        install_guard(stack_base);
        free_.push_back(stack_block{stack_base, usable_bytes_});
    }
}

stack_block stack_pool::acquire() {
    if (free_.empty()) grow();
    stack_block s = free_.back();
    free_.pop_back();
    return s;
}

void stack_pool::release(stack_block s) noexcept {
    if (free_.size() >= hot_free_stacks) {
        // MADV_DONTNEED keeps the guard region installed (it is not a page of data).
        madvise(s.bottom(), s.usable_bytes, MADV_DONTNEED);
    }
    free_.push_back(s);
}

const char* stack_pool::guard_mechanism() noexcept {
    switch (process_guard_kind.load(std::memory_order_relaxed)) {
    case guard_kind::madvise_guard: return "MADV_GUARD_INSTALL";
    case guard_kind::mprotect: return "mprotect";
    default: return "none yet";
    }
}

context make_context(const stack_block& s, std::size_t reserved, void (*entry)(transfer)) {
    return ctx::make_fcontext(
        s.top() - reserved, s.usable_bytes - reserved,
        // Same layout (asserted below); going through void(*)() is the sanctioned generic cast.
        reinterpret_cast<void (*)(ctx::transfer_t)>(reinterpret_cast<void (*)()>(entry)));
}

static_assert(sizeof(transfer) == sizeof(ctx::transfer_t));

transfer switch_context(context to, void* data, fiber_sanitizer_state& self,
                        const fiber_sanitizer_state& target, bool finishing) {
#ifdef RILL_ASAN
    __sanitizer_start_switch_fiber(finishing ? nullptr : &self.asan_fake_stack, target.stack_bottom,
                                   target.stack_size);
#endif
#ifdef RILL_TSAN
    __tsan_switch_to_fiber(target.tsan_fiber, 0);
#endif
    (void)finishing;
    (void)target;
    ctx::transfer_t t = ctx::jump_fcontext(to, data);
#ifdef RILL_ASAN
    __sanitizer_finish_switch_fiber(self.asan_fake_stack, nullptr, nullptr);
#endif
    (void)self;
    return transfer{t.fctx, t.data};
}

void fiber_entered(fiber_sanitizer_state& self, fiber_sanitizer_state& from) {
#ifdef RILL_ASAN
    __sanitizer_finish_switch_fiber(self.asan_fake_stack, &from.stack_bottom, &from.stack_size);
#endif
    (void)self;
    (void)from;
}

void* tsan_create_fiber() noexcept {
#ifdef RILL_TSAN
    return __tsan_create_fiber(0);
#else
    return nullptr;
#endif
}
void tsan_destroy_fiber(void* fiber) noexcept {
#ifdef RILL_TSAN
    if (fiber) __tsan_destroy_fiber(fiber);
#endif
    (void)fiber;
}
void* tsan_current_fiber() noexcept {
#ifdef RILL_TSAN
    return __tsan_get_current_fiber();
#else
    return nullptr;
#endif
}

}  // namespace rill::detail
