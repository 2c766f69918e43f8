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
#include <sched.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "shmlab.h"

#ifndef SHM_DEST
#define SHM_DEST 01000
#endif

#define MAX_COLS 32
#define MAX_OFFSET (1ULL << 40)
#define MAX_FIELD_SIZE (1UL << 24)

/* ==== layouts ====
 *
 * --layout PATH:OFFSET:KIND:SIZE,...  (or the alias conn_stat). labctl computes
 * offsets from the C declarations; the probe only reads. KIND:
 *   i signed integer (SIZE 1, 2, 4, 8)    u unsigned integer or address (1, 2, 4, 8)
 *   f IEEE float (4 or 8)                 b _Bool (1)
 *   s NUL-terminated string in SIZE bytes x SIZE bytes as hex ("0x0a1b...")
 * Every field becomes "PATH": value in the "fields" object; a field past the end of
 * the segment or file is null. Floats that JSON cannot carry are "nan", "inf", "-inf". */

struct field {
    char *name;
    unsigned long long off;
    size_t size;
    char kind;
};

struct layout {
    struct field *f;
    int n;
    unsigned long long span; /* bytes needed to read every field */
    size_t max_size;         /* the largest field */
    char *buf;               /* the spec, cut in place: names point into it */
};

static void free_layout(struct layout *l)
{
    free(l->f);
    free(l->buf);
    l->f = NULL;
    l->buf = NULL;
}

static int kind_ok(char kind, size_t size)
{
    switch (kind) {
    case 'i': case 'u': return size == 1 || size == 2 || size == 4 || size == 8;
    case 'f': return size == 4 || size == 8;
    case 'b': return size == 1;
    case 's': case 'x': return size >= 1 && size <= MAX_FIELD_SIZE;
    default: return 0;
    }
}

static int parse_num(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    *out = strtoull(s, &end, 0);
    return (errno != 0 || *end != '\0' || *out > max) ? -1 : 0;
}

static int parse_layout(const char *spec, struct layout *l, struct err *e)
{
    char *save = NULL, *item;
    int cap = 0;

    memset(l, 0, sizeof *l);
    if (strcmp(spec, "conn_stat") == 0)
        spec = CONN_STAT_LAYOUT;
    l->buf = strdup(spec);
    if (l->buf == NULL)
        return err_sys(e, "strdup", ENOMEM, SX_USAGE);
    for (item = strtok_r(l->buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *c1 = strchr(item, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        char *c3 = c2 ? strchr(c2 + 1, ':') : NULL;
        unsigned long long off, size;
        struct field *f;

        if (c3 == NULL || c1 == item || c3 != c2 + 2) {
            err_msg(e, "usage", EINVAL, SX_USAGE,
                    "bad --layout item '%.80s' (expected PATH:OFFSET:KIND:SIZE)", item);
            goto fail;
        }
        *c1 = *c2 = *c3 = '\0';
        if (parse_num(c1 + 1, MAX_OFFSET, &off) < 0 || parse_num(c3 + 1, MAX_FIELD_SIZE, &size) < 0 ||
            !kind_ok(c2[1], (size_t)size)) {
            err_msg(e, "usage", EINVAL, SX_USAGE,
                    "bad --layout item '%.60s' (offset %.20s, kind %c, size %.20s: kinds are i u f b s x)",
                    item, c1 + 1, c2[1], c3 + 1);
            goto fail;
        }
        if (l->n == cap) {
            struct field *tmp = realloc(l->f, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *tmp);

            if (tmp == NULL) {
                err_sys(e, "realloc", ENOMEM, SX_USAGE);
                goto fail;
            }
            l->f = tmp;
        }
        f = &l->f[l->n++];
        f->name = item;
        f->off = off;
        f->size = (size_t)size;
        f->kind = c2[1];
        if (off + size > l->span)
            l->span = off + size;
        if (f->size > l->max_size)
            l->max_size = f->size;
    }
    if (l->n == 0) {
        err_msg(e, "usage", EINVAL, SX_USAGE, "--layout has no fields");
        goto fail;
    }
    return 0;
fail:
    free_layout(l);
    return -1;
}

static void float_json(struct jb *b, double v, int digits)
{
    char tmp[64];

    if (v != v) {
        jb_str(b, "nan");
    } else if (v > 1.7976931348623157e308 || v < -1.7976931348623157e308) {
        jb_str(b, v > 0 ? "inf" : "-inf");
    } else {
        snprintf(tmp, sizeof tmp, "%.*g", digits, v);
        jb_rawval(b, tmp);
    }
}

/* One field's value from its bytes q (f->size of them). */
static void field_json(struct jb *b, const struct field *f, const unsigned char *q)
{
    static const char hexd[] = "0123456789abcdef";
    size_t k;

    switch (f->kind) {
    case 'i': {
        int64_t v = 0;

        switch (f->size) {
        case 1: { int8_t x; memcpy(&x, q, 1); v = x; break; }
        case 2: { int16_t x; memcpy(&x, q, 2); v = x; break; }
        case 4: { int32_t x; memcpy(&x, q, 4); v = x; break; }
        default: memcpy(&v, q, 8); break;
        }
        jb_int(b, (long long)v);
        break;
    }
    case 'u': {
        uint64_t v = 0;

        switch (f->size) {
        case 1: { uint8_t x; memcpy(&x, q, 1); v = x; break; }
        case 2: { uint16_t x; memcpy(&x, q, 2); v = x; break; }
        case 4: { uint32_t x; memcpy(&x, q, 4); v = x; break; }
        default: memcpy(&v, q, 8); break;
        }
        jb_uint(b, (unsigned long long)v);
        break;
    }
    case 'f':
        if (f->size == 4) {
            float x;

            memcpy(&x, q, 4);
            float_json(b, x, 9); /* 9 significant digits round-trip a float */
        } else {
            double x;

            memcpy(&x, q, 8);
            float_json(b, x, 17);
        }
        break;
    case 'b':
        jb_bool(b, q[0] != 0);
        break;
    case 's':
        jb_strn(b, (const char *)q, strnlen((const char *)q, f->size));
        break;
    default: { /* x */
        char *hex = malloc(2 * f->size + 3);

        if (hex == NULL) {
            jb_null(b);
            break;
        }
        hex[0] = '0';
        hex[1] = 'x';
        for (k = 0; k < f->size; k++) {
            hex[2 + 2 * k] = hexd[q[k] >> 4];
            hex[3 + 2 * k] = hexd[q[k] & 15];
        }
        hex[2 + 2 * f->size] = '\0';
        jb_str(b, hex);
        free(hex);
        break;
    }
    }
}

/* Fields past the available bytes are null: a short segment or file is a
 * finding to report, not a crash. */
static void layout_json(struct jb *b, const struct layout *l, const unsigned char *p, size_t avail)
{
    int i;

    jb_open(b, '{');
    for (i = 0; i < l->n; i++) {
        const struct field *f = &l->f[i];

        jb_key(b, f->name);
        if (f->off + f->size > avail)
            jb_null(b);
        else
            field_json(b, f, p + f->off);
    }
    jb_close(b, '}');
}

/* The same from a file, one pread per field (no buffer the size of the span). */
static void layout_json_fd(struct jb *b, const struct layout *l, int fd, unsigned long long fsize,
                           unsigned char *buf)
{
    int i;

    jb_open(b, '{');
    for (i = 0; i < l->n; i++) {
        const struct field *f = &l->f[i];

        jb_key(b, f->name);
        if (f->off + f->size > fsize || pread(fd, buf, f->size, (off_t)f->off) != (ssize_t)f->size)
            jb_null(b);
        else
            field_json(b, f, buf);
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

/* Without /proc/sysvipc (gVisor has none): shmctl(SHM_INFO) gives the number of segments in
 * use (and on Linux the highest index), shmctl(index, SHM_STAT) each segment (EINVAL/EACCES
 * for a free or unreadable index). Linux returns the shmid; gVisor (checked with release
 * 20221219) returns 0 and its SHM_INFO returns 0: there the index is the shmid, so indexes
 * are walked until every segment in use was seen (at most STAT_SCAN_MAX). The columns are
 * the same as /proc's; perms carries SHM_DEST as there. */
#define STAT_SCAN_MAX 32768
#ifdef __GLIBC__
#define SHM_USED_IDS(i) ((i).used_ids)
#else
#define SHM_USED_IDS(i) ((i).__used_ids) /* musl */
#endif
static int stat_segments(struct seg **out, size_t *count, struct err *e)
{
    struct shm_info info;
    struct shmid_ds ds;
    struct seg *segs = NULL, *tmp;
    size_t nsegs = 0;
    int max = shmctl(0, SHM_INFO, (struct shmid_ds *)(void *)&info), idx, id;

    if (max < 0)
        return err_sys(e, "shmctl SHM_INFO (no /proc/sysvipc/shm)", errno, SX_OPEN);
    for (idx = 0; (idx <= max || (int)nsegs < SHM_USED_IDS(info)) && idx < STAT_SCAN_MAX; idx++) {
        id = shmctl(idx, SHM_STAT, &ds);
        if (id < 0)
            continue;
        if (id == 0)
            id = idx; /* gVisor; on Linux 0 comes only from index 0, whose shmid is 0 */
        tmp = realloc(segs, (nsegs + 1) * sizeof *segs);
        if (tmp == NULL) {
            free(segs);
            return err_sys(e, "realloc", ENOMEM, SX_OPEN);
        }
        segs = tmp;
        segs[nsegs].key = (long long)ds.shm_perm.__key;
        segs[nsegs].shmid = id;
        segs[nsegs].perms = (long long)ds.shm_perm.mode;
        segs[nsegs].size = (long long)ds.shm_segsz;
        segs[nsegs].cpid = ds.shm_cpid;
        segs[nsegs].lpid = ds.shm_lpid;
        segs[nsegs].nattch = (long long)ds.shm_nattch;
        segs[nsegs].uid = ds.shm_perm.uid;
        segs[nsegs].gid = ds.shm_perm.gid;
        nsegs++;
    }
    *out = segs;
    *count = nsegs;
    return 0;
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
    if (f == NULL && errno == ENOENT)
        return stat_segments(out, count, e); /* no /proc/sysvipc (gVisor): ask the kernel */
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

/* ==== the probed root ==== */

/* "" (this container's own /dev), or /proc/PID/root after --ns-pid: /dev/shm and
 * /dev/mqueue are mounts of the target's mount namespace, not of its IPC namespace */
static char probe_root[48];

const char *probe_path(const char *path, char *buf, size_t n)
{
    snprintf(buf, n, "%s%s", probe_root, path);
    return buf;
}

/* --ns-pid PID: enter PID's IPC namespace (needs CAP_SYS_ADMIN over it and a pid
 * namespace where PID is visible: a privileged probe with host pid) */
static int join_ns_of(long long pid, struct err *e)
{
    char path[64];
    int fd;

    snprintf(path, sizeof path, "/proc/%lld/ns/ipc", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_msg(e, "open", errno, SX_OPEN, "open %s: %s", path, strerror(errno));
    if (setns(fd, CLONE_NEWIPC) < 0) {
        int err = errno;

        close(fd);
        return err_msg(e, "setns", err, SX_OPEN, "setns %s: %s", path, strerror(err));
    }
    close(fd);
    snprintf(probe_root, sizeof probe_root, "/proc/%lld/root", pid);
    return 0;
}

/* A pid as /proc/sysvipc shows it: 0 is a process outside this pid namespace (unknown);
 * otherwise whether it still exists (EPERM: it does, we may not signal it) */
static void pid_alive(struct jb *b, const char *name, long long pid)
{
    jb_key(b, name);
    if (pid <= 0)
        jb_null(b);
    else
        jb_bool(b, kill((pid_t)pid, 0) == 0 || errno == EPERM);
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
        pid_alive(&b, "cpid_alive", s->cpid);
        pid_alive(&b, "lpid_alive", s->lpid);
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
    char dir[128], path[512], msg[200];
    DIR *d = opendir(probe_path("/dev/shm", dir, sizeof dir));
    struct dirent *de;
    struct stat st;
    struct jb b;

    if (d == NULL) {
        snprintf(msg, sizeof msg, "opendir %s: %s", dir, strerror(errno));
        ev_null(ev, "devshm");
        ev_str(ev, "devshm_error", msg);
        return;
    }
    jb_init(&b);
    jb_open(&b, '[');
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
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

/* Lines in a /proc/sysvipc table, minus its header: the objects of that kind in this
 * IPC namespace. -1 when the table cannot be read. */
static long long count_table(const char *path)
{
    FILE *f = fopen(path, "re");
    char line[1024];
    long long n = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        n++; /* the lines are short: one fgets each */
    fclose(f);
    return n < 0 ? 0 : n;
}

/* --objects: what the namespace holds, in counts: SysV shm/sem/msg objects, and the
 * /dev/shm entries with their size (st_size) and allocated bytes (st_blocks * 512, what
 * fills the tmpfs and is charged to a memory cgroup), and the tmpfs's capacity (statvfs). */
static void probe_objects(struct ev *ev)
{
    static const char *tables[3][2] = { { "shm", "/proc/sysvipc/shm" },
                                        { "sem", "/proc/sysvipc/sem" },
                                        { "msg", "/proc/sysvipc/msg" } };
    long long files = 0, size = 0, bytes = 0;
    char dir[128], path[512];
    struct statvfs sv;
    DIR *d = opendir(probe_path("/dev/shm", dir, sizeof dir));
    struct dirent *de;
    struct stat st;
    struct jb b;
    int i;

    jb_init(&b);
    jb_open(&b, '{');
    for (i = 0; i < 3; i++) {
        long long n = count_table(tables[i][1]);

        if (n < 0 && i == 0) { /* no /proc/sysvipc (gVisor): count what SHM_STAT lists */
            struct seg *segs;
            size_t nsegs;
            struct err e;

            if (stat_segments(&segs, &nsegs, &e) == 0) {
                n = (long long)nsegs;
                free(segs);
            }
        }

        jb_key(&b, tables[i][0]);
        if (n < 0)
            jb_null(&b);
        else
            jb_int(&b, n);
    }
    if (d != NULL) {
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            files++;
            if (lstat(path, &st) == 0) {
                size += (long long)st.st_size;
                bytes += (long long)st.st_blocks * 512;
            }
        }
        closedir(d);
    }
    jb_key(&b, "devshm_files");
    if (d == NULL) jb_null(&b); else jb_int(&b, files);
    jb_key(&b, "devshm_size");
    if (d == NULL) jb_null(&b); else jb_int(&b, size);
    jb_key(&b, "devshm_bytes");
    if (d == NULL) jb_null(&b); else jb_int(&b, bytes);
    /* the tmpfs's capacity (what shm_size set), as df shows it */
    jb_key(&b, "devshm_capacity");
    if (d == NULL || statvfs(dir, &sv) != 0)
        jb_null(&b);
    else
        jb_int(&b, (long long)sv.f_blocks * (long long)sv.f_frsize);
    jb_close(&b, '}');
    ev_json(ev, "objects", &b);
    jb_free(&b);
}

/* --statfs: the /dev/shm file system's size, use and free space in bytes */
static void probe_statfs(struct ev *ev)
{
    char dir[128], msg[200];
    struct statvfs sv;
    struct jb b;

    if (statvfs(probe_path("/dev/shm", dir, sizeof dir), &sv) < 0) {
        snprintf(msg, sizeof msg, "statvfs %s: %s", dir, strerror(errno));
        ev_null(ev, "devshm_fs");
        ev_str(ev, "devshm_fs_error", msg);
        return;
    }
    jb_init(&b);
    jb_open(&b, '{');
    jb_key(&b, "size"); jb_uint(&b, (unsigned long long)sv.f_blocks * sv.f_frsize);
    jb_key(&b, "used"); jb_uint(&b, (unsigned long long)(sv.f_blocks - sv.f_bfree) * sv.f_frsize);
    jb_key(&b, "avail"); jb_uint(&b, (unsigned long long)sv.f_bavail * sv.f_frsize);
    jb_close(&b, '}');
    ev_json(ev, "devshm_fs", &b);
    jb_free(&b);
}

static void probe_stat(struct ev *ev, const char *path, const struct layout *l)
{
    struct stat st;
    struct jb b;
    unsigned char *buf = NULL;
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
    jb_key(&b, "gid"); jb_uint(&b, (unsigned long long)st.st_gid);
    if (l == NULL)
        goto out;
    /* pread, not mmap: a short file must give null fields, not SIGBUS */
    fd = open(path, O_RDONLY | O_CLOEXEC);
    buf = malloc(l->max_size);
    jb_key(&b, "fields");
    if (fd < 0 || buf == NULL) {
        jb_null(&b);
        jb_key(&b, "fields_error");
        jb_str(&b, fd < 0 ? strerror(errno) : "out of memory");
        if (fd >= 0)
            close(fd);
        goto out;
    }
    layout_json_fd(&b, l, fd, (unsigned long long)st.st_size, buf);
    close(fd);
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
    int any = o->ns || o->segments || o->devshm || o->objects || o->stat_path || o->ftok_path ||
              o->key_set || o->shmid_set || o->layout || o->sems || o->queues || o->mqueues ||
              o->semid_set || o->msqid_set || o->mq_unlink || o->shm_unlink || o->statfs;
    int segments = o->segments || o->key_set || o->shmid_set ||
                   (o->layout != NULL && o->stat_path == NULL);

    if (o->layout != NULL && parse_layout(o->layout, &l, &e) < 0)
        return emit_error(&e);
    if (o->ns_pid_set && join_ns_of(o->ns_pid, &e) < 0) {
        if (o->layout != NULL)
            free_layout(&l);
        return emit_error(&e); /* never a report of our own namespace in its place */
    }
    ev_begin(&ev, "probe");
    if (o->ns || !any) {
        read_ipcns(ns, sizeof ns);
        ev_str(&ev, "ipcns", ns);
    }
    if (segments || !any)
        probe_segments(&ev, o, o->layout ? &l : NULL);
    if (o->devshm)
        probe_devshm(&ev);
    if (o->objects)
        probe_objects(&ev);
    if (o->statfs)
        probe_statfs(&ev);
    if (o->sems)
        probe_sems(&ev);
    if (o->queues)
        probe_queues(&ev);
    if (o->mqueues)
        probe_mqueues(&ev);
    if (o->stat_path != NULL)
        probe_stat(&ev, o->stat_path, o->layout ? &l : NULL);
    if (o->ftok_path != NULL)
        probe_ftok(&ev, o->ftok_path, o->proj);
    /* --shmid/--semid/--msqid ID --rmid, --mq-unlink/--shm-unlink NAME: labctl's teardown
     * removing an object a host-IPC scenario's workloads left */
    probe_remove(&ev, o);
    ev_emit(&ev);
    if (o->layout != NULL)
        free_layout(&l);
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
