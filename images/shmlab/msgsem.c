/* msgsem.c - msg-send, msg-recv and sem-counter: the other two SysV IPC
 * objects an IPC namespace holds (message queues and semaphore sets). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/time.h>

#include "shmlab.h"

struct lab_msg {
    long mtype;
    char text[64];
};

/* ==== helpers ==== */

static void emit_queue(const char *event, int key, int id, const char *idname)
{
    struct ev ev;

    ev_begin(&ev, event);
    ev_int(&ev, "key", key);
    ev_int(&ev, idname, id);
    ev_emit(&ev);
}

static void emit_msg(const char *event, long long seq, const char *text)
{
    struct ev ev;

    ev_begin(&ev, event);
    ev_int(&ev, "seq", seq);
    ev_str(&ev, "text", text);
    ev_emit(&ev);
}

/* A periodic SIGALRM (handler installed without SA_RESTART in main.c) makes a
 * blocked msgrcv return EINTR, so the deadline is checked even with no sender. */
static void tick(int on)
{
    struct itimerval it;

    memset(&it, 0, sizeof it);
    if (on) {
        it.it_interval.tv_usec = 100000;
        it.it_value.tv_usec = 100000;
    }
    setitimer(ITIMER_REAL, &it, NULL);
}

/* ==== msg-send ==== */

int cmd_msg_send(const struct opts *o)
{
    struct lab_msg m;
    struct err e;
    long long seq;
    int key, id;

    if (resolve_key(o, &key, &e) < 0)
        goto fail;
    id = msgget(key, 0666 | IPC_CREAT);
    if (id < 0) {
        err_sys(&e, "msgget", errno, SX_MSG);
        goto fail;
    }
    emit_queue("attached", key, id, "msqid");
    for (seq = 1; o->count == 0 || seq <= o->count; seq++) {
        if (seq > 1 && sleep_ms(o->interval_ms))
            break;
        if (stopping())
            break;
        m.mtype = 1;
        snprintf(m.text, sizeof m.text, "message %lld", seq);
        if (msgsnd(id, &m, strlen(m.text) + 1, 0) < 0) {
            if (errno == EINTR && stopping())
                break;
            err_sys(&e, "msgsnd", errno, SX_MSG);
            goto fail;
        }
        emit_msg("sent", seq, m.text);
    }
    if (o->rmid) {
        if (msgctl(id, IPC_RMID, NULL) < 0) {
            err_sys(&e, "msgctl", errno, SX_MSG);
            goto fail;
        }
        emit_queue("removed", key, id, "msqid");
    }
    return emit_done(1, seq - 1);
fail:
    return emit_error(&e);
}

/* ==== msg-recv ==== */

int cmd_msg_recv(const struct opts *o)
{
    struct lab_msg m;
    struct err e;
    long long seq = 0, deadline = now_ms() + o->timeout_ms;
    ssize_t n;
    int key, id, rc;

    if (resolve_key(o, &key, &e) < 0)
        goto fail;
    id = msgget(key, o->create ? 0666 | IPC_CREAT : 0);
    if (id < 0) {
        err_sys(&e, "msgget", errno, SX_MSG);
        goto fail;
    }
    emit_queue("attached", key, id, "msqid");
    tick(1);
    while ((o->count == 0 || seq < o->count) && !stopping()) {
        n = msgrcv(id, &m, sizeof m.text, 0, 0);
        if (n < 0 && errno == EINTR) {
            if (o->count != 0 && now_ms() >= deadline) {
                err_msg(&e, "msgrcv", ETIMEDOUT, SX_TIMEOUT,
                        "received %lld of %lld messages within %lld ms", seq, o->count,
                        o->timeout_ms);
                goto fail;
            }
            continue;
        }
        if (n < 0) {
            err_sys(&e, "msgrcv", errno, SX_MSG);
            goto fail;
        }
        m.text[n > 0 ? (size_t)n - 1 : 0] = '\0';
        seq++;
        emit_msg("received", seq, m.text);
    }
    tick(0);
    if (o->rmid) {
        if (msgctl(id, IPC_RMID, NULL) < 0) {
            err_sys(&e, "msgctl", errno, SX_MSG);
            goto fail;
        }
        emit_queue("removed", key, id, "msqid");
    }
    return emit_done(1, seq);
fail:
    tick(0);
    rc = emit_error(&e);
    return rc;
}

/* ==== sem-counter ==== */

int cmd_sem_counter(const struct opts *o)
{
    struct sembuf up = { 0, 1, 0 };
    struct err e;
    struct ev ev;
    long long i;
    int key, id, value = 0;

    if (resolve_key(o, &key, &e) < 0)
        goto fail;
    id = semget(key, 1, 0666 | IPC_CREAT);
    if (id < 0) {
        err_sys(&e, "semget", errno, SX_SEM);
        goto fail;
    }
    emit_queue("attached", key, id, "semid");
    for (i = 0; o->count == 0 || i < o->count; i++) {
        if (i > 0 && sleep_ms(o->interval_ms))
            break;
        if (stopping())
            break;
        if (semop(id, &up, 1) < 0) {
            err_sys(&e, "semop", errno, SX_SEM);
            goto fail;
        }
        value = semctl(id, 0, GETVAL);
        if (value < 0) {
            err_sys(&e, "semctl", errno, SX_SEM);
            goto fail;
        }
        ev_begin(&ev, "incremented");
        ev_int(&ev, "value", value);
        ev_emit(&ev);
    }
    if (o->rmid) {
        if (semctl(id, 0, IPC_RMID) < 0) {
            err_sys(&e, "semctl", errno, SX_SEM);
            goto fail;
        }
        emit_queue("removed", key, id, "semid");
    }
    return emit_done(1, value);
fail:
    return emit_error(&e);
}
