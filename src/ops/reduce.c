/* reduce.c: sum, prod, max, min, mean, any, all over any set of dims: shape
 * and dtype rules, the kernel's description (the value folded, the axes,
 * where each result goes) and the backward rule. How the loops run (in
 * parallel, over rows or columns, in float blocks summed in double) is the
 * renderer's choice (src/backend/cpu/render_c.c). */
#include "ops/ops.h"
#include "ops/builder.h"
#include "core/dtype.h"
#include <string.h>

kl_status kl_reduce_check_dtype(const char *opname, kl_reduce_op op, kl_dtype t)
{
    int bitwise = op == KL_REDUCE_BIT_AND || op == KL_REDUCE_BIT_OR || op == KL_REDUCE_BIT_XOR;
    if (bitwise && kl_dtype_is_float(t)) {
        int same = strcmp(opname, kl_reduce_name(op)) == 0;
        return kl_error(KL_ERR_TYPE, "%s%s%s: integer or bool input needed, got %s", opname, same ? "" : " ",
                        same ? "" : kl_reduce_name(op), kl_dtype_name(t));
    }
    return KL_OK;
}

kl_status kl_reduce(kl_var *x, kl_reduce_op op, int ndims, const int *dims, int keepdims, kl_var **out)
{
    KL_ARG(out, "kl_reduce", "out");
    *out = NULL;
    KL_VAR_ARG(x, "reduce", "input");
    if (ndims > 0) KL_ARG(dims, "reduce", "dims");
    if (ndims < 0 || ndims > KL_MAX_DIMS) return kl_error(KL_ERR_VALUE, "reduce: %d dims listed", ndims);
    if ((unsigned)op >= KL_REDUCE_COUNT) return kl_error(KL_ERR_VALUE, "reduce: invalid op code %d", (int)op);
    const char *name = kl_reduce_name(op);
    uint8_t mask = 0;
    if (ndims == 0) mask = (uint8_t)((1u << x->ndim) - 1);
    for (int i = 0; i < ndims; i++) {
        int d = dims[i] < 0 ? dims[i] + x->ndim : dims[i];
        if (d < 0 || d >= x->ndim)
            return kl_error(KL_ERR_INDEX, "%s: dim %d is out of range for a var of rank %d", name, dims[i], x->ndim);
        if (mask >> d & 1) return kl_error(KL_ERR_VALUE, "%s: dim %d is repeated", name, dims[i]);
        mask |= (uint8_t)(1u << d);
    }
    int64_t shape[KL_MAX_DIMS], reduced = 1;
    int ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (mask >> d & 1) { reduced *= x->shape[d]; if (keepdims) shape[ndim++] = 1; }
        else shape[ndim++] = x->shape[d];
    }
    int arg = op == KL_REDUCE_ARGMAX || op == KL_REDUCE_ARGMIN;
    if (reduced == 0 && (op == KL_REDUCE_MAX || op == KL_REDUCE_MIN || arg))
        return kl_error(KL_ERR_VALUE, "%s: zero-size reduction has no %s", name, arg ? "position" : "identity");
    if (arg && reduced > INT32_MAX)
        return kl_error(KL_ERR_VALUE, "%s: %lld elements per position, more than int32 positions hold", name,
                        (long long)reduced);
    KL_TRY(kl_reduce_check_dtype(name, op, x->dtype));
    kl_dtype dtype = x->dtype;
    if (op == KL_REDUCE_ANY || op == KL_REDUCE_ALL || op == KL_REDUCE_XOR) dtype = KL_BOOL;
    else if ((op == KL_REDUCE_SUM || op == KL_REDUCE_PROD) && !kl_dtype_is_float(x->dtype)) dtype = KL_INT64;
    else if (op == KL_REDUCE_MEAN && !kl_dtype_is_float(x->dtype)) dtype = KL_FLOAT32;
    else if (arg) dtype = KL_INT32;
    kl_op o = {.kind = KL_OP_REDUCE, .n_inputs = 1, .inputs = {x},
               .p.reduce = {.op = op, .mask = mask, .keepdims = keepdims != 0}};
    return kl_var_new(x->ctx, dtype, ndim, shape, &o, out);
}

kl_status kl_reduce_lower_kernel(kl_kdesc *k, kl_var *v)
{
    kl_var *x = v->op.inputs[0];
    uint8_t mask = v->op.p.reduce.mask;
    /* identity coordinates: loads at x's own linear index read it directly */
    kl_coords c = kl_lower_loop_coords(k, x->ndim, 1);
    k->h.value = kl_lower(k, x, &c);
    /* siblings (src/opt/siblings.c) fold their own inputs over the same
     * loops; what the chains share is computed once */
    for (int j = 0; j < v->n_siblings; j++) k->h.extra_value[j] = kl_lower(k, v->siblings[j]->op.inputs[0], &c);
    /* the output element: the kept coordinates (0 for a kept reduced dim) */
    kl_coords oc = {.n = v->ndim, .identity = 0};
    for (int d = 0, j = 0; d < x->ndim; d++) {
        if (!(mask >> d & 1)) oc.c[j++] = c.c[d];
        else if (v->op.p.reduce.keepdims) oc.c[j++] = kl_kd_const(k, 0);
    }
    k->h.target = kl_lower_offset(k, v, &oc);
    k->h.kind = KL_KD_REDUCE;
    k->h.op = v->op.p.reduce.op;
    k->h.reduced = mask;
    k->h.in_dtype = (uint8_t)x->dtype;
    k->h.rank = (uint8_t)x->ndim;
    /* a short reduced extent (a pooling window's) is a literal, so the
     * compiler unrolls its loop (measured 1.6-2.7x on 2x2 windows); longer
     * ones stay arguments, one kernel for every length */
    for (int d = 0; d < x->ndim; d++)
        k->h.dims[d] = (mask >> d & 1) && x->shape[d] <= KL_SHORT_EXTENT ? kl_kd_const(k, x->shape[d])
                                                                         : kl_kd_shape(k, x, d);
    k->h.out_rank = (uint8_t)v->ndim;
    k->locals[0].mean = v->op.p.reduce.op == KL_REDUCE_MEAN;
    return k->status;
}

kl_status kl_reduce_backward(kl_var *v, int k, kl_var *dv, kl_var **out)
{
    (void)k;
    *out = NULL;
    kl_var *x = v->op.inputs[0];
    if (!kl_dtype_is_float(x->dtype)) return KL_OK;
    uint8_t mask = v->op.p.reduce.mask;
    /* v and dv with the reduced dims put back as size 1, then broadcast */
    int64_t kshape[KL_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) kshape[d] = (mask >> d & 1) ? 1 : x->shape[d];
    kl_builder b = {0};
    kl_var *dk = kb_broadcast(&b, kb_reshape(&b, dv, x->ndim, kshape), x, 0, NULL);
    kl_var *g = NULL;
    switch (v->op.p.reduce.op) {
    case KL_REDUCE_SUM: g = dk; break;
    case KL_REDUCE_MEAN: {
        int64_t n = 1;
        for (int d = 0; d < x->ndim; d++) if (mask >> d & 1) n *= x->shape[d];
        g = kb_binary(&b, KL_DIV, dk, kb_scalar(&b, dv, (double)(n ? n : 1)));
        break;
    }
    case KL_REDUCE_PROD: {
        kl_var *vk = kb_broadcast(&b, kb_reshape(&b, v, x->ndim, kshape), x, 0, NULL);
        g = kb_binary(&b, KL_DIV, kb_binary(&b, KL_MUL, dk, vk), x);
        break;
    }
    case KL_REDUCE_MAX: case KL_REDUCE_MIN: {
        kl_var *vk = kb_broadcast(&b, kb_reshape(&b, v, x->ndim, kshape), x, 0, NULL);
        g = kb_binary(&b, KL_MUL, dk, kb_cast(&b, kb_binary(&b, KL_EQUAL, x, vk), x->dtype));
        break;
    }
    default: break;
    }
    return kb_finish(&b, g, out);
}
