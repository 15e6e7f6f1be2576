/* reshape.c: same elements, new shape. Once the input is computed the
 * executor aliases its buffer; inlined, it maps coordinates through the flat index. */
#include "ops/ops.h"
#include "ops/builder.h"
#include <string.h>

kl_status kl_reshape(kl_var *x, int ndim, const int64_t *shape, kl_var **out)
{
    KL_ARG(out, "kl_reshape", "out");
    *out = NULL;
    KL_VAR_ARG(x, "reshape", "input");
    if (ndim < 0 || ndim > KL_MAX_DIMS) return kl_error(KL_ERR_VALUE, "reshape: rank %d is not supported", ndim);
    if (ndim > 0) KL_ARG(shape, "reshape", "shape");
    int64_t s[KL_MAX_DIMS], known = 1;
    int infer = -1;
    for (int d = 0; d < ndim; d++) {
        s[d] = shape[d];
        if (s[d] == -1) {
            if (infer >= 0) return kl_error(KL_ERR_VALUE, "reshape: only one dimension can be -1");
            infer = d;
        } else if (s[d] < 0) {
            return kl_error(KL_ERR_VALUE, "reshape: negative dimension %lld", (long long)s[d]);
        } else {
            known *= s[d];
        }
    }
    if (infer >= 0 && known == 0 && x->numel == 0) {
        s[infer] = 0; /* Jittor: nothing to share out, the inferred dim is empty too */
    } else if (infer >= 0) {
        if (known == 0 || x->numel % known != 0)
            return kl_error(KL_ERR_VALUE, "reshape: cannot infer -1 for %lld elements", (long long)x->numel);
        s[infer] = x->numel / known;
    }
    KL_TRY(kl_check_shape("reshape", ndim, s));
    if (kl_shape_numel(ndim, s) != x->numel)
        return kl_error(KL_ERR_VALUE, "reshape: cannot reshape %lld elements into a shape of %lld",
                        (long long)x->numel, (long long)kl_shape_numel(ndim, s));
    kl_op o = {.kind = KL_OP_RESHAPE, .n_inputs = 1, .inputs = {x}};
    return kl_var_new(x->ctx, x->dtype, ndim, s, &o, out);
}

kl_status kl_stop_grad(kl_var *x, kl_var **out)
{
    KL_ARG(out, "kl_stop_grad", "out");
    *out = NULL;
    KL_VAR_ARG(x, "stop_grad", "input");
    kl_op o = {.kind = KL_OP_STOP_GRAD, .n_inputs = 1, .inputs = {x}};
    return kl_var_new(x->ctx, x->dtype, x->ndim, x->shape, &o, out);
}

int32_t kl_reshape_lower(kl_kdesc *k, kl_var *v, const kl_coords *c)
{
    kl_var *x = v->op.inputs[0];
    if (c->identity && v->ndim == c->n && (x->buf || x->materialize)) {
        /* a load at the same linear index */
        kl_coords xc = kl_lower_loop_coords(k, x->ndim, 1);
        return kl_lower(k, x, &xc);
    }
    int32_t rest = kl_lower_offset(k, v, c);
    kl_coords xc = {.n = x->ndim, .identity = 0};
    for (int d = x->ndim - 1; d >= 0 && rest >= 0; d--) {
        int32_t s = kl_kd_shape(k, x, d);
        /* value 1: the divisor is an extent of elements that exist, never 0 here */
        kl_instr mod = {KL_I_INDEX, KL_INT64, 0, 0, KL_EXB_MOD, rest, s, -1, -1, -1, 1};
        kl_instr div = {KL_I_INDEX, KL_INT64, 0, 0, KL_EXB_DIV, rest, s, -1, -1, -1, 1};
        xc.c[d] = d ? kl_kd_add(k, &mod) : rest;
        if (d) rest = kl_kd_add(k, &div);
    }
    return kl_lower(k, x, &xc);
}

kl_status kl_reshape_backward(kl_var *v, int k, kl_var *dv, kl_var **out)
{
    (void)k;
    kl_var *x = v->op.inputs[0];
    return kl_reshape(dv, x->ndim, x->shape, out);
}

