// Line echo with standalone Asio and C++20 coroutines, as the Asio examples write servers:
// co_spawn one awaitable per connection, async_read_until '\n', async_write.
//
// usage: asio_echo [PORT | --port N] [--mode once|persistent]
//   once:       read one line, echo it, close (the seed's server)
//   persistent: echo every line until end of stream (the default)
// Listens on 127.0.0.1; each line is echoed with its "\n".

#include <asio.hpp>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

namespace {

constexpr std::size_t max_line_bytes = 64 * 1024;  // longer lines end the connection (rill's cap)

awaitable<void> echo(tcp::socket socket, bool once) {
    socket.set_option(tcp::no_delay(true));  // echoes are small replies
    std::string buffer;
    std::error_code ec;
    for (;;) {
        std::size_t n =
            co_await asio::async_read_until(socket, asio::dynamic_buffer(buffer, max_line_bytes),
                                            '\n', asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::eof &&
                !buffer.empty()) {  // a last line without "\n" is still a line
                buffer += '\n';
                co_await asio::async_write(socket, asio::buffer(buffer),
                                           asio::redirect_error(use_awaitable, ec));
            }
            co_return;
        }
        // read_until may have read past the first line: echo every complete line in one write.
        std::size_t through = once ? n : buffer.rfind('\n') + 1;
        co_await asio::async_write(socket, asio::buffer(buffer.data(), through),
                                   asio::redirect_error(use_awaitable, ec));
        if (ec || once) co_return;
        buffer.erase(0, through);
    }
}

awaitable<void> listen(tcp::acceptor& acceptor, bool once) {
    std::error_code ec;
    for (;;) {
        tcp::socket socket =
            co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
        if (ec) {  // out of descriptors and the like: back off rather than spin
            asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(5));
            co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
        }
        asio::co_spawn(acceptor.get_executor(), echo(std::move(socket), once), asio::detached);
    }
}

}  // namespace

int main(int argc, char** argv) {
    int port = 2020;
    bool once = false;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--port") && i + 1 < argc)
            port = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--mode") && i + 1 < argc &&
                 (!std::strcmp(argv[i + 1], "once") || !std::strcmp(argv[i + 1], "persistent")))
            once = !std::strcmp(argv[++i], "once");
        else if (argv[i][0] >= '0' && argv[i][0] <= '9')
            port = std::atoi(argv[i]);
        else
            port = 0;
    }
    if (port <= 0 || port > 65535) {
        std::fprintf(stderr, "usage: %s [PORT | --port N] [--mode once|persistent]\n", argv[0]);
        return 2;
    }
    rlimit limit{};  // one descriptor per client: allow as many as the hard limit
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    try {
        asio::io_context context(1);  // concurrency hint 1: one thread, no locking in the scheduler
        tcp::acceptor acceptor(
            context, {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
        std::printf("127.0.0.1:%d\n", port);
        std::fflush(stdout);
        asio::co_spawn(context, listen(acceptor, once), asio::detached);
        context.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "asio_echo: 127.0.0.1:%d: %s\n", port, e.what());
        return 1;
    }
}
