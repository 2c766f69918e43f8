/* shape.c - the layouts a writer counts in and a reader reads (--struct NAME).
 *
 * conn_stat is the lab's everyday layout. wide and fixed exist for the
 * mixed-width pitfall (wide.h): a writer and a reader built for different
 * word sizes each report the layout as *they* compile it (the `layout` event)
 * and the values they see, so the disagreement is visible in their output.
 */
#include <string.h>

#include "shmlab.h"
#include "wide.h"

_Static_assert(sizeof(struct wide_stat) <= sizeof(struct conn_stat), "wide_stat must fit a conn_stat segment");
_Static_assert(sizeof(struct fixed_stat) <= sizeof(struct conn_stat), "fixed_stat must fit a conn_stat segment");

/* ==== conn_stat ==== */

static void conn_stat_init(volatile void *p, const char *ip)
{
    (void)p; /* count and ip are all it has */
    (void)ip;
}

static void conn_stat_fields(const volatile void *p, struct ev *e)
{
    (void)p;
    (void)e;
}

static void conn_stat_offsets(struct ev *e)
{
    ev_uint(e, "off_ip", offsetof(struct conn_stat, ip));
}

/* ==== wide: long and size_t, as a tutorial writes it ==== */

static void wide_init(volatile void *p, const char *ip)
{
    volatile struct wide_stat *w = p;

    w->total = (long)WIDE_TOTAL; /* truncated where long is 32 bits: that is the point */
    w->len = strlen(ip);
    w->stamp = WIDE_STAMP;
}

static void wide_fields(const volatile void *p, struct ev *e)
{
    const volatile struct wide_stat *w = p;

    ev_int(e, "total", (long long)w->total);
    ev_uint(e, "len", (unsigned long long)w->len);
    ev_int(e, "stamp", w->stamp);
}

static void wide_offsets(struct ev *e)
{
    ev_uint(e, "off_total", offsetof(struct wide_stat, total));
    ev_uint(e, "off_len", offsetof(struct wide_stat, len));
    ev_uint(e, "off_ip", offsetof(struct wide_stat, ip));
    ev_uint(e, "off_stamp", offsetof(struct wide_stat, stamp));
    ev_uint(e, "sizeof_long", sizeof(long));
}

/* ==== fixed: fixed-width types, explicit padding and alignment ==== */

static void fixed_init(volatile void *p, const char *ip)
{
    volatile struct fixed_stat *f = p;

    f->pad0 = 0;
    f->total = WIDE_TOTAL;
    f->len = (uint64_t)strlen(ip);
    f->stamp = WIDE_STAMP;
}

static void fixed_fields(const volatile void *p, struct ev *e)
{
    const volatile struct fixed_stat *f = p;

    ev_int(e, "total", (long long)f->total);
    ev_uint(e, "len", (unsigned long long)f->len);
    ev_int(e, "stamp", (long long)f->stamp);
}

static void fixed_offsets(struct ev *e)
{
    ev_uint(e, "off_total", offsetof(struct fixed_stat, total));
    ev_uint(e, "off_len", offsetof(struct fixed_stat, len));
    ev_uint(e, "off_ip", offsetof(struct fixed_stat, ip));
    ev_uint(e, "off_stamp", offsetof(struct fixed_stat, stamp));
    ev_uint(e, "sizeof_long", sizeof(long));
}

/* ==== table ==== */

#define IP_OF(type) offsetof(struct type, ip), sizeof(((struct type *)0)->ip)

static const struct shape shapes[] = {
    { "conn_stat", sizeof(struct conn_stat), IP_OF(conn_stat), conn_stat_init, conn_stat_fields,
      conn_stat_offsets },
    { "wide", sizeof(struct wide_stat), IP_OF(wide_stat), wide_init, wide_fields, wide_offsets },
    { "fixed", sizeof(struct fixed_stat), IP_OF(fixed_stat), fixed_init, fixed_fields, fixed_offsets },
};

const struct shape *shape_find(const char *name)
{
    size_t i;

    if (name == NULL)
        return &shapes[0];
    for (i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (strcmp(shapes[i].name, name) == 0)
            return &shapes[i];
    return NULL;
}

void emit_layout(const struct shape *s)
{
    struct ev e;

    ev_begin(&e, "layout");
    ev_str(&e, "struct", s->name);
    ev_uint(&e, "size", s->size);
    ev_uint(&e, "bits", sizeof(void *) * 8);
    s->offsets(&e);
    ev_emit(&e);
}
