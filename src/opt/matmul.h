/* matmul.h: recognising reduce(sum, mul(broadcast(a), broadcast(b))), the
 * meta-op form of a (batched) matrix product, and running it with BLAS gemm. */
#ifndef KL_MATMUL_H
#define KL_MATMUL_H

#include "core/graph.h"

typedef struct {
    kl_var *a, *b;                 /* the stored operands (A is m x k, B is k x n) */
    int trans_a, trans_b, m, n, k, lda, ldb, ldc;
    int n_batch;                   /* batch dims, looped around gemm */
    int64_t batch_size[KL_MAX_DIMS], batch_a[KL_MAX_DIMS], batch_b[KL_MAX_DIMS], batch_c[KL_MAX_DIMS];
} kl_matmul_plan;

/* Whether reduce var v is a matrix product whose operands are stored vars.
 * With assume_roots, operands not yet marked for storing count as stored,
 * and *roots_out receives them (for the fusion pass to mark). */
int kl_matmul_match(kl_var *v, int assume_roots, kl_matmul_plan *plan);
/* Whether a gemm can run for dtype: float32 with oneDNN's sgemm (on kiln's
 * OpenMP threads) or OpenBLAS, float64 with OpenBLAS. KILN_BLAS=0 turns the
 * replacement off; KILN_DNNL=0 leaves float32 to OpenBLAS. */
int kl_gemm_available(struct kl_context *ctx, kl_dtype dtype);
kl_status kl_matmul_run(struct kl_context *ctx, kl_var *v, const kl_matmul_plan *plan);

#endif
