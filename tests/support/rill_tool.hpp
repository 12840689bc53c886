// The built `rill` tool run by a test as a child process.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

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

// `rill ARGS...`: the command's argv, and the command line as a test's trace shows it.
inline std::vector<std::string> rill_argv(const std::vector<std::string>& args) {
    std::vector<std::string> argv{rill_tool};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}
inline std::string rill_command_line(const std::vector<std::string>& args) {
    std::string shown = "rill";
    for (const auto& a : args) shown += " " + a;
    return shown;
}

// Runs `rill ARGS...` to its end (killed past `limit`): what it printed and its exit status.
inline child_process::outcome run_rill(const std::vector<std::string>& args,
                                       std::chrono::milliseconds limit) {
    child_process rill(rill_argv(args));
    return rill.wait(limit);
}

// `rill echo ARGS...` started as a child process, and the port it listens on (read by
// start_rill_echo: 0, with a test failure, when it printed no address). ARGS must make it
// listen on 127.0.0.1 (e.g. "127.0.0.1:0"). The child is stopped when this ends.
class rill_echo : public child_process {
public:
    explicit rill_echo(const std::vector<std::string>& args)
        : child_process(rill_echo_argv(args)), port_(start_rill_echo(*this)) {}

    int port() const { return port_; }

private:
    static std::vector<std::string> rill_echo_argv(const std::vector<std::string>& args) {
        std::vector<std::string> argv{"echo"};
        argv.insert(argv.end(), args.begin(), args.end());
        return rill_argv(argv);
    }

    int port_;
};

}  // namespace rill_test
