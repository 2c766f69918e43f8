/* posix.c - posix-writer and posix-reader: a struct conn_stat in a POSIX
 * shared-memory object (shm_open, i.e. a file in the /dev/shm tmpfs that
 * joiners of an IPC namespace share). The mapping logic is mmapfile.c's. */
#include "shmlab.h"

/* ==== posix-writer ==== */

int cmd_posix_writer(const struct opts *o)
{
    struct file_ops f = { "shm_open", SX_SHM_OPEN, "name", o->name, 1 };

    return mapped_writer(o, &f);
}

/* ==== posix-reader ==== */

int cmd_posix_reader(const struct opts *o)
{
    struct file_ops f = { "shm_open", SX_SHM_OPEN, "name", o->name, 1 };

    return mapped_reader(o, &f);
}
