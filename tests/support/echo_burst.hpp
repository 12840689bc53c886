// A burst of completions for the backend tests: loopback clients connect to an echo server on
// one rill worker, every echo task parks on its first receive, then the worker is held (a
// blocking wait, no kernel entry) while every client sends, so the receives and then the
// answers' sends complete in bursts when it next enters the kernel. The test shrinks the
// backend's resource (queue, buffer pool) around the call and checks what the burst did.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <rill/rill.hpp>

#include "io/backend.hpp"
#include "runtime/scheduler.hpp"
#include "support/in_process_server.hpp"
#include "support/loopback.hpp"
#include "support/wait.hpp"

namespace rill_test {

// How long the echo tasks get to park on their first receive before the clients send.
inline constexpr auto echo_burst_park_time = std::chrono::milliseconds(50);

struct echo_burst_result {
    int accepted = 0;  // connections the server accepted
    int echoed = 0;  // clients that got every line of their request back, in order
    std::string first_wrong;  // what the first client with a wrong answer got instead
    std::string backend;  // the name of the backend that ran the burst
    bool receives_into_provided_buffers = false;  // whether that backend does
};

// Connects `clients` loopback clients (on a thread of their own: blocking sockets, outside the
// runtime) to an echo server on one worker; once the echo tasks are parked, client i sends
// `request(i)` (whole lines, all at once) while the worker is held, then reads the echo of its
// lines one by one, stopping at the first wrong one.
template <class Request>
echo_burst_result run_echo_burst(int clients, Request request) {
    echo_burst_result r;
    std::atomic<int> port{0};
    std::atomic<int> accepted{0};
    std::atomic<bool> all_parked{false};
    std::atomic<bool> all_sent{false};
    std::atomic<bool> peers_done{false};
    std::atomic<int> echoed{0};

    std::thread peers([&] {
        if (!thread_wait_until([&] { return port.load() != 0; })) return;
        std::vector<std::unique_ptr<raw_client>> c;
        c.reserve(static_cast<std::size_t>(clients));
        for (int i = 0; i < clients; ++i) c.push_back(std::make_unique<raw_client>(port.load()));
        if (thread_wait_until([&] { return all_parked.load(); })) {
            for (int i = 0; i < clients; ++i) c[i]->send(request(i));
            all_sent = true;
            for (int i = 0; i < clients; ++i) {
                // The echo of each line, with the stream's line end (CR LF).
                std::string want;
                const std::string sent = request(i);
                for (std::size_t from = 0, end; (end = sent.find('\n', from)) != sent.npos;
                     from = end + 1)
                    want += sent.substr(from, end - from) + "\r\n";
                std::string got;
                try {
                    while (got.size() < want.size() && want.starts_with(got))
                        got += c[i]->receive_line();
                } catch (const std::exception& e) {
                    got += std::string(" (") + e.what() + ")";
                }
                if (got == want)
                    ++echoed;
                else if (r.first_wrong.empty())
                    r.first_wrong = "client " + std::to_string(i) + " got \"" + got + "\"";
            }
        }
        c.clear();  // end of stream for every echo task
        peers_done = true;
    });

    rill::run(
        [&] {
            const rill::detail::backend& backend = rill::detail::task_backend("test");
            r.backend = backend.name();
            r.receives_into_provided_buffers = backend.receives_into_provided_buffers();
            rill::tcp_server_stream server("127.0.0.1:0", {.backlog = clients});
            port = rill::tcp_server_socket_info(server).port_number;
            for (int i = 0; i < clients; ++i) {
                auto client = rill::read(server);
                ASSERT_TRUE(client);
                ++accepted;
                rill::spawn([c = std::move(*client)]() mutable { echo_lines(c); });
            }
            rill::task_sleep(echo_burst_park_time);  // every echo task parks on its receive
            all_parked = true;
            // Hold the worker while every client sends: the kernel is not entered meanwhile.
            // (A loopback send has queued the data and the ring's wake-up when it returns.)
            EXPECT_TRUE(thread_wait_until([&] { return all_sent.load(); }));
            task_wait_until([&] { return peers_done.load(); });
        },
        {.workers = 1});
    peers.join();
    r.accepted = accepted.load();
    r.echoed = echoed.load();
    return r;
}

}  // namespace rill_test
