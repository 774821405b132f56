/* async, file-io: epoll cannot wait for a regular file, so "async file I/O"
 * (aiofiles, asyncio's to_thread, libuv's fs calls) is a thread pool doing
 * blocking reads and handing the results to the loop. With --file-io uring,
 * io_uring reads the file with no thread of ours, where the system allows it
 * (a container often forbids it); the loop hears of each read through an
 * eventfd. The file is a temporary one, unlinked as soon as it is open. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>
#if CONCLAB_HAVE_URING
#include <liburing.h>
#endif

#include "async.h"

#define CHUNK  ((size_t)64 * 1024)
#define CHUNKS ((size_t)64) /* 4 MiB */
#define POOL   2            /* threads in the pool */
#define DEPTH  8            /* io_uring: reads in flight at once */

static struct {
    int fd;
    unsigned char *buf;         /* CHUNKS x CHUNK: where the reads land */
    int epoll_err, await_err;   /* what epoll said about the file */
    uint64_t sum, want, chunks; /* the bytes' sum, as the loop saw them */
    uint64_t posts, wakes;      /* calls from the pool, and the wake-ups they cost */
    _Atomic size_t next;        /* the pool's next chunk */
    struct cl_loop *loop;
    struct cl_future *all_read;
    bool uring;
} fio;

/* [snippet file-epoll] */
struct watcher {
    struct cl_task task;
    int fd;
};

static int watcher_run(struct cl_task *t)
{
    struct watcher *w = (struct watcher *)t;
    CL_BEGIN(t);
    CL_READABLE(t, w->fd); /* a regular file: the await fails with EPERM */
    CL_END(t);
}
/* [end file-epoll] */

static void no_io(struct cl_io *io, uint32_t revents)
{
    (void)io;
    (void)revents;
}

/* The loop's side: each chunk read is summed here, on the loop's thread. */
static void chunk_read(void *arg)
{
    const unsigned char *p = arg;
    for (size_t i = 0; i < CHUNK; i++)
        fio.sum += p[i];
    if (++fio.chunks == CHUNKS)
        cl_future_set(fio.all_read, CHUNKS);
}

/* [snippet file-pool] */
static void *pool_thread(void *arg)
{
    (void)arg;
    size_t c;
    while ((c = atomic_fetch_add(&fio.next, 1)) < CHUNKS) {
        unsigned char *p = fio.buf + c * CHUNK;
        CL_SYS(pread(fio.fd, p, CHUNK, (off_t)c * CHUNK));     /* blocks this thread only */
        cl_loop_call_soon_threadsafe(fio.loop, chunk_read, p); /* hand it to the loop */
    }
    return NULL;
}
/* [end file-pool] */

static void read_by_pool(void)
{
    pthread_t pool[POOL];
    for (int i = 0; i < POOL; i++)
        CL_PT(pthread_create(&pool[i], NULL, pool_thread, NULL));
    loop_run_until(fio.loop, fio.all_read);
    for (int i = 0; i < POOL; i++)
        CL_PT(pthread_join(pool[i], NULL));
    fio.posts = atomic_load(&fio.loop->ts_posts);
    fio.wakes = atomic_load(&fio.loop->ts_wakes);
}

#if CONCLAB_HAVE_URING
static struct io_uring ring;

static void submit_read(size_t c)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_read(sqe, fio.fd, fio.buf + c * CHUNK, CHUNK, c * CHUNK);
    io_uring_sqe_set_data(sqe, fio.buf + c * CHUNK);
}

struct reaper {
    struct cl_task task;
    int efd;
    size_t submitted;
};

/* The loop waits on the ring's eventfd, then takes every completed read. */
static int reaper_run(struct cl_task *t)
{
    struct reaper *r = (struct reaper *)t;
    CL_BEGIN(t);
    while (fio.chunks < CHUNKS) {
        CL_READABLE(t, r->efd);
        uint64_t n;
        (void)!read(r->efd, &n, sizeof n);
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(&ring, &cqe) == 0) {
            if (cqe->res != CHUNK)
                CL_RAISE(t, cqe->res < 0 ? -cqe->res : EIO, "an io_uring read failed");
            void *p = io_uring_cqe_get_data(cqe);
            io_uring_cqe_seen(&ring, cqe);
            chunk_read(p);
            if (r->submitted < CHUNKS) {
                submit_read(r->submitted++);
                io_uring_submit(&ring);
            }
        }
    }
    CL_END(t);
}

static void read_by_uring(struct cl_run *run)
{
    int rc = io_uring_queue_init(DEPTH, &ring, 0);
    if (rc < 0)
        cl_refuse(run, "io_uring_queue_init", -rc,
                  "io_uring is not allowed here; the default, --file-io threads, needs nothing");
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    CL_SYS(efd);
    CL_SYS(io_uring_register_eventfd(&ring, efd) < 0 ? -1 : 0);
    struct reaper *r = (struct reaper *)cl_task_new(fio.loop, reaper_run, sizeof *r, "reaper");
    r->efd = efd;
    for (; r->submitted < DEPTH; r->submitted++)
        submit_read(r->submitted);
    io_uring_submit(&ring);
    loop_run_until(fio.loop, &r->task.fut);
    cl_future_unref(&r->task.fut);
    io_uring_queue_exit(&ring);
    close(efd);
}
#endif

static void make_file(void)
{
    const char *dir = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    char path[4096];
    snprintf(path, sizeof path, "%s/conclab-async-XXXXXX", dir);
    fio.fd = mkostemp(path, O_CLOEXEC);
    CL_SYS(fio.fd);
    CL_SYS(unlink(path)); /* nothing is left behind, however the run ends */
    fio.buf = cl_xcalloc(CHUNKS, CHUNK);
    for (size_t i = 0; i < (size_t)CHUNKS * CHUNK; i++) {
        fio.buf[i] = (unsigned char)(i * 131 + 7);
        fio.want += fio.buf[i];
    }
    for (size_t done = 0; done < (size_t)CHUNKS * CHUNK;)
        done += (size_t)CL_SYS_RETRY(write(fio.fd, fio.buf + done, (size_t)CHUNKS * CHUNK - done));
    memset(fio.buf, 0, (size_t)CHUNKS * CHUNK);
}

void run_file_io(struct cl_run *run)
{
    fio.uring = cl_param(run, FILE_IO) == FILE_URING;
    make_file();
    fio.loop = loop_open(run);
    /* [snippet file-eperm] */
    struct cl_io io = {0};
    fio.epoll_err = cl_io_start(fio.loop, &io, fio.fd, EPOLLIN, no_io); /* epoll_ctl(ADD) */
    /* [end file-eperm] */
    struct watcher *w = (struct watcher *)cl_task_new(fio.loop, watcher_run, sizeof *w, "watcher");
    w->fd = fio.fd;
    loop_run_until(fio.loop, &w->task.fut);
    fio.await_err = w->task.fut.err;
    cl_future_unref(&w->task.fut);
    fio.all_read = cl_future_new(fio.loop, "every chunk read");
#if CONCLAB_HAVE_URING
    if (fio.uring)
        read_by_uring(run);
    else
#endif
        read_by_pool();
    cl_future_unref(fio.all_read);
    loop_close(fio.loop);
    close(fio.fd);
    free(fio.buf);
}

static void judge_file_io(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    res->exact = fio.epoll_err == EPERM && fio.await_err == EPERM && fio.chunks == CHUNKS &&
                 fio.sum == fio.want;
    res->ops = CHUNKS;
    cl_metric_int(res, "epoll_errno", fio.epoll_err);
    cl_metric_int(res, "chunks", (long long)fio.chunks);
    cl_metric_int(res, "calls_from_threads", (long long)fio.posts);
    cl_metric_int(res, "wakeups", (long long)fio.wakes);
    if (fio.uring)
        cl_verdict(res,
                   "epoll on a regular file: %s; io_uring read 4 MiB in %llu chunks, no "
                   "thread of ours",
                   strerrorname_np(fio.epoll_err), (unsigned long long)fio.chunks);
    else
        cl_verdict(res,
                   "epoll on a regular file: %s; %d threads read 4 MiB for the loop in %llu "
                   "chunks (%llu calls back, %llu wake-up%s)",
                   fio.epoll_err ? strerrorname_np(fio.epoll_err) : "accepted", POOL,
                   (unsigned long long)fio.chunks, (unsigned long long)fio.posts,
                   (unsigned long long)fio.wakes, fio.wakes == 1 ? "" : "s");
}

const struct family file_io_f = {judge_file_io};
