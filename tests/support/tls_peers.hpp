// Other TLS implementations as test peers of `rill echo --tls-cert/--tls-key` and
// `rill send --tls`: a Python `ssl` client (the script below), openssl s_client/s_server, and a
// `rill echo` whose stderr goes to a file the test can read while it runs (its task failure
// reports name the connection that failed).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/files.hpp"
#include "support/rill_tool.hpp"
#include "support/tls_certs.hpp"
#include "support/wait.hpp"

namespace rill_test {

// python3 -c SCRIPT HOST PORT CAFILE SERVER_NAME VERSION: connects with Python's ssl module,
// verifying the server against CAFILE with the host name check on ("-": verifies nothing);
// VERSION is any, tls1_2 or tls1_3. Prints "local port N" before the handshake, then
// "connected VERSION verified|unverified" or "handshake failed: KIND: REASON" (exit 1). Then
// sends each line of its standard input and prints the reply as "reply TEXT" (a CR shown as
// <CR>); at the end of its input it closes with close_notify and waits for the server's,
// printing "closed cleanly".
inline const std::string python_tls_client_script = R"(
import socket, ssl, sys
host, port, cafile, name, version = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
if cafile == "-":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
else:
    ctx = ssl.create_default_context(cafile=cafile)
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
if version == "tls1_2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
elif version == "tls1_3":
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
raw = socket.create_connection((host, port), timeout=10)
print("local port", raw.getsockname()[1], flush=True)
try:
    s = ctx.wrap_socket(raw, server_hostname=name)
except (ssl.SSLError, OSError) as e:
    print("handshake failed:", type(e).__name__ + ":", e, flush=True)
    sys.exit(1)
print("connected", s.version(), "verified" if ctx.verify_mode == ssl.CERT_REQUIRED else "unverified", flush=True)
pending = b""
while True:
    line = sys.stdin.readline()
    if not line:
        break
    s.sendall(line.encode())
    while b"\n" not in pending:
        data = s.recv(4096)
        if not data:
            print("end of stream", flush=True)
            sys.exit(2)
        pending += data
    reply, _, pending = pending.partition(b"\n")
    print("reply", reply.decode().replace("\r", "<CR>"), flush=True)
s.unwrap()
print("closed cleanly", flush=True)
)";

// False in a build without TLS (-DRILL_WITH_TLS=OFF): the TLS tests skip there, and rill
// echo and rill send refuse the TLS flags (TlsToolFlags.BuildWithoutTlsSaysSo checks that).
#if defined(RILL_WITH_TLS) && !RILL_WITH_TLS
inline constexpr bool built_with_tls = false;
#else
inline constexpr bool built_with_tls = true;
#endif
inline constexpr const char* without_tls_reason = "rill was built without TLS (RILL_WITH_TLS=OFF)";

inline constexpr auto tls_peer_start_limit = std::chrono::seconds(10);
inline constexpr auto tls_peer_run_limit = std::chrono::seconds(15);

// The Python client's command line.
inline std::vector<std::string> python_tls_client(int port, const std::string& cafile,
                                                  const std::string& server_name,
                                                  const std::string& version = "any",
                                                  const std::string& host = "127.0.0.1") {
    return {"python3",   "-c",   python_tls_client_script, host, std::to_string(port), cafile,
            server_name, version};
}

// The local port a started Python client printed first; 0 (and a test failure) if none.
inline int python_client_local_port(child_process& client) {
    auto first = client.read_stdout_line(tls_peer_start_limit);
    if (!first || !first->starts_with("local port ")) {
        ADD_FAILURE() << "the Python client printed no local port; stdout: "
                      << first.value_or("(nothing)")
                      << "; stderr: " << client.wait(std::chrono::seconds(1)).err;
        return 0;
    }
    return std::stoi(first->substr(std::string("local port ").size()));
}

// `rill echo 127.0.0.1:0 --mode persistent` serving TLS with `served` (the server certificate
// unless the test says otherwise), its stderr appended to `log`. Start it with
// start_rill_echo.
inline std::vector<std::string> rill_tls_echo(const certificate_and_key& served,
                                              const std::filesystem::path& log,
                                              const std::vector<std::string>& more = {}) {
    std::vector<std::string> argv = {"/bin/sh",
                                     "-c",
                                     "exec \"$@\" 2>>\"$0\"",
                                     log.string(),
                                     rill_tool,
                                     "echo",
                                     "127.0.0.1:0",
                                     "--mode",
                                     "persistent",
                                     "--tls-cert",
                                     served.certificate.path.string(),
                                     "--tls-key",
                                     served.private_key.path.string()};
    argv.insert(argv.end(), more.begin(), more.end());
    return argv;
}

// The lines of `log` containing `part`, once at least `count` of them are there (or the time
// limit passed: then what there is).
inline std::vector<std::string> log_lines_with(const std::filesystem::path& log,
                                               const std::string& part, std::size_t count,
                                               std::chrono::milliseconds limit = wait_limit) {
    std::vector<std::string> found;
    thread_wait_until(
        [&] {
            found.clear();
            const std::string text = read_file(log);
            std::size_t start = 0;
            while (start < text.size()) {
                std::size_t end = text.find('\n', start);
                if (end == std::string::npos) break;  // a line still being written
                std::string line = text.substr(start, end - start);
                if (line.find(part) != std::string::npos) found.push_back(line);
                start = end + 1;
            }
            return found.size() >= count;
        },
        limit);
    return found;
}

}  // namespace rill_test
