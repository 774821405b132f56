/* libconclab: everything a demo needs, in one include. */
#ifndef CONCLAB_H
#define CONCLAB_H

#include "cl_async.h"
#include "cl_barrier.h"
#include "cl_bridge.h"
#include "cl_chapter.h"
#include "cl_check.h"
#include "cl_child.h"
#include "cl_cli.h"
#include "cl_exit.h"
#include "cl_gil.h"
#include "cl_http.h"
#include "cl_json.h"
#include "cl_lockdep.h"
#include "cl_loop.h"
#include "cl_mutex.h"
#include "cl_pool.h"
#include "cl_procpool.h"
#include "cl_queue.h"
#include "cl_run.h"
#include "cl_sched.h"
#include "cl_server.h"
#include "cl_stencil.h"
#include "cl_sync.h"
#include "cl_task.h"
#include "cl_thread.h"
#include "cl_time.h"
#include "cl_trace.h"
#include "cl_watchdog.h"
#include "cl_work.h"

#endif
