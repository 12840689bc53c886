// TCP server and client streams: bind, listen, accept, connect and socket options. The
// buffered reading and writing is the stream layer's.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <limits>
#include <mutex>

#include <rill/error.hpp>
#include <rill/runtime.hpp>
#include <rill/tcp.hpp>

#include "io/backend.hpp"
#include "net/accept_faults.hpp"
#include "net/connection_limit.hpp"
#include "net/resolve.hpp"
#include "net/socket_transport.hpp"
#include "net/tls_transport.hpp"
#include "runtime/counters.hpp"
#include "runtime/shutdown.hpp"
#include "stream/stream_state.hpp"

namespace rill {
namespace detail {

namespace {

// After an accept error that does not end the server (out of descriptors or kernel memory, or
// one it does not know), read(server) waits this long before trying again, doubling up to the
// maximum: the connections it has keep being served meanwhile, and the pending clients stay
// in the listen backlog until a descriptor frees up.
constexpr std::chrono::milliseconds accept_backoff_initial{1};
constexpr std::chrono::milliseconds accept_backoff_max{100};

// A descriptor owned from the moment the kernel returns it.
class unique_fd {
public:
    explicit unique_fd(int fd = -1) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    unique_fd& operator=(unique_fd&& o) noexcept {
        reset(std::exchange(o.fd_, -1));
        return *this;
    }
    ~unique_fd() { reset(); }
    int get() const noexcept { return fd_; }
    int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_;
};

void set_int_option(int fd, int level, int name, int value, const char* operation,
                    const char* what) {
    if (setsockopt(fd, level, name, &value, sizeof value) != 0)
        throw_os_error(errno, std::string(operation) + ": setsockopt " + what);
}

void set_flag_option(int fd, int level, int name, bool on, const char* operation,
                     const char* what) {
    set_int_option(fd, level, name, on ? 1 : 0, operation, what);
}

socket_info socket_name(int fd, bool peer, const char* operation) {
    if (fd < 0) throw error(std::string(operation) + ": the stream is closed");
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int r = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                 : getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    if (r != 0) throw_os_error(errno, operation);
    return to_socket_info(reinterpret_cast<sockaddr*>(&ss));
}

// A client stream over `socket` (fd's descriptor, with what its backend registered while
// connecting). The socket's transport owns the descriptor as soon as it exists, and `slot`
// (an accepted client's place under its server's max_connections; empty otherwise).
// Over TLS when the options say so: `server_name` and `port` are a client's (see
// emplace_tls_transport).
template <class Options>
std::unique_ptr<stream_state> make_client_state(unique_fd& fd, io_handle socket, const Options& o,
                                                connection_slot slot = {},
                                                const std::string& server_name = {}, int port = 0) {
    auto st = std::make_unique<stream_state>(o.stream, o.transcoder);
    if (o.tls) [[unlikely]] {
        fd.release();  // the TLS transport takes the socket even when it throws
        constexpr tls_role role =
            std::is_same_v<Options, server_options> ? tls_role::server : tls_role::client;
        emplace_tls_transport(st->io, socket, std::move(slot), *o.tls, role, server_name, port);
        return st;
    }
    emplace_socket_transport(st->io, socket, std::move(slot));
    fd.release();
    return st;
}

// Errors of one pending connection, not of the listening socket: try the next one.
bool connection_gone(long r) noexcept {
    return r == -ECONNABORTED || r == -EPROTO || r == -EPERM || r == -ENETDOWN ||
           r == -ENOPROTOOPT || r == -EHOSTDOWN || r == -ENONET || r == -EHOSTUNREACH ||
           r == -EOPNOTSUPP || r == -ENETUNREACH;
}

// The listening socket itself is gone: closed or shut down (by close_stream, or from outside
// rill), or not a socket any more. Retrying cannot help: the server's stream has ended.
bool listener_gone(long r) noexcept { return r == -EINVAL || r == -EBADF || r == -ENOTSOCK; }

// inject_accept_errors_for_tests: how many accepts are still to fail, and with what. Read
// once per accept (a relaxed load that stays in cache while nothing is injected).
std::atomic<unsigned> injected_accept_failures{0};
std::atomic<int> injected_accept_error{0};

// -errno for an injected failure, 0 when none is due.
long take_injected_accept_error() noexcept {
    unsigned left = injected_accept_failures.load(std::memory_order_relaxed);
    while (left > 0) {
        if (injected_accept_failures.compare_exchange_weak(left, left - 1,
                                                           std::memory_order_relaxed))
            return -injected_accept_error.load(std::memory_order_relaxed);
    }
    return 0;
}

}  // namespace

struct server_state {
    io_handle io;
    server_options options;
    std::string name;  // "127.0.0.1:2020", for messages
    // Closing may come from any task while another waits in read(server): the waiter owns
    // the descriptor until it returns, the closer shuts the socket down to wake it.
    std::mutex mutex;
    bool closed = false;
    bool accepting = false;
    // The slots under max_connections (never all taken without a cap), shared with the open
    // clients, and the server's counters for runtime_stats_snapshot.
    connection_limit* limit = nullptr;

    // A graceful shutdown closes the server as close_stream does, from whatever thread.
    shutdown_hook on_shutdown;

    server_state() noexcept {
        on_shutdown.fire = [](shutdown_hook* h) noexcept {
            static_cast<server_state*>(h->context)->close();
        };
        on_shutdown.context = this;
    }
    server_state(const server_state&) = delete;
    server_state& operator=(const server_state&) = delete;
    ~server_state() {
        remove_shutdown_hook(on_shutdown);
        close_now();
        if (limit) limit->release_server();
    }

    void close_now() noexcept { close_socket(io); }
    // Closes the listening socket; a task waiting in read(server) wakes. From any thread.
    void close() noexcept {
        std::lock_guard lock(mutex);
        if (closed) return;
        closed = true;
        if (limit) limit->close();  // wakes a read waiting for a slot
        if (accepting) {
            // Wakes the accept in flight (it fails with EINVAL); its task closes the socket.
            ::shutdown(io.fd, SHUT_RDWR);
        } else {
            close_now();
        }
    }
};

}  // namespace detail

void detail::inject_accept_errors_for_tests(int error, unsigned count) noexcept {
    injected_accept_error.store(error, std::memory_order_relaxed);
    injected_accept_failures.store(count, std::memory_order_relaxed);
}

// ---- server ---------------------------------------------------------------------------------

tcp_server_stream::tcp_server_stream(address where, server_options options) {
    constexpr const char* op = "tcp_server_stream";
    if (options.backlog <= 0)
        throw argument_error(std::string("backlog must be positive, got ") +
                             std::to_string(options.backlog));
    if (options.port_number) detail::checked_port_number(*options.port_number);
    if (options.defer_accept.count() < 0 ||
        options.defer_accept.count() > std::numeric_limits<int>::max())
        throw argument_error("defer_accept must be 0.." +
                             std::to_string(std::numeric_limits<int>::max()) + " seconds, got " +
                             std::to_string(options.defer_accept.count()));
    if (options.tls) detail::check_server_tls_context(*options.tls);
    auto endpoints =
        detail::resolve(where, options.port_number, detail::resolve_purpose::listen, op);
    int first_error = 0;
    std::string first_context;
    for (const auto& e : endpoints) {
        const std::string text = detail::to_string(e);
        detail::unique_fd fd(::socket(e.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        int err = 0;
        std::string context;
        if (fd.get() < 0) {
            err = errno;
            context = std::string(op) + ": socket for " + text;
        } else {
            if (options.reuse_address)
                detail::set_flag_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, true, op,
                                        "SO_REUSEADDR");
            if (options.reuse_port)
                detail::set_flag_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, true, op,
                                        "SO_REUSEPORT");
            if (options.defer_accept.count() > 0)
                detail::set_int_option(fd.get(), IPPROTO_TCP, TCP_DEFER_ACCEPT,
                                       static_cast<int>(options.defer_accept.count()), op,
                                       "TCP_DEFER_ACCEPT");
            if (::bind(fd.get(), e.get(), e.length) != 0) {
                err = errno;
                context = std::string(op) + ": bind " + text;
            } else if (::listen(fd.get(), options.backlog) != 0) {
                err = errno;
                context = std::string(op) + ": listen " + text;
            }
        }
        if (err == 0) {
            state_ = std::make_unique<detail::server_state>();
            state_->io.fd = fd.release();
            state_->options = std::move(options);
            state_->name = detail::socket_name(state_->io.fd, false, op).to_string();
            // Every server has one: it keeps the server's counters (without a cap, the limit is
            // never reached), and lists the server for runtime_stats_snapshot.
            state_->limit =
                new detail::connection_limit(state_->options.max_connections, state_->name);
            detail::list_open_server(*state_->limit);
            // request_shutdown closes it (at once when the shutdown has begun).
            detail::add_shutdown_hook(state_->on_shutdown);
            return;
        }
        if (!first_error) {
            first_error = err;
            first_context = context;
        }
    }
    detail::throw_os_error(first_error, first_context);
}

tcp_server_stream::tcp_server_stream(tcp_server_stream&&) noexcept = default;
tcp_server_stream& tcp_server_stream::operator=(tcp_server_stream&&) noexcept = default;
tcp_server_stream::~tcp_server_stream() = default;

bool tcp_server_stream::is_open() const noexcept {
    if (!state_) return false;
    std::lock_guard lock(state_->mutex);
    return !state_->closed;
}

detail::server_state& detail::state_of(const tcp_server_stream& s) {
    if (!s.state_) throw error("tcp_server_stream: operation on a moved-from server stream");
    return *s.state_;
}

std::optional<tcp_client_stream> read(tcp_server_stream& server) {
    detail::server_state& st = detail::state_of(server);
    auto backoff = detail::accept_backoff_initial;
    for (;;) {
        // At max_connections, wait for a client to close before accepting the next one.
        detail::connection_slot slot;
        if (st.limit) {
            slot = detail::connection_slot::take(*st.limit);
            if (!slot) return std::nullopt;  // the server was closed meanwhile
        }
        {
            std::lock_guard lock(st.mutex);
            if (st.closed) return std::nullopt;
            st.accepting = true;
        }
        sockaddr_storage peer{};
        socklen_t peer_length = sizeof peer;
        long r = detail::take_injected_accept_error();
        if (r == 0)
            r = detail::task_backend("read").accept(st.io, reinterpret_cast<sockaddr*>(&peer),
                                                    &peer_length);
        detail::unique_fd fd(r >= 0 ? static_cast<int>(r) : -1);
        // A connection flood never lets accept wait: the budget makes this task yield (before
        // the check below, so a server closed meanwhile hands out nothing).
        if (r >= 0) detail::spend_budget();
        bool closed;
        {
            std::lock_guard lock(st.mutex);
            st.accepting = false;
            closed = st.closed;
            if (closed) st.close_now();
        }
        if (closed) return std::nullopt;  // fd, if any, is closed on the way out
        if (r >= 0) {
            try {
                detail::io_handle accepted;
                accepted.fd = fd.get();
                accepted.byte_stream = true;
                slot.mark_accepted();
                auto client = detail::make_client_state(fd, accepted, st.options, std::move(slot));
                client->ends_at_shutdown = true;
                return tcp_client_stream(std::move(client));
            } catch (const std::bad_alloc&) {
                // Drop this connection (fd closes it), not the server.
                detail::count(detail::counters.clients_dropped);
                continue;
            }
        }
        if (r == -ECANCELED) throw task_cancelled();
        if (detail::listener_gone(r)) return std::nullopt;
        if (detail::connection_gone(r) || r == -EINTR) continue;
        // Out of descriptors or memory, or an error this code does not know: none of them is
        // a reason to stop serving. Back off (the clients it has keep being served; the
        // pending ones wait in the backlog) and try again.
        detail::count(detail::counters.accept_errors_retried);
        st.limit->count_accept_error();
        slot.release();
        task_sleep(backoff);
        backoff = std::min(backoff * 2, detail::accept_backoff_max);
    }
}

void close_stream(tcp_server_stream& server) {
    if (!server.is_open()) return;
    detail::state_of(server).close();
}

socket_info tcp_server_socket_info(const tcp_server_stream& server) {
    return detail::socket_name(detail::state_of(server).io.fd, false, "tcp_server_socket_info");
}

// ---- client ---------------------------------------------------------------------------------

tcp_client_stream::tcp_client_stream(std::unique_ptr<detail::stream_state> state) noexcept
    : stream(std::move(state)) {}

tcp_client_stream::tcp_client_stream(address where, const client_options& options) {
    constexpr const char* op = "tcp_client_stream";
    detail::current_task(op);  // connecting blocks the task: only inside run
    auto endpoints =
        detail::resolve(where, options.port_number, detail::resolve_purpose::connect, op);
    int first_error = 0;
    std::string first_context;
    for (const auto& e : endpoints) {
        const std::string text = detail::to_string(e);
        detail::unique_fd fd(::socket(e.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        long r = 0;
        const char* step = "connect";
        if (fd.get() < 0) {
            r = -errno;
            step = "socket for";  // out of descriptors, say: not the peer's fault
        } else {
            if (options.keep_alive)
                detail::set_flag_option(fd.get(), SOL_SOCKET, SO_KEEPALIVE, true, op,
                                        "SO_KEEPALIVE");
            if (!options.coalesce)
                detail::set_flag_option(fd.get(), IPPROTO_TCP, TCP_NODELAY, true, op,
                                        "TCP_NODELAY");
            detail::io_handle socket;
            socket.fd = fd.get();
            socket.byte_stream = true;
            if (::connect(fd.get(), e.get(), e.length) != 0) {
                r = -errno;
                if (r == -EINPROGRESS || r == -EAGAIN) r = detail::task_backend(op).connect(socket);
            }
            if (r == 0) {
                // The stream's transport keeps the backend's registration made while connecting.
                static_cast<stream&>(*this) = tcp_client_stream(
                    detail::make_client_state(fd, socket, options, {}, where.host(),
                                              detail::to_socket_info(e.get()).port_number));
                return;
            }
        }
        if (r == -ECANCELED) throw task_cancelled();
        if (!first_error) {
            first_error = static_cast<int>(-r);
            first_context = std::string(op) + ": " + step + " " + text;
        }
    }
    detail::throw_os_error(first_error, first_context);
}

socket_info tcp_client_self_socket_info(const tcp_client_stream& client) {
    return detail::socket_name(client.is_open() ? detail::state_of(client).io->native_handle() : -1,
                               false, "tcp_client_self_socket_info");
}

std::optional<tls_info> tcp_client_tls_info(tcp_client_stream& client) {
    constexpr const char* op = "tcp_client_tls_info";
    if (!client.is_open()) throw error(std::string(op) + ": the stream is closed");
    detail::stream_state& st = detail::state_of(client);
    return detail::tls_info_of(*st.io, detail::optional_deadline(st.options.reader_timeout), op);
}

socket_info tcp_client_peer_socket_info(const tcp_client_stream& client) {
    return detail::socket_name(client.is_open() ? detail::state_of(client).io->native_handle() : -1,
                               true, "tcp_client_peer_socket_info");
}

}  // namespace rill
