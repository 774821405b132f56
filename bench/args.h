/* The command line of the benchmark programs (bench/loop, bench/server): --name
 * VALUE flags, each a number in a range (an integer, or fixed-point with a few
 * decimals) or one word of a list; --help. Bad input is one line on stderr and
 * exit status 2, as in the demos. */
#ifndef BENCH_ARGS_H
#define BENCH_ARGS_H

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_exit.h"

struct flag {
    const char *name; /* without the dashes */
    const char *help;
    uint64_t *value;          /* the number, or the index of the word */
    uint64_t min, max;        /* for a number */
    const char *const *words; /* NULL-terminated, or NULL for a number */
    unsigned decimals;        /* fixed point: with 1, "0.5" is 5 (min and max alike) */
    const char *unset;        /* --help's text for a default outside the range ("none") */
    int given;                /* set when the command line gave it */
};

/* A fixed-point value as it is written: 36000 with 1 decimal is "3600". */
static inline const char *flag_fmt(char *buf, size_t len, uint64_t v, unsigned decimals)
{
    uint64_t scale = 1;
    for (unsigned d = 0; d < decimals; d++)
        scale *= 10;
    if (v % scale == 0)
        snprintf(buf, len, "%" PRIu64, v / scale);
    else
        snprintf(buf, len, "%" PRIu64 ".%0*" PRIu64, v / scale, (int)decimals, v % scale);
    return buf;
}

/* Parse a number with at most `decimals` digits after the point into *v. */
static inline int flag_number(const char *arg, unsigned decimals, uint64_t *v)
{
    char *end;
    if (arg[0] < '0' || arg[0] > '9')
        return -1;
    errno = 0;
    uint64_t x = strtoull(arg, &end, 10);
    if (errno != 0)
        return -1;
    unsigned d = 0;
    if (*end == '.' && decimals > 0) {
        for (end++; *end >= '0' && *end <= '9' && d < decimals; end++, d++)
            x = x * 10 + (uint64_t)(*end - '0');
        if (d == 0)
            return -1;
    }
    for (; d < decimals; d++)
        x *= 10;
    if (*end != '\0' || x > UINT64_MAX / 16)
        return -1;
    *v = x;
    return 0;
}

/* -1: run; else the exit status: 0 after --help, 2 after one line on bad input. */
static inline int parse_flags(int argc, char **argv, const char *what, struct flag *flags, size_t n)
{
    const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            printf("Usage: %s [OPTION]...\n%s\n\n", prog, what);
            for (size_t k = 0; k < n; k++) {
                const struct flag *f = &flags[k];
                if (f->words == NULL) {
                    char d[32], lo[32], hi[32];
                    printf("  --%s N\n      %s (default %s; %s to %s)\n", f->name, f->help,
                           f->unset ? f->unset : flag_fmt(d, sizeof d, *f->value, f->decimals),
                           flag_fmt(lo, sizeof lo, f->min, f->decimals),
                           flag_fmt(hi, sizeof hi, f->max, f->decimals));
                    continue;
                }
                printf("  --%s ", f->name);
                for (size_t w = 0; f->words[w] != NULL; w++)
                    printf("%s%s", w ? "|" : "", f->words[w]);
                printf("\n      %s (default %s)\n", f->help, f->words[*f->value]);
            }
            return CL_EXIT_OK;
        }
        struct flag *f = NULL;
        for (size_t k = 0; k < n && f == NULL; k++)
            if (strncmp(argv[i], "--", 2) == 0 && strcmp(argv[i] + 2, flags[k].name) == 0)
                f = &flags[k];
        if (f == NULL) {
            fprintf(stderr, "%s: unknown option '%s' (try --help)\n", prog, argv[i]);
            return CL_EXIT_USAGE;
        }
        if (i + 1 == argc) {
            fprintf(stderr, "%s: --%s needs a value\n", prog, f->name);
            return CL_EXIT_USAGE;
        }
        const char *arg = argv[++i];
        if (f->words != NULL) {
            size_t w = 0;
            while (f->words[w] != NULL && strcmp(f->words[w], arg) != 0)
                w++;
            if (f->words[w] == NULL) {
                fprintf(stderr, "%s: --%s: expected one of", prog, f->name);
                for (w = 0; f->words[w] != NULL; w++)
                    fprintf(stderr, "%s %s", w ? "," : "", f->words[w]);
                fprintf(stderr, ", got '%s'\n", arg);
                return CL_EXIT_USAGE;
            }
            *f->value = w;
            f->given = 1;
            continue;
        }
        uint64_t v;
        if (flag_number(arg, f->decimals, &v) != 0 || v < f->min || v > f->max) {
            char lo[32], hi[32];
            fprintf(stderr, "%s: --%s: expected %s from %s to %s, got '%s'\n", prog, f->name,
                    f->decimals ? "a number" : "an integer",
                    flag_fmt(lo, sizeof lo, f->min, f->decimals),
                    flag_fmt(hi, sizeof hi, f->max, f->decimals), arg);
            return CL_EXIT_USAGE;
        }
        *f->value = v;
        f->given = 1;
    }
    return -1;
}

#define PARSE_FLAGS(argc, argv, what, flags)                                                       \
    parse_flags((argc), (argv), (what), (flags), sizeof(flags) / sizeof((flags)[0]))

#endif
