/* builder.c: see builder.h. */
#include "ops/builder.h"

kl_var *kb_keep(kl_builder *b, kl_status s, kl_var *v)
{
    if (s != KL_OK) { if (b->status == KL_OK) b->status = s; return NULL; }
    if (b->n == KL_BUILDER_MAX) {
        kl_var_release(v);
        b->status = kl_error(KL_ERR_RUNTIME, "internal: builder full");
        return NULL;
    }
    b->vars[b->n++] = v;
    return v;
}


kl_var *kb_unary(kl_builder *b, kl_unary_op op, kl_var *x)
{
    kl_var *v = NULL;
    if (b->status != KL_OK || !x) return NULL;
    kl_status s = kl_unary(op, x, &v);
    return kb_keep(b, s, v);
}

kl_var *kb_binary(kl_builder *b, kl_binary_op op, kl_var *x, kl_var *y)
{
    kl_var *v = NULL;
    if (b->status != KL_OK || !x || !y) return NULL;
    kl_status s = kl_binary(op, x, y, &v);
    return kb_keep(b, s, v);
}

kl_var *kb_cast(kl_builder *b, kl_var *x, kl_dtype dtype)
{
    kl_var *v = NULL;
    if (b->status != KL_OK || !x) return NULL;
    if (x->dtype == dtype) return x;
    kl_status s = kl_cast(x, dtype, &v);
    return kb_keep(b, s, v);
}

kl_var *kb_where(kl_builder *b, kl_var *c, kl_var *x, kl_var *y)
{
    kl_var *v = NULL;
    if (b->status != KL_OK || !c || !x || !y) return NULL;
    kl_status s = kl_where(c, x, y, &v);
    return kb_keep(b, s, v);
}

kl_var *kb_full(kl_builder *b, kl_context *ctx, kl_dtype dtype, int ndim, const int64_t *shape, double value)
{
    kl_var *v = NULL;
    if (b->status != KL_OK) return NULL;
    kl_status s = kl_full(ctx, dtype, ndim, shape, value, &v);
    return kb_keep(b, s, v);
}

kl_var *kb_scalar(kl_builder *b, kl_var *like, double value)
{
    if (b->status != KL_OK || !like) return NULL;
    return kb_full(b, like->ctx, like->dtype, 0, NULL, value);
}

kl_var *kb_reduce(kl_builder *b, kl_reduce_op op, kl_var *x, int ndims, const int *dims, int keepdims)
{
    kl_var *v = NULL;
    if (b->status != KL_OK || !x) return NULL;
    kl_status s = kl_reduce(x, op, ndims, dims, keepdims, &v);
    return kb_keep(b, s, v);
}

kl_var *kb_broadcast(kl_builder *b, kl_var *x, kl_var *like, int ndims, const int *dims)
{
    kl_var *v = NULL;
    if (b->status != KL_OK || !x || !like) return NULL;
    kl_status s = kl_broadcast_to(x, like->ndim, like->shape, ndims, dims, &v);
    return kb_keep(b, s, v);
}

kl_var *kb_reshape(kl_builder *b, kl_var *x, int ndim, const int64_t *shape)
{
    kl_var *v = NULL;
    if (b->status != KL_OK || !x) return NULL;
    kl_status s = kl_reshape(x, ndim, shape, &v);
    return kb_keep(b, s, v);
}

kl_status kb_finish(kl_builder *b, kl_var *result, kl_var **out)
{
    *out = NULL;
    if (b->status == KL_OK && result) { kl_var_retain(result); *out = result; }
    for (int i = 0; i < b->n; i++) kl_var_release(b->vars[i]);
    b->n = 0;
    return b->status;
}
