// Accept errors a test cannot provoke from outside (an error read(server) does not know, say):
// injected in front of the backend's accept.
#pragma once

namespace rill::detail {

// Tests only: the next `count` accepts of any server in this process fail with `error` (a
// positive errno) without reaching the kernel; the pending connections stay in the backlog.
void inject_accept_errors_for_tests(int error, unsigned count) noexcept;

}  // namespace rill::detail
