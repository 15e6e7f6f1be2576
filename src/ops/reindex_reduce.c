/* reindex_reduce.c: the scatter meta-op: for each index i of y,
 * out[f(i)] op= y[i]. Its kernel writes the identity everywhere, then
 * scatters (atomically where OpenMP allows, serially for max/min). */
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
    if ((unsigned)op >= KL_REDUCE_COUNT || op == KL_REDUCE_MEAN)
        return kl_error(KL_ERR_VALUE, "reindex_reduce: op must be add, multiply, maximum, minimum, logical_or or logical_and");
    KL_TRY(kl_check_shape("reindex_reduce", ndim, shape));
    kl_op o = {.kind = KL_OP_REINDEX_REDUCE, .inputs = {y}};
    o.p.reindex.op = op;
    KL_TRY(kl_reindex_parse("reindex_reduce", &o, ndim, indexes, n_conditions, conditions,
                            n_extras, extras, y->ndim, ndim, y->ndim));
    kl_dtype dtype = (op == KL_REDUCE_ANY || op == KL_REDUCE_ALL) ? KL_BOOL : y->dtype;
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

/* Identity of op for dtype t, as C text. */
const char *kl_reduce_identity(kl_reduce_op op, kl_dtype t);

kl_status kl_reindex_reduce_kernel(kl_emitter *em, kl_strbuf *loops)
{
    kl_var *v = em->root, *y = v->op.inputs[0];
    kl_reduce_op op = v->op.p.reindex.op;
    const char *T = kl_dtype_compute_ctype(v->dtype);
    kl_coords c = kl_emit_loop_coords(y->ndim, 0);
    const char *val = kl_emit(em, y, &c);
    if (!val) return em->status;
    val = kl_emit_convert(em, val, y->dtype, v->dtype);
    kl_coords oc;
    const char *outside = kl_reindex_targets(em, v, &c, v, y, &oc);
    const char *off = outside ? kl_emit_offset(em, v, &oc) : NULL;
    if (!off) return em->status;

    kl_sb_printf(loops, "    int64_t on = 1;\n");
    for (int d = 0; d < v->ndim; d++) kl_sb_printf(loops, "    on *= %s;\n", kl_emit_shape(em, v, d));
    kl_sb_printf(loops, "    int64_t yn = 1;\n");
    for (int d = 0; d < y->ndim; d++) kl_sb_printf(loops, "    yn *= %s;\n", kl_emit_shape(em, y, d));
    kl_sb_printf(loops, "    #pragma omp parallel for simd if(on > 32768) schedule(static)\n"
                        "    for (int64_t li = 0; li < on; li++) out[li] = %s;\n",
                 kl_reduce_identity(op, v->dtype));
    /* y dims some target index follows one to one (i_d plus a constant):
     * different values of them write different targets, so they can be the
     * parallel loops and no update needs to be atomic */
    uint32_t disjoint = 0;
    for (int d = 0; d < v->ndim; d++) {
        int k = shifted_index(v->op.p.reindex.indexes[d]);
        if (k >= 0) disjoint |= 1u << k;
    }
    int order[KL_MAX_DIMS], n_disjoint = 0, n = 0;
    for (int d = 0; d < y->ndim; d++) if (disjoint >> d & 1) order[n++] = d;
    n_disjoint = n;
    for (int d = 0; d < y->ndim; d++) if (!(disjoint >> d & 1)) order[n++] = d;
    int atomic = !n_disjoint && v->dtype != KL_FLOAT16 && op != KL_REDUCE_MAX && op != KL_REDUCE_MIN;
    if (n_disjoint)
        kl_sb_printf(loops, "    #pragma omp parallel for collapse(%d) if(yn > 32768) schedule(static)\n", n_disjoint);
    else if (atomic && y->ndim > 0)
        kl_sb_printf(loops, "    #pragma omp parallel for collapse(%d) if(yn > 32768) schedule(static)\n", y->ndim);
    for (int j = 0; j < y->ndim; j++) {
        int d = order[j];
        kl_sb_indent(loops, 4 + 4 * j);
        kl_sb_printf(loops, "for (int64_t i%d = 0; i%d < %s; i%d++)\n", d, d, kl_emit_shape(em, y, d), d);
    }
    kl_sb_printf(loops, "    {\n%s", em->body.data ? em->body.data : "");
    kl_sb_printf(loops, "        if (!(%s)) {\n", outside);
    const char *tgt = kl_emit_str(em, "out[%s]", off);
    const char *now = v->dtype == KL_FLOAT16 ? kl_emit_str(em, "(float)out[%s]", off) : tgt;
    if (!tgt || !now) return em->status;
    if (atomic) kl_sb_printf(loops, "            #pragma omp atomic\n");
    switch (op) {
    case KL_REDUCE_SUM:
        if (v->dtype == KL_BOOL) kl_sb_printf(loops, "            %s |= %s;\n", tgt, val);
        else if (atomic) kl_sb_printf(loops, "            %s += %s;\n", tgt, val);
        else kl_sb_printf(loops, "            %s = %s + %s;\n", tgt, now, val);
        break;
    case KL_REDUCE_PROD:
        if (v->dtype == KL_BOOL) kl_sb_printf(loops, "            %s &= %s;\n", tgt, val);
        else if (atomic) kl_sb_printf(loops, "            %s *= %s;\n", tgt, val);
        else kl_sb_printf(loops, "            %s = %s * %s;\n", tgt, now, val);
        break;
    case KL_REDUCE_ANY: kl_sb_printf(loops, "            %s |= (uint8_t)(%s != 0);\n", tgt, val); break;
    case KL_REDUCE_ALL: kl_sb_printf(loops, "            %s &= (uint8_t)(%s != 0);\n", tgt, val); break;
    default: {
        const char *cmp = op == KL_REDUCE_MAX ? ">" : "<";
        kl_sb_printf(loops, "            const %s cur = %s;\n", T, now);
        kl_sb_printf(loops, "            %s = (%s %s cur || %s != %s) ? %s : cur;\n", tgt, val, cmp, val, val, val);
    }
    }
    kl_sb_printf(loops, "        }\n    }\n");
    return em->status;
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
