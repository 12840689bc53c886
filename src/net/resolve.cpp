// Resolution with getaddrinfo. Numeric hosts (the common case for servers) never reach DNS;
// a name is looked up on a helper thread, since getaddrinfo may wait seconds for a name
// server and would hold up every task of the worker meanwhile.
#include "net/resolve.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#include <rill/channel.hpp>
#include <rill/error.hpp>

#include "runtime/scheduler.hpp"

namespace rill::detail {

std::atomic<name_lookup_function> name_lookup{&::getaddrinfo};

namespace {

// getaddrinfo's EAI_* codes are not errno values: they get their own category, whose messages
// are gai_strerror's, so os_error::code() stays meaningful.
class getaddrinfo_category_type final : public std::error_category {
public:
    const char* name() const noexcept override { return "getaddrinfo"; }
    std::string message(int code) const override { return gai_strerror(code); }
};

const std::error_category& getaddrinfo_category() {
    static const getaddrinfo_category_type category;
    return category;
}

struct addrinfo_deleter {
    void operator()(addrinfo* list) const noexcept { freeaddrinfo(list); }
};
using addrinfo_list = std::unique_ptr<addrinfo, addrinfo_deleter>;

// Fills `list` and returns no error, or returns the resolver's error.
std::error_code lookup(const std::string& host, const std::string& service, int flags,
                       addrinfo_list& list) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags;
    addrinfo* results = nullptr;
    int status = name_lookup.load(std::memory_order_relaxed)(host.c_str(), service.c_str(), &hints, &results);
    list.reset(results);
    if (status == 0) return {};
    if (status == EAI_SYSTEM) return {errno, std::system_category()};
    return {status, getaddrinfo_category()};
}

// Threads that run lookups for tasks: up to max_threads at once (more lookups queue), each
// leaving after idle_exit without work. Never destroyed: a thread may still be waiting on it
// while the process exits.
class lookup_threads {
public:
    static lookup_threads& get() {
        static lookup_threads* const pool = new lookup_threads;
        return *pool;
    }

    // Runs `job` on a pool thread. Throws std::system_error when no thread can be started.
    void submit(std::function<void()> job) {
        std::lock_guard lock(mutex_);
        jobs_.push_back(std::move(job));
        if (idle_ > 0) {
            work_.notify_one();
            return;
        }
        if (threads_ >= max_threads) return;  // a busy thread takes it next
        try {
            std::thread([this] { serve(); }).detach();
        } catch (...) {
            if (threads_ == 0) {
                jobs_.pop_back();
                throw;
            }
            return;
        }
        ++threads_;
    }

private:
    static constexpr int max_threads = 8;
    static constexpr std::chrono::seconds idle_exit{10};

    void serve() {
        std::unique_lock lock(mutex_);
        for (;;) {
            ++idle_;
            const bool got = work_.wait_for(lock, idle_exit, [&] { return !jobs_.empty(); });
            --idle_;
            if (!got) {
                --threads_;
                return;
            }
            std::function<void()> job = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            job();
            lock.lock();
        }
    }

    std::mutex mutex_;
    std::condition_variable work_;
    std::deque<std::function<void()>> jobs_;
    int threads_ = 0;
    int idle_ = 0;
};

// lookup, from a task: on a pool thread while the task waits. Outside a task (or when no
// thread can be started) it runs here.
std::error_code lookup_from_task(const std::string& host, const std::string& service, int flags,
                                 addrinfo_list& list) {
    scheduler* here = scheduler::current();
    if (!here || !here->running()) return lookup(host, service, flags, list);
    struct job {
        std::string host, service;
        int flags = 0;
        std::mutex mutex;
        wait_list waiter;
        bool done = false;
        std::error_code failure;
        addrinfo_list list;
    };
    auto j = std::make_shared<job>();
    j->host = host;
    j->service = service;
    j->flags = flags;
    prepare_to_wait();  // output flush_writer put off leaves before the task waits
    try {
        lookup_threads::get().submit([j] {
            addrinfo_list found;
            const std::error_code failure = lookup(j->host, j->service, j->flags, found);
            std::lock_guard lock(j->mutex);
            j->failure = failure;
            j->list = std::move(found);
            j->done = true;
            j->waiter.notify_all();
        });
    } catch (const std::system_error&) {
        return lookup(host, service, flags, list);
    }
    // A cancelled task leaves here with task_cancelled; the lookup finishes on its own and
    // the job goes with its last reference.
    std::unique_lock lock(j->mutex);
    while (!j->done) j->waiter.wait(lock);
    list = std::move(j->list);
    return j->failure;
}

bool same_endpoint(const endpoint& a, const endpoint& b) {
    return a.length == b.length && std::memcmp(&a.storage, &b.storage, a.length) == 0;
}

} // namespace

std::vector<endpoint> resolve(const address& where, std::optional<int> port_number,
                              resolve_purpose purpose, std::string_view operation) {
    std::optional<int> port = port_number ? checked_port_number(*port_number) : where.port();
    if (!port) {
        throw argument_error("address \"" + where.to_string() +
                             "\" has no port and no port_number was given");
    }
    // "*" is every interface for a server: 0.0.0.0, IPv4 only, like the reference's INADDR_ANY
    // ("[::]" asks for IPv6). A client cannot connect to every interface; it gets the loopback,
    // where Linux would send a connect to 0.0.0.0 anyway.
    std::string host = where.host();
    if (host == "*") host = purpose == resolve_purpose::listen ? "0.0.0.0" : "127.0.0.1";
    std::string service = std::to_string(*port);
    // AI_ADDRCONFIG stays off: on a machine whose only interface is the loopback it would hide
    // ::1, and "localhost" with it.
    int flags = AI_NUMERICSERV | (purpose == resolve_purpose::listen ? AI_PASSIVE : 0);

    addrinfo_list list;
    // Numeric first, so that an address literal never turns into a DNS query.
    std::error_code failure = lookup(host, service, flags | AI_NUMERICHOST, list);
    if (failure == std::error_code(EAI_NONAME, getaddrinfo_category()))
        failure = lookup_from_task(host, service, flags, list);
    if (failure)
        throw os_error(failure, std::string(operation) + ": resolve " + host_port_text(where.host(), *port));

    // On success getaddrinfo returns at least one result, so the vector is never empty. It
    // repeats an address once per protocol or /etc/hosts line; keep the first of each.
    std::vector<endpoint> endpoints;
    for (const addrinfo* info = list.get(); info != nullptr; info = info->ai_next) {
        endpoint found;
        std::memcpy(&found.storage, info->ai_addr, info->ai_addrlen);
        found.length = info->ai_addrlen;
        bool seen = std::any_of(endpoints.begin(), endpoints.end(),
                                [&](const endpoint& e) { return same_endpoint(e, found); });
        if (!seen) endpoints.push_back(found);
    }
    return endpoints;
}

} // namespace rill::detail
