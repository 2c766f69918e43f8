/* bench.c - `shmlab bench`: ping-pong round trips between a server and a client
 * over one IPC mechanism, plus a single-core memcpy bandwidth reference.
 *
 * shmlab bench --role server|client|memcpy --mech MECH --size BYTES
 *              [--iters N] [--warmup N] [--timeout D] [--pin CPU]
 *              [--dir PATH] [--key K] [--name /NAME] [--host IPV4] [--port P]
 *              [--batch N]
 *
 * Every round trip copies `size` bytes each way: the client copies its message
 * into the shared buffer (or writes it), the server copies it out, copies its
 * answer in, the client copies the answer out. Shared-memory mechanisms signal
 * with a sequence number in a cache line of its own (spinning, or futex
 * wait/wake for sysv-shm-futex); the others move the bytes through the kernel.
 * The client times batches of --batch round trips with CLOCK_MONOTONIC (0, the
 * default: as many as make one clock tick <= 1 % of a sample, measured on the
 * warm-up) and prints one `result` event (median, p99 of the per-batch means,
 * msgs/s, bytes/s, the batch and the clock's tick). Runs are bounded by --iters and by the
 * --timeout deadline (SIGALRM cuts blocking calls and spin loops short).
 *
 * Exit codes: 0 ok, 2 usage, 10/11/13 shmget/shmat/shmctl, 20 open/mkfifo/
 * socket calls, 21 ftruncate, 22 mmap, 25 shm_open, 30 timeout, 31 echo check.
 *
 * This file: options, timing, statistics and dispatch. The mechanisms live in
 * bench_shm.c (shared memory, memcpy) and bench_stream.c (fifo, sockets, tcp);
 * bench.h holds what they share.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "bench.h"

#define MAX_ITERS 10000000LL
#define MAX_SIZE (64LL * 1024 * 1024)
#define MAX_BATCH 4096LL
#define TICK_SHARE 100LL /* a sample spans at least this many clock ticks: one tick is <= 1 % */

/* ==== options ==== */

const char *const mech_names[] = {
    "sysv-shm-spin", "sysv-shm-futex", "mmap-tmpfs", "mmap-disk", "posix-shm",
    "fifo", "unix-socket", "tcp-shared-netns", "tcp-bridge", "memcpy",
};

volatile sig_atomic_t g_expired;

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

/* An integer option (--iters, --warmup, --pin, --key in any C base, --port, --batch); --size
 * and --timeout take the size and duration grammars of every shmlab command (units.c). */
static int parse_num(const char *name, const char *s, long long *out)
{
    char *end;
    long long v;

    if (strcmp(name, "size") == 0)
        return units_size(s, out);
    if (strcmp(name, "timeout") == 0)
        return units_duration_ms(s, out);
    errno = 0;
    v = strtoll(s, &end, 0);
    if (errno != 0 || end == s || v < -1 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int parse_bench(int argc, char **argv, struct bopts *o)
{
    static const char *const num_names[] = { "size", "iters", "warmup", "timeout", "pin", "key", "port", "batch" };
    long long *num_slots[] = { &o->size, &o->iters, &o->warmup, &o->timeout_ms, &o->pin, &o->key, &o->port,
                               &o->batch };
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
                if (parse_num(num_names[k], v, num_slots[k]) < 0)
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
        o->timeout_ms < 1 || o->port < 1 || o->port > 65535 || o->batch < 0 || o->batch > MAX_BATCH)
        return (int)bench_usage("--size, --iters, --warmup, --timeout, --port or --batch out of range%s", "");
    return 0;
}

/* ==== time, pinning, statistics, events ==== */

long long mono_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

long long g_clock_tick_ns = 1;

/* The clock's real step: the smallest non-zero difference between back-to-back
 * reads (clock_getres says 1 ns on most kernels whatever the clocksource does). */
static long long clock_tick(void)
{
    long long best = 0, a, b;
    int k;

    for (k = 0; k < 2000; k++) {
        a = mono_ns();
        do
            b = mono_ns();
        while (b == a);
        if (best == 0 || b - a < best)
            best = b - a;
    }
    return best > 0 ? best : 1;
}

void timing_init(struct timing *t, const struct bopts *o, long long *s)
{
    memset(t, 0, sizeof *t);
    t->s = s;
    t->warmup = o->warmup;
    t->want = o->batch;
    t->iters = o->iters;
}

/* round trip i (warm-up included) is about to start */
void rt_begin(struct timing *t, long long i)
{
    if (i == t->warmup) {
        long long b = t->want;

        if (b == 0) {
            long long rtt = t->warm_min > 0 ? t->warm_min : 1;

            b = (TICK_SHARE * g_clock_tick_ns + rtt - 1) / rtt;
            if (b > t->iters / 100)
                b = t->iters / 100; /* keep at least 100 samples */
        }
        t->batch = b < 1 ? 1 : b > MAX_BATCH ? MAX_BATCH : b;
        t->t_start = mono_ns();
    }
    if (i < t->warmup || (i - t->warmup) % t->batch == 0)
        t->t0 = mono_ns();
}

/* round trip i has come back */
void rt_end(struct timing *t, long long i)
{
    long long d;

    if (i < t->warmup) {
        d = mono_ns() - t->t0;
        if (d > 0 && (t->warm_min == 0 || d < t->warm_min))
            t->warm_min = d;
        return;
    }
    if ((i - t->warmup + 1) % t->batch == 0)
        t->s[t->n++] = (mono_ns() - t->t0 + t->batch / 2) / t->batch;
}

void timing_done(struct timing *t)
{
    if (t->batch == 0)
        t->batch = 1; /* ended during the warm-up */
    t->elapsed = t->t_start ? mono_ns() - t->t_start : 0;
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

void emit_result(const struct bopts *o, long long *s, long long n, long long elapsed_ns,
                 double bytes_per_op, int complete, long long batch)
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
    ops = elapsed_ns > 0 ? (double)(n * batch) * 1e9 / (double)elapsed_ns : 0.0;
    ev_begin(&e, "result");
    ev_str(&e, "mechanism", mech_names[o->mech]);
    ev_int(&e, "size", o->size);
    ev_int(&e, "iterations", n * batch);
    ev_int(&e, "samples", n);
    ev_int(&e, "batch", batch);
    ev_int(&e, "clock_tick_ns", g_clock_tick_ns);
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

void emit_ready(const struct bopts *o)
{
    struct ev ev;

    ev_begin(&ev, "ready");
    ev_str(&ev, "mechanism", mech_names[o->mech]);
    ev_int(&ev, "size", o->size);
    ev_bool(&ev, "pinned", o->pin >= 0);
    ev_emit(&ev);
}

/* ==== entry ==== */

int cmd_bench(int argc, char **argv)
{
    struct bopts o;
    struct err e;
    struct sigaction sa;
    struct itimerval it;
    long long *s = NULL;
    struct timing t;
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
    g_clock_tick_ns = clock_tick();
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
    timing_init(&t, &o, s);
    rc = is_shm(o.mech) ? shm_client(&o, &t, &e) : stream_client(&o, &t, &e);
    if (rc == 0 && t.n == 0)
        rc = err_msg(&e, "deadline", ETIMEDOUT, SX_TIMEOUT, "no measured round trip before the deadline%s", "");
    if (rc == 0) {
        /* both directions carry `size` bytes */
        emit_result(&o, s, t.n, t.elapsed, 2.0 * (double)o.size, t.n * t.batch == o.iters - o.iters % t.batch,
                    t.batch);
        rc = emit_done(1, t.n * t.batch);
    } else {
        rc = emit_error(&e);
    }
    free(s);
    return rc;
}
