/* Output: a small streaming JSON writer and number formatting for humans. */
#ifndef CL_JSON_H
#define CL_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CL_JSON_DEPTH 8

/* Writes one JSON value to f as it goes: begin opens an object, each call adds a
 * member (key NULL inside an array), close ends the innermost object or array. */
struct cl_json {
    FILE *f;
    int depth;
    bool first[CL_JSON_DEPTH];
    char closer[CL_JSON_DEPTH];
};

void cl_json_begin(struct cl_json *j, FILE *f);
void cl_json_end(struct cl_json *j); /* closes everything and ends the line */
void cl_json_object(struct cl_json *j, const char *key);
void cl_json_array(struct cl_json *j, const char *key);
void cl_json_close(struct cl_json *j);
void cl_json_str(struct cl_json *j, const char *key, const char *value);
void cl_json_int(struct cl_json *j, const char *key, long long value);
void cl_json_uint(struct cl_json *j, const char *key, uint64_t value);
void cl_json_real(struct cl_json *j, const char *key, double value); /* NaN, inf: null */
void cl_json_bool(struct cl_json *j, const char *key, bool value);

/* 1234567 -> "1,234,567", as the verdict lines print counts. */
const char *cl_fmt_count(uint64_t n, char buf[32]);

#endif
