/* prodcons: the sampler behind the backpressure charts. Every SAMPLE_NS it
 * records resident memory and how full the buffer is; measuring, not lesson. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prodcons.h"

/* Resident memory now, in KiB, from /proc/self/statm. */
static long rss_kib(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    strtol(buf, &end, 10);                 /* total pages */
    long resident = strtol(end, NULL, 10); /* resident pages */
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

long peak_rss_kib(void)
{
    char line[256];
    long kib = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

#define SAMPLE_NS   2000000ull
#define MAX_SAMPLES 30000
struct sample {
    double t_s;
    long rss_kib;
    size_t fill;
};
static struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t stop_cv;
    bool stop, running;
    struct sample *s;
    size_t n;
    uint64_t t0;
    size_t (*fill)(void);
} sampler = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *sample_loop(void *arg)
{
    (void)arg;
    CL_PT(pthread_mutex_lock(&sampler.mu));
    while (!sampler.stop) {
        if (sampler.n < MAX_SAMPLES)
            sampler.s[sampler.n++] =
                (struct sample){cl_seconds(cl_now_ns() - sampler.t0), rss_kib(), sampler.fill()};
        struct timespec ts = cl_deadline_ns(SAMPLE_NS);
        int rc = pthread_cond_timedwait(&sampler.stop_cv, &sampler.mu, &ts);
        if (rc != 0 && rc != ETIMEDOUT)
            CL_PT(rc);
    }
    CL_PT(pthread_mutex_unlock(&sampler.mu));
    return NULL;
}

void sampler_start(size_t (*fill)(void))
{
    CL_PT(cl_cond_init_monotonic(&sampler.stop_cv));
    sampler.s = cl_xcalloc(MAX_SAMPLES, sizeof *sampler.s);
    sampler.n = 0;
    sampler.stop = false;
    sampler.fill = fill;
    sampler.t0 = cl_now_ns();
    sampler.running = true;
    CL_PT(pthread_create(&sampler.thread, NULL, sample_loop, NULL));
}

void sampler_stop(void)
{
    CL_PT(pthread_mutex_lock(&sampler.mu));
    sampler.stop = true;
    CL_PT(pthread_cond_signal(&sampler.stop_cv));
    CL_PT(pthread_mutex_unlock(&sampler.mu));
    CL_PT(pthread_join(sampler.thread, NULL));
    CL_PT(pthread_cond_destroy(&sampler.stop_cv));
    sampler.running = false;
}

/* With --trace FILE.csv, the samples go to FILE.samples.tsv for the charts. */
void sampler_write(const char *trace)
{
    FILE *f = cl_samples_open(trace);
    if (f == NULL)
        return;
    fprintf(f, "t_s\trss_mib\tfill\tfill_pct\n");
    for (size_t i = 0; i < sampler.n; i++)
        fprintf(f, "%.4f\t%.2f\t%zu\t%.1f\n", sampler.s[i].t_s,
                (double)sampler.s[i].rss_kib / 1024.0, sampler.s[i].fill,
                100.0 * (double)sampler.s[i].fill / (double)capacity);
    fclose(f);
}

bool sampler_running(void)
{
    return sampler.running;
}

long sampler_rss_growth_kib(void)
{
    long top = 0;
    for (size_t i = 0; i < sampler.n; i++)
        top = sampler.s[i].rss_kib > top ? sampler.s[i].rss_kib : top;
    return sampler.n > 0 ? top - sampler.s[0].rss_kib : 0;
}

void sampler_free(void)
{
    free(sampler.s);
    sampler.s = NULL;
    sampler.n = 0;
}
