/* bench_stream.c - `shmlab bench` through the kernel: a FIFO pair and a Unix
 * socket on the shared directory, TCP over a shared network namespace or a
 * bridge. Stream loops (read_all/write_all), so any size up to 64 MiB works.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"


/* 1: got it all, 0: peer closed before the first byte, -1: error/deadline */
static int read_all(int fd, char *p, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t r = read(fd, p + got, len - got);

        if (r > 0)
            got += (size_t)r;
        else if (r == 0)
            return got == 0 ? 0 : -1;
        else if (errno != EINTR || g_expired || g_stop)
            return -1;
    }
    return 1;
}

static int write_all(int fd, const char *p, size_t len)
{
    size_t put = 0;

    while (put < len) {
        ssize_t r = write(fd, p + put, len - put);

        if (r > 0)
            put += (size_t)r;
        else if (r < 0 && (errno != EINTR || g_expired || g_stop))
            return -1;
    }
    return 0;
}

static int sock_err(struct err *e, const char *call)
{
    return err_sys(e, call, errno, g_expired ? SX_TIMEOUT : SX_OPEN);
}

static void tune_socket(int fd, int tcp)
{
    int one = 1, buf = 4 * 1024 * 1024;

    if (tcp)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* large messages should not be throttled by default buffer sizes */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
}

/* server: fds[0] to read requests, fds[1] to write answers; client the reverse */
static int stream_open(const struct bopts *o, int fds[2], char *path, size_t pathlen, struct err *e)
{
    int tcp = o->mech == M_TCP_NETNS || o->mech == M_TCP_BRIDGE;

    fds[0] = fds[1] = -1;
    path[0] = '\0';
    if (o->mech == M_FIFO) {
        char c2s[PATH_MAX], s2c[PATH_MAX];

        snprintf(c2s, sizeof c2s, "%s/bench.c2s", o->dir);
        snprintf(s2c, sizeof s2c, "%s/bench.s2c", o->dir);
        if (o->server) {
            if ((mkfifo(c2s, 0600) < 0 && errno != EEXIST) || (mkfifo(s2c, 0600) < 0 && errno != EEXIST))
                return sock_err(e, "mkfifo");
            snprintf(path, pathlen, "%s", o->dir);
            emit_ready(o);
            /* same open order on both sides (c2s, then s2c): no deadlock; the
             * deadline's SIGALRM interrupts a blocking open */
            if ((fds[0] = open(c2s, O_RDONLY)) < 0 || (fds[1] = open(s2c, O_WRONLY)) < 0)
                return sock_err(e, "open");
            unlink(c2s);
            unlink(s2c);
            path[0] = '\0';
            return 0;
        }
        while ((fds[1] = open(c2s, O_WRONLY)) < 0 && errno == ENOENT && !g_expired)
            sched_yield();
        if (fds[1] < 0 || (fds[0] = open(s2c, O_RDONLY)) < 0)
            return sock_err(e, "open");
        return 0;
    }
    if (o->server) {
        int ls, one = 1;

        if (tcp) {
            struct sockaddr_in a;

            memset(&a, 0, sizeof a);
            a.sin_family = AF_INET;
            a.sin_port = htons((uint16_t)o->port);
            a.sin_addr.s_addr = htonl(INADDR_ANY);
            if ((ls = socket(AF_INET, SOCK_STREAM, 0)) < 0)
                return sock_err(e, "socket");
            setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0) {
                close(ls);
                return sock_err(e, "bind");
            }
        } else {
            struct sockaddr_un a;

            memset(&a, 0, sizeof a);
            a.sun_family = AF_UNIX;
            snprintf(a.sun_path, sizeof a.sun_path, "%s/bench.sock", o->dir);
            unlink(a.sun_path);
            if ((ls = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
                return sock_err(e, "socket");
            if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0) {
                close(ls);
                return sock_err(e, "bind");
            }
            snprintf(path, pathlen, "%s", a.sun_path);
        }
        if (listen(ls, 1) < 0) {
            close(ls);
            return sock_err(e, "listen");
        }
        emit_ready(o);
        fds[0] = accept(ls, NULL, NULL);
        close(ls);
        if (path[0] != '\0') {
            unlink(path);
            path[0] = '\0';
        }
        if (fds[0] < 0)
            return sock_err(e, "accept");
        tune_socket(fds[0], tcp);
        fds[1] = fds[0];
        return 0;
    }
    for (;;) {
        int fd = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM, 0), r;

        if (fd < 0)
            return sock_err(e, "socket");
        if (tcp) {
            struct sockaddr_in a;

            memset(&a, 0, sizeof a);
            a.sin_family = AF_INET;
            a.sin_port = htons((uint16_t)o->port);
            if (inet_pton(AF_INET, o->host, &a.sin_addr) != 1) {
                close(fd);
                return err_msg(e, "inet_pton", EINVAL, SX_USAGE, "--host must be an IPv4 address, got '%s'", o->host);
            }
            r = connect(fd, (struct sockaddr *)&a, sizeof a);
        } else {
            struct sockaddr_un a;

            memset(&a, 0, sizeof a);
            a.sun_family = AF_UNIX;
            snprintf(a.sun_path, sizeof a.sun_path, "%s/bench.sock", o->dir);
            r = connect(fd, (struct sockaddr *)&a, sizeof a);
        }
        if (r == 0) {
            tune_socket(fd, tcp);
            fds[0] = fds[1] = fd;
            return 0;
        }
        close(fd);
        /* not listening yet: retry until the deadline */
        if ((errno != ENOENT && errno != ECONNREFUSED && errno != EINTR) || g_expired)
            return sock_err(e, "connect");
        sched_yield();
    }
}

static void stream_close(int fds[2], const char *path)
{
    if (fds[1] >= 0 && fds[1] != fds[0])
        close(fds[1]);
    if (fds[0] >= 0)
        close(fds[0]);
    if (path[0] != '\0')
        unlink(path);
}

int stream_server(const struct bopts *o, struct err *e)
{
    int fds[2], r = 1, rc = -1;
    char path[PATH_MAX];
    char *buf = malloc((size_t)o->size);
    long long seq = 0;

    if (buf == NULL)
        return err_msg(e, "malloc", ENOMEM, SX_USAGE, "out of memory%s", "");
    if (stream_open(o, fds, path, sizeof path, e) < 0)
        goto out;
    while ((r = read_all(fds[0], buf, (size_t)o->size)) == 1) {
        if (write_all(fds[1], buf, (size_t)o->size) < 0) {
            r = -1;
            break;
        }
        seq++;
    }
    if (r < 0 && !g_stop) {
        err_msg(e, "read", errno, g_expired ? SX_TIMEOUT : SX_OPEN, "stream broke after %lld round trips", seq);
        goto out;
    }
    rc = 0;
out:
    stream_close(fds, path);
    free(buf);
    if (rc == 0)
        emit_done(1, seq);
    return rc;
}

int stream_client(const struct bopts *o, struct timing *t, struct err *e)
{
    int fds[2], rc = -1;
    char path[PATH_MAX];
    char *buf = malloc((size_t)o->size);
    long long i, total = o->warmup + o->iters;

    if (buf == NULL)
        return err_msg(e, "malloc", ENOMEM, SX_USAGE, "out of memory%s", "");
    memset(buf, 0x33, (size_t)o->size);
    if (stream_open(o, fds, path, sizeof path, e) < 0)
        goto out;
    for (i = 0; i < total && !g_expired && !g_stop; i++) {
        uint32_t seq = (uint32_t)(i + 1);

        rt_begin(t, i);
        if (o->size >= 4)
            memcpy(buf, &seq, 4);
        if (write_all(fds[1], buf, (size_t)o->size) < 0 || read_all(fds[0], buf, (size_t)o->size) != 1)
            break;
        rt_end(t, i);
        if (o->size >= 4 && memcmp(buf, &seq, 4) != 0) {
            err_msg(e, "echo", EPROTO, SX_CHECK, "round trip %lld came back with other bytes", i + 1);
            goto out;
        }
    }
    timing_done(t);
    rc = 0;
out:
    stream_close(fds, path);
    free(buf);
    return rc;
}
