// Two transports joined back to back, in memory: what one sends, the other receives. Each send
// arrives as one receive, so a test decides exactly how the bytes are split; a send waits while
// the other side holds `capacity_bytes` unread, as a socket's buffer would make it. Works
// across workers. For tests, and for code that wants a stream without a socket.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <utility>

#include <rill/stream.hpp>
#include <rill/transcoder.hpp>

#include "stream/stream_state.hpp"
#include "stream/transport.hpp"

namespace rill::detail {

inline constexpr std::size_t default_memory_transport_capacity_bytes = 256 * 1024;

std::pair<std::unique_ptr<transport>, std::unique_ptr<transport>>
make_memory_transport_pair(std::size_t capacity_bytes = default_memory_transport_capacity_bytes);

// Two streams over a memory transport pair: `first` and `second` are each other's peer.
struct memory_stream_pair {
    stream first;
    stream second;
};
memory_stream_pair
make_memory_stream_pair(const stream_options& options = {},
                        const std::optional<transcoder>& first_transcoder = {},
                        const std::optional<transcoder>& second_transcoder = {},
                        std::size_t capacity_bytes = default_memory_transport_capacity_bytes);

}  // namespace rill::detail
