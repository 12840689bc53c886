// Resolution with getaddrinfo. Numeric hosts (the common case for servers) never reach DNS;
// a name is looked up on a helper thread, since getaddrinfo may wait seconds for a name
// server and would hold up every task of the worker meanwhile.
#include "net/resolve.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <system_error>

#include <rill/error.hpp>

#include "runtime/helper_threads.hpp"

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
    int status = name_lookup.load(std::memory_order_relaxed)(host.c_str(), service.c_str(), &hints,
                                                             &results);
    list.reset(results);
    if (status == 0) return {};
    if (status == EAI_SYSTEM) return {errno, std::system_category()};
    return {status, getaddrinfo_category()};
}

// lookup, from a task: on a helper thread while the task waits (its worker runs the others).
std::error_code lookup_from_task(const std::string& host, const std::string& service, int flags,
                                 addrinfo_list& list) {
    struct result {
        std::error_code failure;
        addrinfo_list list;
    };
    // Shared with the job: a task cancelled while it waits leaves before the lookup ends.
    auto found = std::make_shared<result>();
    run_on_helper_thread([found, host, service, flags] {
        found->failure = lookup(host, service, flags, found->list);
    });
    list = std::move(found->list);
    return found->failure;
}

bool same_endpoint(const endpoint& a, const endpoint& b) {
    return a.length == b.length && std::memcmp(&a.storage, &b.storage, a.length) == 0;
}

}  // namespace

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
        throw os_error(failure,
                       std::string(operation) + ": resolve " + host_port_text(where.host(), *port));

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

}  // namespace rill::detail
