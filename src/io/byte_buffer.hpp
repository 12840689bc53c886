// The bytes a stream holds on their way in or out: a contiguous queue whose memory comes from
// a per-thread pool of one-page blocks and goes back as soon as the queue runs empty, so an
// idle connection holds none. The backends receive into it directly.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstring>

namespace rill::detail {

// Smallest buffer allocated for either direction; buffers start at this size when first
// needed and grow by doubling (input up to what the longest line needs, output to its cap).
inline constexpr std::size_t initial_buffer_bytes = 4096;

// Buffers of initial_buffer_bytes (one page) come from a per-thread pool: a stream gives its
// buffers back whenever they run empty, so an idle connection holds none, and a busy one gets
// a recently used (cache-warm, already committed) block back at once.
char* acquire_buffer_block();
void release_buffer_block(char* block) noexcept;

// Free blocks a thread keeps warm (with their pages) for acquire_buffer_block while its worker
// is idle: trim_warm_buffer_blocks gives the pages of the others back.
inline constexpr std::size_t warm_buffer_blocks_max = 64;
// ... and while it is busy: a burst of connections each holding a block or two for a moment
// (TLS holds the plaintext and the ciphertext of each answer while its send is in the ring)
// reuses them warm. Giving a page back and faulting it in again at every request cost a TLS
// echo at C=100 half of its server CPU (madvise and its TLB flush).
inline constexpr std::size_t warm_buffer_blocks_busy_max = 1024;
// From a worker's loop before it waits for events: this thread's warm blocks beyond
// warm_buffer_blocks_max give their pages back, at most once per warm_buffer_trim_interval (a
// loaded worker sleeps between batches, and trimming at each sleep gave the pages back only
// to fault them in again). One comparison when there is nothing beyond the reserve.
inline constexpr std::chrono::milliseconds warm_buffer_trim_interval{1000};
void trim_warm_buffer_blocks() noexcept;
// Tests: the next `count` times acquire_buffer_block finds no warm block (a test holds them
// all), on any thread, it throws std::bad_alloc, as an exhausted mmap would.
void fail_buffer_allocations_for_tests(unsigned count) noexcept;

// A contiguous byte queue: [begin, end) holds data. Memory is taken when bytes arrive and
// given back as soon as the queue is empty.
class byte_buffer {
public:
    byte_buffer() = default;
    byte_buffer(const byte_buffer&) = delete;
    byte_buffer& operator=(const byte_buffer&) = delete;
    ~byte_buffer() { release(); }

    char* head() noexcept { return data_ + begin_; }
    const char* head() const noexcept { return data_ + begin_; }
    std::size_t size() const noexcept { return end_ - begin_; }
    bool empty() const noexcept { return begin_ == end_; }
    std::size_t capacity() const noexcept { return capacity_; }

    // A one-page buffer goes back to the pool as soon as it runs empty; a larger one (a long
    // line, a big write) is kept while the stream is busy, so it is not regrown on every
    // flush, and given back when the stream next waits for input with nothing buffered.
    void consume(std::size_t n) noexcept {
        begin_ += n;
        if (begin_ == end_) {
            if (capacity_ == initial_buffer_bytes)
                release();
            else
                begin_ = end_ = 0;
        }
    }
    // Room for at least `min_free` more bytes at the tail (compacting or growing).
    char* tail(std::size_t min_free) {
        if (capacity_ - end_ < min_free) make_room(min_free);
        return data_ + end_;
    }
    std::size_t tail_room() const noexcept { return capacity_ - end_; }
    void commit(std::size_t n) noexcept { end_ += n; }
    void append(const char* p, std::size_t n) {
        if (n == 0) return;  // an empty span's data() may be null: memcpy UB
        std::memcpy(tail(n), p, n);
        end_ += n;
    }
    void release() noexcept {
        if (data_) {
            if (capacity_ == initial_buffer_bytes)
                release_buffer_block(data_);
            else
                delete[] data_;
        }
        data_ = nullptr;
        begin_ = end_ = capacity_ = 0;
    }

private:
    void make_room(std::size_t min_free);
    char* data_ = nullptr;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    std::size_t capacity_ = 0;
};

// Room at `in`'s tail for one receive: the free room when at least a block's worth is left,
// else room grown to half the capacity (at least one block). The socket backends and the TLS
// transport receive this way.
inline char* room_for_receive(byte_buffer& in) {
    const std::size_t want =
        in.capacity() / 2 > initial_buffer_bytes ? in.capacity() / 2 : initial_buffer_bytes;
    return in.tail(in.tail_room() >= initial_buffer_bytes ? 1 : want);
}

}  // namespace rill::detail
