// A rill TCP server run in the test's process, on a thread of its own, so a test can drive it
// with plain blocking sockets (loopback.hpp): it accepts on 127.0.0.1 (a port the kernel picks)
// and spawns a task per connection that runs the test's handler. Every wait is bounded.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <exception>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <utility>

#include <rill/rill.hpp>

#include "support/loopback.hpp"

namespace rill_test {

// The echo of one connection: every line back (with the stream's line end, CR LF by default)
// until end of stream, or only the first line when not `persistent`; then the stream is closed.
inline void echo_lines(rill::tcp_client_stream& client, bool persistent = true) {
    rill::call_with_stream(client, [persistent](rill::tcp_client_stream& s) {
        std::string line;
        while (rill::read_line(s, line)) {
            rill::showln(s, line);
            rill::flush_writer(s);
            if (!persistent) break;
        }
    });
}

// Fails the test with what ended a run on another thread, if anything did; `who` names it.
inline void expect_run_ended_cleanly(const std::exception_ptr& error, const std::string& who) {
    if (!error) return;
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        ADD_FAILURE() << who << " ended with: " << e.what();
    }
}

struct in_process_server_settings {
    std::string name = "in_process_server";  // names the server in the failures it reports
    rill::server_options server;  // the server is on 127.0.0.1, port picked by the kernel
    rill::runtime_options runtime;
};

// The server stops in stop() (also the destructor): it raises a flag and connects once to
// wake the task blocked in read(server), which closes the server stream and returns, so run()
// cancels the connection tasks still open; then the thread is joined, and an exception that
// ended the server fails the test. The handler runs in each connection's task and owns the
// stream it is given (it closes it, e.g. with call_with_stream); every such task has ended
// when stop() returns.
class in_process_server {
public:
    using connection_handler = std::function<void(rill::tcp_client_stream&)>;

    in_process_server(in_process_server_settings s, connection_handler serve)
        : name_(s.name), serve_(std::move(serve)) {
        std::promise<int> bound;
        std::future<int> port = bound.get_future();
        thread_ = std::thread([this, s = std::move(s), bound = std::move(bound)]() mutable {
            bool published = false;
            try {
                rill::run(
                    [&] {
                        rill::tcp_server_stream server("127.0.0.1:0", s.server);
                        bound.set_value(rill::tcp_server_socket_info(server).port_number);
                        published = true;
                        while (auto client = rill::read(server)) {
                            if (stopping_.load()) break;
                            accepted_.fetch_add(1);
                            rill::spawn([this, c = std::move(*client)]() mutable { serve_(c); });
                        }
                        rill::close_stream(server);
                    },
                    s.runtime);
            } catch (...) {
                error_ = std::current_exception();
                if (!published) bound.set_exception(std::current_exception());
            }
        });
        if (port.wait_for(default_io_limit) != std::future_status::ready) {
            ADD_FAILURE() << name_ << ": the server did not start";
            std::terminate();  // a thread we cannot stop
        }
        try {
            port_ = port.get();
        } catch (...) {
            thread_.join();
            throw;
        }
    }
    in_process_server(const in_process_server&) = delete;
    in_process_server& operator=(const in_process_server&) = delete;
    ~in_process_server() { stop(); }

    int port() const { return port_; }
    // Connections accepted so far (the one stop() makes to wake the server is not counted).
    long accepted() const { return accepted_.load(); }

    void stop() {
        if (!thread_.joinable()) return;
        stopping_.store(true);
        try {
            raw_client wake(port_);
        } catch (const std::exception& e) {
            ADD_FAILURE() << name_ << ": cannot wake the server: " << e.what();
        }
        thread_.join();
        expect_run_ended_cleanly(error_, name_);
    }

private:
    std::string name_;
    connection_handler serve_;
    std::thread thread_;
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<long> accepted_{0};
    std::exception_ptr error_;
};

}  // namespace rill_test
