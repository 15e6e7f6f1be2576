/* broadcast.c: broadcast_to, a pure index mapping on the load (new dims and
 * size-1 dims read coordinate 0); its backward sums the gradient back. */
#include "ops/ops.h"
#include "ops/builder.h"

kl_status kl_broadcast_to(kl_var *x, int ndim, const int64_t *shape, int ndims, const int *dims, kl_var **out)
{
    KL_ARG(out, "kl_broadcast_to", "out");
    *out = NULL;
    KL_VAR_ARG(x, "broadcast_to", "input");
    if (ndims > 0) KL_ARG(dims, "broadcast_to", "dims");
    KL_TRY(kl_check_shape("broadcast_to", ndim, shape));
    uint8_t mask = 0;
    if (ndims == 0) {
        if (x->ndim > ndim)
            return kl_error(KL_ERR_VALUE, "broadcast_to: cannot broadcast rank %d to rank %d", x->ndim, ndim);
        for (int d = 0; d < ndim - x->ndim; d++) mask |= (uint8_t)(1u << d);
    } else {
        if (ndims < 0 || x->ndim + ndims != ndim)
            return kl_error(KL_ERR_VALUE, "broadcast_to: input rank %d plus %d new dims is not the output rank %d",
                            x->ndim, ndims, ndim);
        for (int i = 0; i < ndims; i++) {
            int d = dims[i] < 0 ? dims[i] + ndim : dims[i];
            if (d < 0 || d >= ndim || (mask >> d & 1))
                return kl_error(KL_ERR_VALUE, "broadcast_to: new dim %d is out of range or repeated for rank %d", dims[i], ndim);
            mask |= (uint8_t)(1u << d);
        }
    }
    for (int d = 0, k = 0; d < ndim; d++) {
        if (mask >> d & 1) continue;
        if (x->shape[k] != shape[d] && x->shape[k] != 1)
            return kl_error(KL_ERR_VALUE, "broadcast_to: input dim %d has size %lld, which cannot become %lld (output dim %d)",
                            k, (long long)x->shape[k], (long long)shape[d], d);
        k++;
    }
    kl_op o = {.kind = KL_OP_BROADCAST, .n_inputs = 1, .inputs = {x}, .p.broadcast.mask = mask};
    return kl_var_new(x->ctx, x->dtype, ndim, shape, &o, out);
}

int32_t kl_broadcast_lower(kl_kdesc *k, kl_var *v, const kl_coords *c)
{
    kl_var *x = v->op.inputs[0];
    if (v->op.p.broadcast.mask == 0) {
        kl_coords same = kl_lower_broadcast_coords(k, c, v, x);
        return kl_lower(k, x, &same);
    }
    kl_coords xc = {.n = x->ndim, .identity = 0};
    for (int d = 0, j = 0; d < v->ndim; d++) {
        if (v->op.p.broadcast.mask >> d & 1) continue;
        xc.c[j] = x->shape[j] == 1 ? kl_kd_const(k, 0) : c->c[d];
        j++;
    }
    return kl_lower(k, x, &xc);
}

kl_status kl_broadcast_backward(kl_var *v, int k, kl_var *dv, kl_var **out)
{
    (void)k;
    kl_var *x = v->op.inputs[0];
    int dims[KL_MAX_DIMS], n = 0;
    for (int d = 0, j = 0; d < v->ndim; d++) {
        if (v->op.p.broadcast.mask >> d & 1) { dims[n++] = d; continue; }
        if (x->shape[j] == 1 && v->shape[d] != 1) dims[n++] = d;
        j++;
    }
    kl_builder b = {0};
    kl_var *g = dv;
    if (n) g = kb_reduce(&b, KL_REDUCE_SUM, dv, n, dims, 1);
    g = kb_reshape(&b, g, x->ndim, x->shape);
    return kb_finish(&b, g, out);
}
