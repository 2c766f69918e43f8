/* mmapfile.c - mmap-writer and mmap-reader: a struct conn_stat in a file
 * mapped MAP_SHARED; the bodies also serve posix.c (shm_open objects). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmlab.h"

/* ==== helpers ==== */

static int open_target(const struct file_ops *f, int flags, int *fd, struct err *e)
{
    if (f->posix)
        *fd = shm_open(f->target, flags, 0666);
    else
        *fd = open(f->target, flags | O_CLOEXEC, 0666);
    if (*fd < 0)
        return err_sys(e, f->open_call, errno, f->open_code);
    return 0;
}

static int emit_opened(const struct file_ops *f, int fd, int with_size, struct err *e)
{
    struct stat st;
    struct ev ev;

    if (fstat(fd, &st) < 0)
        return err_sys(e, "fstat", errno, SX_FSTAT);
    ev_begin(&ev, "opened");
    ev_str(&ev, f->what, f->target);
    ev_uint(&ev, "dev", (unsigned long long)st.st_dev);
    ev_uint(&ev, "ino", (unsigned long long)st.st_ino);
    if (with_size)
        ev_int(&ev, "size", (long long)st.st_size);
    ev_emit(&ev);
    return 0;
}

static void emit_sized(const char *event, const char *k, unsigned long long v)
{
    struct ev ev;

    ev_begin(&ev, event);
    ev_uint(&ev, k, v);
    ev_emit(&ev);
}

static void hold_here(void)
{
    if (stopping())
        return;
    emit_simple("holding");
    wait_for_stop();
}

/* Touch every page so the tmpfs really allocates it: past /dev/shm's size
 * this raises SIGBUS, which is the pitfall the lab shows. */
static void fill_pages(volatile char *p, size_t size)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t i;

    if (page <= 0)
        page = 4096;
    for (i = sizeof(struct conn_stat); i < size; i += (size_t)page)
        p[i] = 1;
}

static void emit_unlinked(const struct file_ops *f)
{
    struct ev ev;

    ev_begin(&ev, "unlinked");
    ev_str(&ev, f->what, f->target);
    ev_emit(&ev);
}

/* --unlink: shm_unlink/unlink the name (the object lives on while mapped or open) */
static int remove_target(const struct file_ops *f, struct err *e)
{
    if (f->posix ? shm_unlink(f->target) : unlink(f->target))
        return err_sys(e, f->posix ? "shm_unlink" : "unlink", errno, f->posix ? SX_SHM_UNLINK : SX_OPEN);
    emit_unlinked(f);
    return 0;
}

/* ==== writer ==== */

int mapped_writer(const struct opts *o, const struct file_ops *f)
{
    struct err e;
    size_t size = f->posix ? (size_t)o->size : CONN_STAT_SIZE;
    void *p = MAP_FAILED;
    long long last = 0;
    int fd = -1, rc = SX_OK, r;

    /* --excl: O_EXCL, as a program that must own its name does; another's object is EEXIST */
    if (open_target(f, O_RDWR | O_CREAT | (o->excl ? O_EXCL : f->posix ? 0 : O_TRUNC), &fd, &e) < 0)
        goto fail;
    /* --mode: the mode asked for, whatever the umask (a root runtime's 022 turns the
     * 0666 of shm_open/open into 0644, which a peer of another uid cannot open O_RDWR) */
    if (o->mode_set && fchmod(fd, (mode_t)o->mode) < 0) {
        err_sys(&e, "fchmod", errno, SX_OPEN);
        goto fail;
    }
    if (emit_opened(f, fd, 0, &e) < 0)
        goto fail;
    /* the window in which a reader mapping the empty file gets SIGBUS */
    if (o->truncate_delay_ms > 0)
        sleep_ms(o->truncate_delay_ms);
    if (!stopping()) {
        if (ftruncate(fd, (off_t)size) < 0) {
            err_sys(&e, "ftruncate", errno, SX_FTRUNCATE);
            goto fail;
        }
        if (f->posix && o->fallocate) {
            /* POSIX returns the error number; some libcs return -1 and set errno */
            r = posix_fallocate(fd, 0, (off_t)size);
            if (r != 0) {
                err_sys(&e, "posix_fallocate", r == -1 ? errno : r, SX_FTRUNCATE);
                goto fail;
            }
        }
        /* --exec: an executable mapping, as JITs and some databases make; a file on a
         * noexec mount (Docker's /dev/shm) refuses it with EPERM */
        p = mmap(NULL, size, PROT_READ | PROT_WRITE | (o->exec_map ? PROT_EXEC : 0), MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            err_sys(&e, "mmap", errno, SX_MMAP);
            goto fail;
        }
        emit_sized("mapped", "size", size);
        if (f->posix && o->fill) {
            fill_pages(p, size);
            emit_sized("filled", "size", size);
        }
        conn_init(p, o);
        if (write_loop(p, o, NULL, &last, &e) < 0)
            goto fail;
        if (msync(p, size, MS_SYNC) < 0) {
            err_sys(&e, "msync", errno, SX_MMAP);
            goto fail;
        }
        if (o->hold == HOLD_IN)
            hold_here();
        r = munmap(p, size);
        p = MAP_FAILED;
        if (r < 0) {
            err_sys(&e, "munmap", errno, SX_MUNMAP);
            goto fail;
        }
        emit_simple("unmapped");
        if (o->hold == HOLD_OUT)
            hold_here();
    }
    if (o->unlink && remove_target(f, &e) < 0)
        goto fail;
    close(fd);
    return emit_done(1, last);
fail:
    rc = emit_error(&e);
    if (p != MAP_FAILED)
        munmap(p, size);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ==== reader ==== */

int mapped_reader(const struct opts *o, const struct file_ops *f)
{
    struct err e;
    void *p = MAP_FAILED;
    long long last = 0, deadline = now_ms() + o->wait_ms, left;
    int fd = -1, rc = SX_OK;

    /* --wait: poll with a deadline until the writer's file exists and has its full
     * size (a pod starts its containers together: the file may not exist yet, or
     * not be ftruncated yet, which is the SIGBUS window). At the deadline a file
     * that is still short is mapped anyway, as without --wait. */
    for (;;) {
        struct stat st;

        left = deadline - now_ms();
        if (open_target(f, o->rdwr ? O_RDWR : O_RDONLY, &fd, &e) < 0) {
            if (e.errnum != ENOENT || left <= 0)
                goto fail;
        } else if (left <= 0 || (fstat(fd, &st) == 0 && st.st_size >= (off_t)CONN_STAT_SIZE)) {
            break;
        } else {
            close(fd);
            fd = -1;
        }
        if (sleep_ms(left < 50 ? left : 50))
            return emit_done(0, 0);
    }
    if (emit_opened(f, fd, 1, &e) < 0)
        goto fail;
    /* sizeof the struct whatever the file size: past EOF is SIGBUS, on purpose */
    p = mmap(NULL, CONN_STAT_SIZE, PROT_READ | (o->rdwr ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        err_sys(&e, "mmap", errno, SX_MMAP);
        goto fail;
    }
    emit_sized("mapped", "size", CONN_STAT_SIZE);
    if (read_loop(p, o, &last, &e) < 0)
        goto fail;
    rc = munmap(p, CONN_STAT_SIZE);
    p = MAP_FAILED;
    if (rc < 0) {
        err_sys(&e, "munmap", errno, SX_MUNMAP);
        goto fail;
    }
    emit_simple("unmapped");
    /* --unlink on a reader: the name goes although this process only attached to it, as
     * Python's multiprocessing resource tracker unlinks a SharedMemory at exit; a peer
     * that opens the name later gets ENOENT */
    if (o->unlink && remove_target(f, &e) < 0)
        goto fail;
    close(fd);
    return emit_done(1, last);
fail:
    rc = emit_error(&e);
    if (p != MAP_FAILED)
        munmap(p, CONN_STAT_SIZE);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ==== commands ==== */

int cmd_mmap_writer(const struct opts *o)
{
    struct file_ops f = { "open", SX_OPEN, "path", o->path, 0 };

    return mapped_writer(o, &f);
}

int cmd_mmap_reader(const struct opts *o)
{
    struct file_ops f = { "open", SX_OPEN, "path", o->path, 0 };

    return mapped_reader(o, &f);
}
