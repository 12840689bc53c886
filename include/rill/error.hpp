// rill's exception hierarchy. End of stream is never an exception: it is an empty optional.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

namespace rill {

// Base of every exception rill throws.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A system call or resolver failure. The message names the operation and the address or
// object involved: "tcp_server_stream: bind 127.0.0.1:2020: Address already in use".
class os_error : public error {
public:
    os_error(std::error_code code, const std::string& context)
        : error(context + ": " + code.message()), code_(code) {}
    const std::error_code& code() const noexcept { return code_; }

private:
    std::error_code code_;
};

// A bad argument from the caller: "port_number must be 0..65535, got 70000".
class argument_error : public error {
public:
    using error::error;
};

// Bytes from the stream that are not valid in the stream's codec (error mode raise).
class decoding_error : public error {
public:
    using error::error;
};

// A character the stream's codec cannot encode (error mode raise).
class encoding_error : public error {
public:
    using error::error;
};

// read_line met a line longer than the stream's max_line_length; the rest of that line is
// discarded and the stream continues after the next line end.
class line_too_long : public error {
public:
    using error::error;
};

// A write waited longer than the stream's writer_timeout.
class timeout_error : public error {
public:
    using error::error;
};

// A TLS failure on one connection (include/rill/tls.hpp): the handshake (a certificate that
// does not verify, no common version or cipher, a peer that is not speaking TLS, the
// handshake timeout), or a record that does not authenticate. The message names the
// operation, the peer and OpenSSL's reason: "read_line: tls handshake with 127.0.0.1:40522:
// certificate verify failed: self-signed certificate". Also a tls_context whose certificate
// or key cannot be loaded.
class tls_error : public error {
public:
    using error::error;
};

// channel::send on a closed channel.
class channel_closed : public error {
public:
    using error::error;
};

// Thrown from a blocking call of a task that is being cancelled (run's main returned).
// Let it propagate: it unwinds the task so destructors run and streams close.
class task_cancelled : public error {
public:
    task_cancelled();  // "task cancelled"; each one made is counted (rill/stats.hpp)
};

namespace detail {
[[noreturn]] inline void throw_os_error(int err, const std::string& context) {
    throw os_error(std::error_code(err, std::system_category()), context);
}
}  // namespace detail

}  // namespace rill
