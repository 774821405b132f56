/* A demo's exit statuses: the runner makes them, cl_main returns them. */
#ifndef CL_EXIT_H
#define CL_EXIT_H

enum cl_exit {
    CL_EXIT_OK = 0,
    CL_EXIT_WRONG = 1,   /* a correct variant gave a wrong result */
    CL_EXIT_USAGE = 2,   /* bad flags, or a limit that can be checked beforehand */
    CL_EXIT_HANG = 3,    /* the watchdog saw no progress, or a role starving */
    CL_EXIT_REFUSED = 4, /* the system refused a thread, a process, a descriptor */
    CL_EXIT_TSAN = 66,   /* ThreadSanitizer's status after a report (its exitcode) */
    CL_EXIT_INTERRUPTED = 130,
};

#endif
