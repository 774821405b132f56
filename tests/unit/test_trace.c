/* cl_trace: per-thread span buffers, the cap, and the CSV and Chrome
 * trace-event JSON writers (exact bytes). The bats tests check the JSON with jq. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#include "conclab.h"

#define ORIGIN 5000000000ull /* time zero of the file, in ns */

static char *write_to_string(const struct cl_trace *t, bool csv, const char *label)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    if (csv)
        cl_trace_write_csv(t, f);
    else
        cl_trace_write_json(t, f, label);
    assert_int_equal(fclose(f), 0);
    return text;
}

static void test_init_and_free(void **state)
{
    (void)state;
    struct cl_trace t;
    cl_trace_init(&t, 3, ORIGIN);
    assert_int_equal(t.threads, 3);
    assert_int_equal(t.origin_ns, ORIGIN);
    assert_non_null(t.bufs);
    for (int i = 0; i < 3; i++) {
        assert_non_null(t.bufs[i].spans);
        assert_int_equal(t.bufs[i].len, 0);
        assert_int_equal(t.bufs[i].cap, CL_TRACE_CAP);
        assert_int_equal(t.bufs[i].dropped, 0);
    }
    cl_trace_free(&t);
    assert_null(t.bufs);
}

static void test_add_spans(void **state)
{
    (void)state;
    struct cl_trace t;
    cl_trace_init(&t, 2, ORIGIN);
    cl_trace_add(&t.bufs[0], CL_SPAN_RUN, ORIGIN, ORIGIN + 10);
    cl_trace_add(&t.bufs[0], CL_SPAN_HOLD, ORIGIN + 10, ORIGIN + 30);
    cl_trace_add(&t.bufs[1], CL_SPAN_WAIT, ORIGIN + 5, ORIGIN + 6);
    assert_int_equal(t.bufs[0].len, 2);
    assert_int_equal(t.bufs[1].len, 1);
    assert_int_equal(t.bufs[0].spans[1].kind, CL_SPAN_HOLD);
    assert_int_equal(t.bufs[0].spans[1].start_ns, ORIGIN + 10);
    assert_int_equal(t.bufs[0].spans[1].end_ns, ORIGIN + 30);
    assert_int_equal(t.bufs[1].spans[0].kind, CL_SPAN_WAIT);
    cl_trace_free(&t);
}

/* Spans past the cap are counted in `dropped`, never stored. */
static void test_cap_counts_dropped(void **state)
{
    (void)state;
    struct cl_trace t;
    cl_trace_init(&t, 2, 0);
    for (uint64_t i = 0; i < CL_TRACE_CAP; i++)
        cl_trace_add(&t.bufs[1], CL_SPAN_RUN, i, i + 1);
    assert_int_equal(t.bufs[1].len, CL_TRACE_CAP);
    assert_int_equal(t.bufs[1].dropped, 0);
    for (int i = 0; i < 3; i++)
        cl_trace_add(&t.bufs[1], CL_SPAN_WAIT, 1, 2);
    assert_int_equal(t.bufs[1].len, CL_TRACE_CAP);
    assert_int_equal(t.bufs[1].dropped, 3);
    assert_int_equal(t.bufs[1].spans[CL_TRACE_CAP - 1].kind, CL_SPAN_RUN); /* not overwritten */
    assert_int_equal(t.bufs[1].spans[CL_TRACE_CAP - 1].start_ns, CL_TRACE_CAP - 1);
    assert_int_equal(t.bufs[0].len, 0); /* the other thread's buffer is untouched */
    assert_int_equal(t.bufs[0].dropped, 0);
    cl_trace_add(&t.bufs[0], CL_SPAN_RUN, 1, 2);
    assert_int_equal(t.bufs[0].dropped, 0);
    assert_int_equal(cl_trace_dropped(&t), 3);
    /* both writers say so: the CSV in a last comment line, the JSON in otherData */
    char *csv = write_to_string(&t, true, NULL);
    size_t len = strlen(csv);
    const char *last = "# dropped 3 spans past the 65536 kept per thread\n";
    assert_true(len > strlen(last));
    assert_string_equal(csv + len - strlen(last), last);
    free(csv);
    char *json = write_to_string(&t, false, "x");
    assert_true(json_valid(json));
    assert_contains(json, "],\"otherData\":{\"dropped\":3}}\n");
    free(json);
    cl_trace_free(&t);
}

static void test_span_names(void **state)
{
    (void)state;
    assert_string_equal(cl_span_name(CL_SPAN_RUN), "run");
    assert_string_equal(cl_span_name(CL_SPAN_WAIT), "wait");
    assert_string_equal(cl_span_name(CL_SPAN_HOLD), "hold");
    assert_string_equal(cl_span_name(CL_SPAN_RUNNING), "running");
    assert_string_equal(cl_span_name(CL_SPAN_RUNNABLE), "runnable");
    assert_string_equal(cl_span_name(CL_SPAN_BLOCKED), "blocked");
    assert_string_equal(cl_span_name(CL_SPAN_SLEEPING), "sleeping");
    assert_string_equal(cl_span_name(CL_SPAN_EXITED), "exited");
}

/* The scheduler's kinds go through both writers like the others, and an open
 * one is cut at a hang like the others. */
static void test_scheduler_kinds_written(void **state)
{
    (void)state;
    struct cl_trace t;
    cl_trace_init(&t, 1, ORIGIN);
    enum cl_span_kind kinds[] = {CL_SPAN_RUNNING, CL_SPAN_RUNNABLE, CL_SPAN_BLOCKED,
                                 CL_SPAN_SLEEPING, CL_SPAN_EXITED};
    for (uint64_t i = 0; i < 5; i++)
        cl_trace_add(&t.bufs[0], kinds[i], ORIGIN + i * 1000, ORIGIN + (i + 1) * 1000);
    cl_trace_open(&t.bufs[0], CL_SPAN_BLOCKED, ORIGIN + 5000);
    t.cut_ns = ORIGIN + 7000;
    char *csv = write_to_string(&t, true, NULL);
    assert_string_equal(csv, "thread,kind,start_s,end_s\n"
                             "1,running,0.000000000,0.000001000\n"
                             "1,runnable,0.000001000,0.000002000\n"
                             "1,blocked,0.000002000,0.000003000\n"
                             "1,sleeping,0.000003000,0.000004000\n"
                             "1,exited,0.000004000,0.000005000\n"
                             "1,blocked,0.000005000,0.000007000\n");
    free(csv);
    char *json = write_to_string(&t, false, "threads");
    assert_true(json_valid(json));
    assert_contains(json,
                    "{\"name\":\"runnable\",\"cat\":\"threads\",\"ph\":\"X\",\"ts\":1,\"dur\":1,");
    assert_contains(json,
                    "{\"name\":\"blocked\",\"cat\":\"threads\",\"ph\":\"X\",\"ts\":5,\"dur\":2,");
    free(json);
    cl_trace_free(&t);
}

static void fill_example(struct cl_trace *t)
{
    cl_trace_init(t, 2, ORIGIN);
    cl_trace_add(&t->bufs[0], CL_SPAN_RUN, ORIGIN, ORIGIN + 1500000000ull);
    cl_trace_add(&t->bufs[0], CL_SPAN_WAIT, ORIGIN + 1500000000ull, ORIGIN + 1500000250ull);
    cl_trace_add(&t->bufs[1], CL_SPAN_HOLD, ORIGIN + 1000, ORIGIN + 2000);
}

static void test_csv_exact(void **state)
{
    (void)state;
    struct cl_trace t;
    fill_example(&t);
    char *csv = write_to_string(&t, true, NULL);
    assert_string_equal(csv, "thread,kind,start_s,end_s\n"
                             "1,run,0.000000000,1.500000000\n"
                             "1,wait,1.500000000,1.500000250\n"
                             "2,hold,0.000001000,0.000002000\n");
    free(csv);
    cl_trace_free(&t);
}

static void test_csv_empty(void **state)
{
    (void)state;
    struct cl_trace t;
    cl_trace_init(&t, 4, ORIGIN);
    char *csv = write_to_string(&t, true, NULL);
    assert_string_equal(csv, "thread,kind,start_s,end_s\n");
    free(csv);
    cl_trace_free(&t);
}

/* Chrome trace-event format: complete ("X") events, microseconds, tid from 1. */
static void test_json_exact(void **state)
{
    (void)state;
    struct cl_trace t;
    fill_example(&t);
    char *json = write_to_string(&t, false, "race");
    assert_true(json_valid(json));
    assert_int_equal(count_lines(json), 1);
    assert_contains(json, "{\"traceEvents\":[{");
    assert_contains(json, "\"ph\":\"X\"");
    assert_contains(json, "\"cat\":\"race\"");
    assert_contains(json, "\"pid\":1");
    assert_contains(json, "\"tid\":2");
    assert_string_equal(
        json, "{\"traceEvents\":["
              "{\"name\":\"run\",\"cat\":\"race\",\"ph\":\"X\",\"ts\":0,\"dur\":1500000,"
              "\"pid\":1,\"tid\":1},"
              "{\"name\":\"wait\",\"cat\":\"race\",\"ph\":\"X\",\"ts\":1500000,\"dur\":0.25,"
              "\"pid\":1,\"tid\":1},"
              "{\"name\":\"hold\",\"cat\":\"race\",\"ph\":\"X\",\"ts\":1,\"dur\":1,"
              "\"pid\":1,\"tid\":2}"
              "],\"otherData\":{\"dropped\":0}}\n");
    free(json);
    cl_trace_free(&t);
}

static void test_json_empty_and_escaped_label(void **state)
{
    (void)state;
    struct cl_trace t;
    cl_trace_init(&t, 2, ORIGIN);
    char *json = write_to_string(&t, false, "x");
    assert_string_equal(json, "{\"traceEvents\":[],\"otherData\":{\"dropped\":0}}\n");
    free(json);
    cl_trace_add(&t.bufs[0], CL_SPAN_RUN, ORIGIN, ORIGIN + 1000);
    json = write_to_string(&t, false, "a \"b\"\\c");
    assert_true(json_valid(json));
    assert_contains(json, "\"cat\":\"a \\\"b\\\"\\\\c\"");
    free(json);
    cl_trace_free(&t);
}

/* The buffer is the one cl_span_begin and cl_span_end use; with no buffer they
 * read no clock and record nothing. */
static void test_span_helpers(void **state)
{
    (void)state;
    struct cl_trace t;
    cl_trace_init(&t, 1, cl_now_ns());
    struct cl_worker w = {.trace = &t.bufs[0]};
    uint64_t start = cl_span_begin(&w);
    assert_true(start >= t.origin_ns);
    cl_span_end(&w, CL_SPAN_HOLD, start);
    assert_int_equal(t.bufs[0].len, 1);
    assert_int_equal(t.bufs[0].spans[0].kind, CL_SPAN_HOLD);
    assert_int_equal(t.bufs[0].spans[0].start_ns, start);
    assert_true(t.bufs[0].spans[0].end_ns >= start);
    struct cl_worker off = {.trace = NULL};
    assert_int_equal(cl_span_begin(&off), 0);
    cl_span_end(&off, CL_SPAN_RUN, 0); /* nothing to write to, and no crash */
    assert_int_equal(t.bufs[0].len, 1);
    cl_trace_free(&t);
}

static void test_is_csv(void **state)
{
    (void)state;
    assert_true(cl_trace_is_csv("t.csv"));
    assert_true(cl_trace_is_csv("/tmp/dir.json/t.csv"));
    assert_true(cl_trace_is_csv("x.json.csv"));
    assert_false(cl_trace_is_csv("t.json"));
    assert_false(cl_trace_is_csv("t.csv.json"));
    assert_false(cl_trace_is_csv(".csv"));
    assert_false(cl_trace_is_csv("csv"));
    assert_false(cl_trace_is_csv("t.CSV"));
    assert_false(cl_trace_is_csv("t.csvx"));
    assert_false(cl_trace_is_csv(""));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_and_free),
        cmocka_unit_test(test_add_spans),
        cmocka_unit_test(test_cap_counts_dropped),
        cmocka_unit_test(test_span_names),
        cmocka_unit_test(test_scheduler_kinds_written),
        cmocka_unit_test(test_csv_exact),
        cmocka_unit_test(test_csv_empty),
        cmocka_unit_test(test_json_exact),
        cmocka_unit_test(test_json_empty_and_escaped_label),
        cmocka_unit_test(test_span_helpers),
        cmocka_unit_test(test_is_csv),
    };
    return UNIT_MAIN("trace", tests);
}
