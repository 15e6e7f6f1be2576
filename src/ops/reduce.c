/* reduce.c: sum, prod, max, min, mean, any, all over any set of dims. The
 * kernel loops over the input, keeps float accumulators in double (with
 * per-lane partial sums, so 4M float32 sums stay exact to ~1e-7), and is
 * parallel whether the kept dims are many (rows) or few (whole reductions). */
#include "ops/ops.h"
#include "ops/builder.h"
#include "core/dtype.h"
#include <string.h>

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
    if (reduced == 0 && (op == KL_REDUCE_MAX || op == KL_REDUCE_MIN))
        return kl_error(KL_ERR_VALUE, "%s: zero-size reduction has no identity", name);
    kl_dtype dtype = x->dtype;
    if (op == KL_REDUCE_ANY || op == KL_REDUCE_ALL) dtype = KL_BOOL;
    else if ((op == KL_REDUCE_SUM || op == KL_REDUCE_PROD) && !kl_dtype_is_float(x->dtype)) dtype = KL_INT64;
    else if (op == KL_REDUCE_MEAN && !kl_dtype_is_float(x->dtype)) dtype = KL_FLOAT32;
    kl_op o = {.kind = KL_OP_REDUCE, .n_inputs = 1, .inputs = {x},
               .p.reduce = {.op = op, .mask = mask, .keepdims = keepdims != 0}};
    return kl_var_new(x->ctx, dtype, ndim, shape, &o, out);
}

const char *kl_reduce_identity(kl_reduce_op op, kl_dtype t)
{
    static const char *const lowest[KL_DTYPE_COUNT] = {"0", "INT8_MIN", "0", "INT16_MIN", "INT32_MIN", "INT64_MIN", "-INFINITY", "-INFINITY", "-INFINITY"};
    static const char *const highest[KL_DTYPE_COUNT] = {"1", "INT8_MAX", "UINT8_MAX", "INT16_MAX", "INT32_MAX", "INT64_MAX", "INFINITY", "INFINITY", "INFINITY"};
    switch (op) {
    case KL_REDUCE_PROD: case KL_REDUCE_ALL: return "1";
    case KL_REDUCE_MAX: return lowest[t];
    case KL_REDUCE_MIN: return highest[t];
    default: return "0";
    }
}

typedef struct {
    const char *acc_type, *omp_op, *identity;
    int track_nan;
} reduce_code;

static reduce_code code_for(kl_reduce_op op, kl_dtype in)
{
    int is_float = kl_dtype_is_float(in);
    reduce_code rc = {is_float ? "double" : "int64_t", "+", "0", 0};
    switch (op) {
    case KL_REDUCE_PROD: rc.omp_op = "*"; rc.identity = "1"; break;
    case KL_REDUCE_MAX: case KL_REDUCE_MIN:
        rc.acc_type = kl_dtype_compute_ctype(in);
        rc.omp_op = op == KL_REDUCE_MAX ? "max" : "min";
        rc.identity = kl_reduce_identity(op, in);
        rc.track_nan = is_float;
        break;
    case KL_REDUCE_ANY: rc.acc_type = "int"; rc.omp_op = "|"; break;
    case KL_REDUCE_ALL: rc.acc_type = "int"; rc.omp_op = "&"; rc.identity = "1"; break;
    default: break;
    }
    return rc;
}

/* The statement folding value t into accumulator a. */
static const char *combine(kl_emitter *em, kl_reduce_op op, const char *a, const char *t)
{
    switch (op) {
    case KL_REDUCE_PROD: return kl_emit_str(em, "%s *= %s;", a, t);
    case KL_REDUCE_MAX: return kl_emit_str(em, "%s = %s > %s ? %s : %s;", a, t, a, t, a);
    case KL_REDUCE_MIN: return kl_emit_str(em, "%s = %s < %s ? %s : %s;", a, t, a, t, a);
    case KL_REDUCE_ANY: return kl_emit_str(em, "%s |= (%s != 0);", a, t);
    case KL_REDUCE_ALL: return kl_emit_str(em, "%s &= (%s != 0);", a, t);
    default: return kl_emit_str(em, "%s += %s;", a, t);
    }
}

static void open_loop(kl_strbuf *sb, kl_emitter *em, kl_var *x, int d, int depth)
{
    kl_sb_indent(sb, 4 * depth);
    kl_sb_printf(sb, "for (int64_t i%d = 0; i%d < %s; i%d++)\n", d, d, kl_emit_shape(em, x, d), d);
}

typedef struct {
    reduce_code rc;
    const char *body, *t_raw, *fold, *nanfold, *final, *red_clause;
    int blocked;
} reduce_parts;

/* The reduction of one output k over the flat range [0, rn) of its inputs
 * (li = k * rn + j), parallel over the range when asked. */
static void flat_reduction(kl_strbuf *L, const reduce_parts *p, int parallel)
{
    kl_sb_printf(L, "        %s a = %s; int n = 0; (void)n;\n", p->rc.acc_type, p->rc.identity);
    if (p->blocked) {
        if (parallel) kl_sb_printf(L, "        #pragma omp parallel for %s schedule(static)\n", p->red_clause);
        kl_sb_printf(L, "        for (int64_t blk = 0; blk < rn; blk += 1024) {\n");
        kl_sb_printf(L, "        float ba = 0; const int64_t bend = blk + 1024 < rn ? blk + 1024 : rn;\n");
        kl_sb_printf(L, "        #pragma omp simd reduction(+:ba)\n");
        kl_sb_printf(L, "        for (int64_t j = blk; j < bend; j++) {\n        const int64_t li = k * rn + j;\n");
        kl_sb_printf(L, "%s        ba += %s;\n        }\n        a += ba;\n        }\n", p->body, p->t_raw);
    } else {
        kl_sb_printf(L, "        #pragma omp %s %s\n", parallel ? "parallel for simd" : "simd", p->red_clause);
        kl_sb_printf(L, "        for (int64_t j = 0; j < rn; j++) {\n        const int64_t li = k * rn + j;\n");
        kl_sb_printf(L, "%s        %s%s\n        }\n", p->body, p->fold, p->nanfold);
    }
    kl_sb_printf(L, "        out[k] = %s;\n", p->final);
}

/* Every input read at the element's own linear index and the reduced dims
 * trailing: kept and reduced dims each flatten into one loop, however short
 * the dims (a 3x3 kernel's weights no longer reduce 3 at a time). Tiny
 * reductions run serially (an OpenMP region costs ~0.4 us); else parallel
 * over outputs when there are enough, over the range when not. */
static void flat_reduce_kernel(kl_strbuf *L, const reduce_parts *p)
{
    kl_sb_printf(L, "    if (kn * rn <= 32768) {\n    for (int64_t k = 0; k < kn; k++) {\n");
    flat_reduction(L, p, 0);
    kl_sb_printf(L, "    }\n    } else if (kn >= 16) {\n");
    kl_sb_printf(L, "    #pragma omp parallel for schedule(static)\n    for (int64_t k = 0; k < kn; k++) {\n");
    flat_reduction(L, p, 0);
    kl_sb_printf(L, "    }\n    } else {\n    for (int64_t k = 0; k < kn; k++) {\n");
    flat_reduction(L, p, 1);
    kl_sb_printf(L, "    }\n    }\n");
}

kl_status kl_reduce_kernel(kl_emitter *em, kl_strbuf *L)
{
    kl_var *v = em->root, *x = v->op.inputs[0];
    kl_reduce_op op = v->op.p.reduce.op;
    uint8_t mask = v->op.p.reduce.mask;
    int r = x->ndim, kept[KL_MAX_DIMS], red[KL_MAX_DIMS], nk = 0, nr = 0;
    for (int d = 0; d < r; d++) { if (mask >> d & 1) red[nr++] = d; else kept[nk++] = d; }
    reduce_code rc = code_for(op, x->dtype);
    /* identity coordinates: loads at x's own linear index read "li" */
    kl_coords c = kl_emit_loop_coords(r, 1);
    const char *t = kl_emit(em, x, &c);
    if (!t) return em->status;
    int flat_reads = !em->needs_coords;
    const char *t_raw = t;
    if (op == KL_REDUCE_SUM || op == KL_REDUCE_PROD || op == KL_REDUCE_MEAN)
        t = kl_emit_str(em, "(%s)%s", rc.acc_type, t);
    kl_coords oc = {.n = v->ndim, .identity = 0};
    for (int d = 0, k = 0; d < r; d++) {
        if (!(mask >> d & 1)) oc.c[k++] = c.c[d];
        else if (v->op.p.reduce.keepdims) oc.c[k++] = "0";
    }
    const char *off = kl_emit_offset(em, v, &oc);
    if (!off) return em->status;
    const char *body = em->body.data ? em->body.data : "";
    const char *T = kl_dtype_ctype(v->dtype);

    kl_sb_printf(L, "    int64_t kn = 1, rn = 1;\n");
    for (int i = 0; i < nk; i++) kl_sb_printf(L, "    kn *= %s;\n", kl_emit_shape(em, x, kept[i]));
    for (int i = 0; i < nr; i++) kl_sb_printf(L, "    rn *= %s;\n", kl_emit_shape(em, x, red[i]));
    /* the result from accumulator a (and NaN flag n) */
    const char *finbuf = op == KL_REDUCE_MEAN ? kl_emit_str(em, "(%s)(rn ? a / (double)rn : NAN)", T)
                                              : kl_emit_str(em, "(%s)(a)", T);
    const char *final = rc.track_nan ? kl_emit_str(em, "(n ? (%s)NAN : %s)", T, finbuf) : kl_emit_str(em, "%s", finbuf);
    const char *red_clause = kl_emit_str(em, "reduction(%s:a)%s", rc.omp_op, rc.track_nan ? " reduction(|:n)" : "");
    const char *fold = combine(em, op, "a", t);
    const char *nanfold = rc.track_nan ? kl_emit_str(em, " n |= %s != %s;", t, t) : "";
    if (!final || !red_clause || !fold || !nanfold) return em->status;

    int blocked = nr > 0 && (op == KL_REDUCE_SUM || op == KL_REDUCE_MEAN) &&
                  (x->dtype == KL_FLOAT32 || x->dtype == KL_FLOAT16);
    int trailing = nr > 0;
    for (int i = 0; i < nr; i++) trailing &= red[i] == nk + i;
    if (trailing && flat_reads) {
        reduce_parts p = {rc, body, t_raw, fold, nanfold, final, red_clause, blocked};
        flat_reduce_kernel(L, &p);
        return em->status;
    }
    /* per-dim loops; a load at x's linear index reads li, defined from them */
    kl_coords own = kl_emit_loop_coords(r, 0);
    const char *li = kl_emit_offset(em, x, &own);
    if (!li) return em->status;
    body = kl_emit_str(em, "        const int64_t li = %s; (void)li;\n%s", li, body);
    if (!body) return em->status;
    if (nr == 0 || red[nr - 1] == r - 1) {
        /* rows: the innermost input dim is reduced */
        for (int variant = 0; variant < 2; variant++) {
            int over_kept = variant == 0;
            kl_sb_printf(L, over_kept ? "    if (kn >= 16 || rn <= 32768) {\n" : "    } else {\n");
            if (over_kept && nk)
                kl_sb_printf(L, "    #pragma omp parallel for collapse(%d) if(kn * rn > 32768) schedule(static)\n", nk);
            for (int i = 0; i < nk; i++) open_loop(L, em, x, kept[i], 1 + i);
            kl_sb_printf(L, "    {\n        %s a = %s; int n = 0; (void)n;\n", rc.acc_type, rc.identity);
            for (int i = 0; i < nr; i++) {
                int innermost = i == nr - 1;
                if (innermost && blocked) {
                    /* float partial sums over short blocks, blocks summed in double */
                    const char *S = kl_emit_shape(em, x, red[i]);
                    if (i == 0 && !over_kept)
                        kl_sb_printf(L, "    #pragma omp parallel for %s if(rn > 32768) schedule(static)\n", red_clause);
                    kl_sb_printf(L, "    for (int64_t blk = 0; blk < %s; blk += 1024) {\n", S);
                    kl_sb_printf(L, "        float ba = 0; const int64_t bend = blk + 1024 < %s ? blk + 1024 : %s;\n", S, S);
                    kl_sb_printf(L, "    #pragma omp simd reduction(+:ba)\n");
                    kl_sb_printf(L, "    for (int64_t i%d = blk; i%d < bend; i%d++)\n", red[i], red[i], red[i]);
                    kl_sb_printf(L, "    {\n%s        ba += %s;\n    }\n        a += ba;\n    }\n", body, t_raw);
                    break;
                }
                if (i == 0 && !over_kept)
                    kl_sb_printf(L, "    #pragma omp parallel for%s %s if(rn > 32768) schedule(static)\n",
                                 nr == 1 ? " simd" : "", red_clause);
                else if (innermost)
                    kl_sb_printf(L, "    #pragma omp simd %s\n", red_clause);
                open_loop(L, em, x, red[i], 2 + i);
            }
            if (!blocked) kl_sb_printf(L, "    {\n%s        %s%s\n    }\n", body, fold, nanfold);
            kl_sb_printf(L, "        out[%s] = %s;\n    }\n", off, final);
        }
        kl_sb_printf(L, "    }\n");
        return em->status;
    }
    /* columns: the innermost input dim is kept; each task owns a chunk of it */
    int last = r - 1;
    kl_sb_printf(L, "    const int64_t nlast = %s, nchunk = (nlast + 255) / 256;\n", kl_emit_shape(em, x, last));
    kl_sb_printf(L, "    #pragma omp parallel for collapse(%d) if(kn * rn > 32768) schedule(static)\n", nk);
    for (int i = 0; i < nk - 1; i++) open_loop(L, em, x, kept[i], 1 + i);
    kl_sb_printf(L, "    for (int64_t chunk = 0; chunk < nchunk; chunk++) {\n");
    kl_sb_printf(L, "        %s acc[256]; int nan[256];\n", rc.acc_type);
    kl_sb_printf(L, "        const int64_t j0 = chunk * 256, jn = nlast - j0 < 256 ? nlast - j0 : 256;\n");
    kl_sb_printf(L, "        for (int64_t j = 0; j < jn; j++) { acc[j] = %s; nan[j] = 0; }\n", rc.identity);
    for (int i = 0; i < nr; i++) open_loop(L, em, x, red[i], 2 + i);
    kl_sb_printf(L, "        {\n        #pragma omp simd\n        for (int64_t j = 0; j < jn; j++) {\n");
    kl_sb_printf(L, "        const int64_t i%d = j0 + j;\n%s", last, body);
    kl_sb_printf(L, "        %s a = acc[j]; int n = nan[j]; (void)n;\n", rc.acc_type);
    kl_sb_printf(L, "        %s%s\n        acc[j] = a; nan[j] = n;\n        }\n        }\n", fold, nanfold);
    kl_sb_printf(L, "        for (int64_t j = 0; j < jn; j++) {\n            const int64_t i%d = j0 + j;\n", last);
    kl_sb_printf(L, "            const %s a = acc[j]; const int n = nan[j]; (void)n;\n", rc.acc_type);
    kl_sb_printf(L, "            out[%s] = %s;\n        }\n    }\n", off, final);
    return em->status;
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
