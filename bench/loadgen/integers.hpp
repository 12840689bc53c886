#pragma once

#include <cstdint>

namespace loadgen {

using u32 = std::uint32_t;
using u64 = std::uint64_t;

}  // namespace loadgen
