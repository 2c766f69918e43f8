/* The size and duration grammars of every shmlab option, the same as labctl's (labctl/units.py).
 *
 * duration  [space] DIGITS[.DIGITS] [space] [ms|s|m|h] [space]   ("1m" is one minute everywhere;
 *           a bare number is in milliseconds, shmlab's unit, where a scenario file's is seconds)
 * size      [space] DIGITS [space] [k|m|g][i][b] | b [space]      (binary multiples, any case:
 *           "1m" = "1MiB" = 1048576 bytes)
 *
 * `shmlab units size|duration VALUE...` prints one JSON line per VALUE with what it parsed to
 * (value null when it does not parse), so a test can feed the same strings to both sides. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "shmlab.h"

#define MAX_MS 1000000000000.0 /* ~31 years */

static const char *skip_space(const char *s)
{
    while (*s != '\0' && isspace((unsigned char)*s))
        s++;
    return s;
}

/* DIGITS into *v (no sign, no exponent, no hex); returns the end or NULL. */
static const char *digits(const char *s, double *v)
{
    if (!isdigit((unsigned char)*s))
        return NULL;
    for (*v = 0; isdigit((unsigned char)*s); s++)
        *v = *v * 10 + (*s - '0');
    return s;
}

int units_duration_ms(const char *s, long long *ms)
{
    double v, frac, scale = 1, f;
    const char *p = digits(skip_space(s), &v);

    if (p == NULL)
        return -1;
    if (*p == '.') {
        const char *q = p + 1;

        if (!isdigit((unsigned char)*q))
            return -1;
        for (frac = 0; isdigit((unsigned char)*q); q++)
            frac = frac * 10 + (*q - '0'), scale *= 10;
        v += frac / scale;
        p = q;
    }
    p = skip_space(p);
    if (strncmp(p, "ms", 2) == 0)
        f = 1, p += 2;
    else if (*p == 's')
        f = 1000, p++;
    else if (*p == 'm')
        f = 60000, p++;
    else if (*p == 'h')
        f = 3600000, p++;
    else
        f = 1;
    if (*skip_space(p) != '\0' || v * f > MAX_MS)
        return -1;
    *ms = (long long)(v * f + 0.5);
    return 0;
}

int units_size(const char *s, long long *bytes)
{
    double v, f = 1;
    const char *p = digits(skip_space(s), &v);

    if (p == NULL)
        return -1;
    p = skip_space(p);
    switch (tolower((unsigned char)*p)) {
    case 'k': f = 1024.0; break;
    case 'm': f = 1024.0 * 1024; break;
    case 'g': f = 1024.0 * 1024 * 1024; break;
    case 'b': p++; break;
    default: break;
    }
    if (f > 1) {
        p++;
        if (tolower((unsigned char)*p) == 'i')
            p++;
        if (tolower((unsigned char)*p) == 'b')
            p++;
    }
    if (*skip_space(p) != '\0' || v * f > 9.0e18)
        return -1;
    *bytes = (long long)(v * f);
    return 0;
}

int cmd_units(int argc, char **argv)
{
    int i, size;

    if (argc < 1 || (strcmp(argv[0], "size") != 0 && strcmp(argv[0], "duration") != 0)) {
        fprintf(stderr, "shmlab units: usage: shmlab units size|duration VALUE...\n");
        return SX_USAGE;
    }
    size = strcmp(argv[0], "size") == 0;
    for (i = 1; i < argc; i++) {
        long long n;
        int rc = size ? units_size(argv[i], &n) : units_duration_ms(argv[i], &n);

        if (rc < 0)
            printf("{\"event\":\"units\",\"kind\":\"%s\",\"value\":null}\n", argv[0]);
        else
            printf("{\"event\":\"units\",\"kind\":\"%s\",\"value\":%lld}\n", argv[0], n);
    }
    return fflush(stdout) == 0 ? SX_OK : SX_USAGE;
}
