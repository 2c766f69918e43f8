/* bench.h - internals shared by the `shmlab bench` files (not a public interface):
 * bench.c (options, timing, statistics, dispatch), bench_shm.c (shared-memory
 * mechanisms and the memcpy reference), bench_stream.c (fifo, unix socket, tcp).
 */
#ifndef SHMLAB_BENCH_H
#define SHMLAB_BENCH_H

#include <signal.h>

#include "shmlab.h"

enum mech { M_SPIN, M_FUTEX, M_MMAP_TMPFS, M_MMAP_DISK, M_POSIX, M_FIFO, M_UNIX, M_TCP_NETNS, M_TCP_BRIDGE, M_MEMCPY };

extern const char *const mech_names[]; /* indexed by enum mech: the JSON names */

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
    long long batch; /* round trips per timed sample; 0: chosen from the clock's tick */
};

/* Round-trip timing of a client loop. One sample is the mean of `batch` round
 * trips timed together, so that one tick of the clock is under 1 % of what a
 * sample measures (a 64 B shared-memory round trip is only ~10 ticks of a
 * 10-20 ns clock). The warm-up round trips are timed one by one to choose it. */
struct timing {
    long long *s;        /* samples, ns per round trip; room for o->iters */
    long long n;         /* samples taken */
    long long warmup;    /* round trips before the first sample */
    long long batch;     /* round trips per sample (0 until the warm-up ends) */
    long long want;      /* --batch, 0 = auto */
    long long iters;     /* measured round trips wanted */
    long long warm_min;  /* fastest warm-up round trip, ns */
    long long t0, t_start, elapsed;
};

/* set by SIGALRM at the --timeout deadline: ends spin loops, and (no SA_RESTART)
 * blocking calls return EINTR */
extern volatile sig_atomic_t g_expired;

/* bench.c */
long long mono_ns(void);
extern long long g_clock_tick_ns; /* smallest step CLOCK_MONOTONIC was seen to take */
void timing_init(struct timing *t, const struct bopts *o, long long *s);
void rt_begin(struct timing *t, long long i);
void rt_end(struct timing *t, long long i);
void timing_done(struct timing *t);
void emit_ready(const struct bopts *o);
void emit_result(const struct bopts *o, long long *s, long long n, long long elapsed_ns,
                 double bytes_per_op, int complete, long long batch);

/* bench_shm.c: sysv-shm-spin/-futex, mmap-tmpfs/-disk, posix-shm; memcpy */
int run_memcpy(const struct bopts *o, struct err *e);
int shm_server(const struct bopts *o, struct err *e);
int shm_client(const struct bopts *o, struct timing *t, struct err *e);

/* bench_stream.c: fifo, unix-socket, tcp-shared-netns, tcp-bridge */
int stream_server(const struct bopts *o, struct err *e);
int stream_client(const struct bopts *o, struct timing *t, struct err *e);

#endif
