#include "cl_thread.h"

static _Thread_local int self = -1;

void cl_thread_set_id(int id)
{
    self = id >= 0 && id < CL_THREAD_MAX ? id : -1;
}

int cl_thread_id(void)
{
    return self;
}
