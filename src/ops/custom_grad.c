/* custom_grad.c: a value whose gradient a caller supplies (Jittor's
 * jt.Function). Forward it is its first input, passed through; its other
 * inputs are only there so that kl_grad reaches them, and what flows to
 * each is what the caller's function makes of the output's gradient. */
#include "ops/ops.h"
#include "ops/builder.h"
#include <string.h>

kl_status kl_custom_grad(kl_var *value, int n, kl_var *const *inputs, kl_grad_fn fn, void *user,
                         void (*release)(void *user), kl_var **out)
{
    KL_ARG(out, "kl_custom_grad", "out");
    *out = NULL;
    KL_VAR_ARG(value, "custom_grad", "value");
    KL_ARG(fn, "custom_grad", "fn");
    if (n < 0 || n > KL_MAX_INPUTS - 1)
        return kl_error(KL_ERR_VALUE, "custom_grad: %d inputs; a custom gradient takes at most %d", n,
                        KL_MAX_INPUTS - 1);
    if (n > 0) KL_ARG(inputs, "custom_grad", "inputs");
    kl_op o = {.kind = KL_OP_CUSTOM_GRAD, .n_inputs = n + 1, .inputs = {value}};
    for (int i = 0; i < n; i++) {
        KL_VAR_ARG(inputs[i], "custom_grad", "an input");
        if (inputs[i]->ctx != value->ctx)
            return kl_error(KL_ERR_VALUE, "custom_grad: input %d belongs to another context", i);
        o.inputs[i + 1] = inputs[i];
    }
    o.p.custom_grad.fn = fn;
    o.p.custom_grad.user = user;
    kl_status s = kl_var_new(value->ctx, value->dtype, value->ndim, value->shape, &o, out);
    /* from here the op owns user: released with it (or now, if it never came to be) */
    if (s == KL_OK) (*out)->op.p.custom_grad.release = release;
    else if (release) release(user);
    return s;
}

kl_status kl_custom_grad_backward(kl_var *v, int k, kl_var *dv, kl_var **out)
{
    *out = NULL;
    if (k == 0) return KL_OK; /* the value's own graph: replaced by the caller's rule */
    kl_var *x = v->op.inputs[k];
    kl_var *g = NULL;
    KL_TRY(v->op.p.custom_grad.fn(v->op.p.custom_grad.user, dv, k - 1, &g));
    if (!g) return KL_OK;
    kl_status s = kl_var_check(g, "custom_grad", "the gradient a custom rule returned");
    if (s != KL_OK) return s;
    int same_shape = g->ndim == x->ndim && memcmp(g->shape, x->shape, (size_t)x->ndim * sizeof *x->shape) == 0;
    if (!same_shape) {
        char want[128], got[128];
        kl_shape_format(x->ndim, x->shape, want, sizeof want);
        kl_shape_format(g->ndim, g->shape, got, sizeof got);
        s = kl_error(KL_ERR_VALUE, "custom_grad: the gradient returned for input %d has shape %s, the input %s",
                     k - 1, got, want);
    } else if (g->dtype != x->dtype) {
        s = kl_cast(g, x->dtype, out);
    } else {
        *out = g;
        return KL_OK;
    }
    kl_var_release(g);
    return s;
}
