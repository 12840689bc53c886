// How a loopback peer's connection ended, checked from the test's side.
#pragma once

#include <sys/socket.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

#include "support/loopback.hpp"

namespace rill_test {

// The peer closed in order (FIN, no reset) with nothing more to read; `who` names the client.
inline void expect_clean_end(raw_client& c, const char* who) {
    char byte;
    const ssize_t n = retry_interrupted([&] { return ::recv(c.fd(), &byte, 1, 0); });
    EXPECT_EQ(n, 0) << who << ": expected end of stream, got "
                    << (n < 0 ? std::strerror(errno) : "a byte");
}

}  // namespace rill_test
