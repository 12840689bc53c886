// write_task_dump: every live task of the running runtime(s), one line each. A scheduler's
// live list and its tasks' park points belong to its thread, so each worker lists its own
// tasks, between two of them, when the dump's request reaches it through its remote queue;
// the caller waits a bounded time for the answers and names the workers that did not give one.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <rill/channel.hpp>
#include <rill/runtime.hpp>

#include "runtime/scheduler.hpp"

namespace rill::detail {

namespace {

// How the line names the address a wait is on: "read from 127.0.0.1:40522".
const char* target_preposition(wait_kind kind) noexcept {
    switch (kind) {
    case wait_kind::read: return " from ";
    case wait_kind::write:
    case wait_kind::connect: return " to ";
    case wait_kind::accept: return " on ";
    default: return " ";
    }
}

// One task's line (without the newline). On the task's worker's thread.
std::string task_line(const task_control& t, const scheduler& s, std::size_t worker,
                      std::int64_t now_ns) {
    std::string line = "task ";
    line += std::to_string(t.id);
    line += " worker ";
    line += std::to_string(worker);
    if (&t == s.running()) {
        line += " running";
    } else if (!t.parked) {
        line += " ready";
    } else {
        line += " waiting";
        if (const park_point* p = t.parked_on) {
            line += ' ';
            line += wait_kind_name(p->kind);
            std::string target;
            p->describe_target(target);
            if (!target.empty()) {
                line += target_preposition(p->kind);
                line += target;
            }
            const std::int64_t waited_ms =
                std::max<std::int64_t>(0, (now_ns - p->parked_since_ns) / std::int64_t{1'000'000});
            line += " for ";
            line += std::to_string(waited_ms);
            line += " ms";
        }
    }
    line += " spawned at ";
    if (t.body) {
        line += t.body->site.file;
        line += ':';
        line += std::to_string(t.body->site.line);
        line += " in ";
        line += t.body->site.function;
    } else {
        line += "(unknown)";
    }
    return line;
}

// The part of worker `worker` (scheduler `s`): a header line and its tasks, ids ascending.
// On that worker's thread.
std::string list_tasks(const scheduler& s, std::size_t worker) {
    const std::int64_t now_ns = coarse_now_ns();
    std::vector<std::pair<std::uint64_t, std::string>> lines;
    for (const task_control* t = s.live_tasks(); t; t = t->live_next)
        lines.emplace_back(t->id, task_line(*t, s, worker, now_ns));
    std::sort(lines.begin(), lines.end());
    std::string part = "worker " + std::to_string(worker) + ": " + std::to_string(lines.size()) +
                       (lines.size() == 1 ? " task\n" : " tasks\n");
    for (auto& [id, line] : lines) part.append(line).append(1, '\n');
    return part;
}

// One runtime's dump in progress: shared by the caller and the workers' requests, so that a
// worker answering after the caller gave up writes into memory that is still there.
struct dump_state {
    std::mutex mutex;
    std::condition_variable answered;  // a caller on a plain thread waits here
    wait_list waiting;  // a caller in a task parks here (its worker goes on serving)
    std::vector<std::optional<std::string>> parts;  // per worker, once it answered
    std::size_t unanswered = 0;

    void deliver(std::size_t worker, std::string part) {
        std::lock_guard lock(mutex);
        parts[worker] = std::move(part);
        if (--unanswered == 0) {
            answered.notify_all();
            waiting.notify_all();
        }
    }
};

struct worker_request final : scheduler::loop_request {
    std::shared_ptr<dump_state> state;
    std::size_t worker = 0;
};

void answer(scheduler::loop_request* r, scheduler* on) noexcept {
    std::unique_ptr<worker_request> self(static_cast<worker_request*>(r));
    const std::string name = "worker " + std::to_string(self->worker);
    try {
        self->state->deliver(self->worker,
                             on ? list_tasks(*on, self->worker)
                                : name + ": ended before it could answer (run is returning)\n");
    } catch (...) {
        // Out of memory while listing: the caller reports this worker as not answering.
    }
}

// A dump of one runtime: the requests are out, the caller's own part is in.
struct pending_dump {
    std::shared_ptr<dump_state> state;
    std::size_t workers = 0;
    std::size_t tasks = 0;
    rill::backend kind = rill::backend::automatic;
};

// Posts a request to every worker of `rt` except `here` (the caller's, which lists its own
// tasks now). The schedulers must stay alive meanwhile: the caller runs on one of them, or
// holds running_mutex.
pending_dump start_dump(runtime_state& rt, scheduler* here) {
    pending_dump d;
    d.state = std::make_shared<dump_state>();
    auto& schedulers = rt.schedulers();
    d.workers = schedulers.size();
    d.kind = rt.backend_kind();
    d.state->parts.resize(d.workers);
    std::vector<std::unique_ptr<worker_request>> requests;
    for (std::size_t i = 0; i < d.workers; ++i) {
        if (schedulers[i].get() == here) {
            d.state->parts[i] = list_tasks(*here, i);
            continue;
        }
        auto r = std::make_unique<worker_request>();
        r->run = &answer;
        r->state = d.state;
        r->worker = i;
        requests.push_back(std::move(r));
    }
    d.state->unanswered = requests.size();
    // Counted after the listing above: the header's count is as late as any line.
    d.tasks = rt.tasks_alive();
    for (auto& r : requests) schedulers[r->worker]->post(r.release());
    return d;
}

// Waits for the workers' answers until `deadline`, then writes the dump.
void finish_dump(std::string& text, pending_dump& d, time_point deadline) {
    dump_state& state = *d.state;
    std::unique_lock lock(state.mutex);
    if (in_task()) {
        while (state.unanswered > 0)
            if (!wait_as_until(state.waiting, lock, deadline, wait_kind::other)) break;
    } else {
        state.answered.wait_until(lock, deadline, [&] { return state.unanswered == 0; });
    }
    text += "rill task dump: " + std::to_string(d.tasks) + (d.tasks == 1 ? " task" : " tasks") +
            " on " + std::to_string(d.workers) + (d.workers == 1 ? " worker (" : " workers (") +
            rill::to_string(d.kind) + ")\n";
    for (std::size_t i = 0; i < d.workers; ++i) {
        if (state.parts[i]) {
            text += *state.parts[i];
        } else {
            text += "worker " + std::to_string(i) + ": not answering within " +
                    std::to_string(task_dump_answer_timeout_ms.count()) +
                    " ms (a task computing without yielding holds it)\n";
        }
    }
}

}  // namespace

}  // namespace rill::detail

namespace rill {

void write_task_dump(std::ostream& out) {
    using namespace detail;
    const time_point deadline = clock::now() + task_dump_answer_timeout_ms;
    std::vector<pending_dump> dumps;
    if (scheduler* here = scheduler::current()) {
        // A worker's thread: its own runtime, which cannot end while this runs on it.
        dumps.push_back(start_dump(here->runtime(), here));
    } else {
        std::lock_guard lock(running_mutex);
        for (runtime_state* rt : running_runtimes) dumps.push_back(start_dump(*rt, nullptr));
    }
    std::string text;
    if (dumps.empty()) text = "rill task dump: no runtime is running\n";
    for (pending_dump& d : dumps) finish_dump(text, d, deadline);
    out << text;
    out.flush();
}

}  // namespace rill
