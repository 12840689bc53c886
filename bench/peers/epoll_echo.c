// Line echo over raw epoll: edge-triggered, non-blocking, one thread, per-connection buffers.
// The floor the benchmark measures every other server against.
//
// usage: epoll_echo [PORT | --port N] [--mode once|persistent]
//   once:       read one line, echo it, close (the seed's server)
//   persistent: echo every line until end of stream (the default)
// Listens on 127.0.0.1; each line is echoed with its "\n".
//
// Reads go to one shared buffer and complete lines are sent straight from it, so a connection
// owns memory only while it holds a partial line or output the socket would not take yet: an
// idle connection costs its struct and the kernel's socket.

#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
    max_line_bytes = 64 * 1024,  // longer lines close the connection (rill's default cap)
    max_pending_output_bytes = 1 << 20,  // stop reading a client that does not read its echoes
    read_chunk_bytes = 64 * 1024,
    max_events = 512,
};

struct buffer {
    char* data;
    size_t len, cap;
};

struct connection {
    int fd;
    int closing;  // close once the pending output is sent
    struct buffer partial;  // start of a line whose "\n" has not arrived
    struct buffer out;  // echo not yet taken by the socket
    size_t out_sent;
};

static int once_mode;
static char read_chunk[read_chunk_bytes];

static int append(struct buffer* b, const char* data, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        char* grown = realloc(b->data, cap);
        if (!grown) return -1;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

static void release(struct buffer* b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static void close_connection(struct connection* c) {
    close(c->fd);  // also leaves the epoll set
    release(&c->partial);
    release(&c->out);
    free(c);
}

// Sends pending output; returns -1 on a socket error, 0 otherwise.
static int flush_output(struct connection* c) {
    while (c->out_sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent, MSG_NOSIGNAL);
        if (n > 0)
            c->out_sent += (size_t)n;
        else if (errno == EAGAIN)
            return 0;
        else if (errno != EINTR)
            return -1;
    }
    release(&c->out);  // drained: give the memory back, idle connections keep none
    c->out_sent = 0;
    return 0;
}

// Sends directly when nothing is queued; whatever the socket does not take is queued.
static int write_output(struct connection* c, const char* data, size_t n) {
    if (c->out.len == 0) {
        while (n > 0) {
            ssize_t sent = send(c->fd, data, n, MSG_NOSIGNAL);
            if (sent > 0)
                data += sent, n -= (size_t)sent;
            else if (errno == EAGAIN)
                break;
            else if (errno != EINTR)
                return -1;
        }
    }
    return n > 0 ? append(&c->out, data, n) : 0;
}

// Echoes the complete lines in data; keeps the tail in c->partial. Returns -1 to close.
static int echo_lines(struct connection* c, const char* data, size_t n) {
    const char* end = once_mode ? memchr(data, '\n', n) : memrchr(data, '\n', n);
    if (!end) {
        if (data != c->partial.data && append(&c->partial, data, n) != 0) return -1;
        return c->partial.len > max_line_bytes ? -1 : 0;
    }
    size_t through = (size_t)(end - data) + 1;
    if (write_output(c, data, through) != 0) return -1;
    if (once_mode) {
        c->closing = 1;
        release(&c->partial);
        return 0;
    }
    size_t rest = n - through;
    if (data == c->partial.data) {
        memmove(c->partial.data, data + through, rest);
        c->partial.len = rest;
        if (rest == 0) release(&c->partial);
    } else if (rest > 0 && append(&c->partial, data + through, rest) != 0) {
        return -1;
    }
    return 0;
}

// At end of stream a last line without "\n" is still a line (as read-line has it).
static int echo_last_line(struct connection* c) {
    if (c->partial.len > 0 && write_output(c, c->partial.data, c->partial.len) != 0) return -1;
    if (c->partial.len > 0 && write_output(c, "\n", 1) != 0) return -1;
    release(&c->partial);
    c->closing = 1;
    return 0;
}

static void serve(struct connection* c) {
    if (flush_output(c) != 0) {
        close_connection(c);
        return;
    }
    // Edge-triggered: read until EAGAIN, unless output backs up, in which case the EPOLLOUT edge
    // that follows its draining brings us back here to read the rest.
    while (!c->closing && c->out.len - c->out_sent < max_pending_output_bytes) {
        ssize_t n = recv(c->fd, read_chunk, sizeof read_chunk, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            close_connection(c);
            return;
        }
        if (n == 0) {
            if (echo_last_line(c) != 0) {
                close_connection(c);
                return;
            }
            break;
        }
        int rc;
        if (c->partial.len == 0) {  // the usual case: echo straight from the shared buffer
            rc = echo_lines(c, read_chunk, (size_t)n);
        } else {  // a line continues: gather it, then echo from the gathered copy
            rc = append(&c->partial, read_chunk, (size_t)n) != 0
                     ? -1
                     : echo_lines(c, c->partial.data, c->partial.len);
        }
        if (rc != 0) {
            close_connection(c);
            return;
        }
    }
    if (c->closing && c->out.len == 0) close_connection(c);
}

static void accept_clients(int listener, int epoll_fd) {
    for (int i = 0; i < 64; ++i) {  // a bounded batch; the listener is level-triggered
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                perror("epoll_echo: accept");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // echoes are small replies
        struct connection* c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = c};
        if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close_connection(c);
            continue;
        }
        serve(c);  // the first line may already be there
    }
}

static int parse_arguments(int argc, char** argv, int* port) {
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            *port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
            const char* mode = argv[++i];
            if (strcmp(mode, "once") == 0)
                once_mode = 1;
            else if (strcmp(mode, "persistent") == 0)
                once_mode = 0;
            else
                return -1;
        } else if (argv[i][0] >= '0' && argv[i][0] <= '9')
            *port = atoi(argv[i]);
        else
            return -1;
    }
    return *port > 0 && *port < 65536 ? 0 : -1;
}

int main(int argc, char** argv) {
    int port = 2020;
    if (parse_arguments(argc, argv, &port) != 0) {
        fprintf(stderr, "usage: %s [PORT | --port N] [--mode once|persistent]\n", argv[0]);
        return 2;
    }
    struct rlimit limit;  // one descriptor per client: allow as many as the hard limit
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr*)&address, sizeof address) != 0 ||
        listen(listener, SOMAXCONN) != 0) {
        fprintf(stderr, "epoll_echo: bind 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 1;
    }
    int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event listen_event = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &listen_event);
    printf("127.0.0.1:%d\n", port);
    fflush(stdout);

    struct epoll_event events[max_events];
    for (;;) {
        int n = epoll_wait(epoll_fd, events, max_events, -1);
        for (int i = 0; i < n; ++i) {
            if (events[i].data.ptr == NULL)
                accept_clients(listener, epoll_fd);
            else
                serve(events[i].data.ptr);
        }
    }
}
