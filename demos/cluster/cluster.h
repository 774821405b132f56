/* What the files of the cluster chapter share: the rank, the flags, the result
 * rank 0 judges, and MPI calls that say what they wait for. */
#ifndef CLUSTER_H
#define CLUSTER_H

#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>

#include "conclab.h"

enum kind { SUM, PINGPONG, SEND_SEND, SENDRECV, ISEND, STENCIL, BCAST_NAIVE, BCAST, MISMATCH };

enum param { RANKS, SCALING, BYTES, GRID, NPARAMS };
enum scaling { STRONG, WEAK };

/* This process's place in MPI_COMM_WORLD, set once after MPI_Init. */
extern int rank, nranks;

/* What rank 0 found, for the check hook (the other ranks keep their own). */
struct outcome {
    bool exact;
    uint64_t ops;
    double in_program_s; /* MPI_Wtime from the barrier after start-up to the end */
    double value;        /* the variant's own figure: a round trip, a sum */
    uint64_t got, want;  /* an integer result and its reference */
    char verdict[200];
};
extern struct outcome outcome;

/* The variants (sum and stencil in compute.c, the others in messages.c). */
void run_sum(struct cl_run *run);
void run_stencil(struct cl_run *run);
void run_pingpong(struct cl_run *run);
void run_exchange(struct cl_run *run);
void run_bcast(struct cl_run *run);
void run_mismatch(struct cl_run *run);

/* One operation done, for the watchdog. */
void progress(struct cl_run *run);

/* MPI calls that first publish what they are about to wait for, so that a
 * watchdog firing meanwhile can say "rank 1: in MPI_Send to rank 0, 65,536 B". */
void m_send(struct cl_run *run, const void *buf, int count, MPI_Datatype t, int peer);
void m_recv(struct cl_run *run, void *buf, int count, MPI_Datatype t, int peer);
void m_sendrecv(struct cl_run *run, const void *out, void *in, int count, MPI_Datatype t, int up,
                int down);
void m_wait(struct cl_run *run, MPI_Request *req, int peer, long bytes);
void m_bcast(struct cl_run *run, void *buf, int count, MPI_Datatype t);
void m_barrier(struct cl_run *run);
void m_reduce_sum(struct cl_run *run, const uint64_t *part, uint64_t *sum);
void m_gather(struct cl_run *run, const double *band, int count, double *whole, const int *counts,
              const int *displs);

/* Bytes of one element of t. */
long type_bytes(MPI_Datatype t);

/* The fill byte of a message: a function of the sender, the round and the
 * offset, so the receiver can check every byte it got. */
static inline unsigned char pattern(int from, uint64_t round, size_t i)
{
    return (unsigned char)(from * 31 + round * 7 + i * 13 + 1);
}

/* How many bytes of buf[0..len) differ from pattern(from, round, i). */
size_t pattern_errors(const unsigned char *buf, size_t len, int from, uint64_t round);
void pattern_fill(unsigned char *buf, size_t len, int from, uint64_t round);

#endif
