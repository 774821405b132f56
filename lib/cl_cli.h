/* The uniform command line (DESIGN.md, "Uniform command line"). */
#ifndef CL_CLI_H
#define CL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cl_chapter.h"

enum cl_exit {
    CL_EXIT_OK = 0,
    CL_EXIT_WRONG = 1, /* a correct variant gave a wrong result */
    CL_EXIT_USAGE = 2,
    CL_EXIT_HANG = 3, /* the watchdog saw no progress */
    CL_EXIT_INTERRUPTED = 130,
};

#define CL_MAX_THREADS 4096
#define CL_MAX_ITERS   1000000000ull
#define CL_MAX_TIMEOUT 3600.0
#define CL_MAX_PARAMS  8

struct cl_opts {
    const struct cl_variant *variant; /* NULL: run them all */
    int threads;                      /* 0: the variant's default */
    uint64_t iters;                   /* 0: the variant's default */
    uint64_t seed;
    double timeout_s;
    const char *trace; /* NULL, or a path ending in .csv or .json */
    bool json, quiet, list, help, version;
    long long param[CL_MAX_PARAMS]; /* the chapter's own flags, in its order */
};

/* Parse argv into *o. Returns 0, or CL_EXIT_USAGE with one line (no newline) in
 * err naming the flag and what it allows. Exits nothing and prints nothing. */
int cl_parse(const struct cl_chapter *ch, int argc, char **argv, struct cl_opts *o, char *err,
             size_t errlen);

/* The value of the chapter's flag i as text: the name for a choice flag, else
 * the number (formatted into buf, with its decimals for a fixed-point flag). */
const char *cl_param_str(const struct cl_chapter *ch, size_t i, long long value, char *buf,
                         size_t len);

/* A fixed-point flag's value as a double: 25 with 2 decimals is 0.25. */
double cl_param_real(const struct cl_chapter *ch, size_t i, long long value);

/* The --help text. */
void cl_usage(const struct cl_chapter *ch, FILE *out);

/* Tags as the --list column prints them, e.g. "hangs,lock-order". */
const char *cl_tags_str(unsigned tags, char *buf, size_t len);

#endif
