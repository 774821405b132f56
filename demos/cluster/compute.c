/* The two computations split over ranks: the speedup chapter's sum of squares
 * (lib/cl_work.h) and the barrier chapter's Jacobi stencil (lib/cl_stencil.h).
 * Each rank holds only its own share: a range of the sum, a band of rows with
 * one halo row above and below. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"

#define CHUNK (1u << 20) /* elements summed between two ticks of the watchdog */

/* [snippet sum] */
void run_sum(struct cl_run *run)
{
    uint64_t total = run->iters; /* strong scaling: the whole range is fixed */
    if (cl_param(run, SCALING) == WEAK)
        total = run->iters * (uint64_t)nranks; /* weak: each rank's share is */
    uint64_t lo = total * (uint64_t)rank / (uint64_t)nranks;
    uint64_t hi = total * (uint64_t)(rank + 1) / (uint64_t)nranks;

    m_barrier(run); /* every rank has started: time from here */
    double t0 = MPI_Wtime();
    uint64_t part = 0;
    for (uint64_t a = lo; a < hi; a += CHUNK) {
        part += cl_sum_squares_range(a, hi - a < CHUNK ? hi : a + CHUNK);
        progress(run);
    }
    uint64_t sum = 0; /* unsigned addition wraps, as the closed form does */
    m_reduce_sum(run, &part, &sum);
    outcome.in_program_s = MPI_Wtime() - t0;
    /* [end sum] */

    outcome.ops = total;
    char a[32], b[32];
    if (rank != 0) {
        outcome.exact = true;
        snprintf(outcome.verdict, sizeof outcome.verdict, "rank %d: its share sent", rank);
        return;
    }
    uint64_t want = cl_sum_squares_closed(total);
    outcome.exact = sum == want;
    snprintf(outcome.verdict, sizeof outcome.verdict,
             "%s: sum of i*i below %s is %s (mod 2^64), the closed form %s",
             outcome.exact ? "exact" : "WRONG", cl_fmt_count(total, a), cl_fmt_count(sum, b),
             outcome.exact ? "agrees" : "differs");
}

/* The sequential grid after `steps` steps, for rank 0's check. */
static double *sequential(struct cl_run *run, int n, uint64_t steps)
{
    size_t cells = (size_t)(n + 2) * (size_t)(n + 2);
    double *g[2] = {cl_stencil_new(n, run->opts->seed), malloc(cells * sizeof(double))};
    if (g[1] == NULL)
        cl_fatal("cluster: no memory for a %d x %d grid", n, n);
    memcpy(g[1], g[0], cells * sizeof(double));
    for (uint64_t s = 0; s < steps; s++) {
        cl_stencil_relax(g[s % 2], g[(s + 1) % 2], n, 1, n + 1);
        progress(run);
    }
    free(g[(steps + 1) % 2]);
    return g[steps % 2];
}

/* Rows lo..hi-1 of the grid belong to a rank: n rows shared as evenly as they go. */
static int band_start(int n, int r)
{
    return 1 + (int)((long)n * r / nranks);
}

void run_stencil(struct cl_run *run)
{
    int n = (int)cl_param(run, GRID);
    uint64_t steps = run->iters;
    size_t row = (size_t)n + 2;
    int lo = band_start(n, rank), hi = band_start(n, rank + 1), b = hi - lo;
    /* The band and its two halo rows, twice (read one step, write the other),
     * copied from the grid every rank makes alike from --seed. */
    double *start = cl_stencil_new(n, run->opts->seed);
    double *g[2];
    for (int k = 0; k < 2; k++) {
        if ((g[k] = malloc((size_t)(b + 2) * row * sizeof(double))) == NULL)
            cl_fatal("cluster: no memory for a band of %d rows", b);
        memcpy(g[k], start + (size_t)(lo - 1) * row, (size_t)(b + 2) * row * sizeof(double));
    }
    free(start);
    int up = rank > 0 ? rank - 1 : MPI_PROC_NULL;
    int down = rank < nranks - 1 ? rank + 1 : MPI_PROC_NULL;

    m_barrier(run);
    double t0 = MPI_Wtime();
    /* [snippet halo] */
    for (uint64_t s = 0; s < steps; s++) {
        double *cur = g[(s + 1) % 2];
        cl_stencil_relax(g[s % 2], cur, n, 1, b + 1);
        /* my first row goes up as the upper rank's lower halo, and the lower
         * rank's first row comes in as mine; then the same downwards. At the
         * edges MPI_PROC_NULL leaves the fixed border row in place. */
        m_sendrecv(run, cur + row, cur + (size_t)(b + 1) * row, (int)row, MPI_DOUBLE, up, down);
        m_sendrecv(run, cur + (size_t)b * row, cur, (int)row, MPI_DOUBLE, down, up);
        progress(run);
    }
    /* [end halo] */
    m_barrier(run);
    outcome.in_program_s = MPI_Wtime() - t0;
    outcome.ops = steps;

    /* Rank 0 gathers the bands and compares them with the sequential grid. */
    double *mine = g[steps % 2];
    double *whole = NULL;
    int *counts = NULL, *displs = NULL;
    if (rank == 0) {
        whole = calloc(row * row, sizeof(double));
        counts = calloc((size_t)nranks, sizeof(int));
        displs = calloc((size_t)nranks, sizeof(int));
        if (whole == NULL || counts == NULL || displs == NULL)
            cl_fatal("cluster: no memory to gather a %d x %d grid", n, n);
        for (int r = 0; r < nranks; r++) {
            counts[r] = (band_start(n, r + 1) - band_start(n, r)) * (int)row;
            displs[r] = band_start(n, r) * (int)row;
        }
    }
    m_gather(run, mine + row, b * (int)row, whole, counts, displs);
    if (rank == 0) {
        double *ref = sequential(run, n, steps);
        uint64_t differ = 0;
        for (int i = 1; i <= n; i++)
            for (int j = 1; j <= n; j++)
                differ += memcmp(&CL_STENCIL_AT(whole, n, i, j), &CL_STENCIL_AT(ref, n, i, j),
                                 sizeof(double)) != 0;
        outcome.got = differ;
        outcome.exact = differ == 0;
        char c[32];
        if (differ == 0)
            snprintf(outcome.verdict, sizeof outcome.verdict,
                     "exact: %d band%s, %d x %d cells, %llu steps: the sequential grid bit for bit",
                     nranks, nranks == 1 ? "" : "s", n, n, (unsigned long long)steps);
        else
            snprintf(outcome.verdict, sizeof outcome.verdict,
                     "WRONG: %d bands, %s cells differ from the sequential grid", nranks,
                     cl_fmt_count(differ, c));
        free(ref);
    } else {
        outcome.exact = true;
        snprintf(outcome.verdict, sizeof outcome.verdict, "rank %d: its band sent", rank);
    }
    m_barrier(run); /* the ranks reach check and the output together */
    free(whole);
    free(counts);
    free(displs);
    free(g[0]);
    free(g[1]);
}
