// Which backend a run uses, and the poller each worker gets: the runtime asks through
// runtime/poller.hpp and knows nothing else of the backends.
#include <cstdlib>
#include <cstring>
#include <string>

#include <rill/error.hpp>

#include "io/backend.hpp"

namespace rill::detail {

// In uring_backend.cpp and epoll_backend.cpp.
std::unique_ptr<backend> make_uring_backend(scheduler& owner);
std::unique_ptr<backend> make_epoll_backend(scheduler& owner);

namespace {
// RILL_BACKEND's choice; `automatic` when it is unset or says so.
rill::backend backend_from_environment() {
    const char* env = std::getenv("RILL_BACKEND");
    if (!env || !*env) return rill::backend::automatic;
    std::string v(env);
    if (v == "epoll") return rill::backend::epoll;
    if (v == "io_uring" || v == "uring") return rill::backend::io_uring;
    if (v != "automatic" && v != "auto")
        throw argument_error("RILL_BACKEND must be epoll, io_uring or automatic, got \"" + v +
                             "\"");
    return rill::backend::automatic;
}
}  // namespace

rill::backend choose_backend(rill::backend requested) {
    if (rill::backend env = backend_from_environment(); env != rill::backend::automatic) return env;
    if (requested != rill::backend::automatic) return requested;
    return probe_io_uring();
}

backend_decision explain_backend_choice(rill::backend requested, rill::backend chosen) {
    if (backend_from_environment() != rill::backend::automatic)
        return {rill::backend_choice::asked_by_environment, {}};
    if (requested != rill::backend::automatic) return {rill::backend_choice::asked_by_options, {}};
    if (chosen == rill::backend::io_uring) return {rill::backend_choice::io_uring_by_default, {}};
    return {rill::backend_choice::io_uring_unavailable,
            "io_uring_setup failed: " + std::string(std::strerror(io_uring_probe_error()))};
}

bool backend_may_fall_back(rill::backend requested) {
    return backend_from_environment() == rill::backend::automatic &&
           requested == rill::backend::automatic;
}

std::unique_ptr<poller> make_poller(rill::backend kind, scheduler& owner) {
    if (kind == rill::backend::epoll) return make_epoll_backend(owner);
    return make_uring_backend(owner);
}

}  // namespace rill::detail
