/* A process pool: multiprocessing.Pool and ProcessPoolExecutor in C.
 *
 * The workers are this program itself, started with posix_spawn in a worker mode,
 * never fork()ed from this threaded process: a forked child inherits locks other
 * threads hold at that instant (malloc's among them), and ThreadSanitizer kills a
 * forked child that starts threads. Each worker is registered with cl_child, so
 * it is killed and reaped however this process ends, and dies with it.
 *
 * Nothing is pickled. A task is named by its index in a table of functions that
 * both sides compile in (cl_proc_fn), and an item by its number: the worker gets
 * (function, first item, item count, argument) on a pipe and answers with one
 * result per item, which the pool stores at that item's index in the caller's
 * arrays, whatever order the chunks finish in.
 *
 *   cl_procpool_new      spawn `workers` workers (a manager thread owns them)
 *   cl_procpool_map      items 0..n-1 of task fn, in chunks of `chunk` items
 *   cl_procpool_wait     until every item has its result, or a timeout
 *   cl_procpool_cancel   drop the chunks not started and SIGKILL the workers
 *                        running the others; the manager reaps each and spawns a
 *                        replacement: a real cancel, which a thread pool cannot do
 *   completion fd        with .completions, settled batches go to a completion
 *                        queue (cl_procpool_take_done), and an eventfd is
 *                        readable while it holds any
 *   cl_procpool_shutdown let every batch finish (or kill them all), then end and
 *                        reap the workers
 *
 * The worker mode: a program whose main() starts with
 *
 *   if (cl_procpool_is_worker(argc, argv))
 *       return cl_procpool_serve(argc, argv, tasks, ntasks);
 *
 * serves requests until its parent closes the pipe. */
#ifndef CL_PROCPOOL_H
#define CL_PROCPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl_pool.h" /* enum cl_pool_status, CL_FOREVER */

#define CL_PROCPOOL_MAX_WORKERS 256 /* processes in one pool; more is EINVAL */

/* A task, run in a worker for one item: *result from item and arg. Returns 0, or
 * an error code, stored at the item's index in the caller's errors array. */
typedef int cl_proc_fn(uint64_t item, uint64_t arg, uint64_t *result);

struct cl_procpool;
struct cl_procpool_batch;

struct cl_procpool_opts {
    int workers;      /* processes, 1 to CL_PROCPOOL_MAX_WORKERS */
    bool completions; /* keep settled batches for cl_procpool_take_done, with an eventfd */
};

/* Counters read without a lock (for a watchdog's report). */
struct cl_procpool_stats {
    uint64_t spawned;  /* workers started, replacements included */
    uint64_t killed;   /* workers killed by a cancel or a killing shutdown */
    uint64_t died;     /* workers that died on their own (their items failed with ECHILD) */
    uint64_t requests; /* chunks sent to a worker */
    int live;          /* workers running now */
    int busy;          /* of those, working on a chunk */
};

/* Spawn the workers (this program, /proc/self/exe, in worker mode). NULL with
 * errno: EINVAL, ENOMEM, or the error of a pipe or of posix_spawn. */
struct cl_procpool *cl_procpool_new(const struct cl_procpool_opts *opts);

/* Run fns[fn](i, arg) for i in 0..n-1, `chunk` items per request (the last one
 * shorter), into results[i] and errors[i] (0, or the task's error; ECHILD if its
 * worker died), which must stay valid until the batch settles. Returns the batch,
 * the caller's until cl_procpool_release; NULL with errno: ESHUTDOWN, ENOMEM, or
 * EINVAL for a chunk of 0. */
struct cl_procpool_batch *cl_procpool_map(struct cl_procpool *pp, unsigned fn, uint64_t arg,
                                          size_t n, size_t chunk, uint64_t *results, int *errors);

/* Wait until the batch settles or timeout_ns passes (0: do not wait;
 * CL_FOREVER): OK (every item has its result or error), CANCELLED, or
 * TIMEOUT, after which its workers go on. */
enum cl_pool_status cl_procpool_wait(struct cl_procpool_batch *b, uint64_t timeout_ns);

/* Cancel the batch: its chunks not yet sent are dropped, and every worker running
 * one of its chunks is killed, reaped and replaced. Once this returns, nothing is
 * written into its arrays. True when the batch is (now or already) cancelled,
 * false when it had already finished. */
bool cl_procpool_cancel(struct cl_procpool_batch *b);

/* The caller is done with the batch (a settled one, or after a cancel). */
void cl_procpool_release(struct cl_procpool_batch *b);

/* With .completions: an eventfd that is readable once a batch has settled. Read
 * its 8 bytes to clear it, then take every batch with cl_procpool_take_done
 * until NULL. -1 without .completions. */
int cl_procpool_completion_fd(const struct cl_procpool *pp);

/* The oldest settled batch not yet taken, as a reference the caller releases;
 * NULL when there is none. */
struct cl_procpool_batch *cl_procpool_take_done(struct cl_procpool *pp);

/* Stop taking batches. With kill, cancel every unsettled one (its workers
 * killed); else let them all finish, however long. Then close the workers'
 * pipes, reap them, and free the pool. */
void cl_procpool_shutdown(struct cl_procpool *pp, bool kill);

struct cl_procpool_stats cl_procpool_stats(const struct cl_procpool *pp);

/* The worker side. Whether argv asks for the worker mode. */
bool cl_procpool_is_worker(int argc, char **argv);

/* Serve requests on stdin, answering on stdout, until stdin closes: returns 0
 * then (main's exit status); 2 for a command line that is not the worker
 * mode's. A request for a function beyond nfns fails its items with ENOSYS. */
int cl_procpool_serve(int argc, char **argv, cl_proc_fn *const *fns, size_t nfns);

#endif
