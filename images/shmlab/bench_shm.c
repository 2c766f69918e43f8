/* bench_shm.c - `shmlab bench` over shared memory: SysV shm (spinning on a
 * flag, or blocking on a futex), a mapped file (tmpfs or disk) and POSIX shm,
 * plus the single-core memcpy reference. The server creates the region, the
 * client attaches; each signals the other with a sequence number in a cache
 * line of its own (bench.c has the options and the statistics).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define BENCH_MAGIC 0x4c414243u /* "LABC" */
#define LINE 64
#define PAGE 4096

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define cpu_relax() __asm__ __volatile__("" ::: "memory")
#endif

/* the shared region: one cache line per signalling word, payload from PAGE on */
struct hdr {
    _Alignas(LINE) uint32_t magic;
    uint32_t size;
    uint32_t attached;
    uint32_t done;
    _Alignas(LINE) uint32_t ping; /* client -> server sequence number */
    _Alignas(LINE) uint32_t pong; /* server -> client sequence number */
};

/* ==== memcpy reference ==== */

int run_memcpy(const struct bopts *o, struct err *e)
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
    emit_result(o, s, n, mono_ns() - t_start, (double)o->size, n == o->iters, 1);
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
/* The private copy buffer of a shm round trip, page-aligned. From malloc, its offset
 * within a page depends on the allocations made before (musl's allocator also cycles
 * slot offsets), which differ between host and container and from run to run; when
 * that offset is a little above the shared buffer's (page-aligned) one, each copy's
 * loads are falsely held behind its own earlier stores to an address with the same
 * low 12 bits ("4K aliasing"), which at 4 KiB costs or saves ~10 % of a round trip
 * at random. Page-aligned, every placement and run copies between equally aligned
 * buffers. NULL when out of memory. */
static char *copy_buffer(long long size)
{
    void *p = NULL;

    if (posix_memalign(&p, PAGE, (size_t)size) != 0)
        return NULL;
    return p;
}

int shm_server(const struct bopts *o, struct err *e)
{
    struct region r;
    int fx = o->mech == M_FUTEX, rc = -1;
    char *local = copy_buffer(o->size);
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

int shm_client(const struct bopts *o, struct timing *t, struct err *e)
{
    struct region r;
    int fx = o->mech == M_FUTEX;
    char *local = copy_buffer(o->size);
    long long i, total = o->warmup + o->iters;
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

        rt_begin(t, i);
        if (o->size >= 4)
            memcpy(local, &seq, 4); /* the server echoes it: proof the bytes went round */
        memcpy(r.req, local, (size_t)o->size);
        post_word(&r.h->ping, seq, fx);
        if (wait_word(&r.h->pong, seq, fx, NULL) < 0)
            break;
        memcpy(local, r.resp, (size_t)o->size);
        rt_end(t, i);
        if (o->size >= 4 && memcmp(local, &seq, 4) != 0) {
            err_msg(e, "echo", EPROTO, SX_CHECK, "round trip %lld came back with other bytes", i + 1);
            goto out;
        }
    }
    timing_done(t);
    rc = 0;
out:
    post_word(&r.h->done, 1, 0);
    if (fx)
        futex(&r.h->ping, FUTEX_WAKE, 1, NULL);
    region_close(&r, 0);
    free(local);
    return rc;
}
