/* wide.h - the mixed-width pitfall and its fix, as two shared-memory layouts.
 *
 * `struct wide_stat` is what a tutorial writes: `long` and `size_t` fields and a
 * `long long` after a char array. The same declaration compiled for a 64-bit
 * (LP64: x86_64, aarch64) and a 32-bit (ILP32: i386, armv7) target gives
 * different sizes and offsets, and the compiler says nothing:
 *
 *   field   LP64         i386         armv7
 *   count   0  (4)       0  (4)       0  (4)
 *   total   8  (8)       4  (4)       4  (4)    long: padding before it on LP64
 *   len     16 (8)       8  (4)       8  (4)    size_t
 *   ip      24 (16)      12 (16)      12 (16)
 *   stamp   40 (8)       28 (8)       32 (8)    long long: 4-aligned in i386 structs
 *   size    48           36           40
 *
 * A 32-bit reader of a 64-bit writer's segment gets count right (offset 0) and
 * everything after it shifted: values silently wrong.
 *
 * `struct fixed_stat` is the fix: fixed-width types, the padding written out and
 * 64-bit members explicitly 8-aligned, so every target agrees on 48 bytes (the
 * static assertions below fail the build of any target that would not).
 */
#ifndef WIDE_H
#define WIDE_H

#include <stddef.h>
#include <stdint.h>

struct wide_stat {
    int count;
    long total;
    size_t len;
    char ip[16];
    long long stamp;
};

struct fixed_stat {
    int32_t count;
    uint32_t pad0; /* what LP64 inserted silently before a 64-bit member */
    _Alignas(8) int64_t total;
    _Alignas(8) uint64_t len;
    char ip[16];
    _Alignas(8) int64_t stamp;
};

/* What a writer stores in the wide and fixed layouts besides count and ip:
 * total does not fit in 32 bits, so a truncated copy shows as a different value. */
#define WIDE_TOTAL 5000000000LL
#define WIDE_STAMP 1700000000123LL

_Static_assert(offsetof(struct wide_stat, count) == 0, "count must be at offset 0");
_Static_assert(offsetof(struct fixed_stat, count) == 0, "count must be at offset 0");
_Static_assert(offsetof(struct fixed_stat, total) == 8, "fixed_stat.total must be at 8 on every target");
_Static_assert(offsetof(struct fixed_stat, len) == 16, "fixed_stat.len must be at 16 on every target");
_Static_assert(offsetof(struct fixed_stat, ip) == 24, "fixed_stat.ip must be at 24 on every target");
_Static_assert(offsetof(struct fixed_stat, stamp) == 40, "fixed_stat.stamp must be at 40 on every target");
_Static_assert(sizeof(struct fixed_stat) == 48, "struct fixed_stat must be 48 bytes on every target");

#endif
