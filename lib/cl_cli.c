#include "cl_cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cl_exit.h"

enum {
    OPT_VARIANT = 256,
    OPT_THREADS,
    OPT_ITERS,
    OPT_SEED,
    OPT_TIMEOUT,
    OPT_JSON,
    OPT_TRACE,
    OPT_QUIET,
    OPT_LIST,
    OPT_HELP,
    OPT_VERSION,
    OPT_PARAM, /* the chapter's flags follow, one value each */
};

static const struct option common_options[] = {
    {"variant", required_argument, NULL, OPT_VARIANT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"iters", required_argument, NULL, OPT_ITERS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"trace", required_argument, NULL, OPT_TRACE},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"list", no_argument, NULL, OPT_LIST},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
};
#define NCOMMON (sizeof common_options / sizeof common_options[0])

static int usage_error(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return CL_EXIT_USAGE;
}

/* A whole number in [min, max]; no sign games, no trailing junk. */
static int parse_int(const char *prog, const char *flag, const char *s, long long min,
                     long long max, long long *out, char *err, size_t len)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    bool digits_only = isdigit((unsigned char)s[s[0] == '-']); /* strtoll skips spaces, '+' */
    if (!digits_only || end == s || *end != '\0' || errno == ERANGE)
        return usage_error(err, len, "%s: --%s: '%s' is not a whole number (allowed: %lld to %lld)",
                           prog, flag, s, min, max);
    if (v < min || v > max)
        return usage_error(err, len, "%s: --%s: %lld is out of range (allowed: %lld to %lld)", prog,
                           flag, v, min, max);
    *out = v;
    return 0;
}

static long long pow10ll(int decimals)
{
    long long scale = 1;
    for (int k = 0; k < decimals; k++)
        scale *= 10;
    return scale;
}

/* A fixed-point value held in units of 10^-decimals, as text: 25, 2 -> "0.25". */
static const char *fmt_fixed(long long v, int decimals, char *buf, size_t len)
{
    if (decimals <= 0) {
        snprintf(buf, len, "%lld", v);
        return buf;
    }
    /* exact for the few decimals and small values a flag has */
    snprintf(buf, len, "%.*f", decimals < 9 ? decimals : 9, (double)v / (double)pow10ll(decimals));
    return buf;
}

/* A number with at most `decimals` digits after the point, in [min, max] (both
 * in units of 10^-decimals): "0.25" with 2 decimals gives 25. */
static int parse_fixed(const char *prog, const char *flag, const char *s, int decimals,
                       long long min, long long max, long long *out, char *err, size_t len)
{
    char lo[32], hi[32];
    fmt_fixed(min, decimals, lo, sizeof lo);
    fmt_fixed(max, decimals, hi, sizeof hi);
    const char *p = s + (s[0] == '-');
    long long whole = 0, frac = 0;
    int wdigits = 0, fdigits = 0;
    for (; isdigit((unsigned char)*p) && wdigits < 15; p++, wdigits++)
        whole = whole * 10 + (*p - '0');
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p) && fdigits < decimals; p++, fdigits++)
            frac = frac * 10 + (*p - '0');
    if (wdigits + fdigits == 0 || *p != '\0')
        return usage_error(
            err, len, "%s: --%s: '%s' is not a number with at most %d decimals (allowed: %s to %s)",
            prog, flag, s, decimals, lo, hi);
    long long v = whole * pow10ll(decimals) + frac * pow10ll(decimals - fdigits);
    if (s[0] == '-')
        v = -v;
    if (v < min || v > max)
        return usage_error(err, len, "%s: --%s: %s is out of range (allowed: %s to %s)", prog, flag,
                           s, lo, hi);
    *out = v;
    return 0;
}

double cl_param_value_real(const struct cl_param *p, long long value)
{
    return (double)value / (double)pow10ll(p->decimals);
}

static void join_names(const char *const *names, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t k = 0; names[k] != NULL; k++) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", k ? ", " : "", names[k]);
    }
}

static int parse_choice(const char *prog, const char *flag, const char *const *names, const char *s,
                        long long *out, char *err, size_t len)
{
    for (size_t k = 0; names[k] != NULL; k++) {
        if (strcmp(s, names[k]) == 0) {
            *out = (long long)k;
            return 0;
        }
    }
    char all[512];
    join_names(names, all, sizeof all);
    return usage_error(err, len, "%s: --%s: no such choice '%s' (allowed: %s)", prog, flag, s, all);
}

const char *cl_param_text(const struct cl_param *p, long long value, char *buf, size_t len)
{
    if (p->choices != NULL && value >= 0) {
        for (long long k = 0; p->choices[k] != NULL; k++)
            if (k == value)
                return p->choices[k];
    }
    return fmt_fixed(value, p->decimals, buf, len);
}

/* What flag p accepts: its choices, or its range with its decimals. */
static const char *describe_param(const struct cl_param *p, char *buf, size_t len)
{
    if (p->choices != NULL) {
        join_names(p->choices, buf, len);
    } else {
        char lo[32], hi[32];
        snprintf(buf, len, "%s to %s", fmt_fixed(p->min, p->decimals, lo, sizeof lo),
                 fmt_fixed(p->max, p->decimals, hi, sizeof hi));
    }
    return buf;
}

int cl_max_threads(const struct cl_chapter *ch)
{
    return ch->max_threads > 0 ? ch->max_threads : CL_MAX_THREADS_DEFAULT;
}

static int parse_variant(const struct cl_chapter *ch, const char *s, struct cl_opts *o, char *err,
                         size_t len)
{
    if (strcmp(s, "all") == 0) {
        o->variant = NULL;
        return 0;
    }
    for (size_t i = 0; i < ch->nvariants; i++) {
        if (strcmp(s, ch->variants[i].name) == 0) {
            o->variant = &ch->variants[i];
            return 0;
        }
    }
    char names[1024] = "all";
    for (size_t i = 0; i < ch->nvariants; i++) {
        size_t used = strlen(names);
        snprintf(names + used, sizeof names - used, ", %s", ch->variants[i].name);
    }
    return usage_error(err, len, "%s: --variant: no variant '%s' (allowed: %s)", ch->name, s,
                       names);
}

static int parse_timeout(const char *prog, const char *s, double *out, char *err, size_t len)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
        return usage_error(err, len,
                           "%s: --timeout: '%s' is not a number of seconds (allowed: above 0 "
                           "to %g)",
                           prog, s, CL_MAX_TIMEOUT);
    if (v <= 0 || v > CL_MAX_TIMEOUT)
        return usage_error(err, len, "%s: --timeout: %g is out of range (allowed: above 0 to %g)",
                           prog, v, CL_MAX_TIMEOUT);
    *out = v;
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

/* The flag as typed, without any "=value". */
static const char *flag_name(const char *arg, char *buf, size_t len)
{
    snprintf(buf, len, "%s", arg);
    buf[strcspn(buf, "=")] = '\0';
    return buf;
}

/* One line describing what a flag accepts, for the "needs a value" error. */
static void describe_range(const struct cl_chapter *ch, int code, char *buf, size_t len)
{
    switch (code) {
    case OPT_THREADS:
        snprintf(buf, len, "1 to %d", cl_max_threads(ch));
        break;
    case OPT_ITERS:
        snprintf(buf, len, "1 to %llu", CL_MAX_ITERS);
        break;
    case OPT_SEED:
        snprintf(buf, len, "0 to %llu", (unsigned long long)UINT64_MAX);
        break;
    case OPT_TIMEOUT:
        snprintf(buf, len, "seconds, above 0 to %g", CL_MAX_TIMEOUT);
        break;
    case OPT_VARIANT:
        snprintf(buf, len, "a name from --list, or all");
        break;
    case OPT_TRACE:
        snprintf(buf, len, "a file ending in .csv or .json");
        break;
    default:
        describe_param(&ch->params[code - OPT_PARAM], buf, len);
    }
}

/* A whole number in [0, UINT64_MAX]. */
static int parse_seed(const char *prog, const char *s, uint64_t *out, char *err, size_t len)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    /* strtoull would skip spaces and negate a '-' */
    if (!isdigit((unsigned char)s[0]) || *end != '\0' || errno == ERANGE)
        return usage_error(err, len, "%s: --seed: '%s' is not a whole number (allowed: 0 to %llu)",
                           prog, s, (unsigned long long)UINT64_MAX);
    *out = v;
    return 0;
}

/* Flag p's value from text s. */
static int parse_param(const char *prog, const struct cl_param *p, const char *s, long long *out,
                       char *err, size_t len)
{
    if (p->choices != NULL)
        return parse_choice(prog, p->name, p->choices, s, out, err, len);
    if (p->decimals > 0)
        return parse_fixed(prog, p->name, s, p->decimals, p->min, p->max, out, err, len);
    return parse_int(prog, p->name, s, p->min, p->max, out, err, len);
}

static const char *long_name(const struct option *opts, int code)
{
    for (const struct option *o = opts; o->name != NULL; o++)
        if (o->val == code)
            return o->name;
    return "?";
}

int cl_parse(const struct cl_chapter *ch, int argc, char **argv, struct cl_opts *o, char *err,
             size_t errlen)
{
    const char *prog = ch->name;
    if (ch->nparams > CL_MAX_PARAMS)
        return usage_error(err, errlen, "%s: %zu flags of its own, more than lib's %d", prog,
                           ch->nparams, CL_MAX_PARAMS);
    struct option longopts[NCOMMON + CL_MAX_PARAMS + 1];
    size_t n = 0;
    for (; n < NCOMMON; n++)
        longopts[n] = common_options[n];
    for (size_t i = 0; i < ch->nparams; i++, n++)
        longopts[n] =
            (struct option){ch->params[i].name, required_argument, NULL, OPT_PARAM + (int)i};
    longopts[n] = (struct option){0};

    *o = (struct cl_opts){.seed = 1, .timeout_s = ch->timeout_s};
    for (size_t i = 0; i < ch->nparams; i++)
        o->param[i] = ch->params[i].def;

    optind = 0; /* glibc: start afresh, so the parser can be called again */
    opterr = 0; /* our own one-line messages instead of getopt's */
    int c;
    char flag[64], range[128];
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        long long v;
        int rc = 0;
        switch (c) {
        case OPT_VARIANT:
            rc = parse_variant(ch, optarg, o, err, errlen);
            break;
        case OPT_THREADS:
            rc = parse_int(prog, "threads", optarg, 1, cl_max_threads(ch), &v, err, errlen);
            o->threads = (int)v;
            break;
        case OPT_ITERS:
            rc = parse_int(prog, "iters", optarg, 1, (long long)CL_MAX_ITERS, &v, err, errlen);
            o->iters = (uint64_t)v;
            break;
        case OPT_SEED:
            rc = parse_seed(prog, optarg, &o->seed, err, errlen);
            break;
        case OPT_TIMEOUT:
            rc = parse_timeout(prog, optarg, &o->timeout_s, err, errlen);
            o->timeout_given = true;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_TRACE:
            if (!ends_with(optarg, ".csv") && !ends_with(optarg, ".json"))
                return usage_error(err, errlen, "%s: --trace: '%s' must end in .csv or .json", prog,
                                   optarg);
            o->trace = optarg;
            break;
        case OPT_QUIET:
            o->quiet = true;
            break;
        case OPT_LIST:
            o->list = true;
            break;
        case 'h':
        case OPT_HELP:
            o->help = true;
            break;
        case OPT_VERSION:
            o->version = true;
            break;
        case ':': /* glibc sets optopt to the option's code, even for "--thr" */
            describe_range(ch, optopt, range, sizeof range);
            return usage_error(err, errlen, "%s: --%s needs a value (%s)", prog,
                               long_name(longopts, optopt), range);
        case '?':
            if (optopt >= OPT_VARIANT) /* a known flag given a value it does not take */
                return usage_error(err, errlen, "%s: --%s takes no value", prog,
                                   long_name(longopts, optopt));
            if (optopt != 0)
                return usage_error(err, errlen, "%s: unknown option '-%c' (try --help)", prog,
                                   optopt);
            return usage_error(err, errlen, "%s: unknown option '%s' (try --help)", prog,
                               flag_name(argv[optind - 1], flag, sizeof flag));
        default:
            rc = parse_param(prog, &ch->params[c - OPT_PARAM], optarg, &o->param[c - OPT_PARAM],
                             err, errlen);
            o->param_given |= 1u << (c - OPT_PARAM);
        }
        if (rc != 0)
            return rc;
    }
    if (optind < argc)
        return usage_error(err, errlen, "%s: unexpected argument '%s' (try --help)", prog,
                           argv[optind]);
    if (o->trace != NULL && o->variant == NULL && !o->list && !o->help && !o->version)
        return usage_error(err, errlen,
                           "%s: --trace: needs one --variant (allowed: a name from --list)", prog);
    return 0;
}

const char *cl_tags_str(unsigned tags, char *buf, size_t len)
{
    static const struct {
        unsigned tag;
        const char *name;
    } names[] = {{CL_CORRECT, "correct"}, {CL_WRONG, "wrong"}, {CL_RACY, "racy"},
                 {CL_HANGS, "hangs"},     {CL_SLOW, "slow"},   {CL_LOCK_ORDER, "lock-order"}};
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (tags & names[i].tag) {
            size_t used = strlen(buf);
            snprintf(buf + used, len - used, "%s%s", used ? "," : "", names[i].name);
        }
    }
    return buf;
}

void cl_usage(const struct cl_chapter *ch, FILE *out)
{
    char timeouts[256];
    size_t used = (size_t)snprintf(timeouts, sizeof timeouts, "%g", ch->timeout_s);
    for (size_t i = 0; i < ch->nvariants && used < sizeof timeouts; i++)
        if (ch->variants[i].timeout_s > 0)
            used += (size_t)snprintf(timeouts + used, sizeof timeouts - used, "; %s: %g",
                                     ch->variants[i].name, ch->variants[i].timeout_s);
    fprintf(out,
            "Usage: conclab-%s [OPTION]...\n"
            "%s\n"
            "Watch: %s\n\n"
            "  --variant NAME|all  run one variant, or every one in turn (default: all)\n"
            "  --threads N         threads (1 to %d; default: per variant)\n"
            "  --iters N           operations per thread (1 to %llu; default: per variant)\n"
            "  --seed N            random seed (default: 1)\n"
            "  --timeout SEC       watchdog: exit 3 after SEC seconds with no progress "
            "(default: %s)\n"
            "  --json              one JSON object per variant run (JSON Lines)\n"
            "  --trace FILE        per-thread intervals: FILE.csv for gnuplot, FILE.json for "
            "Perfetto\n"
            "  --quiet             print only the verdict lines\n"
            "  --list              list the variants: name, tags, description\n"
            "  --help              this text\n"
            "  --version           the program's name and version\n",
            ch->name, ch->summary, ch->look_for, cl_max_threads(ch), CL_MAX_ITERS, timeouts);
    for (size_t i = 0; i < ch->nparams; i++) {
        const struct cl_param *p = &ch->params[i];
        char allowed[512], num[32];
        fprintf(out, "  --%-17s %s (%s; default: %s)\n", p->name, p->help,
                describe_param(p, allowed, sizeof allowed),
                p->unset != NULL ? p->unset : cl_param_text(p, p->def, num, sizeof num));
    }
    fprintf(out, "\nexit: 0 as documented, 1 a correct variant was wrong, 2 usage, 3 hang "
                 "(watchdog),\n      4 the system refused a resource, 130 interrupted\n");
}
