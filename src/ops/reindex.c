/* reindex.c: out[i] = x[f(i)] with f a list of index expressions; indexes
 * outside x, or a true overflow condition, give the overflow value. The
 * backward is reindex_reduce(add) with the same expressions. */
#include "ops/ops.h"
#include "ops/builder.h"
#include "core/dtype.h"
#include <stdio.h>

kl_status kl_reindex_parse(const char *opname, kl_op *op, int n_indexes, const char *const *indexes,
                           int n_conditions, const char *const *conditions,
                           int n_extras, kl_var *const *extras, int n_index, int xdim, int ydim)
{
    if (n_extras < 0 || n_extras > KL_MAX_INPUTS - 1)
        return kl_error(KL_ERR_VALUE, "%s: at most %d extra inputs", opname, KL_MAX_INPUTS - 1);
    if (n_conditions < 0 || n_conditions > KL_MAX_DIMS)
        return kl_error(KL_ERR_VALUE, "%s: at most %d overflow conditions", opname, KL_MAX_DIMS);
    if (n_indexes > 0) KL_ARG(indexes, opname, "indexes");
    if (n_conditions > 0) KL_ARG(conditions, opname, "conditions");
    if (n_extras > 0) KL_ARG(extras, opname, "extras");
    for (int i = 0; i < n_indexes; i++)
        if (!indexes[i]) return kl_error(KL_ERR_VALUE, "%s: index expression %d is NULL", opname, i);
    for (int i = 0; i < n_conditions; i++)
        if (!conditions[i]) return kl_error(KL_ERR_VALUE, "%s: condition %d is NULL", opname, i);
    int extra_ndims[KL_MAX_INPUTS];
    for (int i = 0; i < n_extras; i++) {
        KL_VAR_ARG(extras[i], opname, "an extra input");
        if (extras[i]->ctx != op->inputs[0]->ctx)
            return kl_error(KL_ERR_VALUE, "%s: extra input %d belongs to another context", opname, i);
        if (kl_dtype_is_float(extras[i]->dtype))
            return kl_error(KL_ERR_TYPE, "%s: extra input @e%d must be an integer var, got %s", opname, i,
                            kl_dtype_name(extras[i]->dtype));
        extra_ndims[i] = extras[i]->ndim;
        op->inputs[1 + i] = extras[i];
    }
    op->n_inputs = 1 + n_extras;
    kl_status s = KL_OK;
    for (int i = 0; i < n_indexes && s == KL_OK; i++) {
        s = kl_expr_parse(indexes[i], &op->p.reindex.indexes[i]);
        if (s == KL_OK) op->p.reindex.n_indexes++;
        if (s == KL_OK) s = kl_expr_validate(op->p.reindex.indexes[i], indexes[i], n_index, xdim, ydim, n_extras, extra_ndims);
    }
    for (int i = 0; i < n_conditions && s == KL_OK; i++) {
        s = kl_expr_parse(conditions[i], &op->p.reindex.conditions[i]);
        if (s == KL_OK) op->p.reindex.n_conditions++;
        if (s == KL_OK) s = kl_expr_validate(op->p.reindex.conditions[i], conditions[i], n_index, xdim, ydim, n_extras, extra_ndims);
    }
    if (s != KL_OK) kl_op_free_params(op);
    return s;
}

kl_status kl_reindex(kl_var *x, int ndim, const int64_t *shape, const char *const *indexes,
                     double overflow_value, int n_conditions, const char *const *conditions,
                     int n_extras, kl_var *const *extras, kl_var **out)
{
    KL_ARG(out, "kl_reindex", "out");
    *out = NULL;
    KL_VAR_ARG(x, "reindex", "input");
    KL_TRY(kl_check_shape("reindex", ndim, shape));
    int64_t exact;
    if (!kl_dtype_is_float(x->dtype)) KL_TRY(kl_dtype_int_from_double(x->dtype, overflow_value, "reindex overflow value", &exact));
    kl_op o = {.kind = KL_OP_REINDEX, .inputs = {x}};
    o.p.reindex.overflow_value = overflow_value;
    KL_TRY(kl_reindex_parse("reindex", &o, x->ndim, indexes, n_conditions, conditions,
                            n_extras, extras, ndim, x->ndim, ndim));
    kl_status s = kl_var_new(x->ctx, x->dtype, ndim, shape, &o, out);
    if (s != KL_OK) kl_op_free_params(&o);
    return s;
}

kl_status kl_reindex_like(const kl_op *src, kl_op_kind kind, kl_reduce_op rop, kl_var *input,
                          int ndim, const int64_t *shape, double overflow_value, kl_var **out)
{
    kl_op o = *src;
    o.kind = kind;
    o.inputs[0] = input;
    o.p.reindex.op = rop;
    o.p.reindex.overflow_value = overflow_value;
    for (int i = 0; i < o.p.reindex.n_indexes; i++) o.p.reindex.indexes[i] = kl_expr_clone(src->p.reindex.indexes[i]);
    for (int i = 0; i < o.p.reindex.n_conditions; i++) o.p.reindex.conditions[i] = kl_expr_clone(src->p.reindex.conditions[i]);
    return kl_var_new(input->ctx, input->dtype, ndim, shape, &o, out);
}

int32_t kl_reindex_lower(kl_kdesc *k, kl_var *v, const kl_coords *c)
{
    kl_var *x = v->op.inputs[0];
    kl_coords xi;
    int32_t outside = kl_lower_targets(k, v, c, x, v, &xi);
    /* a coordinate outside its own extent reads 0 instead, so the load
     * stays in bounds and the select below (not a branch) keeps the loop
     * vectorisable; each coordinate tests only itself, so one that cannot
     * leave its extent is used as it is (the test folds away) and its
     * arithmetic stays out of the inner loops */
    kl_coords xc = {.n = x->ndim, .identity = 0};
    for (int d = 0; d < x->ndim; d++)
        xc.c[d] = kl_kd_op(k, KL_I_SELECT, KL_INT64, 0, kl_lower_outside(k, xi.c[d], x, d), kl_kd_const(k, 0), xi.c[d]);
    int32_t val = kl_lower(k, x, &xc);
    int32_t ov = kl_dtype_is_float(v->dtype) ? kl_kd_farg(k, v, KL_ARG_OVERFLOW) : kl_kd_iarg(k, v, KL_ARG_OVERFLOW, 0);
    int32_t fill = kl_kd_op(k, KL_I_SCALAR, v->dtype, 0, ov, -1, -1);
    return kl_kd_op(k, KL_I_SELECT, v->dtype, 0, outside, fill, val);
}

/* When the reindex reads every element of x at most once (each output dim
 * used by one of x's index expressions, which are "i_p - pad" or, for
 * non-overlapping windows, "a*i_p + i_q - pad" with i_q's extent a), its
 * gradient is a gather: exprs[k] gives output dim k from x's indexes
 * (i_p = (h + pad) / a, i_q = (h + pad) % a). A transpose is the simplest case;
 * max-pooling with stride == kernel is another. */
static int invert_tiling(const kl_var *v, char exprs[][64])
{
    const kl_var *x = v->op.inputs[0];
    if (v->op.n_inputs != 1 || v->op.p.reindex.n_conditions || v->op.p.reindex.n_indexes != x->ndim) return 0;
    int R = v->ndim;
    uint32_t used = 0;
    for (int k = 0; k < R; k++) snprintf(exprs[k], 64, "0");
    for (int d = 0; d < x->ndim; d++) {
        kl_affine a;
        if (!kl_expr_affine(v->op.p.reindex.indexes[d], R, &a) || a.constant > 0) return 0;
        long long pad = (long long)-a.constant;
        int dims[2], t = 0;
        for (int k = 0; k < R; k++)
            if (a.coef[k]) {
                if (t == 2 || (used >> k & 1)) return 0;
                dims[t++] = k;
                used |= 1u << k;
            }
        if (t == 1) {
            if (a.coef[dims[0]] != 1) return 0;
            snprintf(exprs[dims[0]], 64, "i%d+%lld", d, pad);
        } else if (t == 2) {
            int p = a.coef[dims[0]] == 1 ? dims[1] : dims[0], q = p == dims[0] ? dims[1] : dims[0];
            long long step = (long long)a.coef[p];
            if (a.coef[q] != 1 || step < 1 || v->shape[q] != step) return 0;
            snprintf(exprs[p], 64, "(i%d+%lld)/%lld", d, pad, step);
            snprintf(exprs[q], 64, "(i%d+%lld)%%%lld", d, pad, step);
        } else {
            return 0;
        }
    }
    for (int k = 0; k < R; k++)
        if (v->shape[k] != 1 && !(used >> k & 1)) return 0; /* a broadcast dim: read several times */
    return 1;
}

kl_status kl_reindex_backward(kl_var *v, int k, kl_var *dv, kl_var **out)
{
    *out = NULL;
    kl_var *x = v->op.inputs[0];
    if (k != 0 || !kl_dtype_is_float(x->dtype)) return KL_OK;
    char exprs[KL_MAX_DIMS][64];
    if (invert_tiling(v, exprs)) {
        /* each x element was read at most once: gather its gradient (parallel,
         * no collisions); positions no window covered read outside dv: 0 */
        const char *idx[KL_MAX_DIMS];
        for (int d = 0; d < v->ndim; d++) idx[d] = exprs[d];
        return kl_reindex(dv, x->ndim, x->shape, idx, 0, 0, NULL, 0, NULL, out);
    }
    return kl_reindex_like(&v->op, KL_OP_REINDEX_REDUCE, KL_REDUCE_SUM, dv, x->ndim, x->shape, 0, out);
}
