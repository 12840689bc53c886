// write_task_dump: every live task with its worker, state, what it waits on (with the stream's
// peer address), for how long and where it was spawned; collected on each worker's own thread,
// from a task or from a thread that is no worker, and bounded when a worker does not answer.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <rill/rill.hpp>

#include "runtime/runtime_test_support.hpp"
#include "support/loopback.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;

std::string task_dump() {
    std::ostringstream out;
    rill::write_task_dump(out);
    return out.str();
}

// The dump's lines, one per element.
std::vector<std::string> lines_of(const std::string& dump) {
    std::vector<std::string> lines;
    std::istringstream in(dump);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// Where a line's "for N ms" has its digits, as [begin, end); begin == end when it has none.
std::pair<std::size_t, std::size_t> wait_time_digits(const std::string& line) {
    const std::size_t at = line.find(" for ");
    if (at == std::string::npos) return {0, 0};
    const std::size_t begin = at + 5;
    std::size_t end = begin;
    while (end < line.size() && std::isdigit(static_cast<unsigned char>(line[end]))) ++end;
    if (end == begin || line.compare(end, 4, " ms ") != 0) return {0, 0};
    return {begin, end};
}

// The raw line of task `id`, or "" when the dump has none.
std::string raw_task_line(const std::string& dump, std::uint64_t id) {
    const std::string prefix = "task " + std::to_string(id) + " ";
    for (const std::string& line : lines_of(dump))
        if (line.rfind(prefix, 0) == 0) return line;
    return "";
}

// `line` with its "for N ms" as "for _ ms" (the one field a test cannot know exactly).
std::string without_wait_time(std::string line) {
    const auto [begin, end] = wait_time_digits(line);
    if (begin != end) line.replace(begin, end - begin, "_");
    return line;
}

// The line of task `id` without its wait time, or "".
std::string task_line(const std::string& dump, std::uint64_t id) {
    return without_wait_time(raw_task_line(dump, id));
}

// How long the dump says task `id` has waited, or -1.
long waited_ms(const std::string& dump, std::uint64_t id) {
    const std::string line = raw_task_line(dump, id);
    const auto [begin, end] = wait_time_digits(line);
    return begin == end ? -1 : std::stol(line.substr(begin, end - begin));
}

// The rest of `line` from its " worker " on: the line without the task id.
std::string from_worker(const std::string& line) {
    const std::size_t at = line.find(" worker ");
    return at == std::string::npos ? line : line.substr(at);
}

std::string site(int line, const char* function) {
    return std::string(__FILE__) + ":" + std::to_string(line) + " in " + function;
}

// Whether `line` is the dump's header "rill task dump: <counts> (<backend>)", the backend
// being RILL_BACKEND's when ctest sets it, else either.
bool is_header(const std::string& line, const std::string& counts) {
    const char* forced = std::getenv("RILL_BACKEND");
    std::vector<std::string> backends{"io_uring", "epoll"};
    if (forced && *forced) backends = {forced};
    for (const std::string& b : backends)
        if (line == "rill task dump: " + counts + " (" + b + ")") return true;
    return false;
}

// A listening socket whose accept queue is full (backlog 0, one connection queued, never
// accepted): the kernel drops the next SYN, so a connect to it stays in progress (SYN_SENT,
// retransmitting for minutes) until the test ends it.
struct full_listener {
    int fd = -1;
    int port = 0;
    std::unique_ptr<rill_test::raw_client> queued;

    full_listener() {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const rill_test::loopback_sockaddr any(0, false);
        if (fd < 0 || ::bind(fd, any.get(), any.length) != 0 || ::listen(fd, 0) != 0)
            throw std::runtime_error("full_listener: " + std::string(std::strerror(errno)));
        sockaddr_in bound{};
        socklen_t length = sizeof bound;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
        port = ntohs(bound.sin_port);
        queued = std::make_unique<rill_test::raw_client>(port);
    }
    ~full_listener() {
        queued.reset();
        if (fd >= 0) ::close(fd);
    }
};

TEST(TaskDump, OutsideRunSaysNoRuntimeIsRunning) {
    EXPECT_EQ(task_dump(), "rill task dump: no runtime is running\n");
}

TEST(TaskDump, NamesEachWaitWithItsPeerAndSpawnSite) {
    full_listener unreachable;
    const char* test_function = __builtin_FUNCTION();
    const int run_line = __LINE__ + 1;
    rill::run(
        [&] {
            // Lambdas below are spawned from here: their site's function is this one's.
            const char* main_function = __builtin_FUNCTION();
            rill::tcp_server_stream server("127.0.0.1:0");
            const int port = rill::tcp_server_socket_info(server).port_number;
            const std::string server_address = "127.0.0.1:" + std::to_string(port);
            rill::tcp_server_stream idle_server("127.0.0.1:0");
            const std::string idle_address = rill::tcp_server_socket_info(idle_server).to_string();

            // A connection nobody writes to, read by `reader`.
            rill::tcp_client_stream quiet_client(server_address);
            rill::tcp_client_stream quiet = std::move(*rill::read(server));
            // A connection whose client never reads, written to by `writer` until its
            // socket buffers are full.
            rill::tcp_client_stream deaf_client(server_address);
            rill::tcp_client_stream deaf = std::move(*rill::read(server));
            rill::channel<int> nothing(1);

            // Each task owns what it waits on: main's end cancels them, and they unwind after
            // main's locals are gone.
            const int sleeper_line = __LINE__ + 1;
            auto sleeper = rill::spawn([] { rill::task_sleep(1h); });
            const std::uint64_t sleeper_id = sleeper.id();
            const int receiver_line = __LINE__ + 1;
            auto receiver = rill::spawn([nothing]() mutable { nothing.receive(); });
            const int joiner_line = __LINE__ + 1;
            auto joiner = rill::spawn([t = std::move(sleeper)]() mutable { t.join(); });
            const int reader_line = __LINE__ + 1;
            auto reader = rill::spawn([s = std::move(quiet)]() mutable { rill::read_line(s); });
            const int writer_line = __LINE__ + 1;
            auto writer = rill::spawn([s = std::move(deaf)]() mutable {
                const std::vector<std::uint8_t> chunk(64 * 1024, 'x');
                try {
                    for (int i = 0; i < 2048; ++i) rill::write_bytes(s, chunk);  // <= 128 MiB
                } catch (const rill::os_error&) {
                    // The client closed at main's end (reset: it never read).
                }
            });
            const int acceptor_line = __LINE__ + 1;
            auto acceptor = rill::spawn([s = std::move(idle_server)]() mutable { rill::read(s); });
            const int connector_line = __LINE__ + 1;
            auto connector = rill::spawn([port = unreachable.port] {
                rill::tcp_client_stream never("127.0.0.1:" + std::to_string(port));
            });

            const std::string quiet_peer =
                rill::tcp_client_self_socket_info(quiet_client).to_string();
            const std::string deaf_peer =
                rill::tcp_client_self_socket_info(deaf_client).to_string();
            const std::string unreachable_address = "127.0.0.1:" + std::to_string(unreachable.port);
            auto expected = [&](std::uint64_t id, const std::string& state, int line) {
                return "task " + std::to_string(id) + " worker 0 " + state + " spawned at " +
                       site(line, main_function);
            };

            // Every task waits once the dump says so (the writer: once its socket is full).
            std::string dump;
            const bool all_waiting = rill_test::task_wait_until([&] {
                dump = task_dump();
                return task_line(dump, writer.id()).find(" waiting write ") != std::string::npos &&
                       task_line(dump, connector.id()).find(" waiting ") != std::string::npos &&
                       task_line(dump, acceptor.id()).find(" waiting ") != std::string::npos &&
                       task_line(dump, reader.id()).find(" waiting ") != std::string::npos &&
                       task_line(dump, joiner.id()).find(" waiting ") != std::string::npos;
            });
            ASSERT_TRUE(all_waiting) << dump;
            const int ready_line = __LINE__ + 1;
            rill::task ready = rill::spawn([] {});  // one worker: it runs once main waits
            const auto first_dump_at = std::chrono::steady_clock::now();
            dump = task_dump();

            const std::vector<std::string> lines = lines_of(dump);
            ASSERT_GE(lines.size(), 2U) << dump;
            EXPECT_TRUE(is_header(lines[0], "9 tasks on 1 worker")) << dump;
            EXPECT_EQ(lines[1], "worker 0: 9 tasks") << dump;
            EXPECT_EQ(lines.size(), 11U) << dump;
            EXPECT_EQ(task_line(dump, sleeper_id),
                      expected(sleeper_id, "waiting sleep for _ ms", sleeper_line));
            EXPECT_EQ(task_line(dump, receiver.id()),
                      expected(receiver.id(), "waiting channel for _ ms", receiver_line));
            EXPECT_EQ(task_line(dump, joiner.id()),
                      expected(joiner.id(), "waiting join for _ ms", joiner_line));
            EXPECT_EQ(task_line(dump, reader.id()),
                      expected(reader.id(), "waiting read from " + quiet_peer + " for _ ms",
                               reader_line));
            EXPECT_EQ(
                task_line(dump, writer.id()),
                expected(writer.id(), "waiting write to " + deaf_peer + " for _ ms", writer_line));
            EXPECT_EQ(task_line(dump, acceptor.id()),
                      expected(acceptor.id(), "waiting accept on " + idle_address + " for _ ms",
                               acceptor_line));
            EXPECT_EQ(task_line(dump, connector.id()),
                      expected(connector.id(),
                               "waiting connect to " + unreachable_address + " for _ ms",
                               connector_line));
            EXPECT_EQ(task_line(dump, ready.id()), expected(ready.id(), "ready", ready_line));
            // The dumper itself: main, spawned by run.
            const auto running =
                std::find_if(lines.begin(), lines.end(), [](const std::string& line) {
                    return line.find(" running ") != std::string::npos;
                });
            ASSERT_NE(running, lines.end()) << dump;
            EXPECT_EQ(from_worker(*running),
                      " worker 0 running spawned at " + site(run_line, test_function));

            // "For how long" counts from when the wait began.
            const long sleeper_before = waited_ms(dump, sleeper_id);
            rill::task_sleep(100ms);
            dump = task_dump();
            // Between the two dumps (measured around them, so wider than the dumps' interval).
            const long paused_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now() - first_dump_at)
                                       .count();
            const long sleeper_after = waited_ms(dump, sleeper_id);
            // The coarse clock ticks every 1-4 ms.
            EXPECT_GE(sleeper_after - sleeper_before, 100 - 8) << dump;
            EXPECT_LE(sleeper_after - sleeper_before, paused_ms + 8) << dump;
            // Main's end cancels every task (the connect too: it never completes).
        },
        {.workers = 1});
}

// A server at its max_connections: its reader waits for a client to close, not in accept.
TEST(TaskDump, AServerAtItsConnectionLimitWaitsForASlot) {
    rill::run(
        [&] {
            const char* main_function = __builtin_FUNCTION();
            rill::tcp_server_stream server("127.0.0.1:0", {.max_connections = 1});
            const std::string address = rill::tcp_server_socket_info(server).to_string();
            rill::tcp_client_stream client(address);
            rill::tcp_client_stream held = std::move(*rill::read(server));
            const int acceptor_line = __LINE__ + 1;
            auto acceptor = rill::spawn([s = std::move(server)]() mutable { rill::read(s); });
            std::string dump;
            ASSERT_TRUE(rill_test::task_wait_until([&] {
                dump = task_dump();
                return task_line(dump, acceptor.id()).find(" waiting ") != std::string::npos;
            }));
            EXPECT_EQ(task_line(dump, acceptor.id()),
                      "task " + std::to_string(acceptor.id()) +
                          " worker 0 waiting accept at max_connections for _ ms spawned at " +
                          site(acceptor_line, main_function));
        },
        {.workers = 1});
}

// Tasks on every worker, dumped from a thread that is no worker while run() runs.
TEST(TaskDump, FromAThreadOutsideTheRuntime) {
    rill::run(
        [&] {
            const char* main_function = __builtin_FUNCTION();
            std::vector<rill::task> sleepers;
            const int sleeper_line = __LINE__ + 2;
            for (int i = 0; i < 4; ++i)
                sleepers.push_back(rill::spawn([] { rill::task_sleep(1h); }));
            // Every sleeper waits once each worker's listing says so.
            std::string dump;
            std::atomic<bool> dumped{false};
            std::thread outside;
            auto dump_from_outside = [&] {
                dumped = false;
                outside = std::thread([&] {
                    dump = task_dump();
                    dumped = true;
                });
                const bool done = rill_test::task_wait_until([&] { return dumped.load(); });
                outside.join();
                return done;
            };
            auto all_sleep = [&] {
                for (const rill::task& t : sleepers)
                    if (task_line(dump, t.id()).find(" waiting sleep ") == std::string::npos)
                        return false;
                return true;
            };
            for (int attempt = 0; attempt < 100 && !all_sleep(); ++attempt)
                ASSERT_TRUE(dump_from_outside());
            ASSERT_TRUE(all_sleep()) << dump;

            const std::vector<std::string> lines = lines_of(dump);
            ASSERT_EQ(lines.size(), 8U) << dump;  // header, 2 worker lines, 5 tasks
            EXPECT_TRUE(is_header(lines[0], "5 tasks on 2 workers")) << dump;
            // Round robin: main and two sleepers on worker 0, two on worker 1.
            EXPECT_NE(std::find(lines.begin(), lines.end(), "worker 0: 3 tasks"), lines.end())
                << dump;
            EXPECT_NE(std::find(lines.begin(), lines.end(), "worker 1: 2 tasks"), lines.end())
                << dump;
            int on_worker[2] = {0, 0};
            for (const rill::task& t : sleepers) {
                const std::string line = task_line(dump, t.id());
                const std::string worker = line.substr(line.find(" worker ") + 8, 1);
                ++on_worker[worker == "1" ? 1 : 0];
                EXPECT_EQ(line, "task " + std::to_string(t.id()) + " worker " + worker +
                                    " waiting sleep for _ ms spawned at " +
                                    site(sleeper_line, main_function));
            }
            EXPECT_EQ(on_worker[0], 2) << dump;
            EXPECT_EQ(on_worker[1], 2) << dump;
            // Collected between tasks: nothing runs, main waits (or was just woken).
            EXPECT_EQ(dump.find(" running "), std::string::npos) << dump;
        },
        {.workers = 2});
}

// Spawns tasks until one runs on another thread than the caller's (2 workers: the other
// worker); that one runs `body`. Returns its handle.
template <class Body>
rill::task spawn_on_other_worker(Body body) {
    const std::thread::id here = std::this_thread::get_id();
    for (int attempt = 0; attempt < 8; ++attempt) {
        auto landed = std::make_shared<std::atomic<int>>(0);  // 1: elsewhere, 2: here
        rill::task t = rill::spawn([landed, here, body] {
            if (std::this_thread::get_id() == here) {
                *landed = 2;
                return;
            }
            *landed = 1;
            body();
        });
        EXPECT_TRUE(rill_test::task_wait_until([&] { return landed->load() != 0; }));
        if (*landed == 1) return t;
        t.join();
    }
    ADD_FAILURE() << "no task landed on the other worker";
    return rill::task();
}

TEST(TaskDump, AWorkerComputingWithoutYieldingIsReportedNotAwaited) {
    const char* test_function = __builtin_FUNCTION();
    const int run_line = __LINE__ + 1;
    rill::run(
        [&] {
            std::atomic<bool> release{false};
            // Holds worker 1 without yielding, bounded in time.
            rill::task spinner = spawn_on_other_worker([&release] {
                const auto until = std::chrono::steady_clock::now() + 10s;
                while (!release.load() && std::chrono::steady_clock::now() < until) {}
            });
            ASSERT_TRUE(spinner.joinable());

            const auto before = std::chrono::steady_clock::now();
            const std::string dump = task_dump();
            const auto took = std::chrono::steady_clock::now() - before;

            // From a thread that is no worker too.
            std::string outside_dump;
            std::atomic<bool> dumped{false};
            const auto outside_before = std::chrono::steady_clock::now();
            std::thread outside([&] {
                outside_dump = task_dump();
                dumped = true;
            });
            const bool outside_done = rill_test::task_wait_until([&] { return dumped.load(); });
            const auto outside_took = std::chrono::steady_clock::now() - outside_before;
            outside.join();
            release = true;
            spinner.join();

            EXPECT_GE(took, rill::task_dump_answer_timeout_ms - 10ms) << dump;
            EXPECT_LT(took, rill::task_dump_answer_timeout_ms + 1500ms) << dump;
            const std::vector<std::string> lines = lines_of(dump);
            ASSERT_EQ(lines.size(), 4U) << dump;
            EXPECT_TRUE(is_header(lines[0], "2 tasks on 2 workers")) << dump;
            EXPECT_EQ(lines[1], "worker 0: 1 task") << dump;
            const std::string main_site = site(run_line, test_function);
            EXPECT_EQ(from_worker(lines[2]), " worker 0 running spawned at " + main_site) << dump;
            EXPECT_EQ(lines[3], "worker 1: not answering within 1000 ms (a task computing without "
                                "yielding holds it)")
                << dump;

            ASSERT_TRUE(outside_done);
            EXPECT_LT(outside_took, rill::task_dump_answer_timeout_ms + 1500ms) << outside_dump;
            const std::vector<std::string> outside_lines = lines_of(outside_dump);
            ASSERT_EQ(outside_lines.size(), 4U) << outside_dump;
            EXPECT_EQ(outside_lines[1], "worker 0: 1 task") << outside_dump;
            // Main waits in task_wait_until's sleep, or its timer just fired.
            const std::string main_state = from_worker(without_wait_time(outside_lines[2]));
            EXPECT_TRUE(main_state == " worker 0 waiting sleep for _ ms spawned at " + main_site ||
                        main_state == " worker 0 ready spawned at " + main_site)
                << outside_dump;
            EXPECT_EQ(outside_lines[3],
                      "worker 1: not answering within 1000 ms (a task computing without "
                      "yielding holds it)")
                << outside_dump;
        },
        {.workers = 2});
}

// Two tasks on different workers dump at once: each waits for the other's worker without
// holding its own (the waiting dumper is parked), so both get every worker's part.
TEST(TaskDump, TwoWorkersDumpingAtOnceBothAnswer) {
    rill::run(
        [&] {
            std::atomic<int> arrived{0};
            std::string other_dump;
            rill::task other = spawn_on_other_worker([&] {
                arrived.fetch_add(1);
                // Both dumps start once both tasks are here (bounded).
                const auto until = std::chrono::steady_clock::now() + 10s;
                while (arrived.load() < 2 && std::chrono::steady_clock::now() < until)
                    rill::task_yield();
                other_dump = task_dump();
            });
            ASSERT_TRUE(other.joinable());
            arrived.fetch_add(1);
            ASSERT_TRUE(rill_test::task_wait_until([&] { return arrived.load() == 2; }));
            const auto before = std::chrono::steady_clock::now();
            const std::string dump = task_dump();
            EXPECT_LT(std::chrono::steady_clock::now() - before, rill::task_dump_answer_timeout_ms)
                << dump;
            other.join();
            for (const std::string* d : {&dump, static_cast<const std::string*>(&other_dump)}) {
                EXPECT_EQ(d->find("not answering"), std::string::npos) << *d;
                EXPECT_NE(d->find("\nworker 0: "), std::string::npos) << *d;
                EXPECT_NE(d->find("\nworker 1: "), std::string::npos) << *d;
                EXPECT_NE(d->find(" running spawned at "), std::string::npos) << *d;
            }
        },
        {.workers = 2});
}

}  // namespace
