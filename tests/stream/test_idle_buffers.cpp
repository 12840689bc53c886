// A connection waiting for its next request holds no buffer: its input and output buffers go
// back to the pool once empty, including the output whose send went to the kernel together
// with the wait (io_uring, when other tasks are ready), so 20k idle connections cost no
// buffer memory. White-box: the test looks at the parked task's stream from another task of
// the same worker.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <rill/rill.hpp>

#include "stream/stream_state.hpp"
#include "stream/stream_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using rill_stream_test::thread_wait_until;

TEST(IdleBuffers, AConnectionWaitingForItsNextLineHoldsNoBuffer) {
    for (bool others_ready : {false, true}) {
        SCOPED_TRACE(others_ready ? "another task ready when the echo waits"
                                  : "nothing else ready");
        std::atomic<int> port{0};
        std::atomic<bool> answered{false};
        std::atomic<bool> checked{false};
        std::string reply;
        std::thread peer([&] {
            if (!thread_wait_until([&] { return port.load() != 0; })) return;
            rill_test::raw_client c(port.load());
            c.send("hello\n");
            reply = c.receive_line();
            answered = true;
            thread_wait_until([&] { return checked.load(); });
        });
        std::size_t in_capacity = 1, out_capacity = 1;
        rill::run(
            [&] {
                rill::tcp_server_stream server("127.0.0.1:0");
                port = rill::tcp_server_socket_info(server).port_number;
                auto client = rill::read(server);
                ASSERT_TRUE(client);
                rill::tcp_client_stream& s = *client;
                std::atomic<bool> stop{false};
                rill::task echo = rill::spawn([&] {
                    std::string line;
                    while (rill::read_line(s, line)) {
                        rill::showln(s, line);
                        rill::flush_writer(s);
                    }
                });
                rill::task busy;
                if (others_ready)
                    busy = rill::spawn([&] {
                        const auto limit = std::chrono::steady_clock::now() + 10s;
                        while (!stop.load() && std::chrono::steady_clock::now() < limit)
                            rill::task_yield();
                    });
                for (int i = 0; i < 5000 && !answered.load(); ++i) rill::task_sleep(1ms);
                rill::task_sleep(20ms);  // the echo task is parked for its next line by now
                in_capacity = rill::detail::state_of(s).in.capacity();
                out_capacity = rill::detail::state_of(s).out.capacity();
                stop = true;
                checked = true;
                rill::close_reader(s);  // the echo's read sees end of stream
                echo.join();
                if (busy.joinable()) busy.join();
            },
            {.workers = 1});  // the check reads the parked task's stream: same thread
        peer.join();
        EXPECT_EQ(reply, "hello\r\n");
        EXPECT_EQ(in_capacity, 0u);
        EXPECT_EQ(out_capacity, 0u);
    }
}

}  // namespace
