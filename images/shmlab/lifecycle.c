/* lifecycle.c - workloads for the lifecycle faults: what a process leaves behind
 * when it crashes, is killed, or is restarted in a namespace that outlives it.
 *
 * sysv-private  IPC_PRIVATE segments that only a clean exit removes
 * devshm-fill   write N bytes into a fresh /dev/shm file (one per run), optionally
 *               cleaning the previous runs' files first; or into a file at any --path
 * devshm-map    map a /dev/shm file someone else wrote and read every page
 *
 * --await-go (devshm-fill) writes only once SIGUSR1 comes: a scenario sends it after the
 * engine's start returned, when the engine is watching the memory cgroup for OOM kills.
 *
 * --exit CODE (sysv-private, devshm-fill) ends the program right after it created its
 * objects, with CODE and without any cleanup: a crash, as a restart policy sees it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmlab.h"

#define MAX_PRIVATE 256
#define CHUNK (64 * 1024)

/* ==== helpers ==== */

static void emit_shmid(const char *event, int shmid, unsigned long long size)
{
    struct ev ev;

    ev_begin(&ev, event);
    if (strcmp(event, "attached") == 0)
        ev_int(&ev, "key", 0); /* IPC_PRIVATE */
    ev_int(&ev, "shmid", shmid);
    if (size > 0)
        ev_uint(&ev, "size", size);
    if (strcmp(event, "attached") == 0)
        ev_bool(&ev, "created", 1);
    ev_emit(&ev);
}

static void emit_key_size(const char *event, const char *key, const char *value, unsigned long long size)
{
    struct ev ev;

    ev_begin(&ev, event);
    ev_str(&ev, key, value);
    ev_uint(&ev, "size", size);
    ev_emit(&ev);
}

static void emit_name_size(const char *event, const char *name, unsigned long long size)
{
    emit_key_size(event, "name", name, size);
}

/* The crash: no detach, no IPC_RMID, no unlink. _exit skips atexit and stdio, so
 * the event is flushed first (ev_emit flushes every line). */
static void crash(long long code)
{
    struct ev ev;

    ev_begin(&ev, "exiting");
    ev_int(&ev, "exit", code);
    ev_emit(&ev);
    _exit((int)code);
}

static void touch_pages(volatile char *p, size_t size)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t i;

    if (page <= 0)
        page = 4096;
    for (i = 0; i < size; i += (size_t)page)
        p[i] = 1;
}

/* ==== sysv-private ==== */

/* --count N segments (default 1) of --size bytes, IPC_PRIVATE, attached; --fill touches
 * their pages; --rmid marks each for removal at once (it goes at the last detach, however
 * the process ends). Then --exit CODE crashes, or it holds until SIGTERM/SIGINT and
 * detaches and removes each: the cleanup that SIGKILL never lets run. */
int cmd_sysv_private(const struct opts *o)
{
    int ids[MAX_PRIVATE];
    void *at[MAX_PRIVATE];
    long long n = o->count_set ? o->count : 1, i, made = 0;
    struct err e;
    int rc = SX_OK;

    if (n > MAX_PRIVATE) {
        err_msg(&e, "usage", EINVAL, SX_USAGE, "--count is at most %d segments", MAX_PRIVATE);
        return emit_error(&e);
    }
    for (i = 0; i < n; i++) {
        ids[i] = shmget(IPC_PRIVATE, (size_t)o->size, 0600 | IPC_CREAT);
        if (ids[i] < 0) {
            err_sys(&e, "shmget", errno, SX_SHMGET);
            goto fail;
        }
        at[i] = shmat(ids[i], NULL, 0);
        if (at[i] == (void *)-1) {
            err_sys(&e, "shmat", errno, SX_SHMAT);
            goto fail;
        }
        made++;
        if (o->fill)
            touch_pages(at[i], (size_t)o->size);
        emit_shmid("attached", ids[i], (unsigned long long)o->size);
        if (o->rmid) {
            if (shmctl(ids[i], IPC_RMID, NULL) < 0) {
                err_sys(&e, "shmctl", errno, SX_SHMCTL);
                goto fail;
            }
            emit_shmid("marked", ids[i], 0);
        }
    }
    if (o->exit_set)
        crash(o->exit_code);
    if (!stopping()) {
        emit_simple("holding");
        wait_for_stop();
    }
    /* IPC_RMID first, while attached: the segment is marked and goes at our detach
     * (removing after the detach fails with EINVAL where kernel.shm_rmid_forced=1
     * has already destroyed it) */
    for (i = 0; i < made; i++) {
        if (!o->rmid) {
            if (shmctl(ids[i], IPC_RMID, NULL) < 0) {
                err_sys(&e, "shmctl", errno, SX_SHMCTL);
                goto fail;
            }
            emit_shmid("removed", ids[i], 0);
        }
        if (shmdt(at[i]) < 0) {
            err_sys(&e, "shmdt", errno, SX_SHMDT);
            goto fail;
        }
        at[i] = (void *)-1;
        emit_shmid("detached", ids[i], 0);
    }
    return emit_done(0, 0);
fail:
    rc = emit_error(&e);
    for (i = 0; i < made; i++)
        if (at[i] != (void *)-1)
            shmdt(at[i]);
    return rc;
}

/* ==== devshm-fill ==== */

/* shm_unlink every /PREFIX.N a previous run left: the fix for a crash loop in a
 * namespace that outlives the container. */
static int clean_prefix(const char *prefix, struct err *e)
{
    DIR *d = opendir("/dev/shm");
    struct dirent *de;
    size_t len = strlen(prefix);
    long long removed = 0;
    char name[300];
    struct ev ev;

    if (d == NULL)
        return err_sys(e, "opendir", errno, SX_OPEN);
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, prefix, len) != 0 || de->d_name[len] != '.')
            continue;
        snprintf(name, sizeof name, "/%s", de->d_name);
        if (shm_unlink(name) < 0 && errno != ENOENT) {
            closedir(d);
            return err_sys(e, "shm_unlink", errno, SX_SHM_UNLINK);
        }
        removed++;
    }
    closedir(d);
    ev_begin(&ev, "cleaned");
    ev_int(&ev, "removed", removed);
    ev_emit(&ev);
    return 0;
}

/* A new object /PREFIX.N, N the first free number: every run of a crash loop gets its own,
 * as programs that put a pid or a timestamp in the name do. */
static int open_fresh(const char *prefix, char *name, size_t n, int *fd, struct err *e)
{
    int i;

    for (i = 1; i < 100000; i++) {
        snprintf(name, n, "%s.%d", prefix, i);
        *fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0666);
        if (*fd >= 0)
            return 0;
        if (errno != EEXIST)
            return err_sys(e, "shm_open", errno, SX_SHM_OPEN);
    }
    return err_msg(e, "shm_open", EEXIST, SX_SHM_OPEN, "no free name %s.N", prefix);
}

/* write(), not ftruncate + mmap: a full tmpfs then answers ENOSPC (an error event,
 * exit 29) rather than SIGBUS, and every page is charged to this container's cgroup. */
static int write_bytes(int fd, long long size, struct err *e)
{
    static char buf[CHUNK];
    long long done = 0;
    ssize_t w;

    memset(buf, 0x5a, sizeof buf);
    while (done < size) {
        size_t want = (size - done) < CHUNK ? (size_t)(size - done) : CHUNK;

        w = write(fd, buf, want);
        if (w < 0) {
            if (errno == EINTR && !stopping())
                continue;
            return err_sys(e, "write", errno, SX_WRITE);
        }
        done += w;
    }
    return 0;
}

/* --path PATH: the file itself, created or truncated (a tmpfs mount, a volume: any path) */
static int open_path(const char *path, int *fd, struct err *e)
{
    *fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (*fd < 0)
        return err_sys(e, "open", errno, SX_OPEN);
    return 0;
}

int cmd_devshm_fill(const struct opts *o)
{
    char name[256];
    const char *key = o->path != NULL ? "path" : "name"; /* the events name what was filled */
    struct err e;
    int fd = -1, rc = SX_OK;

    if (o->clean && clean_prefix(o->name + 1, &e) < 0)
        goto fail;
    if (o->path != NULL) {
        snprintf(name, sizeof name, "%s", o->path);
        if (open_path(o->path, &fd, &e) < 0)
            goto fail;
    } else if (open_fresh(o->name, name, sizeof name, &fd, &e) < 0) {
        goto fail;
    }
    emit_key_size("opened", key, name, 0);
    if (o->await_go && !await_go()) {
        close(fd);
        return emit_done(0, 0);
    }
    if (write_bytes(fd, o->size, &e) < 0)
        goto fail;
    close(fd);
    fd = -1;
    emit_key_size("filled", key, name, (unsigned long long)o->size);
    if (o->exit_set)
        crash(o->exit_code);
    if (o->hold != HOLD_NONE && !stopping()) {
        emit_simple("holding");
        wait_for_stop();
    }
    if (o->unlink) {
        if (o->path != NULL ? unlink(name) < 0 : shm_unlink(name) < 0) {
            err_sys(&e, o->path != NULL ? "unlink" : "shm_unlink", errno, o->path != NULL ? SX_OPEN : SX_SHM_UNLINK);
            goto fail;
        }
        emit_key_size("unlinked", key, name, (unsigned long long)o->size);
    }
    return emit_done(0, 0);
fail:
    rc = emit_error(&e);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ==== devshm-map ==== */

/* Map all of /NAME (written by another container) and read one byte per page, then hold
 * until SIGTERM: the pages are in this process's mappings but were charged to the memory
 * cgroup of whoever touched them first. */
int cmd_devshm_map(const struct opts *o)
{
    long long deadline = now_ms() + o->wait_ms, left;
    volatile const char *p = MAP_FAILED;
    unsigned long long sum = 0;
    struct stat st;
    struct err e;
    size_t size = 0, i;
    long page = sysconf(_SC_PAGESIZE);
    int fd, rc = SX_OK;

    while ((fd = shm_open(o->name, O_RDONLY, 0)) < 0) {
        left = deadline - now_ms();
        if (errno != ENOENT || left <= 0) {
            err_sys(&e, "shm_open", errno, SX_SHM_OPEN);
            goto fail;
        }
        if (sleep_ms(left < 50 ? left : 50))
            return emit_done(0, 0);
    }
    if (fstat(fd, &st) < 0) {
        err_sys(&e, "fstat", errno, SX_FSTAT);
        goto fail;
    }
    size = (size_t)st.st_size;
    if (size > 0) {
        p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            err_sys(&e, "mmap", errno, SX_MMAP);
            goto fail;
        }
        if (page <= 0)
            page = 4096;
        for (i = 0; i < size; i += (size_t)page)
            sum += (unsigned char)p[i];
    }
    emit_name_size("mapped", o->name, (unsigned long long)size);
    (void)sum;
    if (!stopping()) {
        emit_simple("holding");
        wait_for_stop();
    }
    if (p != MAP_FAILED && munmap((void *)p, size) < 0) {
        p = MAP_FAILED;
        err_sys(&e, "munmap", errno, SX_MUNMAP);
        goto fail;
    }
    p = MAP_FAILED;
    emit_simple("unmapped");
    close(fd);
    return emit_done(0, 0);
fail:
    rc = emit_error(&e);
    if (p != MAP_FAILED)
        munmap((void *)p, size);
    if (fd >= 0)
        close(fd);
    return rc;
}
