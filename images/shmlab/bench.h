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
};

/* set by SIGALRM at the --timeout deadline: ends spin loops, and (no SA_RESTART)
 * blocking calls return EINTR */
extern volatile sig_atomic_t g_expired;

/* bench.c */
long long mono_ns(void);
void emit_ready(const struct bopts *o);
void emit_result(const struct bopts *o, long long *s, long long n, long long elapsed_ns,
                 double bytes_per_op, int complete);

/* bench_shm.c: sysv-shm-spin/-futex, mmap-tmpfs/-disk, posix-shm; memcpy */
int run_memcpy(const struct bopts *o, struct err *e);
int shm_server(const struct bopts *o, struct err *e);
int shm_client(const struct bopts *o, long long *s, long long *n, long long *elapsed, struct err *e);

/* bench_stream.c: fifo, unix-socket, tcp-shared-netns, tcp-bridge */
int stream_server(const struct bopts *o, struct err *e);
int stream_client(const struct bopts *o, long long *s, long long *n, long long *elapsed, struct err *e);

#endif
