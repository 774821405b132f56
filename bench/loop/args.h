/* The command line of the loop benchmarks: --name VALUE flags, each an integer
 * in a range or one word of a list; --help. Bad input is one line on stderr and
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
};

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
                    printf("  --%s N\n      %s (default %" PRIu64 "; %" PRIu64 " to %" PRIu64 ")\n",
                           f->name, f->help, *f->value, f->min, f->max);
                    continue;
                }
                printf("  --%s ", f->name);
                for (size_t w = 0; f->words[w] != NULL; w++)
                    printf("%s%s", w ? "|" : "", f->words[w]);
                printf("\n      %s (default %s)\n", f->help, f->words[*f->value]);
            }
            printf("\nPrints one JSON object on a line.\n");
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
            continue;
        }
        char *end;
        errno = 0;
        uint64_t v = strtoull(arg, &end, 10);
        if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || errno != 0 || v < f->min ||
            v > f->max) {
            fprintf(stderr,
                    "%s: --%s: expected an integer from %" PRIu64 " to %" PRIu64 ", got '%s'\n",
                    prog, f->name, f->min, f->max, arg);
            return CL_EXIT_USAGE;
        }
        *f->value = v;
    }
    return -1;
}

#define PARSE_FLAGS(argc, argv, what, flags)                                                       \
    parse_flags((argc), (argv), (what), (flags), sizeof(flags) / sizeof((flags)[0]))

#endif
