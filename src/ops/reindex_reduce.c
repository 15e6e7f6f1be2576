/* reindex_reduce.c: the scatter meta-op: for each index i of y,
 * out[f(i)] op= y[i]. Its kernel's description: the value, its target and
 * the condition that skips it, and which of y's dims write disjoint targets
 * (the renderer runs those in parallel and the rest atomically or serially). */
#include "ops/ops.h"
#include "ops/builder.h"
#include "core/dtype.h"

kl_status kl_reindex_reduce(kl_var *y, kl_reduce_op op, int ndim, const int64_t *shape,
                            const char *const *indexes, int n_conditions, const char *const *conditions,
                            int n_extras, kl_var *const *extras, kl_var **out)
{
    KL_ARG(out, "kl_reindex_reduce", "out");
    *out = NULL;
    KL_VAR_ARG(y, "reindex_reduce", "input");
    if ((unsigned)op >= KL_REDUCE_COUNT || op == KL_REDUCE_MEAN || op == KL_REDUCE_ARGMAX || op == KL_REDUCE_ARGMIN)
        return kl_error(KL_ERR_VALUE, "reindex_reduce: op must be add, multiply, maximum, minimum, logical_or or logical_and");
    KL_TRY(kl_check_shape("reindex_reduce", ndim, shape));
    kl_op o = {.kind = KL_OP_REINDEX_REDUCE, .inputs = {y}};
    o.p.reindex.op = op;
    KL_TRY(kl_reindex_parse("reindex_reduce", &o, ndim, indexes, n_conditions, conditions,
                            n_extras, extras, y->ndim, ndim, y->ndim));
    KL_TRY(kl_reduce_check_dtype("reindex_reduce", op, y->dtype));
    kl_dtype dtype = (op == KL_REDUCE_ANY || op == KL_REDUCE_ALL || op == KL_REDUCE_XOR) ? KL_BOOL : y->dtype;
    kl_status s = kl_var_new(y->ctx, dtype, ndim, shape, &o, out);
    if (s != KL_OK) kl_op_free_params(&o);
    return s;
}

/* k when e is i_k or i_k plus or minus an integer, else -1. */
static int shifted_index(const kl_expr *e)
{
    if (e->kind == KL_EX_INDEX) return (int)e->value;
    if (e->kind == KL_EX_BINARY && (e->op == KL_EXB_ADD || e->op == KL_EXB_SUB) &&
        e->args[0]->kind == KL_EX_INDEX && e->args[1]->kind == KL_EX_INT)
        return (int)e->args[0]->value;
    return -1;
}

kl_status kl_reindex_reduce_lower_kernel(kl_kdesc *k, kl_var *v)
{
    kl_var *y = v->op.inputs[0];
    kl_coords c = kl_lower_loop_coords(k, y->ndim, 0);
    int32_t val = kl_lower(k, y, &c);
    k->h.value = kl_lower_convert(k, val, y->dtype, v->dtype);
    kl_coords oc;
    k->h.skip = kl_lower_targets(k, v, &c, v, y, &oc);
    k->h.target = kl_lower_offset(k, v, &oc);
    k->h.kind = KL_KD_SCATTER;
    k->h.op = v->op.p.reindex.op;
    k->h.in_dtype = (uint8_t)y->dtype;
    k->h.rank = (uint8_t)y->ndim;
    for (int d = 0; d < y->ndim; d++) k->h.dims[d] = kl_kd_shape(k, y, d);
    k->h.out_rank = (uint8_t)v->ndim;
    for (int d = 0; d < v->ndim; d++) k->h.out_dims[d] = kl_kd_shape(k, v, d);
    /* y dims some target index follows one to one (i_d plus a constant):
     * different values of them write different targets */
    for (int d = 0; d < v->ndim; d++) {
        int j = shifted_index(v->op.p.reindex.indexes[d]);
        if (j >= 0) k->h.disjoint |= (uint8_t)(1u << j);
    }
    return k->status;
}

/* y's shape read back from the scattered layout: the reindex with v's expressions. */
static kl_var *gather(kl_builder *b, kl_var *v, kl_var *y, kl_var *src)
{
    kl_var *t = NULL;
    if (!src || b->status != KL_OK) return NULL;
    kl_status s = kl_reindex_like(&v->op, KL_OP_REINDEX, 0, src, y->ndim, y->shape, 0, &t);
    return kb_keep(b, s, t);
}

kl_status kl_reindex_reduce_backward(kl_var *v, int k, kl_var *dv, kl_var **out)
{
    *out = NULL;
    kl_var *y = v->op.inputs[0];
    if (k != 0 || !kl_dtype_is_float(y->dtype)) return KL_OK;
    kl_builder b = {0};
    kl_var *g = NULL;
#define GATHER(src) gather(&b, v, y, src)
    switch (v->op.p.reindex.op) {
    case KL_REDUCE_SUM: g = GATHER(dv); break;
    case KL_REDUCE_PROD: g = kb_binary(&b, KL_DIV, GATHER(kb_binary(&b, KL_MUL, dv, v)), y); break;
    case KL_REDUCE_MAX: case KL_REDUCE_MIN: {
        kl_var *hit = kb_cast(&b, kb_binary(&b, KL_EQUAL, y, GATHER(v)), y->dtype);
        g = kb_binary(&b, KL_MUL, GATHER(dv), hit);
        break;
    }
    default: break;
    }
#undef GATHER
    return kb_finish(&b, g, out);
}
