/* The uniform command line: every demo's flags, parsed with getopt_long. */
#ifndef CL_CLI_H
#define CL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cl_chapter.h"

#define CL_MAX_THREADS_DEFAULT 4096 /* --threads cap of a chapter that sets none */
#define CL_MAX_ITERS           1000000000ull
#define CL_MAX_TIMEOUT         3600.0
#define CL_MAX_PARAMS          20 /* a chapter's own flags; more stops cl_main */

struct cl_opts {
    const struct cl_variant *variant; /* NULL: run them all */
    int threads;                      /* 0: the variant's default */
    uint64_t iters;                   /* 0: the variant's default */
    uint64_t seed;
    double timeout_s;   /* --timeout, or the chapter's */
    bool timeout_given; /* --timeout was on the command line */
    const char *trace;  /* NULL, or a path ending in .csv or .json */
    bool json, quiet, list, help, version;
    long long param[CL_MAX_PARAMS]; /* the chapter's own flags, in its order */
    unsigned param_given;           /* bit i: flag i was on the command line */
};

/* Parse argv into *o. Returns 0, or CL_EXIT_USAGE with one line (no newline) in
 * err naming the flag and what it allows. Exits nothing and prints nothing. */
int cl_parse(const struct cl_chapter *ch, int argc, char **argv, struct cl_opts *o, char *err,
             size_t errlen);

/* The --threads cap of a chapter. */
int cl_max_threads(const struct cl_chapter *ch);

/* A value of flag p as text: the name for a choice flag, else the number
 * (formatted into buf, with its decimals for a fixed-point flag). */
const char *cl_param_text(const struct cl_param *p, long long value, char *buf, size_t len);

/* A fixed-point flag's value as a double: 25 with 2 decimals is 0.25. */
double cl_param_value_real(const struct cl_param *p, long long value);

/* The --help text. */
void cl_usage(const struct cl_chapter *ch, FILE *out);

/* Tags as the --list column prints them, e.g. "hangs,lock-order". */
const char *cl_tags_str(unsigned tags, char *buf, size_t len);

#endif
