/* shmlab.h - internal interfaces between the shmlab source files.
 *
 * main.c   command dispatch, option parsing, signals, sleeping
 * out.c    JSON-lines / human event output and the error buffer
 * loop.c   the shared writer and reader loops over a struct conn_stat
 * shape.c  --struct conn_stat|wide|fixed: the layouts the loops can count in
 * sysv.c   sysv-writer, sysv-reader
 * mmapfile.c, posix.c   mmap-* and posix-* commands
 * msgsem.c msg-send, msg-recv, sem-counter
 * probe.c  probe, hold, prep
 * ipcobj.c probe's sem/msg/mqueue listings and removals; mq-send, mq-recv
 * lifecycle.c sysv-private, devshm-fill, devshm-map (crashes, kills, restarts)
 */
#ifndef SHMLAB_H
#define SHMLAB_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

#include "conn_stat.h"

/* ==== exit codes (documented in --help) ==== */
enum {
    SX_OK = 0,
    SX_USAGE = 2,
    SX_SHMGET = 10,
    SX_SHMAT = 11,
    SX_SHMDT = 12,
    SX_SHMCTL = 13,
    SX_FTOK = 14,
    SX_OPEN = 20,
    SX_FTRUNCATE = 21,
    SX_MMAP = 22,
    SX_MUNMAP = 23,
    SX_FSTAT = 24,
    SX_SHM_OPEN = 25,
    SX_SHM_UNLINK = 26,
    SX_MSG = 27,
    SX_SEM = 28,
    SX_WRITE = 29,
    SX_TIMEOUT = 30,
    SX_CHECK = 31
};

/* ==== options ==== */
enum hold_mode { HOLD_NONE = 0, HOLD_IN = 1, HOLD_OUT = 2 }; /* in = attached/mapped */

struct opts {
    const char *role;
    int human;
    long long key;
    int key_set;
    const char *ftok_path;
    long long proj;
    int proj_set;
    long long size;
    int size_set;
    long long mode;
    int mode_set;   /* --mode given: mmap/posix writers fchmod to it (umask-proof) */
    int rdwr;       /* --rdwr: mmap/posix readers open O_RDWR and map PROT_WRITE too */
    int exec_map;   /* --exec: mmap/posix writers map PROT_EXEC too (noexec mounts: EPERM) */
    int excl;       /* --excl: writers create exclusively (O_EXCL / IPC_EXCL): EEXIST is an error */
    const char *ip;
    long long count;
    int count_set;
    long long interval_ms;
    int interval_set;
    int rmid;
    long long hold;
    int await_go; /* devshm-fill --await-go: wait for SIGUSR1 between opening and writing */
    int atomic;
    int quiet; /* no per-increment `wrote` events (race demos) */
    int yield; /* sched_yield inside each increment: a wide race window */
    int sem;
    int no_stop_on_rmid;
    long long start_nattch; /* sysv-writer: wait for N attachments before counting */
    int create;
    long long reads;
    long long until;
    int until_set;
    long long timeout_ms;
    int changes;
    const char *expect_ip;
    const char *path;
    long long truncate_delay_ms;
    int unlink; /* writers, devshm-fill, mq-*: remove the object at the end; readers: at exit,
                 * although they only attached (a resource tracker's unlink) */
    long long wait_ms;
    const char *name;
    int fill;
    int fallocate;
    int ns;
    int segments;
    int devshm;
    long long shmid;
    int shmid_set;
    const char *layout;
    const char *stat_path;
    long long chmod_mode;
    int chmod_set;
    long long exit_code; /* --exit CODE: crash with CODE after creating (lifecycle.c) */
    int exit_set;
    int clean;   /* devshm-fill: unlink the previous runs' /PREFIX.N first */
    int objects; /* probe: counts of every IPC object kind and /dev/shm usage */
    const char *struct_name;     /* --struct NAME */
    const struct shape *shape;   /* resolved from struct_name (default conn_stat) */
    int sems;    /* probe: the SysV semaphore sets (ipcobj.c) */
    int queues;  /* probe: the SysV message queues */
    int mqueues; /* probe: the POSIX message queues (/dev/mqueue) */
    long long semid; /* probe --semid ID --rmid */
    int semid_set;
    long long msqid; /* probe --msqid ID --rmid */
    int msqid_set;
    const char *mq_unlink;  /* probe --mq-unlink /NAME */
    const char *shm_unlink; /* probe --shm-unlink /NAME */
    int statfs;      /* probe: /dev/shm's size, use and free space (statvfs) */
    long long ns_pid; /* probe --ns-pid PID: setns into PID's IPC namespace first */
    int ns_pid_set;
    char **args; /* positional arguments (prep's paths) */
    int nargs;
};

/* ==== error buffer ==== */
struct err {
    char call[32];  /* the failing call, e.g. "shmget" */
    int errnum;     /* errno value, 0 for non-syscall failures */
    int code;       /* exit code to use */
    int sys;        /* 1: text is call: strerror(errnum) */
    char text[320]; /* "call: strerror(errno)" or a free message */
};

int err_sys(struct err *e, const char *call, int errnum, int code);
int err_msg(struct err *e, const char *call, int errnum, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
const char *errno_name(int errnum);

/* units.c: the size and duration grammars of every option (labctl/units.py's); 0 or -1 */
int units_duration_ms(const char *s, long long *ms);
int units_size(const char *s, long long *bytes);
int cmd_units(int argc, char **argv);

/* ==== JSON buffer and events (out.c) ==== */
struct jb {
    char *p;
    size_t len;
    size_t cap;
    int comma; /* a value was written at this level: the next needs a comma */
};

void jb_init(struct jb *b);
void jb_free(struct jb *b);
void jb_open(struct jb *b, char c);
void jb_close(struct jb *b, char c);
void jb_key(struct jb *b, const char *k);
void jb_str(struct jb *b, const char *s);
void jb_strn(struct jb *b, const char *s, size_t n);
void jb_int(struct jb *b, long long v);
void jb_uint(struct jb *b, unsigned long long v);
void jb_bool(struct jb *b, int v);
void jb_null(struct jb *b);
void jb_rawval(struct jb *b, const char *json);

struct ev {
    struct jb j; /* JSON rendering */
    struct jb h; /* human rendering: "role: event k=v ..." */
    char name[48]; /* the event, for the $SHMLAB_EVENT_DIR marker */
};

void out_init(const char *role, int human);
void ev_begin(struct ev *e, const char *event);
void ev_str(struct ev *e, const char *k, const char *v);
void ev_int(struct ev *e, const char *k, long long v);
void ev_uint(struct ev *e, const char *k, unsigned long long v);
void ev_bool(struct ev *e, const char *k, int v);
void ev_null(struct ev *e, const char *k);
void ev_json(struct ev *e, const char *k, const struct jb *value);
void ev_emit(struct ev *e);

void emit_simple(const char *event);
void emit_start(int argc, char **argv);
int emit_error(const struct err *e); /* returns e->code */
void emit_signal_once(void);
int emit_done(int has_count, long long count);
int read_ipcns(char *buf, size_t n);

/* ==== runtime helpers (main.c) ==== */
extern volatile sig_atomic_t g_stop; /* the signal number that asked us to stop */
int stopping(void);                  /* g_stop set; emits the signal event once */
int sleep_ms(long long ms);          /* 1 if a stop signal cut the sleep short */
int await_go(void);                 /* emits `awaiting`, blocks until SIGUSR1 (1) or a stop (0) */
void wait_for_stop(void);            /* blocks until SIGTERM/SIGINT, race-free */
long long now_ms(void);              /* monotonic ms since the program started */
int resolve_key(const struct opts *o, int *key, struct err *e);

/* ==== shared layouts (shape.c) ==== */
/* A layout the writer and reader loops work in. Every one keeps an int count at
 * offset 0 (the loops' counter) and a char ip[] somewhere; wide.h explains why
 * the others exist. All fit in sizeof(struct conn_stat), so segment and file
 * sizes stay the same whatever the layout. */
struct shape {
    const char *name;  /* --struct NAME */
    size_t size;       /* sizeof the struct as this target compiles it */
    size_t ip_off;     /* offset and length of its char ip[] */
    size_t ip_len;
    void (*init)(volatile void *p, const char *ip);       /* the fields besides count and ip */
    void (*fields)(const volatile void *p, struct ev *e); /* read-event fields besides count, ip */
    void (*offsets)(struct ev *e);                        /* layout-event offsets */
};

const struct shape *shape_find(const char *name);
void emit_layout(const struct shape *s); /* the `layout` event: this target's view */

/* ==== shared loops (loop.c) ==== */
struct write_hooks {
    /* 1 = stop (segment marked for removal), 0 = go on, -1 = error */
    int (*check)(void *ctx, struct err *e);
    int (*lock)(void *ctx, struct err *e);
    int (*unlock)(void *ctx, struct err *e);
    void *ctx;
};

/* p points at a struct of layout o->shape */
void conn_init(volatile void *p, const struct opts *o);
int write_loop(volatile void *p, const struct opts *o, const struct write_hooks *h,
               long long *last, struct err *e);
int read_loop(const volatile void *p, const struct opts *o, long long *last, struct err *e);

/* ==== commands ==== */
int cmd_sysv_writer(const struct opts *o);
int cmd_sysv_reader(const struct opts *o);
int cmd_mmap_writer(const struct opts *o);
int cmd_mmap_reader(const struct opts *o);
int cmd_posix_writer(const struct opts *o);
int cmd_posix_reader(const struct opts *o);
int cmd_msg_send(const struct opts *o);
int cmd_msg_recv(const struct opts *o);
int cmd_sem_counter(const struct opts *o);
int cmd_probe(const struct opts *o);
int cmd_hold(const struct opts *o);
int cmd_prep(const struct opts *o);
int cmd_sysv_private(const struct opts *o);
int cmd_devshm_fill(const struct opts *o);
int cmd_devshm_map(const struct opts *o);
int cmd_mq_send(const struct opts *o);
int cmd_mq_recv(const struct opts *o);

/* ipcobj.c: the other IPC object kinds, for probe */
void probe_sems(struct ev *ev);
void probe_queues(struct ev *ev);
void probe_mqueues(struct ev *ev);
/* probe.c: PATH under the probed root ("" or /proc/PID/root with --ns-pid) in BUF */
const char *probe_path(const char *path, char *buf, size_t n);
int probe_remove(struct ev *ev, const struct opts *o); /* 1 if an option asked for a removal */

/* mmapfile.c: the mapped-file writer/reader bodies, shared with posix.c */
struct file_ops {
    const char *open_call;  /* "open" or "shm_open" */
    int open_code;
    const char *what;       /* "path" or "name" */
    const char *target;
    int posix;              /* shm_open/shm_unlink instead of open/unlink */
};
int mapped_writer(const struct opts *o, const struct file_ops *f);
int mapped_reader(const struct opts *o, const struct file_ops *f);

#endif
