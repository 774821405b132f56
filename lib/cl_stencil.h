/* The heat-diffusion (Jacobi) stencil that the barrier and cluster chapters
 * split between threads or ranks: n x n interior cells inside a fixed border,
 * the top edge hot and the others cold, stored row-major with the border, so a
 * row is n + 2 cells. Each step sets every cell to the mean of its four
 * neighbours in the previous step, always by the same expression in the same
 * order: any split of the rows gives the sequential grid bit for bit. */
#ifndef CL_STENCIL_H
#define CL_STENCIL_H

#include <stddef.h>
#include <stdint.h>

#define CL_STENCIL_HOT 100.0 /* the top edge's temperature; the other edges are 0 */

/* Cell (i, j) of a grid of n interior rows; i and j count the border as 0. */
#define CL_STENCIL_AT(g, n, i, j) ((g)[(size_t)(i) * ((size_t)(n) + 2) + (size_t)(j)])

/* A new grid (free() it): the border, and inside a pseudo-random temperature
 * per cell from seed, so every cell changes in every step and a value read
 * from the wrong step shows at once. Aligned to a cache line; dies on ENOMEM. */
double *cl_stencil_new(int n, uint64_t seed);

/* One step for interior rows lo..hi-1 (1 <= lo <= hi <= n + 1): reads src,
 * writes dst. */
void cl_stencil_relax(const double *src, double *dst, int n, int lo, int hi);

/* The same, returning the largest change of any of those cells (a convergence
 * test). */
double cl_stencil_relax_change(const double *src, double *dst, int n, int lo, int hi);

#endif
