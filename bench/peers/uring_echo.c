// Line echo over raw io_uring (liburing 2.3): a good but straightforward design. One multishot
// accept, then per connection one operation in flight at a time: recv into the connection's
// buffer, send every complete line in it, recv again. No provided-buffer rings, no SQPOLL.
//
// usage: uring_echo [PORT | --port N] [--mode once|persistent]
//   once:       read one line, echo it, close (the seed's server)
//   persistent: echo every line until end of stream (the default)
// Listens on 127.0.0.1; each line is echoed with its "\n".

#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
    initial_buffer_bytes = 4096,  // one page: every connection has a recv posted into it
    max_line_bytes = 64 * 1024,  // longer lines close the connection (rill's default cap)
    ring_entries = 4096,
    completion_entries = 16384,  // ~20k idle connections may all complete at once
};

struct connection {
    int fd;
    int at_end;  // end of stream seen: close after the last send
    char* data;  // received bytes; [0, send_len) is being echoed
    size_t len, cap;
    size_t send_len, sent;
};

static int once_mode;
static struct io_uring ring;
// The accept's user_data: a connection pointer can never be this address.
static char accept_tag;

static struct io_uring_sqe* next_sqe(void) {
    struct io_uring_sqe* sqe;
    while (!(sqe = io_uring_get_sqe(&ring))) io_uring_submit(&ring);  // full: hand the batch over
    return sqe;
}

static void post_accept(int listener) {
    struct io_uring_sqe* sqe = next_sqe();
    io_uring_prep_multishot_accept(sqe, listener, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, &accept_tag);
}

static void post_recv(struct connection* c) {
    struct io_uring_sqe* sqe = next_sqe();
    io_uring_prep_recv(sqe, c->fd, c->data + c->len, c->cap - c->len, 0);
    io_uring_sqe_set_data(sqe, c);
}

static void post_send(struct connection* c) {
    struct io_uring_sqe* sqe = next_sqe();
    io_uring_prep_send(sqe, c->fd, c->data + c->sent, c->send_len - c->sent, MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, c);
}

static void close_connection(struct connection* c) {
    close(c->fd);
    free(c->data);
    free(c);
}

// After a recv: echo through the last complete line (the first, in once mode), or read more.
static void after_recv(struct connection* c) {
    char* end = once_mode ? memchr(c->data, '\n', c->len) : memrchr(c->data, '\n', c->len);
    if (end) {
        c->send_len = (size_t)(end - c->data) + 1;
        c->sent = 0;
        post_send(c);
        return;
    }
    if (c->len == c->cap) {
        if (c->cap >= max_line_bytes) {
            close_connection(c);
            return;
        }
        char* grown = realloc(c->data, c->cap * 2);
        if (!grown) {
            close_connection(c);
            return;
        }
        c->data = grown;
        c->cap *= 2;
    }
    post_recv(c);
}

static void on_completion(struct connection* c, int res) {
    if (c->send_len == 0) {  // a recv completed
        if (res < 0) {
            close_connection(c);
            return;
        }
        if (res == 0) {
            // At end of stream a last line without "\n" is still a line (as read-line has it).
            if (c->len == 0) {
                close_connection(c);
                return;
            }
            if (c->len == c->cap) {
                char* grown = realloc(c->data, c->cap + 1);
                if (!grown) {
                    close_connection(c);
                    return;
                }
                c->data = grown;
                c->cap += 1;
            }
            c->data[c->len++] = '\n';
            c->at_end = 1;
        } else {
            c->len += (size_t)res;
        }
        after_recv(c);
        return;
    }
    if (res <= 0) {
        close_connection(c);
        return;
    }  // a send failed
    c->sent += (size_t)res;
    if (c->sent < c->send_len) {
        post_send(c);
        return;
    }
    if (once_mode || c->at_end) {
        close_connection(c);
        return;
    }
    memmove(c->data, c->data + c->send_len, c->len - c->send_len);
    c->len -= c->send_len;
    c->send_len = 0;
    post_recv(c);  // the tail holds no "\n": we sent through the last one
}

static void on_accept(int listener, struct io_uring_cqe* cqe) {
    if (!(cqe->flags & IORING_CQE_F_MORE)) post_accept(listener);  // the multishot ended: re-arm
    if (cqe->res < 0) return;
    int fd = cqe->res, one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // echoes are small replies
    struct connection* c = calloc(1, sizeof *c);
    char* data = malloc(initial_buffer_bytes);
    if (!c || !data) {
        free(c);
        free(data);
        close(fd);
        return;
    }
    c->fd = fd;
    c->data = data;
    c->cap = initial_buffer_bytes;
    post_recv(c);
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

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr*)&address, sizeof address) != 0 ||
        listen(listener, SOMAXCONN) != 0) {
        fprintf(stderr, "uring_echo: bind 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 1;
    }

    // One thread submits and reaps: SINGLE_ISSUER + DEFER_TASKRUN (6.1) run completion work only
    // when we wait, with no interrupts; older kernels refuse the flags, so fall back to none.
    struct io_uring_params params = {.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
                                              IORING_SETUP_DEFER_TASKRUN,
                                     .cq_entries = completion_entries};
    int rc = io_uring_queue_init_params(ring_entries, &ring, &params);
    if (rc == -EINVAL) {
        params = (struct io_uring_params){.flags = IORING_SETUP_CQSIZE,
                                          .cq_entries = completion_entries};
        rc = io_uring_queue_init_params(ring_entries, &ring, &params);
    }
    if (rc < 0) {
        fprintf(stderr, "uring_echo: io_uring_queue_init: %s\n", strerror(-rc));
        return 1;
    }
    post_accept(listener);
    printf("127.0.0.1:%d\n", port);
    fflush(stdout);

    for (;;) {
        io_uring_submit_and_wait(&ring, 1);
        struct io_uring_cqe* cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            ++seen;
            void* tag = io_uring_cqe_get_data(cqe);
            if (tag == &accept_tag)
                on_accept(listener, cqe);
            else
                on_completion(tag, cqe->res);
        }
        io_uring_cq_advance(&ring, seen);
    }
}
