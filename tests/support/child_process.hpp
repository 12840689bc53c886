// A program run by a test: started with posix_spawn, its stdin, stdout and stderr on pipes;
// stopped by its PID (SIGTERM, then SIGKILL) and always reaped, also when the test fails.
// Every wait is bounded.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace rill_test {

class child_process {
public:
    // argv[0] is the program (a path, or a name looked up in PATH).
    explicit child_process(const std::vector<std::string>& argv) {
        int in[2], out[2], err[2];
        if (pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
        if (pipe2(out, O_CLOEXEC) != 0) {
            close_pair(in);
            throw std::runtime_error("pipe2");
        }
        if (pipe2(err, O_CLOEXEC) != 0) {
            close_pair(in);
            close_pair(out);
            throw std::runtime_error("pipe2");
        }
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, in[0], 0);
        posix_spawn_file_actions_adddup2(&actions, out[1], 1);
        posix_spawn_file_actions_adddup2(&actions, err[1], 2);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        int r = posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        ::close(in[0]);
        ::close(out[1]);
        ::close(err[1]);
        stdin_ = in[1];
        stdout_ = out[0];
        stderr_ = err[0];
        if (r != 0) {
            pid_ = -1;
            close_pipes();
            throw std::runtime_error("posix_spawn " + argv[0] + ": " + std::strerror(r));
        }
    }
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;
    ~child_process() {
        stop();
        close_pipes();
    }

    pid_t pid() const { return pid_; }

    void write_stdin(const std::string& bytes) {
        std::size_t done = 0;
        while (done < bytes.size()) {
            ssize_t n = ::write(stdin_, bytes.data() + done, bytes.size() - done);
            if (n <= 0)
                throw std::runtime_error("write to child: " + std::string(std::strerror(errno)));
            done += static_cast<std::size_t>(n);
        }
    }
    void close_stdin() {
        if (stdin_ >= 0) ::close(stdin_);
        stdin_ = -1;
    }

    // One line of stdout (without its "\n"), or nothing when the child closes stdout or the
    // time limit passes first.
    std::optional<std::string> read_stdout_line(std::chrono::milliseconds limit) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        for (;;) {
            if (auto pos = out_.find('\n'); pos != std::string::npos) {
                std::string line = out_.substr(0, pos);
                out_.erase(0, pos + 1);
                return line;
            }
            if (!read_more(stdout_, out_, deadline)) return std::nullopt;
        }
    }

    struct outcome {
        int exit_status = -1;  // -1: killed by a signal or did not end in time
        std::string out;  // stdout not yet read by read_stdout_line
        std::string err;
    };
    // Waits (up to `limit`) for the child to close its output and exit; kills it past the limit.
    outcome wait(std::chrono::milliseconds limit) {
        close_stdin();
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (read_both(deadline)) {}
        outcome o;
        o.exit_status = reap(deadline);
        if (o.exit_status == -2) {
            stop();  // did not end in time
            o.exit_status = -1;
        }
        o.out = std::exchange(out_, {});
        o.err = std::exchange(err_, {});
        return o;
    }

    // SIGTERM; a second SIGTERM if it has not ended within 200 ms (rill echo drains its
    // clients after the first, and stops at once after the second); SIGKILL if it has not
    // ended a second after that. Always reaps.
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        if (reap(std::chrono::steady_clock::now() + std::chrono::milliseconds(200)) != -2) {
            pid_ = -1;
            return;
        }
        ::kill(pid_, SIGTERM);
        if (reap(std::chrono::steady_clock::now() + std::chrono::seconds(1)) == -2) {
            ::kill(pid_, SIGKILL);
            int status;
            ::waitpid(pid_, &status, 0);
        }
        pid_ = -1;
    }

private:
    static void close_pair(int p[2]) {
        ::close(p[0]);
        ::close(p[1]);
    }
    void close_pipes() {
        close_stdin();
        if (stdout_ >= 0) ::close(stdout_);
        if (stderr_ >= 0) ::close(stderr_);
        stdout_ = stderr_ = -1;
    }

    // Appends what `fd` has, waiting until the deadline; false at end of file or past it.
    bool read_more(int& fd, std::string& into, std::chrono::steady_clock::time_point deadline) {
        if (fd < 0) return false;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
        char buf[4096];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) {
            ::close(fd);
            fd = -1;
            return false;
        }
        into.append(buf, static_cast<std::size_t>(n));
        return true;
    }
    // Reads stdout and stderr until both end or the deadline; false when done.
    bool read_both(std::chrono::steady_clock::time_point deadline) {
        if (stdout_ < 0 && stderr_ < 0) return false;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p[2] = {{stdout_, POLLIN, 0}, {stderr_, POLLIN, 0}};
        if (::poll(p, 2, static_cast<int>(left.count())) <= 0) return false;
        char buf[4096];
        int* fds[2] = {&stdout_, &stderr_};
        std::string* into[2] = {&out_, &err_};
        for (int i = 0; i < 2; ++i) {
            if (*fds[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = ::read(*fds[i], buf, sizeof buf);
            if (n <= 0) {
                ::close(*fds[i]);
                *fds[i] = -1;
            } else {
                into[i]->append(buf, static_cast<std::size_t>(n));
            }
        }
        return true;
    }
    // The exit status (-1 for a signal), or -2 if it has not ended by the deadline.
    int reap(std::chrono::steady_clock::time_point deadline) {
        if (pid_ <= 0) return reaped_status_;
        for (int i = 0; i < 100000; ++i) {
            int status = 0;
            pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                pid_ = -1;
                reaped_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
                return reaped_status_;
            }
            if (r < 0 && errno != EINTR) {
                pid_ = -1;
                return reaped_status_ = -1;
            }
            if (std::chrono::steady_clock::now() >= deadline) return -2;
            ::usleep(2000);
        }
        return -2;
    }

    pid_t pid_ = -1;
    int stdin_ = -1, stdout_ = -1, stderr_ = -1;
    std::string out_, err_;
    int reaped_status_ = -1;
};

// True when `name` is a program on PATH.
inline bool program_available(const std::string& name) {
    return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace rill_test
