// The built `rill` tool run by a test as a child process.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "support/child_process.hpp"
#include "support/files.hpp"

namespace rill_test {

inline const std::string rill_tool = built("tools/rill");
inline constexpr auto rill_tool_start_limit = std::chrono::seconds(10);

// The port of a started `rill echo 127.0.0.1:0 ...`, read from the address it prints first;
// 0 and a test failure (with its stderr) if it printed none.
inline int start_rill_echo(child_process& echo) {
    auto first = echo.read_stdout_line(rill_tool_start_limit);
    if (!first) {
        auto o = echo.wait(std::chrono::seconds(1));
        ADD_FAILURE() << "rill echo printed no address; stderr: " << o.err;
        return 0;
    }
    EXPECT_THAT(*first, testing::MatchesRegex("127\\.0\\.0\\.1:[0-9]+"));
    if (first->rfind(':') == std::string::npos) return 0;
    return std::stoi(first->substr(first->rfind(':') + 1));
}

}  // namespace rill_test
