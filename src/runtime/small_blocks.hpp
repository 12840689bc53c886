// The per-thread block cache behind allocate_small / free_small (declared in
// <rill/runtime.hpp>, where task bodies need them).
#pragma once

#include <cstddef>

namespace rill::detail {

// Whether blocks are recycled at all: not under ASan or TSan, which must see every malloc
// and free.
bool small_blocks_cached() noexcept;
// Free blocks the calling thread keeps for allocations of `bytes` (for tests).
std::size_t small_blocks_kept(std::size_t bytes) noexcept;
// The most it keeps per size class; beyond that freed blocks go back to malloc. Only the few
// classes a program's tasks and streams use fill up: 128 x 184 bytes = 23 KiB for the control
// blocks, say, after a burst that freed as many.
inline constexpr unsigned small_blocks_kept_max = 128;

}  // namespace rill::detail
