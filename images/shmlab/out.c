/* out.c - event output: one JSON object per line (or plain text with --human),
 * flushed per line because stdout is a pipe inside a container; plus the
 * error buffer helpers every other file uses.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmlab.h"

static const char *g_role = "shmlab";

static void jb_escaped(struct jb *b, const char *s, size_t n);
static int g_human;

/* ==== error buffer ==== */

int err_sys(struct err *e, const char *call, int errnum, int code)
{
    snprintf(e->call, sizeof e->call, "%s", call);
    e->errnum = errnum;
    e->code = code;
    e->sys = 1;
    snprintf(e->text, sizeof e->text, "%s: %s", call, strerror(errnum));
    return -1;
}

int err_msg(struct err *e, const char *call, int errnum, int code, const char *fmt, ...)
{
    va_list ap;

    snprintf(e->call, sizeof e->call, "%s", call);
    e->errnum = errnum;
    e->code = code;
    e->sys = 0;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
    return -1;
}

const char *errno_name(int errnum)
{
    /* musl has no strerrorname_np; the names a lab shows are few */
    static const struct { int num; const char *name; } names[] = {
#define N(x) { x, #x }
        N(EPERM), N(ENOENT), N(ESRCH), N(EINTR), N(EIO), N(ENXIO), N(E2BIG),
        N(ENOEXEC), N(EBADF), N(ECHILD), N(EAGAIN), N(ENOMEM), N(EACCES),
        N(EFAULT), N(EBUSY), N(EEXIST), N(EXDEV), N(ENODEV), N(ENOTDIR),
        N(EISDIR), N(EINVAL), N(ENFILE), N(EMFILE), N(ENOTTY), N(ETXTBSY),
        N(EFBIG), N(ENOSPC), N(ESPIPE), N(EROFS), N(EMLINK), N(EPIPE), N(EDOM),
        N(ERANGE), N(EDEADLK), N(ENAMETOOLONG), N(ENOLCK), N(ENOSYS),
        N(ENOTEMPTY), N(ELOOP), N(ENOMSG), N(EIDRM), N(ENODATA), N(ETIME),
        N(EOVERFLOW), N(EBADMSG), N(ENOTSUP), N(ETIMEDOUT), N(EDQUOT),
        N(ECANCELED), N(EOWNERDEAD),
#undef N
    };
    size_t i;

    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].num == errnum)
            return names[i].name;
    return "EUNKNOWN";
}

/* ==== JSON buffer ==== */

void jb_init(struct jb *b)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->comma = 0;
}

void jb_free(struct jb *b)
{
    free(b->p);
    jb_init(b);
}

static void jb_put(struct jb *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;

        while (b->len + n + 1 > cap)
            cap *= 2;
        p = realloc(b->p, cap);
        if (p == NULL)
            return; /* out of memory: the line is truncated, never overrun */
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void jb_puts(struct jb *b, const char *s)
{
    jb_put(b, s, strlen(s));
}

static void jb_sep(struct jb *b)
{
    if (b->comma)
        jb_put(b, ",", 1);
    b->comma = 1;
}

void jb_open(struct jb *b, char c)
{
    jb_sep(b);
    jb_put(b, &c, 1);
    b->comma = 0;
}

void jb_close(struct jb *b, char c)
{
    jb_put(b, &c, 1);
    b->comma = 1;
}

void jb_key(struct jb *b, const char *k)
{
    jb_sep(b);
    jb_escaped(b, k, strlen(k));
    jb_put(b, ":", 1);
    b->comma = 0; /* the value follows without a comma */
}

/* Bytes >= 0x80 are escaped as \u00XX: segment contents may be any bytes and
 * the output must stay valid JSON (pure ASCII) whatever a writer put there. */
static void jb_escaped(struct jb *b, const char *s, size_t n)
{
    size_t i;
    char tmp[8];

    jb_put(b, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            jb_put(b, tmp, 2);
        } else if (c == '\n') {
            jb_put(b, "\\n", 2);
        } else if (c < 0x20 || c >= 0x7f) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            jb_put(b, tmp, 6);
        } else {
            jb_put(b, (const char *)&s[i], 1);
        }
    }
    jb_put(b, "\"", 1);
}

void jb_strn(struct jb *b, const char *s, size_t n)
{
    jb_sep(b);
    jb_escaped(b, s, n);
}

void jb_str(struct jb *b, const char *s)
{
    jb_sep(b);
    jb_escaped(b, s, strlen(s));
}

void jb_int(struct jb *b, long long v)
{
    char tmp[32];

    jb_sep(b);
    snprintf(tmp, sizeof tmp, "%lld", v);
    jb_puts(b, tmp);
}

void jb_uint(struct jb *b, unsigned long long v)
{
    char tmp[32];

    jb_sep(b);
    snprintf(tmp, sizeof tmp, "%llu", v);
    jb_puts(b, tmp);
}

void jb_bool(struct jb *b, int v)
{
    jb_sep(b);
    jb_puts(b, v ? "true" : "false");
}

void jb_null(struct jb *b)
{
    jb_sep(b);
    jb_puts(b, "null");
}

void jb_rawval(struct jb *b, const char *json)
{
    jb_sep(b);
    jb_puts(b, json ? json : "null");
}

/* ==== events ==== */

void out_init(const char *role, int human)
{
    g_role = role;
    g_human = human;
}

void ev_begin(struct ev *e, const char *event)
{
    snprintf(e->name, sizeof e->name, "%s", event);
    jb_init(&e->j);
    jb_init(&e->h);
    jb_open(&e->j, '{');
    jb_key(&e->j, "event");
    jb_str(&e->j, event);
    jb_key(&e->j, "role");
    jb_str(&e->j, g_role);
    jb_key(&e->j, "t_ms");
    jb_int(&e->j, now_ms());
    jb_puts(&e->h, g_role);
    jb_puts(&e->h, ": ");
    jb_puts(&e->h, event);
}

static void ev_hkey(struct ev *e, const char *k)
{
    jb_puts(&e->h, " ");
    jb_puts(&e->h, k);
    jb_puts(&e->h, "=");
}

void ev_str(struct ev *e, const char *k, const char *v)
{
    jb_key(&e->j, k);
    jb_str(&e->j, v);
    ev_hkey(e, k);
    jb_puts(&e->h, v);
}

void ev_int(struct ev *e, const char *k, long long v)
{
    char tmp[32];

    jb_key(&e->j, k);
    jb_int(&e->j, v);
    snprintf(tmp, sizeof tmp, "%lld", v);
    ev_hkey(e, k);
    jb_puts(&e->h, tmp);
}

void ev_uint(struct ev *e, const char *k, unsigned long long v)
{
    char tmp[32];

    jb_key(&e->j, k);
    jb_uint(&e->j, v);
    snprintf(tmp, sizeof tmp, "%llu", v);
    ev_hkey(e, k);
    jb_puts(&e->h, tmp);
}

void ev_bool(struct ev *e, const char *k, int v)
{
    jb_key(&e->j, k);
    jb_bool(&e->j, v);
    ev_hkey(e, k);
    jb_puts(&e->h, v ? "true" : "false");
}

void ev_null(struct ev *e, const char *k)
{
    jb_key(&e->j, k);
    jb_null(&e->j);
    ev_hkey(e, k);
    jb_puts(&e->h, "null");
}

void ev_json(struct ev *e, const char *k, const struct jb *value)
{
    const char *v = value->p ? value->p : "null";

    jb_key(&e->j, k);
    jb_rawval(&e->j, v);
    ev_hkey(e, k);
    jb_puts(&e->h, v);
}

/* With $SHMLAB_EVENT_DIR set, every event also leaves an empty file named after it
 * there (ROLE.EVENT), after its line is printed: what a compose healthcheck can test from inside
 * the container ("the writer has attached") without a shell. Best effort: a marker
 * that cannot be made leaves the event itself alone. */
static void mark_event(const char *event)
{
    static const char *dir;
    static int looked;
    char path[512];
    int fd;

    if (!looked) {
        dir = getenv("SHMLAB_EVENT_DIR");
        looked = 1;
    }
    if (dir == NULL || *dir == '\0')
        return;
    if (snprintf(path, sizeof path, "%s/%s.%s", dir, g_role, event) >= (int)sizeof path)
        return;
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        close(fd);
}

void ev_emit(struct ev *e)
{
    struct jb *b = g_human ? &e->h : &e->j;

    if (!g_human)
        jb_close(&e->j, '}');
    jb_put(b, "\n", 1);
    if (b->p != NULL) {
        fwrite(b->p, 1, b->len, stdout);
        fflush(stdout);
    }
    mark_event(e->name);
    jb_free(&e->j);
    jb_free(&e->h);
}

void emit_simple(const char *event)
{
    struct ev e;

    ev_begin(&e, event);
    ev_emit(&e);
}

int read_ipcns(char *buf, size_t n)
{
    ssize_t r = readlink("/proc/self/ns/ipc", buf, n - 1);

    if (r < 0) {
        snprintf(buf, n, "unknown");
        return -1;
    }
    buf[r] = '\0';
    return 0;
}

void emit_start(int argc, char **argv)
{
    struct ev e;
    struct jb args;
    char ns[64];
    int i;

    read_ipcns(ns, sizeof ns);
    ev_begin(&e, "start");
    ev_int(&e, "pid", (long long)getpid());
    ev_uint(&e, "uid", (unsigned long long)getuid());
    ev_uint(&e, "gid", (unsigned long long)getgid());
    ev_str(&e, "ipcns", ns);
    jb_init(&args);
    jb_open(&args, '[');
    for (i = 0; i < argc; i++)
        jb_str(&args, argv[i]);
    jb_close(&args, ']');
    ev_json(&e, "argv", &args);
    jb_free(&args);
    ev_emit(&e);
}

int emit_error(const struct err *er)
{
    struct ev e;

    ev_begin(&e, "error");
    ev_str(&e, "call", er->call);
    if (er->errnum != 0)
        ev_str(&e, "errno", errno_name(er->errnum));
    else
        ev_null(&e, "errno");
    ev_int(&e, "errno_num", er->errnum);
    ev_str(&e, "message", er->sys ? strerror(er->errnum) : er->text);
    ev_int(&e, "exit", er->code);
    ev_emit(&e);
    /* the diagnostic for a human reading `docker logs` mixed streams */
    fprintf(stderr, "%s: %s\n", g_role, er->text);
    return er->code;
}

void emit_signal_once(void)
{
    static int done;
    struct ev e;
    int sig = (int)g_stop;

    if (done || sig == 0)
        return;
    done = 1;
    ev_begin(&e, "signal");
    ev_str(&e, "signal", sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP");
    ev_emit(&e);
}

int emit_done(int has_count, long long count)
{
    struct ev e;

    ev_begin(&e, "done");
    ev_int(&e, "exit", 0);
    if (has_count)
        ev_int(&e, "count", count);
    ev_emit(&e);
    return SX_OK;
}
