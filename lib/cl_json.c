#include "cl_json.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "cl_check.h"

static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* The separator and key every member starts with. */
static void member(struct cl_json *j, const char *key)
{
    if (!j->first[j->depth])
        fputc(',', j->f);
    j->first[j->depth] = false;
    if (key != NULL) {
        put_string(j->f, key);
        fputc(':', j->f);
    }
}

static void json_open(struct cl_json *j, const char *key, char opener, char closer)
{
    if (j->depth + 1 >= CL_JSON_DEPTH)
        cl_die(__FILE__, __LINE__, "cl_json: nesting deeper than CL_JSON_DEPTH", EOVERFLOW);
    member(j, key);
    fputc(opener, j->f);
    j->depth++;
    j->first[j->depth] = true;
    j->closer[j->depth] = closer;
}

void cl_json_begin(struct cl_json *j, FILE *f)
{
    *j = (struct cl_json){.f = f};
    j->first[0] = true;
    json_open(j, NULL, '{', '}');
}

void cl_json_end(struct cl_json *j)
{
    while (j->depth > 0)
        cl_json_close(j);
    fputc('\n', j->f);
}

void cl_json_object(struct cl_json *j, const char *key)
{
    json_open(j, key, '{', '}');
}

void cl_json_array(struct cl_json *j, const char *key)
{
    json_open(j, key, '[', ']');
}

void cl_json_close(struct cl_json *j)
{
    fputc(j->closer[j->depth], j->f);
    j->depth--;
}

void cl_json_str(struct cl_json *j, const char *key, const char *value)
{
    member(j, key);
    put_string(j->f, value);
}

void cl_json_int(struct cl_json *j, const char *key, long long value)
{
    member(j, key);
    fprintf(j->f, "%lld", value);
}

void cl_json_uint(struct cl_json *j, const char *key, uint64_t value)
{
    member(j, key);
    fprintf(j->f, "%llu", (unsigned long long)value);
}

void cl_json_real(struct cl_json *j, const char *key, double value)
{
    member(j, key);
    if (isfinite(value))
        fprintf(j->f, "%.9g", value);
    else
        fputs("null", j->f);
}

void cl_json_bool(struct cl_json *j, const char *key, bool value)
{
    member(j, key);
    fputs(value ? "true" : "false", j->f);
}

const char *cl_fmt_count(uint64_t n, char buf[32])
{
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    char *out = buf;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            *out++ = ',';
        *out++ = digits[i];
    }
    *out = '\0';
    return buf;
}
