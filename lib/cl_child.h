/* Child processes a run owns. Each is registered when it starts, and every one
 * still running when the process ends is killed and reaped, however it ends:
 * the watchdog, Ctrl-C, a refused resource, cl_die, a normal return, or a
 * chapter that forgot one. A forked child dies with its parent
 * (PR_SET_PDEATHSIG), so not even abort() leaves it behind.
 *
 * Progress: the run's worker records live in shared memory, so a forked child
 * may cl_tick() its worker and the parent's watchdog sees it. A spawned child
 * (a new program) cannot; its parent counts for it. */
#ifndef CL_CHILD_H
#define CL_CHILD_H

#include <spawn.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CL_CHILD_MAX 4096 /* children alive at once; more is a cl_fatal */

/* fork() a registered child. Returns as fork does (-1 with errno: the caller
 * refuses with cl_refuse). In the child: it dies when the thread that forked
 * it ends (fork from a thread that outlives the child, such as the main
 * thread), and it starts with no children and no exit functions of its own.
 * A child of a threaded process may only call async-signal-safe functions
 * and must start no thread. */
pid_t cl_child_fork(void);

/* posix_spawn(path, argv) with this environment and file actions fa (or NULL),
 * registered. Returns 0 and the pid, or the error number: ECANCELED once the
 * process has begun to kill its children on the way out. Safe on any thread: a
 * spawn in flight is registered before cl_child_kill_all looks. The new program
 * should call cl_child_die_with_parent() first. */
int cl_child_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                   char *const argv[]);

/* Register a child started another way (vfork + exec, clone): from then on it
 * is killed and reaped like the others. Call it in the parent as soon as the
 * pid is known. A vfork child gets no PR_SET_PDEATHSIG (it may only exec or
 * _exit), so the program it runs should end soon or call
 * cl_child_die_with_parent(). */
void cl_child_adopt(pid_t pid);

/* In a spawned program: die when the thread that spawned it ends, and now if it
 * already has (expected_parent is the parent's pid, from its command line or
 * environment; 0: any parent but init). */
void cl_child_die_with_parent(pid_t expected_parent);

/* Wait for a registered child, retrying EINTR, and forget it: its status. */
int cl_child_wait(pid_t pid);

/* The same without blocking: true with *status once it has ended. */
bool cl_child_reaped(pid_t pid, int *status);

/* SIGKILL and reap every registered child; how many there were. Safe on any
 * thread; runs at every exit through cl_on_exit. */
size_t cl_child_kill_all(void);

/* Children registered and not yet reaped. */
size_t cl_child_count(void);

#endif
