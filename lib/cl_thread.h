/* Which worker this thread is: the runner names each worker thread, and the
 * modules that report on threads (cl_mutex's wait-for records, cl_lockdep)
 * read the name from here. */
#ifndef CL_THREAD_H
#define CL_THREAD_H

#define CL_THREAD_MAX 4096 /* ids the records can name: 0 .. CL_THREAD_MAX-1 */

/* Name the calling thread: 0 for T1, 1 for T2, ...; -1 (or an id out of range)
 * leaves it unnamed. */
void cl_thread_set_id(int id);

/* The calling thread's id, or -1 when unnamed. */
int cl_thread_id(void);

#endif
