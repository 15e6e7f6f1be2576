/* dnnl.h: oneDNN's convolutions (forward, backward data, backward weights)
 * and sgemm,
 * loaded with dlopen when first wanted, so kiln builds and runs without it
 * (the fused loop kernels then do the work). Speaks oneDNN 2.x's C API. */
#ifndef KL_DNNL_H
#define KL_DNNL_H

#include "kiln.h"
#include "backend/backend.h"
#include "backend/cpu/host_alloc.h"
#include <stdint.h>

typedef struct kl_dnnl_conv kl_dnnl_conv; /* a created primitive and its reorders */

typedef struct kl_dnnl {
    int tried, available, disabled;
    void *handle;
    void *engine, *stream;
    struct kl_dnnl_api *api;
    kl_dnnl_conv *convs; /* most recently used first */
    int n_convs;
    kl_host_allocator *alloc; /* the context's: kept weights count as memory in use */
} kl_dnnl;

/* Reads KILN_DNNL when a context is made: 0 disables oneDNN. */
void kl_dnnl_init(kl_dnnl *d, kl_host_allocator *alloc);
/* 1 when oneDNN 2.x can be called (loads it on first use). */
int kl_dnnl_available(kl_dnnl *d);
void kl_dnnl_free(kl_dnnl *d);
/* Drops the reordered weights primitives keep (kl_context_gc). */
void kl_dnnl_trim(kl_dnnl *d);
/* The primitive for shape, created on first use and kept; NULL when oneDNN
 * cannot run it (the caller falls back to a kernel). debug: print the choice. */
kl_dnnl_conv *kl_dnnl_conv_get(kl_dnnl *d, const kl_conv_shape *shape, int debug);
/* The form of a forward convolution that reads and writes row-major arrays
 * (nothing kept in its layouts), when one applies; NULL otherwise (the
 * caller uses kl_dnnl_conv_get's). */
kl_dnnl_conv *kl_dnnl_conv_get_row_major(kl_dnnl *d, const kl_conv_shape *shape, int debug);
/* Bytes of the temporaries (oneDNN's blocked layouts) a run needs. */
size_t kl_dnnl_conv_scratch_bytes(const kl_dnnl_conv *c);
/* The layout forward convolution c reads src in (of_result 0) or writes
 * dst in (1), as oneDNN's format tag: channels last or channel blocks of
 * 16, 8 or 4, of the array's own size; 0 for row-major or anything else. */
uint32_t kl_dnnl_conv_layout(const kl_dnnl_conv *c, int of_result);

/* c's result, left in its own layout (kl_dnnl_conv_layout's of_result),
 * put back in row-major order in place. */
kl_status kl_dnnl_conv_to_row_major(kl_dnnl *d, kl_dnnl_conv *c, void *result);

/* Which arrays of a forward run are already (a, residual) or are to be left
 * (out) in the primitive's own layouts: the ids kl_dnnl_conv_layout gave,
 * 0 for row-major. */
typedef struct { uint32_t a, residual, out; } kl_dnnl_kept;

/* forward: a = src, b = weights; backward data: a = diff dst, b = weights;
 * backward weights: a = src, b = diff dst. out is dst / diff src / diff
 * weights. scratch: kl_dnnl_conv_scratch_bytes, 64-byte aligned. weights_id
 * (0: none) names the weights' contents: their reordered copy is kept and
 * reused while the same contents come again (inference reorders once).
 * epilogue: the shape's epilogue operands, by step (unused when it has none).
 * kept: the arrays in the primitive's own layouts (NULL: none). */
kl_status kl_dnnl_conv_run(kl_dnnl *d, kl_dnnl_conv *c, const float *a, const float *b, float *out, void *scratch,
                           uint64_t weights_id, const void *const *epilogue, const kl_dnnl_kept *kept);

/* Row-major C = op(A) op(B), float32: oneDNN's gemm runs on kiln's OpenMP
 * threads, where OpenBLAS's own pthreads would spin against them. */
kl_status kl_dnnl_sgemm(kl_dnnl *d, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const float *a,
                        int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc);

#endif
