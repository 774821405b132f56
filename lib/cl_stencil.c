#include "cl_stencil.h"

#include <math.h>

#include "cl_check.h"
#include "cl_work.h"

#define AT(g, i, j) CL_STENCIL_AT(g, n, i, j)

double *cl_stencil_new(int n, uint64_t seed)
{
    size_t stride = (size_t)n + 2;
    double *g = cl_xaligned_calloc(64, stride * stride, sizeof *g);
    for (size_t j = 0; j < stride; j++)
        g[j] = CL_STENCIL_HOT;
    for (int i = 1; i <= n; i++)
        for (int j = 1; j <= n; j++)
            AT(g, i, j) = CL_STENCIL_HOT * (double)(cl_splitmix64(&seed) >> 11) * 0x1p-53;
    return g;
}

/* [snippet relax] */
/* One step for rows lo..hi-1: each new cell is the mean of its four old
 * neighbours. Reads src, writes dst; the barrier variants differ only in what
 * keeps src from changing while any thread still reads it. */
void cl_stencil_relax(const double *src, double *dst, int n, int lo, int hi)
{
    for (int i = lo; i < hi; i++)
        for (int j = 1; j <= n; j++)
            AT(dst, i, j) = 0.25 * (AT(src, i - 1, j) + AT(src, i + 1, j) + AT(src, i, j - 1) +
                                    AT(src, i, j + 1));
}
/* [end relax] */

double cl_stencil_relax_change(const double *src, double *dst, int n, int lo, int hi)
{
    double worst = 0;
    for (int i = lo; i < hi; i++)
        for (int j = 1; j <= n; j++) {
            double v = 0.25 * (AT(src, i - 1, j) + AT(src, i + 1, j) + AT(src, i, j - 1) +
                               AT(src, i, j + 1));
            worst = fmax(worst, fabs(v - AT(src, i, j)));
            AT(dst, i, j) = v;
        }
    return worst;
}
