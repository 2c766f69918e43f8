/* probe.c - probe (one JSON object describing the IPC namespace, segments,
 * /dev/shm, a file, an ftok key), hold (namespace holder / exec target) and
 * prep (chmod of per-run volumes). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmlab.h"

#ifndef SHM_DEST
#define SHM_DEST 01000
#endif

#define MAX_FIELDS 32
#define MAX_COLS 32

/* ==== layouts ==== */

enum ftype { T_I8, T_I16, T_I32, T_I64, T_U8, T_U16, T_U32, T_U64, T_CSTR64, T_BYTES16 };

static const struct { const char *name; enum ftype type; size_t size; } ftypes[] = {
    { "int8", T_I8, 1 },     { "int16", T_I16, 2 },   { "int32", T_I32, 4 },
    { "int64", T_I64, 8 },   { "uint8", T_U8, 1 },    { "uint16", T_U16, 2 },
    { "uint32", T_U32, 4 },  { "uint64", T_U64, 8 },  { "cstring64", T_CSTR64, 64 },
    { "bytes16", T_BYTES16, 16 },
};

struct field {
    char name[32];
    size_t off;
    size_t size;
    enum ftype type;
};

struct layout {
    struct field f[MAX_FIELDS];
    int n;
    size_t span; /* bytes needed to read every field */
};

static int parse_layout(const char *spec, struct layout *l, struct err *e)
{
    char buf[1024], *save = NULL, *item;
    size_t k;

    if (strcmp(spec, "conn_stat") == 0)
        spec = CONN_STAT_LAYOUT;
    if (strlen(spec) >= sizeof buf)
        return err_msg(e, "usage", EINVAL, SX_USAGE, "--layout is too long");
    strcpy(buf, spec);
    l->n = 0;
    l->span = 0;
    for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *c1 = strchr(item, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL, *end;
        struct field *f = &l->f[l->n];
        long long off;
        int found = 0;

        if (l->n == MAX_FIELDS || c2 == NULL || c1 == item || (size_t)(c1 - item) >= sizeof f->name)
            return err_msg(e, "usage", EINVAL, SX_USAGE,
                           "bad --layout item '%s' (expected name:offset:type)", item);
        *c1 = '\0';
        *c2 = '\0';
        errno = 0;
        off = strtoll(c1 + 1, &end, 0);
        if (errno != 0 || end == c1 + 1 || *end != '\0' || off < 0 || off > (1LL << 40))
            return err_msg(e, "usage", EINVAL, SX_USAGE, "bad offset '%s' in --layout", c1 + 1);
        for (k = 0; k < sizeof ftypes / sizeof ftypes[0]; k++)
            if (strcmp(ftypes[k].name, c2 + 1) == 0) {
                f->type = ftypes[k].type;
                f->size = ftypes[k].size;
                found = 1;
            }
        if (!found)
            return err_msg(e, "usage", EINVAL, SX_USAGE,
                           "unknown type '%s' in --layout (int8..int64, uint8..uint64, "
                           "cstring64, bytes16)", c2 + 1);
        snprintf(f->name, sizeof f->name, "%s", item);
        f->off = (size_t)off;
        if (f->off + f->size > l->span)
            l->span = f->off + f->size;
        l->n++;
    }
    if (l->n == 0)
        return err_msg(e, "usage", EINVAL, SX_USAGE, "--layout has no fields");
    return 0;
}

/* Fields past the available bytes are null: a short segment or file is a
 * finding to report, not a crash. */
static void layout_json(struct jb *b, const struct layout *l, const unsigned char *p, size_t avail)
{
    int i;

    jb_open(b, '{');
    for (i = 0; i < l->n; i++) {
        const struct field *f = &l->f[i];
        const unsigned char *q = p + f->off;
        char hex[40];
        size_t k;

        jb_key(b, f->name);
        if (f->off + f->size > avail) {
            jb_null(b);
            continue;
        }
        switch (f->type) {
        case T_I8: { int8_t v; memcpy(&v, q, 1); jb_int(b, v); break; }
        case T_I16: { int16_t v; memcpy(&v, q, 2); jb_int(b, v); break; }
        case T_I32: { int32_t v; memcpy(&v, q, 4); jb_int(b, v); break; }
        case T_I64: { int64_t v; memcpy(&v, q, 8); jb_int(b, v); break; }
        case T_U8: { uint8_t v; memcpy(&v, q, 1); jb_uint(b, v); break; }
        case T_U16: { uint16_t v; memcpy(&v, q, 2); jb_uint(b, v); break; }
        case T_U32: { uint32_t v; memcpy(&v, q, 4); jb_uint(b, v); break; }
        case T_U64: { uint64_t v; memcpy(&v, q, 8); jb_uint(b, v); break; }
        case T_CSTR64:
            jb_strn(b, (const char *)q, strnlen((const char *)q, 64));
            break;
        case T_BYTES16:
            for (k = 0; k < 16; k++)
                snprintf(hex + 2 * k, 3, "%02x", q[k]);
            jb_str(b, hex);
            break;
        }
    }
    jb_close(b, '}');
}

/* ==== /proc/sysvipc/shm ==== */

struct seg {
    long long key, shmid, perms, size, cpid, lpid, nattch, uid, gid;
};

enum { COL_KEY, COL_SHMID, COL_PERMS, COL_SIZE, COL_CPID, COL_LPID, COL_NATTCH, COL_UID,
       COL_GID, NCOLS };
static const char *col_names[NCOLS] = { "key", "shmid", "perms", "size", "cpid",
                                        "lpid", "nattch", "uid", "gid" };

static int split(char *line, char **tok, int max)
{
    int n = 0;
    char *save = NULL, *t;

    for (t = strtok_r(line, " \t\n", &save); t && n < max; t = strtok_r(NULL, " \t\n", &save))
        tok[n++] = t;
    return n;
}

/* The header names the columns, so a kernel that adds or moves one does not
 * shift our values. perms is printed in octal and carries SHM_DEST. */
static int read_segments(struct seg **out, size_t *count, struct err *e)
{
    FILE *f = fopen("/proc/sysvipc/shm", "re");
    char line[1024], *tok[MAX_COLS];
    int col[NCOLS], i, j, n, rc = -1;
    struct seg *segs = NULL, *tmp;
    size_t nsegs = 0;

    *out = NULL;
    *count = 0;
    if (f == NULL)
        return err_sys(e, "fopen /proc/sysvipc/shm", errno, SX_OPEN);
    if (fgets(line, sizeof line, f) == NULL) {
        err_msg(e, "read /proc/sysvipc/shm", EIO, SX_OPEN, "empty /proc/sysvipc/shm");
        goto out;
    }
    n = split(line, tok, MAX_COLS);
    for (i = 0; i < NCOLS; i++) {
        col[i] = -1;
        for (j = 0; j < n; j++)
            if (strcmp(tok[j], col_names[i]) == 0)
                col[i] = j;
        if (col[i] < 0) {
            err_msg(e, "read /proc/sysvipc/shm", EIO, SX_OPEN, "no column '%s' in header",
                    col_names[i]);
            goto out;
        }
    }
    while (fgets(line, sizeof line, f) != NULL) {
        struct seg s;
        long long *v[NCOLS] = { &s.key, &s.shmid, &s.perms, &s.size, &s.cpid,
                                &s.lpid, &s.nattch, &s.uid, &s.gid };

        n = split(line, tok, MAX_COLS);
        if (n == 0)
            continue;
        for (i = 0; i < NCOLS; i++)
            *v[i] = col[i] < n ? strtoll(tok[col[i]], NULL, i == COL_PERMS ? 8 : 10) : -1;
        tmp = realloc(segs, (nsegs + 1) * sizeof *segs);
        if (tmp == NULL) {
            err_sys(e, "realloc", ENOMEM, SX_OPEN);
            goto out;
        }
        segs = tmp;
        segs[nsegs++] = s;
    }
    *out = segs;
    *count = nsegs;
    segs = NULL;
    rc = 0;
out:
    free(segs);
    fclose(f);
    return rc;
}

static void segment_fields(struct jb *b, const struct seg *s, const struct layout *l)
{
    void *p = shmat((int)s->shmid, NULL, SHM_RDONLY);
    char msg[128];

    if (p == (void *)-1) {
        snprintf(msg, sizeof msg, "shmat: %s", strerror(errno));
        jb_key(b, "fields");
        jb_null(b);
        jb_key(b, "fields_error");
        jb_str(b, msg);
        return;
    }
    jb_key(b, "fields");
    layout_json(b, l, p, (size_t)s->size);
    shmdt(p);
}

static void probe_segments(struct ev *ev, const struct opts *o, const struct layout *l)
{
    struct seg *segs;
    size_t n, i;
    struct jb b;
    struct err e;

    jb_init(&b);
    if (read_segments(&segs, &n, &e) < 0) {
        ev_null(ev, "segments");
        ev_str(ev, "segments_error", e.text);
        return;
    }
    jb_open(&b, '[');
    for (i = 0; i < n; i++) {
        const struct seg *s = &segs[i];

        if ((o->key_set && s->key != o->key) || (o->shmid_set && s->shmid != o->shmid))
            continue;
        jb_open(&b, '{');
        jb_key(&b, "key"); jb_int(&b, s->key);
        jb_key(&b, "shmid"); jb_int(&b, s->shmid);
        jb_key(&b, "perms"); jb_int(&b, s->perms & 0777);
        jb_key(&b, "dest"); jb_bool(&b, (s->perms & SHM_DEST) != 0);
        jb_key(&b, "size"); jb_int(&b, s->size);
        jb_key(&b, "nattch"); jb_int(&b, s->nattch);
        jb_key(&b, "uid"); jb_int(&b, s->uid);
        jb_key(&b, "gid"); jb_int(&b, s->gid);
        jb_key(&b, "cpid"); jb_int(&b, s->cpid);
        jb_key(&b, "lpid"); jb_int(&b, s->lpid);
        /* after the whole /proc read, so our own attach never shows in nattch */
        if (l != NULL)
            segment_fields(&b, s, l);
        jb_close(&b, '}');
    }
    jb_close(&b, ']');
    ev_json(ev, "segments", &b);
    jb_free(&b);
    free(segs);
}

/* ==== /dev/shm, files, ftok ==== */

static void probe_devshm(struct ev *ev)
{
    DIR *d = opendir("/dev/shm");
    struct dirent *de;
    struct stat st;
    char path[512], msg[128];
    struct jb b;

    if (d == NULL) {
        snprintf(msg, sizeof msg, "opendir /dev/shm: %s", strerror(errno));
        ev_null(ev, "devshm");
        ev_str(ev, "devshm_error", msg);
        return;
    }
    jb_init(&b);
    jb_open(&b, '[');
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "/dev/shm/%s", de->d_name);
        jb_open(&b, '{');
        jb_key(&b, "name");
        jb_str(&b, de->d_name);
        jb_key(&b, "size");
        if (stat(path, &st) == 0)
            jb_int(&b, (long long)st.st_size);
        else
            jb_null(&b);
        jb_close(&b, '}');
    }
    closedir(d);
    jb_close(&b, ']');
    ev_json(ev, "devshm", &b);
    jb_free(&b);
}

static void probe_stat(struct ev *ev, const char *path, const struct layout *l)
{
    struct stat st;
    struct jb b;
    unsigned char *buf = NULL;
    ssize_t got;
    int fd;

    jb_init(&b);
    jb_open(&b, '{');
    jb_key(&b, "exists");
    if (stat(path, &st) < 0) {
        jb_bool(&b, 0);
        if (errno != ENOENT) {
            jb_key(&b, "error");
            jb_str(&b, strerror(errno));
        }
        goto out;
    }
    jb_bool(&b, 1);
    jb_key(&b, "dev"); jb_uint(&b, (unsigned long long)st.st_dev);
    jb_key(&b, "ino"); jb_uint(&b, (unsigned long long)st.st_ino);
    jb_key(&b, "size"); jb_int(&b, (long long)st.st_size);
    jb_key(&b, "mode"); jb_int(&b, (long long)(st.st_mode & 07777));
    jb_key(&b, "uid"); jb_uint(&b, (unsigned long long)st.st_uid);
    if (l == NULL)
        goto out;
    /* pread, not mmap: a short file must give null fields, not SIGBUS */
    fd = open(path, O_RDONLY | O_CLOEXEC);
    buf = calloc(1, l->span);
    jb_key(&b, "fields");
    if (fd < 0 || buf == NULL) {
        jb_null(&b);
        jb_key(&b, "fields_error");
        jb_str(&b, fd < 0 ? strerror(errno) : "out of memory");
        if (fd >= 0)
            close(fd);
        goto out;
    }
    got = pread(fd, buf, l->span, 0);
    close(fd);
    layout_json(&b, l, buf, got > 0 ? (size_t)got : 0);
out:
    jb_close(&b, '}');
    ev_json(ev, "stat", &b);
    jb_free(&b);
    free(buf);
}

static void probe_ftok(struct ev *ev, const char *path, long long proj)
{
    key_t k = ftok(path, (int)proj);
    struct jb b;

    jb_init(&b);
    jb_open(&b, '{');
    jb_key(&b, "key");
    if (k == (key_t)-1) {
        int err = errno;

        jb_null(&b);
        jb_key(&b, "errno");
        jb_str(&b, errno_name(err));
        jb_key(&b, "error");
        jb_str(&b, strerror(err));
    } else {
        jb_int(&b, (long long)k);
    }
    jb_close(&b, '}');
    ev_json(ev, "ftok", &b);
    jb_free(&b);
}

/* ==== probe ==== */

int cmd_probe(const struct opts *o)
{
    struct layout l;
    struct err e;
    struct ev ev;
    char ns[64];
    int any = o->ns || o->segments || o->devshm || o->stat_path || o->ftok_path ||
              o->key_set || o->shmid_set || o->layout;
    int segments = o->segments || o->key_set || o->shmid_set ||
                   (o->layout != NULL && o->stat_path == NULL);

    if (o->layout != NULL && parse_layout(o->layout, &l, &e) < 0)
        return emit_error(&e);
    ev_begin(&ev, "probe");
    if (o->ns || !any) {
        read_ipcns(ns, sizeof ns);
        ev_str(&ev, "ipcns", ns);
    }
    if (segments || !any)
        probe_segments(&ev, o, o->layout ? &l : NULL);
    if (o->devshm)
        probe_devshm(&ev);
    if (o->stat_path != NULL)
        probe_stat(&ev, o->stat_path, o->layout ? &l : NULL);
    if (o->ftok_path != NULL)
        probe_ftok(&ev, o->ftok_path, o->proj);
    /* --shmid ID --rmid: labctl's teardown removing a segment a host-IPC scenario left */
    if (o->rmid && o->shmid_set) {
        if (shmctl((int)o->shmid, IPC_RMID, NULL) == 0) {
            ev_bool(&ev, "removed", 1);
        } else {
            ev_bool(&ev, "removed", 0);
            ev_str(&ev, "errno", errno_name(errno));
        }
    }
    ev_emit(&ev);
    return SX_OK;
}

/* ==== hold ==== */

int cmd_hold(const struct opts *o)
{
    (void)o;
    emit_simple("holding");
    wait_for_stop();
    return emit_done(0, 0);
}

/* ==== prep ==== */

int cmd_prep(const struct opts *o)
{
    struct err e;
    struct ev ev;
    char mode[16];
    int i;

    snprintf(mode, sizeof mode, "%04llo", o->chmod_mode);
    for (i = 0; i < o->nargs; i++) {
        if (chmod(o->args[i], (mode_t)o->chmod_mode) < 0) {
            err_sys(&e, "chmod", errno, SX_OPEN);
            return emit_error(&e);
        }
        ev_begin(&ev, "prepared");
        ev_str(&ev, "path", o->args[i]);
        ev_str(&ev, "mode", mode);
        ev_emit(&ev);
    }
    return emit_done(0, 0);
}
