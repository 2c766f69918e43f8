/* bench.c - `shmlab bench`: ping-pong round trips between a server and a client
 * over one IPC mechanism, plus a single-core memcpy bandwidth reference.
 *
 * shmlab bench --role server|client|memcpy --mech MECH --size BYTES
 *              [--iters N] [--warmup N] [--timeout D] [--pin CPU]
 *              [--dir PATH] [--key K] [--name /NAME] [--host IPV4] [--port P]
 *
 * Every round trip copies `size` bytes each way: the client copies its message
 * into the shared buffer (or writes it), the server copies it out, copies its
 * answer in, the client copies the answer out. Shared-memory mechanisms signal
 * with a sequence number in a cache line of its own (spinning, or futex
 * wait/wake for sysv-shm-futex); the others move the bytes through the kernel.
 * The client times each round trip with CLOCK_MONOTONIC and prints one `result`
 * event (median, p99, msgs/s, bytes/s). Runs are bounded by --iters and by the
 * --timeout deadline (SIGALRM cuts blocking calls and spin loops short).
 *
 * Exit codes: 0 ok, 2 usage, 10/11/13 shmget/shmat/shmctl, 20 open/mkfifo/
 * socket calls, 21 ftruncate, 22 mmap, 25 shm_open, 30 timeout, 31 echo check.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shmlab.h"

#define BENCH_MAGIC 0x4c414243u /* "LABC" */
#define LINE 64
#define PAGE 4096
#define MAX_ITERS 10000000LL
#define MAX_SIZE (64LL * 1024 * 1024)

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define cpu_relax() __asm__ __volatile__("" ::: "memory")
#endif

/* ==== options ==== */

enum mech { M_SPIN, M_FUTEX, M_MMAP_TMPFS, M_MMAP_DISK, M_POSIX, M_FIFO, M_UNIX, M_TCP_NETNS, M_TCP_BRIDGE, M_MEMCPY };

static const char *const mech_names[] = {
    "sysv-shm-spin", "sysv-shm-futex", "mmap-tmpfs", "mmap-disk", "posix-shm",
    "fifo", "unix-socket", "tcp-shared-netns", "tcp-bridge", "memcpy",
};

struct bopts {
    int server;
    int memcpy_only;
    enum mech mech;
    long long size;
    long long iters;
    long long warmup;
    long long timeout_ms;
    long long pin; /* -1: not pinned */
    const char *dir;
    long long key;
    const char *name;
    const char *host;
    long long port;
};

/* the shared region: one cache line per signalling word, payload from PAGE on */
struct hdr {
    _Alignas(LINE) uint32_t magic;
    uint32_t size;
    uint32_t attached;
    uint32_t done;
    _Alignas(LINE) uint32_t ping; /* client -> server sequence number */
    _Alignas(LINE) uint32_t pong; /* server -> client sequence number */
};

static volatile sig_atomic_t g_expired;

static void on_deadline(int sig)
{
    (void)sig;
    g_expired = 1;
}

static int is_shm(enum mech m)
{
    return m == M_SPIN || m == M_FUTEX || m == M_MMAP_TMPFS || m == M_MMAP_DISK || m == M_POSIX;
}

static long long bench_usage(const char *fmt, const char *a)
{
    struct err e;

    err_msg(&e, "usage", EINVAL, SX_USAGE, fmt, a);
    return emit_error(&e);
}

static int parse_num(const char *s, long long *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 0);
    if (errno != 0 || end == s || v < -1)
        return -1;
    if (strcmp(end, "ms") == 0)
        end += 2;
    else if (strcmp(end, "s") == 0)
        v *= 1000, end++;
    else if (*end == 'k' || *end == 'K')
        v *= 1024, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1024 * 1024, end++;
    if (*end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int parse_bench(int argc, char **argv, struct bopts *o)
{
    static const char *const num_names[] = { "size", "iters", "warmup", "timeout", "pin", "key", "port" };
    long long *num_slots[] = { &o->size, &o->iters, &o->warmup, &o->timeout_ms, &o->pin, &o->key, &o->port };
    const char *role = NULL, *mech = NULL;
    int i;
    size_t k;

    memset(o, 0, sizeof *o);
    o->size = 64;
    o->iters = 10000;
    o->warmup = 1000;
    o->timeout_ms = 20000;
    o->pin = -1;
    o->key = 0x4c616201;
    o->name = "/labctl-bench";
    o->host = "127.0.0.1";
    o->port = 47000;
    o->dir = "/bench";
    for (i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int done = 0;

        if (strncmp(a, "--", 2) != 0 || v == NULL)
            return (int)bench_usage("expected --option VALUE, got '%s'", a);
        a += 2;
        i++;
        if (strcmp(a, "role") == 0)
            role = v, done = 1;
        else if (strcmp(a, "mech") == 0)
            mech = v, done = 1;
        else if (strcmp(a, "dir") == 0)
            o->dir = v, done = 1;
        else if (strcmp(a, "name") == 0)
            o->name = v, done = 1;
        else if (strcmp(a, "host") == 0)
            o->host = v, done = 1;
        for (k = 0; !done && k < sizeof num_names / sizeof num_names[0]; k++)
            if (strcmp(a, num_names[k]) == 0) {
                if (parse_num(v, num_slots[k]) < 0)
                    return (int)bench_usage("bad number '%s'", v);
                done = 1;
            }
        if (!done)
            return (int)bench_usage("unknown option --%s", a);
    }
    if (role == NULL || (strcmp(role, "server") != 0 && strcmp(role, "client") != 0 && strcmp(role, "memcpy") != 0))
        return (int)bench_usage("--role must be server, client or memcpy%s", "");
    o->server = strcmp(role, "server") == 0;
    o->memcpy_only = strcmp(role, "memcpy") == 0;
    o->mech = M_MEMCPY;
    for (k = 0; mech != NULL && k < sizeof mech_names / sizeof mech_names[0]; k++)
        if (strcmp(mech, mech_names[k]) == 0)
            o->mech = (enum mech)k;
    if (!o->memcpy_only && (mech == NULL || o->mech == M_MEMCPY))
        return (int)bench_usage("unknown --mech '%s'", mech ? mech : "");
    if (o->size < 1 || o->size > MAX_SIZE || o->iters < 1 || o->iters > MAX_ITERS || o->warmup < 0 ||
        o->timeout_ms < 1 || o->port < 1 || o->port > 65535)
        return (int)bench_usage("--size, --iters, --warmup, --timeout or --port out of range%s", "");
    return 0;
}

/* ==== time, pinning, statistics ==== */

static long long mono_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int pin_to(long long cpu, struct err *e)
{
    cpu_set_t set;

    if (cpu < 0)
        return 0;
    CPU_ZERO(&set);
    CPU_SET((int)cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) < 0)
        return err_sys(e, "sched_setaffinity", errno, SX_USAGE);
    return 0;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return (x > y) - (x < y);
}

static void emit_result(const struct bopts *o, long long *s, long long n, long long elapsed_ns,
                        double bytes_per_op, int complete)
{
    struct ev e;
    long long p99i, sum = 0, i, median;
    double ops, typical;

    qsort(s, (size_t)n, sizeof *s, cmp_ll);
    for (i = 0; i < n; i++)
        sum += s[i];
    /* nearest-rank percentiles: the value below which that share of samples lie */
    p99i = (n * 99 + 99) / 100 - 1;
    median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    /* rates of a typical (median) round trip; the *_sustained rates include every
     * stall (preemption, interrupts) of the timed loop */
    typical = median > 0 ? 1e9 / (double)median : 0.0;
    ops = elapsed_ns > 0 ? (double)n * 1e9 / (double)elapsed_ns : 0.0;
    ev_begin(&e, "result");
    ev_str(&e, "mechanism", mech_names[o->mech]);
    ev_int(&e, "size", o->size);
    ev_int(&e, "iterations", n);
    ev_int(&e, "warmup", o->warmup);
    ev_int(&e, "rtt_ns_median", median);
    ev_int(&e, "rtt_ns_p99", s[p99i < 0 ? 0 : p99i]);
    ev_int(&e, "rtt_ns_min", s[0]);
    ev_int(&e, "rtt_ns_max", s[n - 1]);
    ev_int(&e, "rtt_ns_mean", sum / n);
    ev_int(&e, "elapsed_ns", elapsed_ns);
    ev_int(&e, "msgs_per_s", (long long)(typical + 0.5));
    ev_int(&e, "bytes_per_s", (long long)(typical * bytes_per_op + 0.5));
    ev_int(&e, "msgs_per_s_sustained", (long long)(ops + 0.5));
    ev_int(&e, "bytes_per_s_sustained", (long long)(ops * bytes_per_op + 0.5));
    ev_bool(&e, "pinned", o->pin >= 0);
    ev_int(&e, "cpu", sched_getcpu());
    ev_bool(&e, "complete", complete);
    ev_emit(&e);
}

/* ==== memcpy reference ==== */

static int run_memcpy(const struct bopts *o, struct err *e)
{
    size_t sz = (size_t)o->size;
    char *src = malloc(sz), *dst = malloc(sz);
    long long *s = calloc((size_t)o->iters, sizeof *s);
    long long i, n = 0, t0, t_start;
    int rc = -1;

    if (src == NULL || dst == NULL || s == NULL) {
        err_msg(e, "malloc", ENOMEM, SX_USAGE, "cannot allocate %lld bytes", o->size);
        goto out;
    }
    memset(src, 0x5a, sz);
    memset(dst, 0, sz);
    for (i = 0; i < o->warmup && !g_expired; i++) {
        memcpy(dst, src, sz);
        __asm__ __volatile__("" : : "r"(dst) : "memory"); /* keep the copy */
    }
    t_start = mono_ns();
    for (i = 0; i < o->iters && !g_expired; i++) {
        t0 = mono_ns();
        memcpy(dst, src, sz);
        __asm__ __volatile__("" : : "r"(dst) : "memory");
        s[n++] = mono_ns() - t0;
    }
    if (n == 0) {
        err_msg(e, "deadline", ETIMEDOUT, SX_TIMEOUT, "no iteration before the deadline%s", "");
        goto out;
    }
    emit_result(o, s, n, mono_ns() - t_start, (double)o->size, n == o->iters);
    rc = 0;
out:
    free(src);
    free(dst);
    free(s);
    return rc;
}

/* ==== shared-memory regions ==== */

struct region {
    struct hdr *h;
    char *req;
    char *resp;
    size_t len;
    int shmid;   /* sysv, else -1 */
    char path[PATH_MAX]; /* file or shm name to unlink, "" if none */
    int posix;
};

static size_t region_len(long long size)
{
    size_t buf = ((size_t)size + PAGE - 1) / PAGE * PAGE;

    return PAGE + 2 * buf;
}

static void region_layout(struct region *r, long long size)
{
    size_t buf = ((size_t)size + PAGE - 1) / PAGE * PAGE;

    r->req = (char *)r->h + PAGE;
    r->resp = r->req + buf;
}

/* create (server) or open (client) the backing object; the client retries
 * until the server made it, bounded by the deadline */
static int region_open(const struct bopts *o, struct region *r, struct err *e)
{
    size_t len = region_len(o->size);
    int fd = -1, flags = o->server ? O_RDWR | O_CREAT | O_EXCL : O_RDWR;
    void *p;

    memset(r, 0, sizeof *r);
    r->shmid = -1;
    r->len = len;
    if (o->mech == M_SPIN || o->mech == M_FUTEX) {
        for (;;) {
            r->shmid = shmget((key_t)o->key, o->server ? len : 0, o->server ? 0600 | IPC_CREAT | IPC_EXCL : 0);
            if (r->shmid >= 0 || o->server || errno != ENOENT || g_expired)
                break;
            sched_yield();
        }
        if (r->shmid < 0)
            return err_sys(e, "shmget", errno, g_expired ? SX_TIMEOUT : SX_SHMGET);
        p = shmat(r->shmid, NULL, 0);
        if (p == (void *)-1)
            return err_sys(e, "shmat", errno, SX_SHMAT);
        r->h = p;
        region_layout(r, o->size);
        return 0;
    }
    r->posix = o->mech == M_POSIX;
    if (r->posix)
        snprintf(r->path, sizeof r->path, "%s", o->name);
    else
        snprintf(r->path, sizeof r->path, "%s/bench.map", o->dir);
    for (;;) {
        fd = r->posix ? shm_open(r->path, flags, 0600) : open(r->path, flags, 0600);
        if (fd >= 0 || o->server || errno != ENOENT || g_expired)
            break;
        sched_yield();
    }
    if (fd < 0)
        return err_sys(e, r->posix ? "shm_open" : "open", errno,
                       g_expired ? SX_TIMEOUT : r->posix ? SX_SHM_OPEN : SX_OPEN);
    if (o->server && ftruncate(fd, (off_t)len) < 0) {
        err_sys(e, "ftruncate", errno, SX_FTRUNCATE);
        close(fd);
        return -1;
    }
    /* the client may open the file between creation and ftruncate: wait for
     * the full length, or mapping it would SIGBUS on the first touch */
    while (!o->server && !g_expired) {
        struct stat st;

        if (fstat(fd, &st) == 0 && (size_t)st.st_size >= len)
            break;
        sched_yield();
    }
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return err_sys(e, "mmap", errno, SX_MMAP);
    r->h = p;
    region_layout(r, o->size);
    if (!o->server)
        r->path[0] = '\0'; /* only the creator unlinks */
    return 0;
}

/* remove the name as soon as both sides are attached: nothing outlives a crash */
static void region_unlink(struct region *r)
{
    if (r->shmid >= 0)
        shmctl(r->shmid, IPC_RMID, NULL);
    if (r->path[0] != '\0') {
        if (r->posix)
            shm_unlink(r->path);
        else
            unlink(r->path);
        r->path[0] = '\0';
    }
}

static void region_close(struct region *r, int creator)
{
    if (creator)
        region_unlink(r);
    if (r->h == NULL)
        return;
    if (r->shmid >= 0)
        shmdt(r->h);
    else
        munmap(r->h, r->len);
    r->h = NULL;
}

static long futex(uint32_t *w, int op, uint32_t val, const struct timespec *ts)
{
    /* no FUTEX_PRIVATE_FLAG: the waiter and the waker are different processes */
    return syscall(SYS_futex, w, op, val, ts, NULL, 0);
}

/* wait until *w == want; 0, or -1 when the peer finished, a signal or the deadline came */
static int wait_word(uint32_t *w, uint32_t want, int use_futex, uint32_t *done)
{
    static const struct timespec slice = { 0, 100000000L }; /* re-check the deadline */
    unsigned spins = 0;

    for (;;) {
        uint32_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE);

        if (v == want)
            return 0;
        if (g_expired || g_stop)
            return -1;
        if (use_futex) {
            if (done != NULL && __atomic_load_n(done, __ATOMIC_ACQUIRE))
                return -1;
            futex(w, FUTEX_WAIT, v, &slice);
        } else {
            cpu_relax();
            if (done != NULL && (++spins & 1023) == 0 && __atomic_load_n(done, __ATOMIC_ACQUIRE))
                return -1;
        }
    }
}

static void post_word(uint32_t *w, uint32_t v, int use_futex)
{
    __atomic_store_n(w, v, __ATOMIC_RELEASE);
    if (use_futex)
        futex(w, FUTEX_WAKE, 1, NULL);
}

static void emit_ready(const struct bopts *o)
{
    struct ev ev;

    ev_begin(&ev, "ready");
    ev_str(&ev, "mechanism", mech_names[o->mech]);
    ev_int(&ev, "size", o->size);
    ev_bool(&ev, "pinned", o->pin >= 0);
    ev_emit(&ev);
}

static int shm_server(const struct bopts *o, struct err *e)
{
    struct region r;
    int fx = o->mech == M_FUTEX, rc = -1;
    char *local = malloc((size_t)o->size);
    uint32_t seq = 0;

    if (local == NULL)
        return err_msg(e, "malloc", ENOMEM, SX_USAGE, "out of memory%s", "");
    if (region_open(o, &r, e) < 0) {
        free(local);
        return -1;
    }
    r.h->size = (uint32_t)o->size;
    __atomic_store_n(&r.h->magic, BENCH_MAGIC, __ATOMIC_RELEASE);
    emit_ready(o);
    if (wait_word(&r.h->attached, 1, fx, NULL) < 0)
        goto timeout;
    region_unlink(&r);
    for (;;) {
        if (wait_word(&r.h->ping, seq + 1, fx, &r.h->done) < 0)
            break;
        seq++;
        memcpy(local, r.req, (size_t)o->size);
        memcpy(r.resp, local, (size_t)o->size);
        post_word(&r.h->pong, seq, fx);
    }
    if (!__atomic_load_n(&r.h->done, __ATOMIC_ACQUIRE) && !g_stop)
        goto timeout;
    rc = 0;
    goto out;
timeout:
    err_msg(e, "deadline", ETIMEDOUT, SX_TIMEOUT, "deadline passed after %u round trips", seq);
out:
    region_close(&r, 1);
    free(local);
    if (rc == 0)
        emit_done(1, seq);
    return rc;
}

static int shm_client(const struct bopts *o, long long *s, long long *n, long long *elapsed, struct err *e)
{
    struct region r;
    int fx = o->mech == M_FUTEX;
    char *local = malloc((size_t)o->size);
    long long i, total = o->warmup + o->iters, t0, t_start = 0;
    int rc = -1;

    if (local == NULL)
        return err_msg(e, "malloc", ENOMEM, SX_USAGE, "out of memory%s", "");
    memset(local, 0x33, (size_t)o->size);
    if (region_open(o, &r, e) < 0) {
        free(local);
        return -1;
    }
    if (wait_word(&r.h->magic, BENCH_MAGIC, 0, NULL) < 0 || r.h->size != (uint32_t)o->size) {
        err_msg(e, "attach", EPROTO, SX_TIMEOUT, "the server's region is not ready or of another size%s", "");
        goto out;
    }
    post_word(&r.h->attached, 1, fx);
    for (i = 0; i < total; i++) {
        uint32_t seq = (uint32_t)(i + 1);

        if (i == o->warmup)
            t_start = mono_ns();
        t0 = mono_ns();
        if (o->size >= 4)
            memcpy(local, &seq, 4); /* the server echoes it: proof the bytes went round */
        memcpy(r.req, local, (size_t)o->size);
        post_word(&r.h->ping, seq, fx);
        if (wait_word(&r.h->pong, seq, fx, NULL) < 0)
            break;
        memcpy(local, r.resp, (size_t)o->size);
        if (i >= o->warmup)
            s[(*n)++] = mono_ns() - t0;
        if (o->size >= 4 && memcmp(local, &seq, 4) != 0) {
            err_msg(e, "echo", EPROTO, SX_CHECK, "round trip %lld came back with other bytes", i + 1);
            goto out;
        }
    }
    *elapsed = mono_ns() - t_start;
    rc = 0;
out:
    post_word(&r.h->done, 1, 0);
    if (fx)
        futex(&r.h->ping, FUTEX_WAKE, 1, NULL);
    region_close(&r, 0);
    free(local);
    return rc;
}

/* ==== stream mechanisms: fifo, unix socket, tcp ==== */

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

static int stream_server(const struct bopts *o, struct err *e)
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

static int stream_client(const struct bopts *o, long long *s, long long *n, long long *elapsed, struct err *e)
{
    int fds[2], rc = -1;
    char path[PATH_MAX];
    char *buf = malloc((size_t)o->size);
    long long i, total = o->warmup + o->iters, t0, t_start = 0;

    if (buf == NULL)
        return err_msg(e, "malloc", ENOMEM, SX_USAGE, "out of memory%s", "");
    memset(buf, 0x33, (size_t)o->size);
    if (stream_open(o, fds, path, sizeof path, e) < 0)
        goto out;
    for (i = 0; i < total && !g_expired && !g_stop; i++) {
        uint32_t seq = (uint32_t)(i + 1);

        if (i == o->warmup)
            t_start = mono_ns();
        t0 = mono_ns();
        if (o->size >= 4)
            memcpy(buf, &seq, 4);
        if (write_all(fds[1], buf, (size_t)o->size) < 0 || read_all(fds[0], buf, (size_t)o->size) != 1)
            break;
        if (i >= o->warmup)
            s[(*n)++] = mono_ns() - t0;
        if (o->size >= 4 && memcmp(buf, &seq, 4) != 0) {
            err_msg(e, "echo", EPROTO, SX_CHECK, "round trip %lld came back with other bytes", i + 1);
            goto out;
        }
    }
    *elapsed = mono_ns() - t_start;
    rc = 0;
out:
    stream_close(fds, path);
    free(buf);
    return rc;
}

/* ==== entry ==== */

int cmd_bench(int argc, char **argv)
{
    struct bopts o;
    struct err e;
    struct sigaction sa;
    struct itimerval it;
    long long *s = NULL, n = 0, elapsed = 0;
    int rc;

    out_init("bench", 0);
    if ((rc = parse_bench(argc, argv, &o)) != 0)
        return rc;
    out_init(o.memcpy_only ? "memcpy" : o.server ? "server" : "client", 0);
    emit_start(argc, argv);
    /* the deadline: SIGALRM without SA_RESTART interrupts blocking opens,
     * accepts and reads, and the flag ends spin loops */
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_deadline;
    sigaction(SIGALRM, &sa, NULL);
    memset(&it, 0, sizeof it);
    it.it_value.tv_sec = (time_t)(o.timeout_ms / 1000);
    it.it_value.tv_usec = (suseconds_t)(o.timeout_ms % 1000) * 1000;
    setitimer(ITIMER_REAL, &it, NULL);
    if (pin_to(o.pin, &e) < 0)
        return emit_error(&e);
    if (o.memcpy_only) {
        rc = run_memcpy(&o, &e);
        return rc < 0 ? emit_error(&e) : emit_done(0, 0);
    }
    if (o.server) {
        rc = is_shm(o.mech) ? shm_server(&o, &e) : stream_server(&o, &e);
        return rc < 0 ? emit_error(&e) : SX_OK;
    }
    s = calloc((size_t)o.iters, sizeof *s);
    if (s == NULL) {
        err_msg(&e, "malloc", ENOMEM, SX_USAGE, "cannot hold %lld samples", o.iters);
        return emit_error(&e);
    }
    rc = is_shm(o.mech) ? shm_client(&o, s, &n, &elapsed, &e) : stream_client(&o, s, &n, &elapsed, &e);
    if (rc == 0 && n == 0)
        rc = err_msg(&e, "deadline", ETIMEDOUT, SX_TIMEOUT, "no measured round trip before the deadline%s", "");
    if (rc == 0) {
        /* both directions carry `size` bytes */
        emit_result(&o, s, n, elapsed, 2.0 * (double)o.size, n == o.iters);
        rc = emit_done(1, n);
    } else {
        rc = emit_error(&e);
    }
    free(s);
    return rc;
}
