/* The variants that are about messages themselves: a ping-pong's round trip,
 * an exchange between pairs of ranks written three ways (two of them safe),
 * a broadcast by hand against MPI_Bcast, and a type signature that does not
 * match. Every payload is a pattern of its sender and round, checked byte by
 * byte where it lands; rank 0 adds up everyone's errors. */
#include <stdio.h>
#include <stdlib.h>

#include "cluster.h"

static unsigned char *buffer(size_t bytes)
{
    unsigned char *b = malloc(bytes);
    if (b == NULL)
        cl_fatal("cluster: no memory for a message of %zu B", bytes);
    return b;
}

/* Every rank's count of bad bytes, added up on rank 0. */
static uint64_t errors_everywhere(struct cl_run *run, uint64_t mine)
{
    uint64_t all = 0;
    m_reduce_sum(run, &mine, &all);
    return all;
}

#define WARM_UP 10 /* round trips before the timed ones: connections, caches */

void run_pingpong(struct cl_run *run)
{
    size_t bytes = (size_t)cl_param(run, BYTES);
    uint64_t rounds = run->iters;
    unsigned char *buf = buffer(bytes);
    double *rtt = calloc(rounds, sizeof(double));
    if (rtt == NULL)
        cl_fatal("cluster: no memory for %llu timings", (unsigned long long)rounds);
    uint64_t bad = 0;
    m_barrier(run);
    double t0 = MPI_Wtime();
    /* [snippet pingpong] */
    for (uint64_t r = 0; r < WARM_UP + rounds; r++) {
        if (rank == 0) {
            pattern_fill(buf, bytes, 0, r);
            double t = MPI_Wtime();
            m_send(run, buf, (int)bytes, MPI_BYTE, 1);
            m_recv(run, buf, (int)bytes, MPI_BYTE, 1);
            if (r >= WARM_UP)
                rtt[r - WARM_UP] = MPI_Wtime() - t;
            bad += pattern_errors(buf, bytes, 0, r); /* rank 1 echoes what it got */
        } else if (rank == 1) {
            m_recv(run, buf, (int)bytes, MPI_BYTE, 0);
            m_send(run, buf, (int)bytes, MPI_BYTE, 0);
        }
        if (r >= WARM_UP)
            progress(run);
    }
    /* [end pingpong] */
    outcome.in_program_s = MPI_Wtime() - t0;
    outcome.ops = rounds;
    bad = errors_everywhere(run, bad);
    outcome.exact = bad == 0;
    char a[32], b[32];
    if (rank == 0) {
        outcome.value = cl_median(rtt, rounds);
        snprintf(outcome.verdict, sizeof outcome.verdict,
                 "%s: %s round trips of %s B, median %.2f us", bad == 0 ? "exact" : "WRONG",
                 cl_fmt_count(rounds, a), cl_fmt_count(bytes, b), outcome.value * 1e6);
    }
    free(rtt);
    free(buf);
}

/* [snippet exchange] */
static void exchange(struct cl_run *run, int kind, unsigned char *out, unsigned char *in, int bytes,
                     int peer)
{
    MPI_Request req;
    switch (kind) {
    case SEND_SEND: /* safe only while the message fits the eager limit */
        m_send(run, out, bytes, MPI_BYTE, peer);
        m_recv(run, in, bytes, MPI_BYTE, peer);
        break;
    case SENDRECV: /* MPI pairs the two itself */
        m_sendrecv(run, out, in, bytes, MPI_BYTE, peer, peer);
        break;
    default: /* ISEND: the send is started, not finished, before the receive */
        MPI_Isend(out, bytes, MPI_BYTE, peer, 0, MPI_COMM_WORLD, &req);
        m_recv(run, in, bytes, MPI_BYTE, peer);
        m_wait(run, &req, peer, bytes);
        break;
    }
}
/* [end exchange] */

void run_exchange(struct cl_run *run)
{
    int bytes = (int)cl_param(run, BYTES);
    int peer = rank ^ 1; /* pairs 0-1, 2-3, ...; an odd last rank sits out */
    unsigned char *out = buffer((size_t)bytes), *in = buffer((size_t)bytes);
    uint64_t bad = 0;
    m_barrier(run);
    double t0 = MPI_Wtime();
    for (uint64_t r = 0; r < run->iters && peer < nranks; r++) {
        pattern_fill(out, (size_t)bytes, rank, r);
        exchange(run, run->variant->kind, out, in, bytes, peer);
        bad += pattern_errors(in, (size_t)bytes, peer, r);
        progress(run);
    }
    outcome.in_program_s = MPI_Wtime() - t0;
    outcome.ops = run->iters;
    bad = errors_everywhere(run, bad);
    outcome.exact = bad == 0;
    char a[32], b[32], c[32];
    snprintf(outcome.verdict, sizeof outcome.verdict, "%s: %s exchanges of %s B, %s bytes wrong",
             bad == 0 ? "exact" : "WRONG", cl_fmt_count(run->iters, a),
             cl_fmt_count((uint64_t)bytes, b), cl_fmt_count(bad, c));
    free(out);
    free(in);
}

void run_bcast(struct cl_run *run)
{
    int bytes = (int)cl_param(run, BYTES);
    unsigned char *buf = buffer((size_t)bytes);
    uint64_t bad = 0;
    double spent = 0; /* rank 0's time in the broadcasts alone */
    m_barrier(run);
    double t0 = MPI_Wtime();
    for (uint64_t r = 0; r < run->iters; r++) {
        if (rank == 0)
            pattern_fill(buf, (size_t)bytes, 0, r);
        double t = MPI_Wtime();
        /* [snippet bcast] */
        if (run->variant->kind == BCAST) {
            m_bcast(run, buf, bytes, MPI_BYTE); /* a tree: log2(ranks) rounds */
        } else if (rank == 0) {
            for (int to = 1; to < nranks; to++) /* ranks - 1 sends, one at a time */
                m_send(run, buf, bytes, MPI_BYTE, to);
        } else {
            m_recv(run, buf, bytes, MPI_BYTE, 0);
        }
        /* [end bcast] */
        spent += MPI_Wtime() - t;
        if (rank != 0)
            bad += pattern_errors(buf, (size_t)bytes, 0, r);
        progress(run);
    }
    m_barrier(run);
    outcome.in_program_s = MPI_Wtime() - t0;
    outcome.ops = run->iters;
    outcome.value = spent / (double)run->iters;
    bad = errors_everywhere(run, bad);
    outcome.exact = bad == 0;
    char a[32], b[32];
    snprintf(outcome.verdict, sizeof outcome.verdict,
             "%s: %s broadcasts of %s B to %d other rank%s, %.1f us each",
             bad == 0 ? "exact" : "WRONG", cl_fmt_count(run->iters, a),
             cl_fmt_count((uint64_t)bytes, b), nranks - 1, nranks == 2 ? "" : "s",
             outcome.value * 1e6);
    free(buf);
}

/* [snippet mismatch] */
void run_mismatch(struct cl_run *run)
{
    int count = (int)(cl_param(run, BYTES) / 4);
    double got = 0;
    m_barrier(run);
    double t0 = MPI_Wtime();
    if (rank == 0) {
        int *ints = malloc((size_t)count * sizeof(int));
        for (int i = 0; i < count && ints != NULL; i++)
            ints[i] = i + 1;
        if (ints == NULL)
            cl_fatal("cluster: no memory for %d ints", count);
        m_send(run, ints, count, MPI_INT, 1);
        m_recv(run, &got, 1, MPI_DOUBLE, 1);
        free(ints);
    } else if (rank == 1) {
        float *floats = malloc((size_t)count * sizeof(float));
        if (floats == NULL)
            cl_fatal("cluster: no memory for %d floats", count);
        /* erroneous: the receive's type signature differs from the send's */
        m_recv(run, floats, count, MPI_FLOAT, 0);
        double sum = 0;
        for (int i = 0; i < count; i++)
            sum += floats[i];
        m_send(run, &sum, 1, MPI_DOUBLE, 0);
        free(floats);
    }
    /* [end mismatch] */
    progress(run);
    outcome.in_program_s = MPI_Wtime() - t0;
    outcome.ops = 1;
    double want = (double)count * (count + 1) / 2;
    outcome.exact = rank != 0 || got == want;
    char a[32], b[32];
    snprintf(outcome.verdict, sizeof outcome.verdict,
             "%s: ints 1..%s (sum %s) sent as MPI_INT arrive as MPI_FLOAT summing to %.3g",
             got == want ? "intact" : "wrong", cl_fmt_count((uint64_t)count, a),
             cl_fmt_count((uint64_t)want, b), got);
}
