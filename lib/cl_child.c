#include "cl_child.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cl_check.h"

extern char **environ;

/* Registered pids; 0 is a free slot. Written with a CAS by the starting
 * thread, cleared by whoever reaps. */
static _Atomic pid_t registry[CL_CHILD_MAX];
static atomic_flag hooked = ATOMIC_FLAG_INIT;
static atomic_bool killing; /* cl_child_kill_all has begun: the process is ending */
/* Spawns between posix_spawn and their registration. cl_child_kill_all waits for
 * them to register, or a child spawned by another thread while this process ends
 * would escape it: a spawned program learns of its parent's death only once it
 * reaches main (cl_child_die_with_parent), which a slow start can delay. */
static _Atomic int spawning;

static void kill_all(void *arg)
{
    (void)arg;
    cl_child_kill_all();
}

static void add(pid_t pid)
{
    if (!atomic_flag_test_and_set(&hooked))
        cl_on_exit(kill_all, NULL);
    for (size_t i = 0; i < CL_CHILD_MAX; i++) {
        pid_t free_slot = 0;
        if (atomic_compare_exchange_strong(&registry[i], &free_slot, pid))
            return;
    }
    kill(pid, SIGKILL);
    cl_fatal("cl_child: more than %d children at once", CL_CHILD_MAX);
}

static void forget(pid_t pid)
{
    for (size_t i = 0; i < CL_CHILD_MAX; i++) {
        pid_t mine = pid;
        if (atomic_compare_exchange_strong(&registry[i], &mine, 0))
            return;
    }
}

pid_t cl_child_fork(void)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        for (size_t i = 0; i < CL_CHILD_MAX; i++)
            atomic_store_explicit(&registry[i], 0, memory_order_relaxed);
        atomic_flag_clear(&hooked);
        cl_exit_cleanup_forget();
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
            _exit(127); /* the parent is already gone */
    } else if (pid > 0) {
        add(pid);
    }
    return pid;
}

int cl_child_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                   char *const argv[])
{
    atomic_fetch_add(&spawning, 1);
    if (atomic_load(&killing)) { /* the process is ending: start nothing more */
        atomic_fetch_sub(&spawning, 1);
        return ECANCELED;
    }
    int rc = posix_spawn(pid, path, fa, NULL, argv, environ);
    if (rc == 0)
        add(*pid);
    atomic_fetch_sub(&spawning, 1);
    return rc;
}

void cl_child_adopt(pid_t pid)
{
    add(pid);
}

void cl_child_die_with_parent(pid_t expected_parent)
{
    CL_SYS(prctl(PR_SET_PDEATHSIG, SIGKILL));
    pid_t parent = getppid();
    if (parent == 1 || (expected_parent != 0 && parent != expected_parent))
        _exit(127);
}

/* waitpid, retrying EINTR. ECHILD while another thread kills every child on
 * the way out: wait here for that thread to end the process. */
static pid_t wait_for(pid_t pid, int *status, int options)
{
    pid_t got = (pid_t)CL_RETRY(waitpid(pid, status, options));
    if (got == -1 && errno == ECHILD && atomic_load(&killing))
        for (;;)
            pause();
    if (got == -1)
        cl_die(__FILE__, __LINE__, "waitpid", errno);
    return got;
}

int cl_child_wait(pid_t pid)
{
    int status;
    wait_for(pid, &status, 0);
    forget(pid);
    return status;
}

bool cl_child_reaped(pid_t pid, int *status)
{
    if (wait_for(pid, status, WNOHANG) == 0)
        return false;
    forget(pid);
    return true;
}

size_t cl_child_kill_all(void)
{
    atomic_store(&killing, true);
    while (atomic_load(&spawning) > 0) /* a spawn on another thread: let it register */
        sched_yield();
    size_t n = 0;
    for (size_t i = 0; i < CL_CHILD_MAX; i++) {
        pid_t pid = atomic_exchange(&registry[i], 0);
        if (pid <= 0)
            continue;
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
            ;
        n++;
    }
    return n;
}

size_t cl_child_count(void)
{
    size_t n = 0;
    for (size_t i = 0; i < CL_CHILD_MAX; i++)
        n += atomic_load_explicit(&registry[i], memory_order_relaxed) != 0;
    return n;
}
