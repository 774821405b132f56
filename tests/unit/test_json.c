/* cl_json: the streaming JSON writer (exact bytes) and cl_fmt_count. */
#include "unit.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "conclab.h"

/* A JSON writer on a memory stream; done() returns the text (free it). */
struct mem {
    char *text;
    size_t len;
    FILE *f;
    struct cl_json j;
};

static void begin(struct mem *m)
{
    m->text = NULL;
    m->len = 0;
    m->f = open_memstream(&m->text, &m->len);
    assert_non_null(m->f);
    cl_json_begin(&m->j, m->f);
}

static char *done(struct mem *m)
{
    cl_json_end(&m->j);
    assert_int_equal(fclose(m->f), 0);
    return m->text;
}

static void assert_output(struct mem *m, const char *want)
{
    char *got = done(m);
    assert_string_equal(got, want);
    assert_int_equal(m->len, strlen(want));
    /* without the trailing newline, it is one valid JSON value */
    assert_true(json_valid(got));
    assert_int_equal(count_lines(got), 1);
    free(got);
}

static void test_json_empty_object(void **state)
{
    (void)state;
    struct mem m;
    begin(&m);
    assert_output(&m, "{}\n");
}

static void test_json_scalars(void **state)
{
    (void)state;
    struct mem m;
    begin(&m);
    cl_json_str(&m.j, "s", "text");
    cl_json_int(&m.j, "zero", 0);
    cl_json_int(&m.j, "neg", -42);
    cl_json_int(&m.j, "min", LLONG_MIN);
    cl_json_int(&m.j, "max", LLONG_MAX);
    cl_json_bool(&m.j, "t", true);
    cl_json_bool(&m.j, "f", false);
    cl_json_str(&m.j, "empty", "");
    assert_output(&m, "{\"s\":\"text\",\"zero\":0,\"neg\":-42,\"min\":-9223372036854775808,"
                      "\"max\":9223372036854775807,\"t\":true,\"f\":false,\"empty\":\"\"}\n");
}

static void test_json_reals(void **state)
{
    (void)state;
    struct mem m;
    begin(&m);
    cl_json_real(&m.j, "half", 0.5);
    cl_json_real(&m.j, "whole", 3.0);
    cl_json_real(&m.j, "neg", -2.25);
    cl_json_real(&m.j, "third", 1.0 / 3.0);
    cl_json_real(&m.j, "big", 1e300);
    cl_json_real(&m.j, "tiny", 1.5e-7);
    cl_json_real(&m.j, "nan", NAN);
    cl_json_real(&m.j, "inf", INFINITY);
    cl_json_real(&m.j, "ninf", -INFINITY);
    cl_json_real(&m.j, "zero", 0.0);
    assert_output(&m, "{\"half\":0.5,\"whole\":3,\"neg\":-2.25,\"third\":0.333333333,"
                      "\"big\":1e+300,\"tiny\":1.5e-07,\"nan\":null,\"inf\":null,\"ninf\":null,"
                      "\"zero\":0}\n");
}

static void test_json_nesting(void **state)
{
    (void)state;
    struct mem m;
    begin(&m);
    cl_json_str(&m.j, "a", "x");
    cl_json_object(&m.j, "o");
    cl_json_int(&m.j, "n", -5);
    cl_json_bool(&m.j, "t", true);
    cl_json_close(&m.j);
    cl_json_array(&m.j, "arr");
    cl_json_int(&m.j, NULL, 1);
    cl_json_str(&m.j, NULL, "s");
    cl_json_real(&m.j, NULL, 1.5);
    cl_json_bool(&m.j, NULL, false);
    cl_json_real(&m.j, NULL, NAN);
    cl_json_object(&m.j, NULL);
    cl_json_close(&m.j);
    cl_json_array(&m.j, NULL);
    cl_json_close(&m.j);
    cl_json_object(&m.j, NULL);
    cl_json_int(&m.j, "k", 2);
    cl_json_close(&m.j);
    cl_json_close(&m.j);
    cl_json_array(&m.j, "empty");
    cl_json_close(&m.j);
    cl_json_int(&m.j, "last", 9);
    assert_output(&m, "{\"a\":\"x\",\"o\":{\"n\":-5,\"t\":true},\"arr\":[1,\"s\",1.5,false,null,"
                      "{},[],{\"k\":2}],\"empty\":[],\"last\":9}\n");
}

/* cl_json_end closes whatever is still open, innermost first. */
static void test_json_end_closes_all(void **state)
{
    (void)state;
    struct mem m;
    begin(&m);
    cl_json_array(&m.j, "a");
    cl_json_object(&m.j, NULL);
    cl_json_array(&m.j, "b");
    cl_json_int(&m.j, NULL, 1);
    assert_output(&m, "{\"a\":[{\"b\":[1]}]}\n");
}

/* CL_JSON_DEPTH - 1 open levels, the outer object included: the deepest that
 * stays inside first[] and closer[] (the writer does not check). */
static void test_json_deep(void **state)
{
    (void)state;
    struct mem m;
    begin(&m);
    for (int i = 1; i < CL_JSON_DEPTH - 1; i++)
        cl_json_array(&m.j, i == 1 ? "d" : NULL);
    cl_json_int(&m.j, NULL, 7);
    assert_output(&m, "{\"d\":[[[[[[7]]]]]]}\n");
}

static void test_json_escaping(void **state)
{
    (void)state;
    struct mem m;
    begin(&m);
    cl_json_str(&m.j, "quote", "say \"hi\"");
    cl_json_str(&m.j, "backslash", "C:\\dir\\");
    cl_json_str(&m.j, "newline", "one\ntwo");
    cl_json_str(&m.j, "controls", "\t\r\x01\x1f\b\f");
    cl_json_str(&m.j, "ascii", " ~/'\x7f");
    cl_json_str(&m.j, "utf8", "caf\xc3\xa9");
    cl_json_str(&m.j, "key \"with\"\nescapes\\", "v");
    assert_output(&m, "{\"quote\":\"say \\\"hi\\\"\","
                      "\"backslash\":\"C:\\\\dir\\\\\","
                      "\"newline\":\"one\\ntwo\","
                      "\"controls\":\"\\u0009\\u000d\\u0001\\u001f\\u0008\\u000c\","
                      "\"ascii\":\" ~/'\x7f\","
                      "\"utf8\":\"caf\xc3\xa9\","
                      "\"key \\\"with\\\"\\nescapes\\\\\":\"v\"}\n");
}

/* Every byte from 1 to 255 in one string still makes valid JSON. */
static void test_json_every_byte(void **state)
{
    (void)state;
    char all[256];
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    all[255] = '\0';
    struct mem m;
    begin(&m);
    cl_json_str(&m.j, "all", all);
    char *got = done(&m);
    assert_true(json_valid(got));
    assert_int_equal(count_lines(got), 1);
    free(got);
}

/* Two values in a row on one stream: JSON Lines. */
static void test_json_lines(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    struct cl_json j;
    for (int i = 0; i < 2; i++) {
        cl_json_begin(&j, f);
        cl_json_int(&j, "i", i);
        cl_json_end(&j);
    }
    fclose(f);
    assert_string_equal(text, "{\"i\":0}\n{\"i\":1}\n");
    free(text);
}

static void test_fmt_count(void **state)
{
    (void)state;
    static const struct {
        uint64_t n;
        const char *want;
    } cases[] = {
        {0, "0"},
        {7, "7"},
        {12, "12"},
        {999, "999"},
        {1000, "1,000"},
        {9999, "9,999"},
        {100000, "100,000"},
        {999999, "999,999"},
        {1000000, "1,000,000"},
        {1234567, "1,234,567"},
        {1000000000ull, "1,000,000,000"},
        {UINT64_MAX, "18,446,744,073,709,551,615"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        memset(buf, 'X', sizeof buf);
        assert_ptr_equal(cl_fmt_count(cases[i].n, buf), buf);
        assert_string_equal(buf, cases[i].want);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_empty_object),   cmocka_unit_test(test_json_scalars),
        cmocka_unit_test(test_json_reals),          cmocka_unit_test(test_json_nesting),
        cmocka_unit_test(test_json_end_closes_all), cmocka_unit_test(test_json_deep),
        cmocka_unit_test(test_json_escaping),       cmocka_unit_test(test_json_every_byte),
        cmocka_unit_test(test_json_lines),          cmocka_unit_test(test_fmt_count),
    };
    return UNIT_MAIN("json", tests);
}
