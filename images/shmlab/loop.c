/* loop.c - the writer and reader loops every transport shares: the same
 * struct conn_stat is counted up and read back whether it lives in a SysV
 * segment, a mapped file or a POSIX shm object.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "shmlab.h"

/* ==== writer ==== */

/* The count lives at offset 0 of every layout (shape.c asserts it). */
static volatile int *count_of(volatile void *p)
{
    return (volatile int *)p;
}

void conn_init(volatile void *p, const struct opts *o)
{
    const struct shape *sh = o->shape;
    volatile char *ip = (volatile char *)p + sh->ip_off;
    size_t i, n = strlen(o->ip);

    for (i = 0; i < sh->ip_len; i++)
        ip[i] = i < n ? o->ip[i] : '\0';
    sh->init(p, o->ip);
    *count_of(p) = 0;
}

static void emit_wrote(long long count)
{
    struct ev e;

    ev_begin(&e, "wrote");
    ev_int(&e, "count", count);
    ev_emit(&e);
}

/* Returns 0 when the count was reached or a stop signal came, 1 when the
 * check hook asked to stop (segment marked for removal), -1 on error. */
int write_loop(volatile void *p, const struct opts *o, const struct write_hooks *h,
               long long *last, struct err *e)
{
    volatile int *count = count_of(p);
    long long i;
    int value, r;

    for (i = 0; o->count == 0 || i < o->count; i++) {
        /* --interval 0 is a tight loop: the race window of count++ needs it */
        if (i > 0 && o->interval_ms > 0 && sleep_ms(o->interval_ms))
            return 0;
        if (stopping())
            return 0;
        if (h != NULL && h->check != NULL) {
            r = h->check(h->ctx, e);
            if (r != 0)
                return r;
        }
        if (h != NULL && h->lock != NULL && h->lock(h->ctx, e) < 0)
            return stopping() ? 0 : -1;
        if (o->atomic) {
            if (o->yield)
                sched_yield(); /* same pacing as the plain twin, outside the add */
            value = __atomic_add_fetch(count, 1, __ATOMIC_SEQ_CST);
        } else {
            /* the tutorial's plain count++: load, add, store; two writers lose updates */
            value = *count;
            value++;
            /* --yield: whichever writer runs now, on this core or the other, stores
             * into the window; without it a loaded machine may never interleave */
            if (o->yield)
                sched_yield();
            *count = value;
        }
        if (h != NULL && h->unlock != NULL && h->unlock(h->ctx, e) < 0)
            return -1;
        *last = value;
        if (!o->quiet)
            emit_wrote(value);
    }
    return 0;
}

/* ==== reader ==== */

static int emit_read(const volatile void *p, const struct opts *o, long long *last,
                     int first, struct err *e)
{
    const struct shape *sh = o->shape;
    const volatile char *src = (const volatile char *)p + sh->ip_off;
    char ip[sizeof(((struct conn_stat *)0)->ip)];
    int count = *(const volatile int *)p;
    size_t i, n = sh->ip_len < sizeof ip ? sh->ip_len : sizeof ip;
    struct ev ev;

    for (i = 0; i < n; i++)
        ip[i] = src[i];
    ip[n - 1] = '\0';
    if (!o->changes || first || count != *last) {
        ev_begin(&ev, "read");
        ev_int(&ev, "count", count);
        ev_str(&ev, "ip", ip);
        sh->fields(p, &ev);
        ev_emit(&ev);
    }
    *last = count;
    if (o->expect_ip != NULL && strcmp(ip, o->expect_ip) != 0)
        return err_msg(e, "expect-ip", 0, SX_CHECK, "data check failed: ip is '%s', expected '%s'",
                       ip, o->expect_ip);
    return 0;
}

/* --reads M reads (one every --interval), or with --until K until count >= K
 * within --timeout. Returns 0 (also on a stop signal) or -1 with e filled. */
int read_loop(const volatile void *p, const struct opts *o, long long *last, struct err *e)
{
    long long i, deadline = now_ms() + o->timeout_ms;

    for (i = 0; o->until_set || i < o->reads; i++) {
        if (i > 0 && sleep_ms(o->interval_ms))
            return 0;
        if (stopping())
            return 0;
        if (emit_read(p, o, last, i == 0, e) < 0)
            return -1;
        if (!o->until_set)
            continue;
        if (*last >= o->until)
            return 0;
        if (now_ms() >= deadline)
            return err_msg(e, "until", ETIMEDOUT, SX_TIMEOUT,
                           "count %lld did not reach %lld within %lld ms", *last, o->until,
                           o->timeout_ms);
    }
    return 0;
}
