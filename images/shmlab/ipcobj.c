/* ipcobj.c - the IPC objects of a namespace besides shm segments, for probe:
 * SysV semaphore sets (/proc/sysvipc/sem), SysV message queues (/proc/sysvipc/msg)
 * and POSIX message queues (the mqueue filesystem at /dev/mqueue); and the removal
 * of one object by id or name (labctl's host-IPC teardown, run as the owner).
 * Also mq-send / mq-recv, the POSIX message queue workloads. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>

#include "shmlab.h"

#define MAX_TABLE_COLS 32

/* One /proc/sysvipc table as a JSON list of objects with the wanted columns (named by
 * the header, so a kernel that moves a column does not shift values). perms is octal
 * there; it is reported as mode & 0777. */
static void sysv_table(struct ev *ev, const char *key, const char *path, const char *const *cols,
                       int ncols)
{
    FILE *f = fopen(path, "re");
    char line[1024], *tok[MAX_TABLE_COLS], *save, *t, msg[160], errkey[48];
    int idx[MAX_TABLE_COLS], i, j, n;
    struct jb b;

    snprintf(errkey, sizeof errkey, "%s_error", key);
    if (f == NULL || fgets(line, sizeof line, f) == NULL) {
        snprintf(msg, sizeof msg, "%s: %s", path, f == NULL ? strerror(errno) : "empty");
        if (f != NULL)
            fclose(f);
        ev_null(ev, key);
        ev_str(ev, errkey, msg);
        return;
    }
    n = 0;
    for (t = strtok_r(line, " \t\n", &save); t && n < MAX_TABLE_COLS; t = strtok_r(NULL, " \t\n", &save))
        tok[n++] = t;
    for (i = 0; i < ncols; i++) {
        idx[i] = -1;
        for (j = 0; j < n; j++)
            if (strcmp(tok[j], cols[i]) == 0)
                idx[i] = j;
    }
    jb_init(&b);
    jb_open(&b, '[');
    while (fgets(line, sizeof line, f) != NULL) {
        n = 0;
        for (t = strtok_r(line, " \t\n", &save); t && n < MAX_TABLE_COLS; t = strtok_r(NULL, " \t\n", &save))
            tok[n++] = t;
        if (n == 0)
            continue;
        jb_open(&b, '{');
        for (i = 0; i < ncols; i++) {
            jb_key(&b, cols[i]);
            if (idx[i] < 0 || idx[i] >= n)
                jb_null(&b);
            else if (strcmp(cols[i], "perms") == 0)
                jb_int(&b, strtoll(tok[idx[i]], NULL, 8) & 0777);
            else
                jb_int(&b, strtoll(tok[idx[i]], NULL, 10));
        }
        jb_close(&b, '}');
    }
    fclose(f);
    jb_close(&b, ']');
    ev_json(ev, key, &b);
    jb_free(&b);
}

void probe_sems(struct ev *ev)
{
    static const char *const cols[] = { "key", "semid", "perms", "nsems", "uid", "gid", "cuid" };

    sysv_table(ev, "sems", "/proc/sysvipc/sem", cols, 7);
}

void probe_queues(struct ev *ev)
{
    static const char *const cols[] = { "key", "msqid", "perms", "cbytes", "qnum", "lspid", "lrpid",
                                        "uid", "gid", "cuid" };

    sysv_table(ev, "queues", "/proc/sysvipc/msg", cols, 10);
}

/* /dev/mqueue: one entry per POSIX message queue of the namespace the mqueue
 * filesystem was mounted for (a container's own, or the host's with ipc: host). */
void probe_mqueues(struct ev *ev)
{
    char dir[128], path[400], msg[200];
    DIR *d = opendir(probe_path("/dev/mqueue", dir, sizeof dir));
    struct dirent *de;
    struct stat st;
    struct jb b;

    if (d == NULL) {
        snprintf(msg, sizeof msg, "%s: %s", dir, strerror(errno));
        ev_null(ev, "mqueues");
        ev_str(ev, "mqueues_error", msg);
        return;
    }
    jb_init(&b);
    jb_open(&b, '[');
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        jb_open(&b, '{');
        jb_key(&b, "name");
        jb_str(&b, de->d_name);
        if (stat(path, &st) == 0) {
            jb_key(&b, "uid"); jb_int(&b, st.st_uid);
            jb_key(&b, "gid"); jb_int(&b, st.st_gid);
            jb_key(&b, "perms"); jb_int(&b, st.st_mode & 0777);
        }
        jb_close(&b, '}');
    }
    closedir(d);
    jb_close(&b, ']');
    ev_json(ev, "mqueues", &b);
    jb_free(&b);
}

static void removed(struct ev *ev, int rc)
{
    ev_bool(ev, "removed", rc == 0);
    if (rc != 0)
        ev_str(ev, "errno", errno_name(errno));
}

/* --rmid with --shmid/--semid/--msqid ID, or --mq-unlink/--shm-unlink NAME: remove one
 * object. Needs to be its owner (or CAP_SYS_ADMIN): labctl runs it as the owner's uid. */
int probe_remove(struct ev *ev, const struct opts *o)
{
    if (o->rmid && o->shmid_set)
        removed(ev, shmctl((int)o->shmid, IPC_RMID, NULL));
    else if (o->rmid && o->semid_set)
        removed(ev, semctl((int)o->semid, 0, IPC_RMID));
    else if (o->rmid && o->msqid_set)
        removed(ev, msgctl((int)o->msqid, IPC_RMID, NULL));
    else if (o->mq_unlink != NULL)
        removed(ev, mq_unlink(o->mq_unlink));
    else if (o->shm_unlink != NULL)
        removed(ev, shm_unlink(o->shm_unlink));
    else
        return 0;
    return 1;
}

/* ==== mq-send / mq-recv ==== */

static void emit_mq(const char *event, const char *name, int created)
{
    struct ev ev;

    ev_begin(&ev, event);
    ev_str(&ev, "mq_name", name);
    if (created >= 0)
        ev_bool(&ev, "created", created);
    ev_emit(&ev);
}

/* mq_open(O_CREAT) for the sender, plain for the receiver unless --create; --unlink
 * removes the queue at the end. Messages are "message N", one every --interval. */
static int mq_run(const struct opts *o, int sender)
{
    struct mq_attr attr = { 0 };
    char text[64];
    struct err e;
    struct ev ev;
    long long seq, deadline = now_ms() + o->timeout_ms;
    int flags = sender ? O_WRONLY : O_RDONLY, created = 0;
    mqd_t q;

    if (o->name == NULL || o->name[0] != '/') {
        err_msg(&e, "usage", EINVAL, SX_USAGE, "--name /NAME is required (a leading slash)");
        return emit_error(&e);
    }
    attr.mq_maxmsg = 8;
    attr.mq_msgsize = sizeof text;
    if (sender || o->create) {
        q = mq_open(o->name, flags | O_CREAT | O_EXCL, 0666, &attr);
        created = q != (mqd_t)-1;
        if (q == (mqd_t)-1 && errno == EEXIST)
            q = mq_open(o->name, flags);
    } else {
        q = mq_open(o->name, flags);
    }
    if (q == (mqd_t)-1) {
        err_sys(&e, "mq_open", errno, SX_MSG);
        return emit_error(&e);
    }
    emit_mq("attached", o->name, created);
    for (seq = 1; (o->count == 0 || seq <= o->count) && !stopping(); seq++) {
        struct timespec ts;

        if (seq > 1 && sender && sleep_ms(o->interval_ms))
            break;
        /* wait in one-second slices: a stop signal or the deadline is noticed */
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        if (sender) {
            snprintf(text, sizeof text, "message %lld", seq);
            if (mq_timedsend(q, text, strlen(text) + 1, 0, &ts) < 0) {
                if (errno == ETIMEDOUT || errno == EINTR) {
                    seq--;
                    continue; /* queue full: wait for a receiver */
                }
                err_sys(&e, "mq_send", errno, SX_MSG);
                goto fail;
            }
        } else if (mq_timedreceive(q, text, sizeof text, NULL, &ts) < 0) {
            if (errno != ETIMEDOUT && errno != EINTR) {
                err_sys(&e, "mq_receive", errno, SX_MSG);
                goto fail;
            }
            if (o->count != 0 && now_ms() >= deadline) {
                err_msg(&e, "mq_receive", ETIMEDOUT, SX_TIMEOUT, "received %lld of %lld messages within %lld ms",
                        seq - 1, o->count, o->timeout_ms);
                goto fail;
            }
            seq--;
            continue;
        }
        text[sizeof text - 1] = '\0';
        ev_begin(&ev, sender ? "sent" : "received");
        ev_int(&ev, "seq", seq);
        ev_str(&ev, "text", text);
        ev_emit(&ev);
    }
    mq_close(q);
    if (o->unlink) {
        if (mq_unlink(o->name) < 0) {
            err_sys(&e, "mq_unlink", errno, SX_MSG);
            return emit_error(&e);
        }
        emit_mq("removed", o->name, -1);
    }
    return emit_done(1, seq - 1);
fail:
    mq_close(q);
    return emit_error(&e);
}

int cmd_mq_send(const struct opts *o)
{
    return mq_run(o, 1);
}

int cmd_mq_recv(const struct opts *o)
{
    return mq_run(o, 0);
}
