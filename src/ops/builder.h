/* builder.h: building small graphs of ops in C (backward rules, composites)
 * without tracking every intermediate's reference by hand: each var a builder
 * makes is released when the builder finishes, unless it is the result. */
#ifndef KL_BUILDER_H
#define KL_BUILDER_H

#include "core/graph.h"

#define KL_BUILDER_MAX 128

typedef struct {
    kl_var *vars[KL_BUILDER_MAX];
    int n;
    kl_status status;
} kl_builder;

/* Every function returns NULL once any call has failed (inputs may be NULL). */
kl_var *kb_keep(kl_builder *b, kl_status s, kl_var *v);
kl_var *kb_unary(kl_builder *b, kl_unary_op op, kl_var *x);
kl_var *kb_binary(kl_builder *b, kl_binary_op op, kl_var *x, kl_var *y);
kl_var *kb_cast(kl_builder *b, kl_var *x, kl_dtype dtype);
kl_var *kb_where(kl_builder *b, kl_var *c, kl_var *x, kl_var *y);
/* A rank-0 constant of like's dtype (or dtype when like is NULL). */
kl_var *kb_scalar(kl_builder *b, kl_var *like, double value);
kl_var *kb_full(kl_builder *b, kl_context *ctx, kl_dtype dtype, int ndim, const int64_t *shape, double value);
kl_var *kb_reduce(kl_builder *b, kl_reduce_op op, kl_var *x, int ndims, const int *dims, int keepdims);
kl_var *kb_broadcast(kl_builder *b, kl_var *x, kl_var *like, int ndims, const int *dims);
kl_var *kb_reshape(kl_builder *b, kl_var *x, int ndim, const int64_t *shape);
/* Hands result to *out with its own reference and releases everything else. */
kl_status kb_finish(kl_builder *b, kl_var *result, kl_var **out);

#endif
