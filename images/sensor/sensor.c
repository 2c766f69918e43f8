/* sensor.c - a small program that is not shmlab: it publishes a struct
 * sensor_block (sensor.h) in a SysV segment (--key), a POSIX shared-memory
 * object (--posix /NAME) and a file (--file PATH), then bumps `samples`
 * every --interval ms until SIGTERM.
 *
 * Output: one JSON line per event on stdout ("ready" once everything is
 * published, "stopped" at the end); errors on stderr as "sensor: call: error".
 * Exit codes: 0 ok, 1 a system call failed, 2 usage. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <time.h>
#include <unistd.h>

#include "sensor.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    g_stop = sig;
}

static int fail(const char *call, const char *what)
{
    fprintf(stderr, "sensor: %s %s: %s\n", call, what, strerror(errno));
    return -1;
}

/* ==== the block ==== */

static void fill(struct sensor_block *b)
{
    static const struct sensor_block init = {
        .magic = SENSOR_MAGIC,
        .name = "sensor-7",
        .version = 3,
        .ratio = 0.25,
        .temps = { 21.5f, 22.25f, -3.5f, 0.1f },
        .matrix = { { 1, -2, 3 }, { -4, 5, -6 } },
        .cal = { .gain = 1.5f, .offset = -0.001, .table = { 100, 200, 300 } },
        .state = SENSOR_RUNNING,
        .healthy = 1,
        .samples = 1,
        .serial = { 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01 },
    };

    memset(b, 0, sizeof *b); /* padding too: the bytes are the same every run */
    memcpy(b, &init, sizeof *b);
}

/* ==== publishing ==== */

static struct sensor_block *publish_sysv(long key)
{
    int id = shmget((key_t)key, sizeof(struct sensor_block), 0644 | IPC_CREAT);
    void *p;

    if (id < 0)
        return fail("shmget", "segment"), NULL;
    p = shmat(id, NULL, 0);
    if (p == (void *)-1)
        return fail("shmat", "segment"), NULL;
    return p;
}

static struct sensor_block *publish_fd(int fd, const char *what)
{
    void *p;

    if (fd < 0)
        return fail("open", what), NULL;
    if (ftruncate(fd, sizeof(struct sensor_block)) < 0) {
        fail("ftruncate", what);
        close(fd);
        return NULL;
    }
    p = mmap(NULL, sizeof(struct sensor_block), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return fail("mmap", what), NULL;
    return p;
}

/* ==== main ==== */

int main(int argc, char **argv)
{
    struct sensor_block *blocks[3];
    long key = -1, interval_ms = 100;
    const char *posix = NULL, *file = NULL;
    struct timespec ts;
    int n = 0, i, k;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--key") == 0)
            key = strtol(argv[i + 1], NULL, 0);
        else if (strcmp(argv[i], "--posix") == 0)
            posix = argv[i + 1];
        else if (strcmp(argv[i], "--file") == 0)
            file = argv[i + 1];
        else if (strcmp(argv[i], "--interval") == 0)
            interval_ms = strtol(argv[i + 1], NULL, 10);
        else
            break;
    }
    if (i != argc || (key < 0 && !posix && !file) || interval_ms <= 0) {
        fprintf(stderr, "usage: sensor [--key K] [--posix /NAME] [--file PATH] [--interval MS]\n");
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (key >= 0 && (blocks[n++] = publish_sysv(key)) == NULL)
        return 1;
    if (posix && (blocks[n++] = publish_fd(shm_open(posix, O_RDWR | O_CREAT, 0644), posix)) == NULL)
        return 1;
    if (file && (blocks[n++] = publish_fd(open(file, O_RDWR | O_CREAT, 0644), file)) == NULL)
        return 1;
    for (k = 0; k < n; k++)
        fill(blocks[k]);
    printf("{\"event\":\"ready\",\"size\":%zu}\n", sizeof(struct sensor_block));
    fflush(stdout);
    ts.tv_sec = interval_ms / 1000;
    ts.tv_nsec = (interval_ms % 1000) * 1000000L;
    while (!g_stop) {
        nanosleep(&ts, NULL);
        for (k = 0; k < n; k++)
            __atomic_add_fetch(&blocks[k]->samples, 1, __ATOMIC_RELAXED);
    }
    printf("{\"event\":\"stopped\",\"samples\":%llu}\n", (unsigned long long)blocks[0]->samples);
    return 0;
}
