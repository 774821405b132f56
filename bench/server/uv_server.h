/* The libuv design of the HTTP server (uv_server.c): built only where libuv is
 * and never with a sanitizer, so it is a weak symbol, NULL where it is absent. */
#ifndef UV_SERVER_H
#define UV_SERVER_H

#include "cl_server.h"

/* Run the server on libuv as cl_server_run runs lib's designs. */
__attribute__((weak)) int uv_server_run(const struct cl_server_opts *o);

#endif
