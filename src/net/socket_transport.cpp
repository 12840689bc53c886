// A connected socket as a stream's transport: each operation goes to the running task's
// backend, which decides how the bytes move.
#include "net/socket_transport.hpp"

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include "net/resolve.hpp"

namespace rill::detail {

namespace {

// No slot to give back: a server without max_connections, or a connecting client. Empty, so
// the transport stays in the stream's own block.
struct no_slot {
    void release() noexcept {}
};

// `Slot`: what the transport gives back once its socket is closed (a connection_slot under
// max_connections). Given back after the descriptor is closed, so the read(server) it wakes
// finds that descriptor free.
template <class Slot>
class socket_transport final : public transport {
public:
    socket_transport(io_handle socket, Slot slot) noexcept
        : socket_(socket), slot_(std::move(slot)) {}
    ~socket_transport() override {
        close_socket(socket_);
        slot_.release();
    }

    long receive(byte_buffer& in, const std::optional<time_point>& deadline,
                 pending_output* flushed) override {
        if (socket_.fd < 0) return -EBADF;
        return task_backend("receive").receive(socket_, in, deadline, flushed);
    }
    long send(const char* p, std::size_t n, const std::optional<time_point>& deadline,
              bool closing) override {
        if (socket_.fd < 0) return -EBADF;
        return task_backend("send").send(socket_, p, n, deadline, closing);
    }
    long send_without_waiting(const char* p, std::size_t n) noexcept override {
        return detail::send_without_waiting(socket_, p, n);
    }
    void shutdown_writer() noexcept override {
        if (socket_.fd >= 0) ::shutdown(socket_.fd, SHUT_WR);
    }
    void shutdown_reader() noexcept override {
        if (socket_.fd >= 0) ::shutdown(socket_.fd, SHUT_RD);
    }
    void stop_input() noexcept override {
        // A waiting receive returns what has arrived, then 0 (the kernel's end of input).
        if (socket_.fd >= 0) ::shutdown(socket_.fd, SHUT_RD);
    }
    bool input_pending() const noexcept override {
        int unread = 0;
        return socket_.fd >= 0 && ::ioctl(socket_.fd, FIONREAD, &unread) == 0 && unread > 0;
    }
    void close() noexcept override {
        close_socket(socket_);
        slot_.release();
    }
    // shutdown() is thread-safe and wakes the socket's waiters in either backend: epoll reports
    // EPOLLIN | EPOLLRDHUP | EPOLLHUP, io_uring completes a pending recv with 0 and a pending
    // send with -EPIPE. The descriptor stays open, so its number cannot be reused under the
    // stream's task.
    void shut_down_from_any_thread() noexcept override {
        if (socket_.fd >= 0) ::shutdown(socket_.fd, SHUT_RDWR);
    }

    std::string peer_name() const override {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        if (socket_.fd < 0 || getpeername(socket_.fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
            return "a closed connection";
        return to_socket_info(reinterpret_cast<sockaddr*>(&ss)).to_string();
    }
    int native_handle() const noexcept override { return socket_.fd; }

private:
    io_handle socket_;
    [[no_unique_address]] Slot slot_;
};

}  // namespace

void emplace_socket_transport(transport_slot& slot, io_handle socket) noexcept {
    static_assert(sizeof(socket_transport<no_slot>) <= in_place_transport_bytes,
                  "in the stream's own block");
    slot.emplace<socket_transport<no_slot>>(socket, no_slot{});
}

void emplace_socket_transport(transport_slot& slot, io_handle socket, connection_slot connection) {
    if (!connection) return emplace_socket_transport(slot, socket);
    // One pointer more than the stream's block has room for: a block of its own, paid only
    // by servers with max_connections.
    slot.emplace<socket_transport<connection_slot>>(socket, std::move(connection));
}

}  // namespace rill::detail
