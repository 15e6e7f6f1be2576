/* ops.h: what each op family file under src/ops/ provides to the rest of the
 * core: how its ops are described inside a kernel (lower) and its backward
 * rule, built from meta-ops. */
#ifndef KL_OPS_H
#define KL_OPS_H

#include "ops/lower.h"
#include "jit/jit.h"

/* lower: the value of pending var v at coordinates c, as an instruction of
 * the kernel description k (-1 after a failure). */
int32_t kl_leaf_lower(kl_kdesc *k, kl_var *v, const kl_coords *c);
int32_t kl_unary_lower(kl_kdesc *k, kl_var *v, const kl_coords *c);
int32_t kl_binary_lower(kl_kdesc *k, kl_var *v, const kl_coords *c);
int32_t kl_where_lower(kl_kdesc *k, kl_var *v, const kl_coords *c);
int32_t kl_broadcast_lower(kl_kdesc *k, kl_var *v, const kl_coords *c);
int32_t kl_reindex_lower(kl_kdesc *k, kl_var *v, const kl_coords *c);
int32_t kl_reshape_lower(kl_kdesc *k, kl_var *v, const kl_coords *c);
int32_t kl_check_lower(kl_kdesc *k, kl_var *v, const kl_coords *c);
/* A stored var read at c; a var that passes its input through. */
int32_t kl_load_lower(kl_kdesc *k, kl_var *v, const kl_coords *c);
int32_t kl_pass_lower(kl_kdesc *k, kl_var *v, const kl_coords *c);

/* Kernels whose root is a reduction or a scatter: what they fold, and where. */
kl_status kl_reduce_lower_kernel(kl_kdesc *k, kl_var *v);
kl_status kl_reindex_reduce_lower_kernel(kl_kdesc *k, kl_var *v);

/* backward: the gradient flowing to input k of v, given dv (the gradient of v).
 * *out may be set to NULL when no gradient flows. */
kl_status kl_unary_backward(kl_var *v, int k, kl_var *dv, kl_var **out);
kl_status kl_binary_backward(kl_var *v, int k, kl_var *dv, kl_var **out);
kl_status kl_where_backward(kl_var *v, int k, kl_var *dv, kl_var **out);
kl_status kl_broadcast_backward(kl_var *v, int k, kl_var *dv, kl_var **out);
kl_status kl_reindex_backward(kl_var *v, int k, kl_var *dv, kl_var **out);
kl_status kl_reindex_reduce_backward(kl_var *v, int k, kl_var *dv, kl_var **out);
kl_status kl_reduce_backward(kl_var *v, int k, kl_var *dv, kl_var **out);
kl_status kl_reshape_backward(kl_var *v, int k, kl_var *dv, kl_var **out);
kl_status kl_custom_grad_backward(kl_var *v, int k, kl_var *dv, kl_var **out);

/* Parses and checks reindex-style index expressions into op->p.reindex and
 * the extras into op->inputs[1..]. n_index: loop dims the i<k> range over. */
kl_status kl_reindex_parse(const char *opname, kl_op *op, int n_indexes, const char *const *indexes,
                           int n_conditions, const char *const *conditions,
                           int n_extras, kl_var *const *extras, int n_index, int xdim, int ydim);
/* A reindex or reindex_reduce sharing src's expressions (cloned). */
kl_status kl_reindex_like(const kl_op *src, kl_op_kind kind, kl_reduce_op rop, kl_var *input,
                          int ndim, const int64_t *shape, double overflow_value, kl_var **out);

/* After a kernel ran: KL_OK, or the index error one of its check_index ops
 * recorded (clearing the record). */
kl_status kl_check_index_result(struct kl_context *ctx);

/* User kernels: the source and language of v's kernel, running it (and its
 * siblings), and its gradient kernels. */
const char *kl_code_source(const kl_var *v, kl_code_lang *lang);
kl_status kl_code_run(struct kl_context *ctx, kl_var *v, kl_kernel_fn fn);
kl_status kl_code_backward(kl_var *v, int k, kl_var *dv, kl_var **out);

/* code_cuda.c: the runtime CUDA host code is given (kiln.h), for one run of
 * op v's kernel; kl_code_runtime_status is its first failure, if any. */
typedef struct kl_code_runtime {
    kl_code_cuda_runtime rt;
    struct kl_context *ctx;
    struct kl_backend *device;
    kl_var *v;
    const char *source;   /* the device code compiled last, and its module */
    kl_kernel_fn module;
    char message[2048];
} kl_code_runtime;
void kl_code_runtime_init(kl_code_runtime *r, struct kl_context *ctx, kl_var *v);
kl_status kl_code_runtime_status(const kl_code_runtime *r);

/* MPI collectives: running one (the executor's step) and its gradient. */
kl_status kl_collective_run(struct kl_context *ctx, kl_var *v);
kl_status kl_collective_backward(kl_var *v, int k, kl_var *dv, kl_var **out);

/* Helpers shared by the families. */
/* Bitwise reductions take integer or bool inputs only. */
kl_status kl_reduce_check_dtype(const char *opname, kl_reduce_op op, kl_dtype t);
kl_status kl_scalar_like(kl_var *like, kl_dtype dtype, double value, kl_var **out);
/* Sums g down to shape of `to` (undoing NumPy broadcasting). */
kl_status kl_unbroadcast(kl_var *g, kl_var *to, kl_var **out);
/* a op b with the references of a and b dropped (for building chains). */
kl_status kl_binary_take(kl_binary_op op, kl_var *a, kl_var *b, kl_var **out);

#endif
