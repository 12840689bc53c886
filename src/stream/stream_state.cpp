// A stream's state: its life (made over a transport, closed), receiving into its input
// buffer and decoding, sending its output buffer (at once, or put off to the task's next wait),
// closing and the stream's settings.
#include "stream/stream_state.hpp"

#include "runtime/worker_stats.hpp"

#include <cerrno>
#include <cstdio>
#include <thread>

#include <rill/stream.hpp>

namespace rill {
namespace detail {

namespace {

std::string hex_bytes(const char* p, std::size_t n) {
    std::string s;
    char buf[4];
    for (std::size_t i = 0; i < n; ++i) {
        std::snprintf(buf, sizeof buf, "%s%02X", i ? " " : "", static_cast<unsigned char>(p[i]));
        s += buf;
    }
    return s;
}

}  // namespace

stream_state::stream_state(std::unique_ptr<transport> transport, const stream_options& o,
                           const std::optional<transcoder>& t)
    : stream_state(o, t) {
    io.adopt(std::move(transport));
}

stream_state::stream_state(const stream_options& o, const std::optional<transcoder>& t)
    : options(o) {
    pending_flush.run = [](deferred_work* w) {
        auto* st = static_cast<stream_state*>(w->context);
        try {
            st->flush("flush_writer");
        } catch (const timeout_error&) {
            st->write_error = ETIMEDOUT;  // reported by the stream's next write
        } catch (const os_error&) {
            // flush recorded the errno: the stream's next write reports it.
        } catch (const tls_error&) {
            // The same (write_error is EPROTO): the transport's account is thrown again.
        }
    };
    pending_flush.context = this;
    if (t) {
        eol = t->eol_style();
        codec = std::make_unique<transcoding_state>(*t);
    }
}

stream_state::~stream_state() {
    if (pending_flush.owner) {
        // Output flush_writer promised is sent even when the stream is dropped without
        // close_stream, as long as we are still on the task that flushed it.
        scheduler* here = scheduler::current();
        if (here && here->running() == pending_flush.owner) {
            try {
                flush("flush_writer", true);  // the descriptor is closed right after
            } catch (...) {}
        }
    }
    close_transport();
}

void stream_state::close_transport() noexcept {
    undefer(pending_flush);
    // A task closing the stream from another worker may be in its shutdown() on the descriptor
    // this very moment: it is closed once that returned, so its number cannot be reused under
    // the shutdown. (Later closers see sharing_transport_closed and leave it.)
    if (sharing.fetch_or(sharing_transport_closed, std::memory_order_acq_rel) &
        sharing_shutting_down) [[unlikely]] {
        while (sharing.load(std::memory_order_acquire) & sharing_shutting_down)
            std::this_thread::yield();
    }
    io->close();
    closed = true;
    in.release();
    out.release();
    if (codec) codec->pending_bad_bytes = 0;  // its bytes went with `in`
    end_of_input = true;
    writer_closed = true;
}

std::string stream_state::name() const { return io->peer_name(); }

void transport::throw_protocol_failure(const std::string& operation) const {
    throw_os_error(EPROTO, operation + ": receive from " + peer_name());
}

namespace {

// A receive waiting on an idle connection, on its worker's list while it waits: a graceful
// shutdown stops the connection's input, so the receive returns.
class idle_input_watch : private idle_watch {
public:
    idle_input_watch() noexcept = default;
    idle_input_watch(const idle_input_watch&) = delete;
    idle_input_watch& operator=(const idle_input_watch&) = delete;
    ~idle_input_watch() {
        if (worker_) worker_->unwatch_idle(*this);
    }
    void start(scheduler& worker, stream_state& st) noexcept {
        fire = &stop;
        stream_ = &st;
        worker_ = &worker;
        worker.watch_idle(*this);
    }

private:
    static bool stop(idle_watch* w) noexcept {
        stream_state& st = *static_cast<idle_input_watch*>(w)->stream_;
        if (!st.out.empty()) return false;  // its answer is still being sent
        st.io->stop_input();
        return true;
    }
    scheduler* worker_ = nullptr;
    stream_state* stream_ = nullptr;
};

}  // namespace

fill_result stream_state::fill_bytes(const char* operation) {
    if (end_of_input) return fill_result::end_of_stream;
    const auto deadline = optional_deadline(options.reader_timeout);
    // A stream about to wait with nothing buffered holds no buffer meanwhile (the transport
    // releases `in` when it waits).
    if (in.empty() && out.empty()) out.release();
    scheduler* here = scheduler::current();
    task_control* running = here ? here->running() : nullptr;
    note_user(running);
    // A server's client with nothing buffered is idle: a graceful shutdown ends its input
    // (what has arrived is still read). One that is part way through a line is not.
    idle_input_watch watch;
    if (ends_at_shutdown && here && in.empty() && text_size() == 0) {
        if (here->draining() && out.empty()) [[unlikely]] {
            io->stop_input();
        } else {
            watch.start(*here, *this);
        }
    }
    long r;
    if (running && pending_flush.owner == running && !out.empty()) {
        // flush_writer's put-off send may go to the kernel with this receive.
        pending_output flushed{out, optional_deadline(options.writer_timeout), pending_flush};
        r = io->receive(in, deadline, &flushed);
        if (flushed.taken) note_flush_taken(flushed, *running);
    } else {
        r = io->receive(in, deadline, nullptr);
    }
    if (r > 0) {
        count_event(&worker_counters::bytes_in, static_cast<std::uint64_t>(r));
        // A flooding peer never lets this receive wait: the budget makes its task yield.
        if (here) here->spend_budget();
        return fill_result::more;
    }
    // The backend reports a passed deadline as -ETIMEDOUT, the errno TCP also uses for a
    // connection that timed out (retransmissions, keepalive): only the first is a timeout.
    if (r == -ETIMEDOUT && deadline) {
        count_event(&worker_counters::timeouts);
        return fill_result::timed_out;
    }
    if (r == -ECANCELED) throw task_cancelled();
    if (r == transport_protocol_failure && !close_requested())
        io->throw_protocol_failure(operation);  // a TLS failure: tls_error
    if (r == 0 || r == -ECONNRESET || r == -EPIPE || r == -ETIMEDOUT || r == -EHOSTUNREACH ||
        r == -ENETUNREACH || r == -ECONNABORTED || r == transport_protocol_failure) {
        // The peer closed or vanished: that is the end of this stream, not an error.
        end_of_input = true;
        return fill_result::end_of_stream;
    }
    throw_os_error(static_cast<int>(-r), std::string(operation) + ": receive from " + name());
}

fill_result stream_state::fill_text(const char* operation) {
    if (!codec) return fill_bytes(operation);
    transcoding_state& tc = *codec;
    if (tc.pending_bad_bytes) {
        // The reader has reached the ill-formed bytes: report them, then move past them.
        const std::size_t bad = tc.pending_bad_bytes;
        tc.pending_bad_bytes = 0;
        std::string what = std::string(operation) + ": " +
                           std::string(to_string(tc.dec.settings().codec())) +
                           " cannot decode bytes " + hex_bytes(in.head(), bad) + " at byte " +
                           std::to_string(tc.bytes_decoded) + " of " + name();
        in.consume(bad);
        tc.bytes_decoded += bad;
        count_event(&worker_counters::decoding_errors);
        throw decoding_error(what);
    }
    // The text already read goes before more is decoded: a peer whose every segment ends inside
    // a line never lets the text run empty (consume_text frees it only then), and the line cap
    // only counts unread text. Moves at most the unread part of a line.
    if (tc.decoded_pos > 0) {
        tc.decoded.erase(0, tc.decoded_pos);
        tc.decoded_pos = 0;
    }
    for (;;) {
        if (!in.empty() || end_of_input) {
            const std::size_t before = tc.decoded.size();
            decode_result r =
                tc.dec.decode(std::string_view(in.head(), in.size()), tc.decoded, end_of_input);
            in.consume(r.consumed);
            tc.bytes_decoded += r.consumed;
            if (r.error) tc.pending_bad_bytes = r.bad_length;
            if (tc.decoded.size() > before) return fill_result::more;
            if (r.error) return fill_text(operation);
            if (end_of_input) return fill_result::end_of_stream;
        }
        fill_result f = fill_bytes(operation);
        if (f == fill_result::timed_out) return f;
    }
}

void stream_state::refuse_write(const char* operation) {
    if (closed) throw error(std::string(operation) + ": the stream is closed");
    if (close_requested())
        throw error(std::string(operation) + ": the stream was closed by another task");
    if (write_error == ETIMEDOUT)
        throw timeout_error(std::string(operation) + ": an earlier flush to " + name() +
                            " passed the writer timeout");
    if (write_error == -transport_protocol_failure) io->throw_protocol_failure(operation);
    if (write_error) throw_os_error(write_error, std::string(operation) + ": send to " + name());
    throw error(std::string(operation) + ": the stream is closed for writing");
}

std::size_t stream_state::send_some(const char* p, std::size_t n,
                                    const std::optional<time_point>& deadline,
                                    const char* operation, bool more) {
    scheduler* here = scheduler::current();
    note_user(here ? here->running() : nullptr);
    const long r = io->send(p, n, deadline, more);
    if (r >= 0) {
        count_event(&worker_counters::bytes_out, static_cast<std::uint64_t>(r));
        // A yield here loses nothing: the caller gets the count after it.
        if (here) here->spend_budget();
        return static_cast<std::size_t>(r);
    }
    if (r == -ETIMEDOUT && deadline) {  // else the connection itself timed out: os_error
        count_event(&worker_counters::timeouts);
        throw timeout_error(std::string(operation) + ": writer timeout of " +
                            std::to_string(options.writer_timeout->count()) +
                            " ms passed sending to " + name());
    }
    if (r == -ECANCELED) throw task_cancelled();
    write_error = static_cast<int>(-r);
    if (close_requested()) refuse_write(operation);  // "the stream was closed"
    if (r == transport_protocol_failure) {
        out.release();  // the connection is broken: nothing more of it will leave
        io->throw_protocol_failure(operation);
    }
    throw_os_error(write_error, std::string(operation) + ": send to " + name());
}

void stream_state::flush(const char* operation, bool closing) {
    undefer(pending_flush);
    check_writable(operation);
    const auto deadline = optional_deadline(options.writer_timeout);
    try {
        while (!out.empty())
            out.consume(send_some(out.head(), out.size(), deadline, operation, closing));
    } catch (const os_error&) {
        out.release();  // the connection is broken: nothing more of it will leave
        throw;
    }
}

void stream_state::note_flush_taken(const pending_output& flushed, task_control& running) noexcept {
    // The backend sent it with the receive: counted here, as send_some counts its own.
    if (flushed.sent > 0)
        count_event(&worker_counters::bytes_out, static_cast<std::uint64_t>(flushed.sent));
    if (flushed.sent == -ETIMEDOUT) count_event(&worker_counters::timeouts);
    if (flushed.sent < 0 && flushed.sent != -ECANCELED) {  // the next write reports it
        write_error = flushed.sent == -ETIMEDOUT ? ETIMEDOUT : static_cast<int>(-flushed.sent);
        out.release();
    }
    // A short send: the rest leaves at the task's next scheduling point, as flush_writer said.
    if (!out.empty() && !write_error) defer(running, pending_flush);
}

void stream_state::flush_before_wait(const char* operation) {
    check_writable(operation);
    if (out.empty() || pending_flush.owner) return;  // nothing to send, or already put off
    // The send waits for the task's next scheduling point: a pipelining peer's answers then
    // go out together, and an answer followed by close_stream leaves with the FIN. A send
    // error is thrown by the stream's next write, flush or close.
    scheduler* here = scheduler::current();
    if (!here || !here->running()) return flush(operation);
    defer(*here->running(), pending_flush);
}

void abort_stream(stream& s) noexcept {
    if (!s.is_open()) return;
    stream_state& st = detail::state_of(s);
    if (st.used_by_other_task()) return st.close_from_other_task();  // as close_stream does
    if (st.pending_flush.owner && !st.write_error) {
        // flush_writer accepted this output and put its send off until the task waits
        // (flush_before_wait); an exception before that wait (a decoding_error from the next
        // read_line, say, ending call_with_stream) must not lose it. Non-blocking sends only:
        // aborting never waits.
        while (!st.out.empty()) {
            const long n = st.io->send_without_waiting(st.out.head(), st.out.size());
            if (n <= 0) break;
            st.out.consume(static_cast<std::size_t>(n));
        }
    }
    st.close_transport();
}

namespace {

// Whether closing now could reset the connection under the answer: input the stream has not
// read, or bytes waiting in the transport. A peer that ended its side sends nothing more, and
// what it sent is all read into the stream by then. On a socket the last question costs one
// ioctl per close (churn: no change in user-space instructions per connection).
bool input_may_be_unread(const stream_state& st) noexcept {
    if (st.end_of_input && !st.reader_shut) return false;
    if (!st.end_of_input && (!st.in.empty() || st.text_size() > 0)) return true;
    return st.io->input_pending();
}

// close_stream when input may be unread, as nginx's lingering_close, once the output has left
// without MSG_MORE (it must not wait for the close): the writer is shut down so the peer reads
// end of stream after the answer, and the peer's bytes are read and dropped until it closes,
// for at most options.lingering_close_time and lingering_close_discard_cap_bytes. Only then
// does the close (and a reset, if the peer is still sending) follow. True when cancelled
// meanwhile. Out of line: the close of a connection with nothing unread does not pay for it.
[[gnu::noinline]] bool drain_before_close(stream_state& st) {
    if (st.write_error || st.options.lingering_close_time.count() <= 0) return false;
    if (!st.writer_closed) {
        st.io->finish_output(optional_deadline(st.options.writer_timeout));
        st.io->shutdown_writer();
    }
    st.writer_closed = true;
    st.in.consume(st.in.size());  // unread input is dropped: it is never read now
    const auto deadline = deadline_after(st.options.lingering_close_time);
    std::size_t discarded = 0;
    while (discarded < lingering_close_discard_cap_bytes) {
        const long r = st.io->receive(st.in, deadline, nullptr);
        // The peer's end, the time limit, cancellation or a broken connection.
        if (r <= 0) return r == -ECANCELED;
        discarded += static_cast<std::size_t>(r);
        st.in.consume(st.in.size());
    }
    return false;
}

}  // namespace

}  // namespace detail

// ---- stream ---------------------------------------------------------------------------------

stream::stream() noexcept = default;
stream::stream(std::unique_ptr<detail::stream_state> state) noexcept : state_(std::move(state)) {}
stream::stream(stream&&) noexcept = default;
stream& stream::operator=(stream&&) noexcept = default;
stream::~stream() = default;

bool stream::is_open() const noexcept { return state_ && !state_->closed; }

std::optional<rill::transcoder> stream::transcoder() const {
    if (!state_ || !state_->codec) return std::nullopt;
    return state_->codec->dec.settings();
}

// ---- closing and settings ---------------------------------------------------------------------

namespace detail {

void stream_state::close_from_other_task() noexcept {
    const std::uint8_t before = sharing.fetch_or(sharing_close_requested | sharing_shutting_down,
                                                 std::memory_order_acq_rel);
    if (before & sharing_shutting_down) return;  // a third task is shutting it down
    if (!(before & sharing_transport_closed)) io->shut_down_from_any_thread();
    sharing.fetch_and(static_cast<std::uint8_t>(~sharing_shutting_down), std::memory_order_release);
}

namespace {
// close_stream's part for a stream another task uses or closed: true when that settled it.
bool close_shared_stream(stream_state& st) {
    if (st.used_by_other_task()) {
        // Its user may be parked on it, on this worker or another: wake it, touch nothing it
        // holds (the descriptor and the buffers stay until its own close or the destructor).
        st.close_from_other_task();
        return true;
    }
    if (!st.close_requested() || st.closed) return false;
    // The user's close after another task's: the output cannot leave any more.
    st.close_transport();
    return true;
}
}  // namespace
}  // namespace detail

void close_stream(stream& s) {
    if (!s.is_open()) return;
    detail::stream_state& st = detail::state_of(s);
    if (detail::close_shared_stream(st)) return;  // first: touches nothing of the user's
    // With input unread, closing at once could reset the connection under the answer.
    const bool linger = detail::input_may_be_unread(st);
    bool cancelled = false;
    try {
        // Nothing unread: the last bytes go with MSG_MORE and the FIN joins their segment.
        if (!st.writer_closed && !st.write_error) {
            st.flush("close_stream", !linger);
            // TLS's close_notify; a socket has nothing to add. A failure here changes nothing:
            // the stream closes either way.
            if (!linger) st.io->finish_output(detail::optional_deadline(st.options.writer_timeout));
        }
        cancelled = linger && detail::drain_before_close(st);
    } catch (...) {
        st.close_transport();
        throw;
    }
    st.close_transport();
    if (cancelled) throw task_cancelled();
}

void close_writer(stream& s) {
    if (!s.is_open()) return;
    detail::stream_state& st = detail::state_of(s);
    if (st.writer_closed) return;
    st.flush("close_writer", true);
    if (const long r = st.io->finish_output(detail::optional_deadline(st.options.writer_timeout));
        r == -ECANCELED)
        throw task_cancelled();
    st.io->shutdown_writer();
    st.writer_closed = true;
}

void close_reader(stream& s) {
    if (!s.is_open()) return;
    detail::stream_state& st = detail::state_of(s);
    st.io->shutdown_reader();
    st.end_of_input = true;
    st.reader_shut = true;
    st.in.release();
    if (st.codec) {
        st.codec->decoded.clear();
        st.codec->decoded_pos = 0;
        st.codec->pending_bad_bytes = 0;  // its bytes went with `in`
    }
}

void reader_timeout(stream& s, std::optional<std::chrono::milliseconds> timeout) {
    detail::state_of(s).options.reader_timeout = timeout;
}

void writer_timeout(stream& s, std::optional<std::chrono::milliseconds> timeout) {
    detail::state_of(s).options.writer_timeout = timeout;
}

void max_line_length(stream& s, std::size_t bytes) {
    detail::state_of(s).options.max_line_length = bytes;
}

}  // namespace rill
