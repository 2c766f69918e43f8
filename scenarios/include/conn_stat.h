/* conn_stat.h - the one shared-memory layout every shmlab command agrees on.
 *
 * Writers and readers in different containers map the same bytes, so the
 * layout is fixed: a 4-byte counter at offset 0 and a NUL-terminated ip
 * string at offset 4, 68 bytes in total (no padding: both members have
 * alignment <= 4). The probe's `--layout conn_stat` alias mirrors it.
 */
#ifndef CONN_STAT_H
#define CONN_STAT_H

struct conn_stat {
    int count;
    char ip[64];
};

#define CONN_STAT_SIZE ((unsigned long)sizeof(struct conn_stat))
#define CONN_STAT_LAYOUT "count:0:i:4,ip:4:s:64"

_Static_assert(sizeof(struct conn_stat) == 68, "struct conn_stat must be 68 bytes");

#endif
