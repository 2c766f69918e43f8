/* main.c - shmlab: a static multi-call workload for the labctl shared-memory lab.
 *
 * shmlab COMMAND [--option VALUE | --flag]...  (see usage() or docs/internals.md)
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <time.h>
#include <unistd.h>

#include "shmlab.h"

volatile sig_atomic_t g_stop;
static struct timespec g_t0;

int cmd_bench(int argc, char **argv); /* bench.c: IPC round trips, its own options */

/* ==== commands and their options ==== */

enum {
    C_SW = 1 << 0,  /* sysv-writer */
    C_SR = 1 << 1,  /* sysv-reader */
    C_MW = 1 << 2,  /* mmap-writer */
    C_MR = 1 << 3,  /* mmap-reader */
    C_PW = 1 << 4,  /* posix-writer */
    C_PR = 1 << 5,  /* posix-reader */
    C_MS = 1 << 6,  /* msg-send */
    C_MV = 1 << 7,  /* msg-recv */
    C_SC = 1 << 8,  /* sem-counter */
    C_PB = 1 << 9,  /* probe */
    C_HD = 1 << 10, /* hold */
    C_PP = 1 << 11, /* prep */
    C_SP = 1 << 12, /* sysv-private */
    C_DF = 1 << 13, /* devshm-fill */
    C_DM = 1 << 14, /* devshm-map */
    C_QS = 1 << 15, /* mq-send */
    C_QR = 1 << 16, /* mq-recv */
    C_ALL = (1 << 17) - 1,
    C_WRITERS = C_SW | C_MW | C_PW,
    C_READERS = C_SR | C_MR | C_PR
};

struct command {
    const char *name;
    int (*run)(const struct opts *o);
    unsigned bit;
    int emits_start; /* probe answers with exactly one object: no start event */
};

static const struct command commands[] = {
    { "sysv-writer", cmd_sysv_writer, C_SW, 1 },
    { "sysv-reader", cmd_sysv_reader, C_SR, 1 },
    { "mmap-writer", cmd_mmap_writer, C_MW, 1 },
    { "mmap-reader", cmd_mmap_reader, C_MR, 1 },
    { "posix-writer", cmd_posix_writer, C_PW, 1 },
    { "posix-reader", cmd_posix_reader, C_PR, 1 },
    { "msg-send", cmd_msg_send, C_MS, 1 },
    { "msg-recv", cmd_msg_recv, C_MV, 1 },
    { "sem-counter", cmd_sem_counter, C_SC, 1 },
    { "probe", cmd_probe, C_PB, 0 },
    { "hold", cmd_hold, C_HD, 1 },
    { "prep", cmd_prep, C_PP, 1 },
    { "sysv-private", cmd_sysv_private, C_SP, 1 },
    { "devshm-fill", cmd_devshm_fill, C_DF, 1 },
    { "devshm-map", cmd_devshm_map, C_DM, 1 },
    { "mq-send", cmd_mq_send, C_QS, 1 },
    { "mq-recv", cmd_mq_recv, C_QR, 1 },
};

enum kind { K_FLAG, K_STR, K_INT, K_DUR, K_KEY, K_MODE, K_SIZE, K_HOLD };

struct optdef {
    const char *name;
    enum kind kind;
    unsigned cmds;
    size_t off;
    long setoff; /* offset of the matching *_set flag, or -1 */
};

#define O(f) offsetof(struct opts, f)
static const struct optdef optdefs[] = {
    { "role", K_STR, C_ALL, O(role), -1 },
    { "human", K_FLAG, C_ALL, O(human), -1 },
    { "key", K_KEY, C_SW | C_SR | C_MS | C_MV | C_SC | C_PB, O(key), (long)O(key_set) },
    { "ftok", K_STR, C_SW | C_SR | C_MS | C_MV | C_SC | C_PB, O(ftok_path), -1 },
    { "proj", K_INT, C_SW | C_SR | C_MS | C_MV | C_SC | C_PB, O(proj), (long)O(proj_set) },
    { "size", K_SIZE, C_SW | C_PW | C_SP | C_DF, O(size), (long)O(size_set) },
    { "mode", K_MODE, C_SW | C_MW | C_PW, O(mode), (long)O(mode_set) },
    { "rdwr", K_FLAG, C_MR | C_PR, O(rdwr), -1 },
    { "exec", K_FLAG, C_MW | C_PW, O(exec_map), -1 },
    { "excl", K_FLAG, C_SW | C_MW | C_PW, O(excl), -1 },
    { "ip", K_STR, C_WRITERS, O(ip), -1 },
    { "count", K_INT, C_WRITERS | C_MS | C_MV | C_SC | C_SP | C_QS | C_QR, O(count), (long)O(count_set) },
    { "interval", K_DUR, C_WRITERS | C_READERS | C_MS | C_SC | C_QS, O(interval_ms), (long)O(interval_set) },
    { "rmid", K_FLAG, C_SW | C_SR | C_MS | C_MV | C_SC | C_PB | C_SP, O(rmid), -1 },
    { "hold", K_HOLD, C_SW | C_SR | C_MW | C_PW | C_DF, O(hold), -1 },
    { "atomic", K_FLAG, C_WRITERS, O(atomic), -1 },
    { "quiet", K_FLAG, C_WRITERS, O(quiet), -1 },
    { "yield", K_FLAG, C_WRITERS, O(yield), -1 },
    { "sem", K_FLAG, C_SW, O(sem), -1 },
    { "no-stop-on-rmid", K_FLAG, C_SW, O(no_stop_on_rmid), -1 },
    { "start-nattch", K_INT, C_SW, O(start_nattch), -1 },
    { "create", K_FLAG, C_SR | C_MV | C_QR, O(create), -1 },
    { "reads", K_INT, C_READERS, O(reads), -1 },
    { "until", K_INT, C_READERS, O(until), (long)O(until_set) },
    { "timeout", K_DUR, C_SW | C_READERS | C_MV | C_QR, O(timeout_ms), -1 },
    { "changes", K_FLAG, C_READERS, O(changes), -1 },
    { "expect-ip", K_STR, C_READERS, O(expect_ip), -1 },
    { "struct", K_STR, C_WRITERS | C_READERS, O(struct_name), -1 },
    { "path", K_STR, C_MW | C_MR | C_DF, O(path), -1 },
    { "truncate-delay", K_DUR, C_MW | C_PW, O(truncate_delay_ms), -1 },
    { "unlink", K_FLAG, C_MW | C_MR | C_PW | C_PR | C_DF | C_QS | C_QR, O(unlink), -1 },
    { "wait", K_DUR, C_SR | C_MR | C_PR | C_DM, O(wait_ms), -1 },
    { "name", K_STR, C_PW | C_PR | C_DF | C_DM | C_QS | C_QR, O(name), -1 },
    { "fill", K_FLAG, C_PW | C_SP, O(fill), -1 },
    { "fallocate", K_FLAG, C_PW, O(fallocate), -1 },
    { "ns", K_FLAG, C_PB, O(ns), -1 },
    { "segments", K_FLAG, C_PB, O(segments), -1 },
    { "devshm", K_FLAG, C_PB, O(devshm), -1 },
    { "shmid", K_INT, C_PB, O(shmid), (long)O(shmid_set) },
    { "layout", K_STR, C_PB, O(layout), -1 },
    { "stat", K_STR, C_PB, O(stat_path), -1 },
    { "chmod", K_MODE, C_PP, O(chmod_mode), (long)O(chmod_set) },
    { "exit", K_INT, C_SP | C_DF, O(exit_code), (long)O(exit_set) },
    { "clean", K_FLAG, C_DF, O(clean), -1 },
    { "await-go", K_FLAG, C_DF, O(await_go), -1 },
    { "objects", K_FLAG, C_PB, O(objects), -1 },
    { "sems", K_FLAG, C_PB, O(sems), -1 },
    { "queues", K_FLAG, C_PB, O(queues), -1 },
    { "mqueues", K_FLAG, C_PB, O(mqueues), -1 },
    { "semid", K_INT, C_PB, O(semid), (long)O(semid_set) },
    { "msqid", K_INT, C_PB, O(msqid), (long)O(msqid_set) },
    { "mq-unlink", K_STR, C_PB, O(mq_unlink), -1 },
    { "shm-unlink", K_STR, C_PB, O(shm_unlink), -1 },
    { "statfs", K_FLAG, C_PB, O(statfs), -1 },
    { "ns-pid", K_INT, C_PB, O(ns_pid), (long)O(ns_pid_set) },
};
#undef O

/* ==== help ==== */

static void usage(FILE *f)
{
    fputs(
        "usage: shmlab COMMAND [OPTIONS]\n"
        "\n"
        "Commands:\n"
        "  sysv-writer   create/attach a SysV segment (struct conn_stat), set ip, count up\n"
        "  sysv-reader   attach a SysV segment read-only and report count and ip\n"
        "  mmap-writer   the same over a MAP_SHARED file (--path)\n"
        "  mmap-reader   read a mapped file (--path)\n"
        "  posix-writer  the same over POSIX shm (--name /NAME, lives in /dev/shm)\n"
        "  posix-reader  read a POSIX shm object (--name /NAME)\n"
        "  msg-send      send --count messages on a SysV message queue (--rmid: remove it)\n"
        "  msg-recv      receive --count messages from a SysV message queue\n"
        "  sem-counter   increment a SysV semaphore --count times (--rmid: remove the set)\n"
        "  mq-send       send --count messages on POSIX queue --name /NAME (created if\n"
        "                absent); --unlink removes it at the end\n"
        "  mq-recv       receive --count messages from --name /NAME (--create, --timeout D,\n"
        "                --unlink)\n"
        "  probe         one JSON object: --ns --segments --key --shmid --layout --objects\n"
        "                --devshm --sems --queues --mqueues --stat PATH --ftok PATH --proj N;\n"
        "                --statfs (/dev/shm size/used/avail); --ns-pid PID joins PID's IPC\n"
        "                namespace first (setns: CAP_SYS_ADMIN, host pid) and reads its\n"
        "                /dev through /proc/PID/root;\n"
        "                --shmid|--semid|--msqid ID --rmid, --mq-unlink|--shm-unlink /NAME\n"
        "                remove one object\n"
        "  hold          wait for SIGTERM/SIGINT (namespace holder, exec target)\n"
        "  prep          --chmod MODE PATH...: chmod paths\n"
        "  sysv-private  --count N IPC_PRIVATE segments of --size (default 4k), attached;\n"
        "                --fill touches them, --rmid marks them at once; holds until\n"
        "                SIGTERM, then detaches and removes them (SIGKILL skips that)\n"
        "  devshm-fill   --name /PREFIX --size N (default 1m): write N bytes into a new\n"
        "                /dev/shm/PREFIX.<n> (first free n); --clean unlinks PREFIX.*\n"
        "                first; or --path PATH: into the file PATH (any mount; created\n"
        "                or truncated); --hold attached|detached waits for SIGTERM; --unlink\n"
        "                --await-go: after opening, emit `awaiting` and write only once\n"
        "                SIGUSR1 comes (e.g. once the engine's start has returned)\n"
        "  devshm-map    --name /NAME [--wait D]: map the whole object, read every page,\n"
        "                hold until SIGTERM (pages someone else wrote are not charged)\n"
        "                sysv-private and devshm-fill: --exit CODE exits with CODE right\n"
        "                after creating, with no cleanup (a crash, for restart policies)\n"
        "  bench         IPC ping-pong benchmark: bench --role server|client|memcpy\n"
        "                --mech M --size N --iters N (see bench.c)\n"
        "\n"
        "Common options: --role NAME, --human (or SHMLAB_HUMAN=1), --help.\n"
        "SysV: --key K (decimal or 0x hex, default 1234) | --ftok PATH --proj N.\n"
        "Writers: --count N (0 = until signalled) --interval D --ip IP --atomic\n"
        "         --quiet (no `wrote` events: a tight loop for the count++ race)\n"
        "         --yield (sched_yield between count++'s load and store: the race\n"
        "         window made wide enough to show on any machine, however loaded)\n"
        "         --size BYTES --mode 0666 --rmid --hold none|attached|detached\n"
        "         --sem --no-stop-on-rmid (sysv) --truncate-delay D --unlink (mmap)\n"
        "         --start-nattch N (sysv: count only once N processes are attached,\n"
        "         within --timeout: racing writers start together)\n"
        "         --fill --fallocate (posix); mmap/posix hold: none|mapped|unmapped\n"
        "         mmap/posix: --mode M fchmods the new object to M whatever the umask,\n"
        "         --exec maps it PROT_EXEC too (a noexec mount: mmap EPERM, exit 22)\n"
        "         --excl creates exclusively (IPC_EXCL / O_EXCL): an existing segment\n"
        "         or object is an error, EEXIST (exit 10 shmget, 25 shm_open, 20 open)\n"
        "Readers: --reads M | --until K --timeout D, --interval D, --changes,\n"
        "         --expect-ip IP, --create --rmid --hold (sysv), --wait D (sysv: retry\n"
        "         ENOENT; mmap/posix: until the file exists with its full size),\n"
        "         --rdwr (mmap/posix: open O_RDWR and map it writable, as a peer that\n"
        "         writes back does: a 0644 object of another uid gives EACCES, exit 25/20),\n"
        "         --unlink (mmap/posix: remove the object at exit although this reader\n"
        "         only attached to it, as Python's resource tracker does; exit 26/20)\n"
        "Writers and readers: --struct conn_stat|wide|fixed, the layout counted in\n"
        "         (wide: long/size_t fields, whose offsets differ between 32- and\n"
        "         64-bit builds; fixed: fixed-width types, the same everywhere);\n"
        "         with --struct a `layout` event gives this build's size and offsets\n"
        "Durations: 250ms, 1s, 2.5s, 1m, 1h or bare milliseconds. Sizes: 68, 4k, 64m, 1g, 64MiB.\n"
        "`shmlab units size|duration VALUE...` prints what each VALUE parses to (bench too).\n"
        "\n"
        "Output: one JSON object per line on stdout (event, role, t_ms, fields);\n"
        "--human prints 'role: event k=v ...' instead. Diagnostics go to stderr.\n"
        "\n"
        "Exit codes:\n"
        "   0 ok (also after SIGTERM/SIGINT: detach, unmap, exit 0)\n"
        "   2 usage\n"
        "  10 shmget   11 shmat   12 shmdt   13 shmctl   14 ftok\n"
        "  20 open/unlink/chmod/fchmod   21 ftruncate/posix_fallocate   22 mmap/msync\n"
        "  23 munmap   24 fstat   25 shm_open   26 shm_unlink\n"
        "  27 msgget/msgsnd/msgrcv/msgctl   28 semget/semop/semctl\n"
        "  29 write (ENOSPC: /dev/shm is full)   --exit CODE: CODE, as asked\n"
        "  --excl finding the name taken: its call's code with errno EEXIST (10/20/25)\n"
        "  30 timeout (--until not reached)   31 data check failed (--expect-ip)\n"
        "  A fault such as SIGBUS is not caught: the container exits 128+signal (135).\n",
        f);
}

/* ==== value parsers ==== */

static int parse_ll(const char *s, int base, long long *out)
{
    char *end;

    errno = 0;
    *out = strtoll(s, &end, base);
    return (errno != 0 || end == s || *end != '\0') ? -1 : 0;
}

static int parse_key(const char *s, long long *out)
{
    long long v;

    if ((s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))) {
        if (parse_ll(s + 2, 16, &v) < 0 || v < 0 || v > 0xffffffffLL || s[2] == '-')
            return -1;
        *out = (long long)(int)(unsigned int)v; /* key_t is a signed int */
        return 0;
    }
    if (parse_ll(s, 10, &v) < 0 || v < INT_MIN || v > UINT_MAX)
        return -1;
    *out = v > INT_MAX ? (long long)(int)(unsigned int)v : v;
    return 0;
}

static int parse_hold(const char *s, long long *out)
{
    if (strcmp(s, "none") == 0)
        *out = HOLD_NONE;
    else if (strcmp(s, "attached") == 0 || strcmp(s, "mapped") == 0)
        *out = HOLD_IN;
    else if (strcmp(s, "detached") == 0 || strcmp(s, "unmapped") == 0)
        *out = HOLD_OUT;
    else
        return -1;
    return 0;
}

static int parse_value(const struct optdef *d, const char *v, struct opts *o)
{
    char *base = (char *)o + d->off;
    long long n = 0;
    int rc = 0;

    switch (d->kind) {
    case K_STR: *(const char **)(void *)base = v; return 0;
    case K_FLAG: return -1;
    case K_INT: rc = parse_ll(v, 10, &n); break;
    case K_DUR: rc = units_duration_ms(v, &n); break;
    case K_KEY: rc = parse_key(v, &n); break;
    case K_MODE: rc = parse_ll(v, 8, &n); if (n < 0 || n > 07777) rc = -1; break;
    case K_SIZE: rc = units_size(v, &n); break;
    case K_HOLD: rc = parse_hold(v, &n); break;
    }
    if (rc < 0)
        return -1;
    *(long long *)(void *)base = n;
    return 0;
}

/* ==== option parsing ==== */

static int usage_error(struct err *e, const char *fmt, const char *a, const char *b)
{
    err_msg(e, "usage", EINVAL, SX_USAGE, fmt, a, b);
    return -1;
}

static int parse_opts(const struct command *c, int argc, char **argv, struct opts *o, struct err *e)
{
    int i;
    size_t k;

    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        const struct optdef *d = NULL;
        const char *val = NULL;
        char name[64];
        const char *eq;

        if (strncmp(a, "--", 2) != 0) {
            if (c->bit != C_PP)
                return usage_error(e, "unexpected argument '%s'%s", a, " (options are --name VALUE)");
            o->args[o->nargs++] = argv[i];
            continue;
        }
        /* --name=value is accepted too */
        eq = strchr(a + 2, '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq ? (size_t)(eq - a - 2) : strlen(a + 2)), a + 2);
        for (k = 0; k < sizeof optdefs / sizeof optdefs[0]; k++)
            if (strcmp(optdefs[k].name, name) == 0)
                d = &optdefs[k];
        if (d == NULL)
            return usage_error(e, "unknown option --%s for %s", name, c->name);
        if (!(d->cmds & c->bit))
            return usage_error(e, "option --%s does not apply to %s", name, c->name);
        if (d->kind == K_FLAG) {
            if (eq)
                return usage_error(e, "option --%s takes no value%s", name, "");
            *(int *)(void *)((char *)o + d->off) = 1;
            continue;
        }
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else
            return usage_error(e, "option --%s needs a value%s", name, "");
        if (parse_value(d, val, o) < 0)
            return usage_error(e, "bad value for --%s: '%s'", name, val);
        if (d->setoff >= 0)
            *(int *)(void *)((char *)o + d->setoff) = 1;
    }
    return 0;
}

static void defaults(struct opts *o, const struct command *c)
{
    memset(o, 0, sizeof *o);
    o->role = c->name;
    o->key = 1234;
    o->size = (long long)CONN_STAT_SIZE;
    o->mode = 0666;
    o->ip = "127.0.0.1";
    o->count = 50;
    o->interval_ms = (c->bit & C_READERS) ? 150 : 100;
    o->reads = 5;
    o->timeout_ms = 10000;
    if (c->bit & C_SP)
        o->size = 4096;
    if (c->bit & C_DF)
        o->size = 1024 * 1024;
}

static int check_opts(const struct command *c, const struct opts *o, struct err *e)
{
    if ((c->bit & (C_MW | C_MR)) && o->path == NULL)
        return usage_error(e, "%s needs --path PATH%s", c->name, "");
    if ((c->bit & C_DF) && (o->path != NULL) == (o->name != NULL))
        return usage_error(e, "%s needs --name /PREFIX or --path PATH (one of them)%s", c->name, "");
    if ((c->bit & C_DF) && o->path != NULL && o->clean)
        return usage_error(e, "--clean needs --name /PREFIX%s%s", "", "");
    if ((c->bit & (C_PW | C_PR | C_DF | C_DM)) && !((c->bit & C_DF) && o->path != NULL) &&
        (o->name == NULL || o->name[0] != '/'))
        return usage_error(e, "%s needs --name /NAME%s", c->name, "");
    if ((c->bit & (C_DF | C_DM)) && o->name != NULL && (strchr(o->name + 1, '/') != NULL || strlen(o->name) > 200))
        return usage_error(e, "%s needs --name /NAME%s", c->name, "");
    if ((c->bit & (C_SW | C_PW)) && o->size < (long long)CONN_STAT_SIZE)
        return usage_error(e, "--size must be at least sizeof(struct conn_stat) = 68%s%s", "", "");
    if (o->ftok_path != NULL && !o->proj_set)
        return usage_error(e, "--ftok needs --proj N%s%s", "", "");
    if ((c->bit & C_SP) && (o->size < 1 || o->count < 1))
        return usage_error(e, "sysv-private needs --size and --count of at least 1%s%s", "", "");
    if (o->exit_set && (o->exit_code < 0 || o->exit_code > 255))
        return usage_error(e, "--exit takes a code from 0 to 255%s%s", "", "");
    if (o->count < 0 || o->reads < 0 || o->start_nattch < 0)
        return usage_error(e, "counts cannot be negative%s%s", "", "");
    if ((c->bit & C_PP) && (!o->chmod_set || o->nargs == 0))
        return usage_error(e, "prep needs --chmod MODE PATH...%s%s", "", "");
    if (o->shape == NULL)
        return usage_error(e, "unknown --struct '%s'%s (expected conn_stat, wide or fixed)",
                           o->struct_name, "");
    if (o->ip != NULL && strlen(o->ip) >= o->shape->ip_len)
        return err_msg(e, "usage", EINVAL, SX_USAGE, "--ip is longer than %zu bytes (the ip of --struct %s)",
                       o->shape->ip_len - 1, o->shape->name), -1;
    return 0;
}

/* ==== signals, time, sleeping ==== */

static void on_signal(int sig)
{
    g_stop = sig;
}

static void on_alarm(int sig)
{
    (void)sig; /* only there to interrupt blocking calls (msgrcv) */
}

static void install_signals(void)
{
    struct sigaction sa;

    /* no SA_RESTART: a signal must cut sleeps and blocking IPC calls short,
     * and as PID 1 in a container we would otherwise ignore SIGTERM */
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
}

long long now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)(t.tv_sec - g_t0.tv_sec) * 1000 + (t.tv_nsec - g_t0.tv_nsec) / 1000000;
}

int stopping(void)
{
    if (g_stop == 0)
        return 0;
    emit_signal_once();
    return 1;
}

int sleep_ms(long long ms)
{
    struct timespec dl;

    /* pacing only: an absolute deadline so unrelated EINTRs do not shorten it */
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += (time_t)(ms / 1000);
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    while (g_stop == 0) {
        int r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL);

        if (r != EINTR)
            return 0;
    }
    return stopping();
}

static volatile sig_atomic_t g_go;

static void on_go(int sig)
{
    (void)sig;
    g_go = 1;
}

int await_go(void)
{
    sigset_t block, old;
    struct sigaction sa;

    /* handler and mask first, then the event: a SIGUSR1 sent as soon as `awaiting` is
     * seen stays pending instead of killing us (its default action) or being lost */
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &old);
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_go;
    sigaction(SIGUSR1, &sa, NULL);
    emit_simple("awaiting");
    while (g_go == 0 && g_stop == 0)
        sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return !stopping();
}

void wait_for_stop(void)
{
    sigset_t block, old;

    /* block first, then test the flag, then sigsuspend: no lost wake-up */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &old);
    while (g_stop == 0)
        sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, NULL);
    stopping();
}

int resolve_key(const struct opts *o, int *key, struct err *e)
{
    key_t k;

    if (o->ftok_path == NULL) {
        *key = (int)o->key;
        return 0;
    }
    k = ftok(o->ftok_path, (int)o->proj);
    if (k == (key_t)-1)
        return err_sys(e, "ftok", errno, SX_FTOK);
    *key = (int)k;
    return 0;
}

/* ==== main ==== */

int main(int argc, char **argv)
{
    const struct command *c = NULL;
    struct opts o;
    struct err e;
    const char *env;
    size_t i;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &g_t0);
    install_signals();
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? SX_USAGE : SX_OK;
    }
    if (strcmp(argv[1], "bench") == 0)
        return cmd_bench(argc - 2, argv + 2);
    if (strcmp(argv[1], "units") == 0)
        return cmd_units(argc - 2, argv + 2);
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, argv[1]) == 0)
            c = &commands[i];
    if (c == NULL) {
        fprintf(stderr, "shmlab: unknown command '%s' (see shmlab --help)\n", argv[1]);
        return SX_USAGE;
    }
    for (i = 2; i < (size_t)argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return SX_OK;
        }
    defaults(&o, c);
    o.args = calloc((size_t)argc, sizeof *o.args);
    if (o.args == NULL)
        return SX_USAGE;
    env = getenv("SHMLAB_HUMAN");
    if (env != NULL && strcmp(env, "1") == 0)
        o.human = 1;
    rc = parse_opts(c, argc - 2, argv + 2, &o, &e);
    if (rc == 0) {
        o.shape = shape_find(o.struct_name);
        rc = check_opts(c, &o, &e);
    }
    if (rc < 0) {
        out_init(o.role, o.human);
        rc = emit_error(&e);
        goto cleanup;
    }
    out_init(o.role, o.human);
    if (c->emits_start)
        emit_start(argc, argv);
    if (o.struct_name != NULL)
        emit_layout(o.shape);
    rc = c->run(&o);
cleanup:
    free(o.args);
    return rc;
}
