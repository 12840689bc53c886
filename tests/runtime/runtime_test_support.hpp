// Helpers shared by the runtime tests: unwinding witnesses and what the build is (sanitizers change what a test can ask for).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>

#include <rill/rill.hpp>

#include "runtime/scheduler.hpp"
#include "support/errors.hpp"
#include "support/wait.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define RILL_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RILL_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define RILL_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RILL_TEST_TSAN 1
#endif
#endif

namespace rill_test {

using namespace std::chrono_literals;

#ifdef RILL_TEST_ASAN
inline constexpr bool under_asan = true;
#else
inline constexpr bool under_asan = false;
#endif
#ifdef RILL_TEST_TSAN
inline constexpr bool under_tsan = true;
#else
inline constexpr bool under_tsan = false;
#endif

// A task count for tests that create many tasks: TSan makes creating a fiber cost about a
// millisecond (it keeps a thread state per fiber), so its build runs a tenth of them.
constexpr int scaled_task_count(int n) { return under_tsan ? (n / 10 > 0 ? n / 10 : 1) : n; }

// Counts its own destruction: proof that a cancelled task unwound and ran its destructors.
struct count_on_destroy {
    std::atomic<int>& count;
    ~count_on_destroy() { count.fetch_add(1, std::memory_order_relaxed); }
};

}  // namespace rill_test
