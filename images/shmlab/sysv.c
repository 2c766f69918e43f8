/* sysv.c - sysv-writer and sysv-reader: a struct conn_stat in a SysV segment. */
#include <errno.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>

#include "shmlab.h"

#ifndef SHM_DEST
#define SHM_DEST 01000 /* the kernel's "marked for removal" mode bit */
#endif

union semun_arg {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
};

struct sysv_ctx {
    int shmid;
    int semid;
};

/* ==== helpers ==== */

static int seg_size(int shmid, unsigned long *size, int *dest, struct err *e)
{
    struct shmid_ds ds;

    if (shmctl(shmid, IPC_STAT, &ds) < 0)
        return err_sys(e, "shmctl", errno, SX_SHMCTL);
    *size = (unsigned long)ds.shm_segsz;
    *dest = (ds.shm_perm.mode & SHM_DEST) != 0;
    return 0;
}

static void emit_attached(int key, int shmid, unsigned long size, int created)
{
    struct ev e;

    ev_begin(&e, "attached");
    ev_int(&e, "key", key);
    ev_int(&e, "shmid", shmid);
    ev_uint(&e, "size", size);
    ev_bool(&e, "created", created);
    ev_emit(&e);
}

static void emit_removed(int shmid)
{
    struct ev e;

    ev_begin(&e, "removed");
    ev_int(&e, "shmid", shmid);
    ev_emit(&e);
}

static void hold_here(void)
{
    if (stopping())
        return;
    emit_simple("holding");
    wait_for_stop();
}

static int check_dest(void *ctx, struct err *e)
{
    struct sysv_ctx *c = ctx;
    unsigned long size = 0;
    int dest = 0;

    if (seg_size(c->shmid, &size, &dest, e) < 0)
        return -1;
    if (!dest)
        return 0;
    emit_simple("marked");
    return 1;
}

static int sem_lock(void *ctx, struct err *e)
{
    struct sysv_ctx *c = ctx;
    struct sembuf op = { 0, -1, SEM_UNDO };

    if (semop(c->semid, &op, 1) < 0)
        return err_sys(e, "semop", errno, SX_SEM);
    return 0;
}

static int sem_unlock(void *ctx, struct err *e)
{
    struct sysv_ctx *c = ctx;
    struct sembuf op = { 0, 1, SEM_UNDO };

    if (semop(c->semid, &op, 1) < 0)
        return err_sys(e, "semop", errno, SX_SEM);
    return 0;
}

/* A binary semaphore with the segment's key. A writer that finds the set
 * already there waits in semop until its creator's SETVAL 1 wakes it. */
static int sem_setup(int key, int *semid, struct err *e)
{
    union semun_arg arg;

    *semid = semget(key, 1, 0666 | IPC_CREAT | IPC_EXCL);
    if (*semid >= 0) {
        arg.val = 1;
        if (semctl(*semid, 0, SETVAL, arg) < 0)
            return err_sys(e, "semctl", errno, SX_SEM);
        return 0;
    }
    if (errno != EEXIST)
        return err_sys(e, "semget", errno, SX_SEM);
    *semid = semget(key, 1, 0666);
    if (*semid < 0)
        return err_sys(e, "semget", errno, SX_SEM);
    return 0;
}

/* --start-nattch N: racing writers must count at the same time, not one
 * container start-up (hundreds of ms) apart, or the count++ race never shows.
 * Polls shm_nattch every millisecond until N processes are attached. */
static int wait_nattch(int shmid, const struct opts *o, struct err *e)
{
    struct shmid_ds ds;
    long long deadline = now_ms() + o->timeout_ms;
    struct ev ev;

    for (;;) {
        if (shmctl(shmid, IPC_STAT, &ds) < 0)
            return err_sys(e, "shmctl", errno, SX_SHMCTL);
        if ((long long)ds.shm_nattch >= o->start_nattch)
            break;
        if (now_ms() >= deadline)
            return err_msg(e, "start-nattch", ETIMEDOUT, SX_TIMEOUT,
                           "%lu attachment(s), not %lld, within %lld ms",
                           (unsigned long)ds.shm_nattch, o->start_nattch, o->timeout_ms);
        if (sleep_ms(1))
            return 0; /* stopping: the write loop sees it and ends at once */
    }
    ev_begin(&ev, "ready");
    ev_uint(&ev, "nattch", (unsigned long long)ds.shm_nattch);
    ev_emit(&ev);
    return 0;
}

/* ==== sysv-writer ==== */

/* shmat and the "attached" event. Returns 0, or -1 with e filled. */
static int attach_seg(int key, int shmid, int flags, int created, void **p, struct err *e)
{
    unsigned long size = 0;
    int dest = 0;

    *p = shmat(shmid, NULL, flags);
    if (*p == (void *)-1)
        return err_sys(e, "shmat", errno, SX_SHMAT);
    if (seg_size(shmid, &size, &dest, e) < 0)
        return -1;
    emit_attached(key, shmid, size, created);
    return 0;
}

/* The end every SysV role shares: --hold attached, shmdt ("detached"), --rmid ("removed"),
 * --hold detached. may_be_gone: the segment was seen marked for removal, so after our
 * detach it may already be destroyed (EINVAL/EIDRM from IPC_RMID is then no error).
 * Returns 0, or -1 with e filled (*p is (void *)-1 once detached). */
static int finish_seg(void **p, int shmid, const struct opts *o, int may_be_gone, struct err *e)
{
    if (o->hold == HOLD_IN)
        hold_here();
    if (shmdt(*p) < 0)
        return err_sys(e, "shmdt", errno, SX_SHMDT);
    *p = (void *)-1;
    emit_simple("detached");
    if (o->rmid) {
        if (shmctl(shmid, IPC_RMID, NULL) == 0)
            emit_removed(shmid);
        else if (!(may_be_gone && (errno == EINVAL || errno == EIDRM)))
            return err_sys(e, "shmctl", errno, SX_SHMCTL);
    }
    if (o->hold == HOLD_OUT)
        hold_here();
    return 0;
}

int cmd_sysv_writer(const struct opts *o)
{
    struct sysv_ctx ctx = { -1, -1 };
    struct write_hooks hooks = { NULL, NULL, NULL, &ctx };
    struct err e;
    void *p = (void *)-1;
    long long last = 0;
    int key, created = 0, r, rc = SX_OK;

    if (resolve_key(o, &key, &e) < 0)
        goto fail;
    ctx.shmid = shmget(key, (size_t)o->size, (int)o->mode | IPC_CREAT | IPC_EXCL);
    if (ctx.shmid >= 0)
        created = 1;
    else if (errno == EEXIST && !o->excl) /* --excl: someone else's segment is an error */
        ctx.shmid = shmget(key, (size_t)o->size, (int)o->mode);
    if (ctx.shmid < 0) {
        err_sys(&e, "shmget", errno, SX_SHMGET);
        goto fail;
    }
    if (attach_seg(key, ctx.shmid, 0, created, &p, &e) < 0)
        goto fail;
    if (created)
        conn_init(p, o);
    if (o->sem) {
        if (sem_setup(key, &ctx.semid, &e) < 0)
            goto fail;
        hooks.lock = sem_lock;
        hooks.unlock = sem_unlock;
    }
    if (!o->no_stop_on_rmid)
        hooks.check = check_dest;
    if (o->start_nattch > 0 && wait_nattch(ctx.shmid, o, &e) < 0)
        goto fail;
    r = write_loop(p, o, &hooks, &last, &e);
    /* r == 1: the loop stopped on seeing the segment marked for removal */
    if (r < 0 || finish_seg(&p, ctx.shmid, o, r == 1, &e) < 0)
        goto fail;
    return emit_done(1, last);
fail:
    rc = emit_error(&e);
    if (p != (void *)-1)
        shmdt(p);
    return rc;
}

/* ==== sysv-reader ==== */

int cmd_sysv_reader(const struct opts *o)
{
    struct err e;
    void *p = (void *)-1;
    long long last = 0;
    int key, shmid = -1, created = 0, rc = SX_OK;

    if (resolve_key(o, &key, &e) < 0)
        goto fail;
    if (o->create) {
        /* the tutorial's IPC_CREAT: in the wrong namespace this silently makes
         * a fresh zeroed segment; the EXCL probe only tells us it happened */
        shmid = shmget(key, CONN_STAT_SIZE, 0666 | IPC_CREAT | IPC_EXCL);
        if (shmid >= 0)
            created = 1;
        else if (errno == EEXIST)
            shmid = shmget(key, CONN_STAT_SIZE, 0666);
    } else {
        /* --wait D: retry ENOENT until the deadline (the writer of a pod may not have
         * created the segment yet: containers of a pod start together) */
        long long deadline = now_ms() + o->wait_ms, left;

        while ((shmid = shmget(key, 0, 0)) < 0 && errno == ENOENT && (left = deadline - now_ms()) > 0)
            if (sleep_ms(left < 50 ? left : 50))
                return emit_done(0, 0);
    }
    if (shmid < 0) {
        err_sys(&e, "shmget", errno, SX_SHMGET);
        goto fail;
    }
    if (attach_seg(key, shmid, SHM_RDONLY, created, &p, &e) < 0)
        goto fail;
    if (read_loop(p, o, &last, &e) < 0 || finish_seg(&p, shmid, o, 0, &e) < 0)
        goto fail;
    return emit_done(1, last);
fail:
    rc = emit_error(&e);
    if (p != (void *)-1)
        shmdt(p);
    return rc;
}
