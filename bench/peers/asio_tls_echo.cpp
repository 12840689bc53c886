// TLS line echo with standalone Asio and C++20 coroutines, as the Asio examples write servers:
// co_spawn one awaitable per connection over an asio::ssl::stream (OpenSSL), async_handshake,
// then async_read_until '\n' and async_write as in asio_echo.cpp.
//
// usage: asio_tls_echo [PORT | --port N] [--mode once|persistent] --cert FILE --key FILE
//   once:       read one line, echo it, async_shutdown (close_notify), close
//   persistent: echo every line until end of stream (the default)
// Listens on 127.0.0.1 with TLS 1.3 only and the PEM certificate chain and key given (run.sh
// makes an ECDSA P-256 one); OpenSSL's defaults otherwise (session tickets on). Each line is
// echoed with its "\n".

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using tls_stream = asio::ssl::stream<tcp::socket>;

namespace {

constexpr std::size_t max_line_bytes = 64 * 1024;  // longer lines end the connection (rill's cap)

awaitable<void> echo(tls_stream stream, bool once) {
    stream.next_layer().set_option(tcp::no_delay(true));  // echoes are small replies
    std::error_code ec;
    co_await stream.async_handshake(asio::ssl::stream_base::server,
                                    asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    std::string buffer;
    for (;;) {
        std::size_t n =
            co_await asio::async_read_until(stream, asio::dynamic_buffer(buffer, max_line_bytes),
                                            '\n', asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::eof &&
                !buffer.empty()) {  // a last line without "\n" is still a line
                buffer += '\n';
                co_await asio::async_write(stream, asio::buffer(buffer),
                                           asio::redirect_error(use_awaitable, ec));
            }
            co_return;
        }
        // read_until may have read past the first line: echo every complete line in one write.
        std::size_t through = once ? n : buffer.rfind('\n') + 1;
        co_await asio::async_write(stream, asio::buffer(buffer.data(), through),
                                   asio::redirect_error(use_awaitable, ec));
        if (ec) co_return;
        if (once) {
            co_await stream.async_shutdown(asio::redirect_error(use_awaitable, ec));
            co_return;
        }
        buffer.erase(0, through);
    }
}

awaitable<void> listen(tcp::acceptor& acceptor, asio::ssl::context& tls, bool once) {
    std::error_code ec;
    for (;;) {
        tcp::socket socket =
            co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
        if (ec) {  // out of descriptors and the like: back off rather than spin
            asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(5));
            co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
        }
        asio::co_spawn(acceptor.get_executor(), echo(tls_stream(std::move(socket), tls), once),
                       asio::detached);
    }
}

}  // namespace

int main(int argc, char** argv) {
    int port = 2020;
    bool once = false;
    const char* certificate_file = nullptr;
    const char* key_file = nullptr;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--port") && i + 1 < argc)
            port = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--mode") && i + 1 < argc &&
                 (!std::strcmp(argv[i + 1], "once") || !std::strcmp(argv[i + 1], "persistent")))
            once = !std::strcmp(argv[++i], "once");
        else if (!std::strcmp(argv[i], "--cert") && i + 1 < argc)
            certificate_file = argv[++i];
        else if (!std::strcmp(argv[i], "--key") && i + 1 < argc)
            key_file = argv[++i];
        else if (argv[i][0] >= '0' && argv[i][0] <= '9')
            port = std::atoi(argv[i]);
        else
            port = 0;
    }
    if (port <= 0 || port > 65535 || certificate_file == nullptr || key_file == nullptr) {
        std::fprintf(
            stderr, "usage: %s [PORT | --port N] [--mode once|persistent] --cert FILE --key FILE\n",
            argv[0]);
        return 2;
    }
    rlimit limit{};  // one descriptor per client: allow as many as the hard limit
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    try {
        asio::ssl::context tls(asio::ssl::context::tlsv13_server);
        tls.use_certificate_chain_file(certificate_file);
        tls.use_private_key_file(key_file, asio::ssl::context::pem);
        asio::io_context context(1);  // concurrency hint 1: one thread, no locking in the scheduler
        tcp::acceptor acceptor(
            context, {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
        std::printf("127.0.0.1:%d\n", port);
        std::fflush(stdout);
        asio::co_spawn(context, listen(acceptor, tls, once), asio::detached);
        context.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "asio_tls_echo: 127.0.0.1:%d: %s\n", port, e.what());
        return 1;
    }
}
