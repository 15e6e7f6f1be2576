/* matmul.h: recognising reduce(sum, mul(broadcast(a), broadcast(b))), the
 * meta-op form of a (batched) matrix product, as a gemm pattern a backend
 * may run (src/backend/backend.h). */
#ifndef KL_MATMUL_H
#define KL_MATMUL_H

#include "backend/backend.h"
#include "core/graph.h"

/* Whether reduce var v is a matrix product whose operands are stored vars
 * (with assume_roots, operands not yet marked for storing count, for the
 * fusion pass to mark); fills p (kind, dtype, operands, gemm shape). Pure:
 * reads the graph only. */
int kl_matmul_match(kl_var *v, int assume_roots, kl_pattern *p);

#endif
