/* render_c.c: the CPU backend's renderer: a kernel description printed as C
 * with OpenMP. The instructions become SSA temps in the innermost loop; the
 * schedule is chosen here: small kernels run serially (an OpenMP region costs
 * ~0.4 us even when its if() asks for one thread), element-wise kernels run
 * one flat `parallel for simd` loop when every access is at the element's own
 * index, reductions run over rows or over column chunks and sum float32 in
 * short float blocks added in double, scatters run the dims that write
 * disjoint targets in parallel and update the rest atomically (max and min:
 * serially). */
#include "backend/cpu/cpu.h"
#include "codegen/kdesc.h"
#include "codegen/strbuf.h"
#include "core/dtype.h"
#include "core/error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const kl_kdesc *k;
    kl_strbuf *out;
    char (*names)[32];   /* per instruction: its name or temp */
} renderer;

static const char *name(renderer *r, int32_t i) { return r->names[i]; }

static int is_index_kind(int kind)
{
    return kind == KL_I_INDEX || kind == KL_I_NEG || kind == KL_I_NOT || kind == KL_I_MIN || kind == KL_I_MAX ||
           kind == KL_I_CLAMP;
}

static void mark(const kl_kdesc *k, int32_t i, uint8_t *need)
{
    if (i < 0 || need[i]) return;
    need[i] = 1;
    int32_t ops[5];
    int n = kl_kd_operands(&k->instrs[i], ops);
    for (int j = 0; j < n; j++) mark(k, ops[j], need);
}

/* ---- scalar expressions ---- */

static void float_unary(kl_strbuf *s, kl_unary_op op, const char *x, kl_dtype t)
{
    const char *f = t == KL_FLOAT64 ? "" : "f";
    const char *T = kl_dtype_compute_ctype(t);
    switch (op) {
    case KL_NEG: kl_sb_printf(s, "(-%s)", x); break;
    case KL_ABS: kl_sb_printf(s, "fabs%s(%s)", f, x); break;
    case KL_RSQRT: kl_sb_printf(s, "((%s)1 / sqrt%s(%s))", T, f, x); break;
    case KL_SIGMOID: kl_sb_printf(s, "((%s)1 / ((%s)1 + exp%s(-%s)))", T, T, f, x); break;
    case KL_ROUND: kl_sb_printf(s, "nearbyint%s(%s)", f, x); break;
    case KL_SIGN: kl_sb_printf(s, "(%s > 0 ? (%s)1 : %s < 0 ? (%s)-1 : %s)", x, T, x, T, x); break;
    default: /* the op's name is the C library function's */
        kl_sb_printf(s, "%s%s(%s)", kl_unary_name(op), f, x);
    }
}

static void int_unary(kl_strbuf *s, kl_unary_op op, const char *x, kl_dtype t)
{
    const char *T = kl_dtype_compute_ctype(t);
    switch (op) {
    case KL_NEG: kl_sb_printf(s, "(%s)(-%s)", T, x); break;
    case KL_ABS: kl_sb_printf(s, "(%s < 0 ? (%s)(-%s) : %s)", x, T, x, x); break;
    case KL_SIGN: kl_sb_printf(s, "(%s)((%s > 0) - (%s < 0))", T, x, x); break;
    case KL_BITWISE_NOT:
        if (t == KL_BOOL) kl_sb_printf(s, "(uint8_t)!%s", x);
        else kl_sb_printf(s, "(%s)~%s", T, x);
        break;
    default: kl_sb_append(s, x); /* floor, ceil, round, trunc of an integer */
    }
}

static int is_comparison(int op) { return op >= KL_LESS && op <= KL_NOT_EQUAL; }
static int is_logical(int op) { return op >= KL_LOGICAL_AND && op <= KL_LOGICAL_XOR; }

static int binary_text(kl_strbuf *s, kl_binary_op op, const char *a, const char *b, kl_dtype t)
{
    if (is_comparison(op)) {
        static const char *const text[] = {"<", "<=", ">", ">=", "==", "!="};
        kl_sb_printf(s, "(uint8_t)(%s %s %s)", a, text[op - KL_LESS], b);
        return 1;
    }
    if (is_logical(op)) {
        static const char *const logic[] = {"&", "|", "^"};
        kl_sb_printf(s, "(uint8_t)((%s != 0) %s (%s != 0))", a, logic[op - KL_LOGICAL_AND], b);
        return 1;
    }
    const char *T = kl_dtype_compute_ctype(t);
    if (kl_dtype_is_float(t)) {
        const char *f = t == KL_FLOAT64 ? "" : "f";
        switch (op) {
        case KL_ADD: kl_sb_printf(s, "(%s + %s)", a, b); return 1;
        case KL_SUB: kl_sb_printf(s, "(%s - %s)", a, b); return 1;
        case KL_MUL: kl_sb_printf(s, "(%s * %s)", a, b); return 1;
        case KL_DIV: kl_sb_printf(s, "(%s / %s)", a, b); return 1;
        case KL_FLOOR_DIVIDE: kl_sb_printf(s, "floor%s(%s / %s)", f, a, b); return 1;
        case KL_MOD: kl_sb_printf(s, "kl_fmod%s(%s, %s)", f, a, b); return 1;
        case KL_POW: kl_sb_printf(s, "pow%s(%s, %s)", f, a, b); return 1;
        case KL_ARCTAN2: kl_sb_printf(s, "atan2%s(%s, %s)", f, a, b); return 1;
        /* NaN wins, as in NumPy */
        case KL_MAXIMUM: kl_sb_printf(s, "((%s > %s || %s != %s) ? %s : %s)", a, b, a, a, a, b); return 1;
        case KL_MINIMUM: kl_sb_printf(s, "((%s < %s || %s != %s) ? %s : %s)", a, b, a, a, a, b); return 1;
        default: return 0;
        }
    }
    int is_bool = t == KL_BOOL;
    switch (op) {
    case KL_ADD:
        if (is_bool) kl_sb_printf(s, "(uint8_t)(%s | %s)", a, b);
        else kl_sb_printf(s, "(%s)(%s + %s)", T, a, b);
        return 1;
    case KL_SUB: kl_sb_printf(s, "(%s)(%s - %s)", T, a, b); return 1;
    case KL_MUL:
        if (is_bool) kl_sb_printf(s, "(uint8_t)(%s & %s)", a, b);
        else kl_sb_printf(s, "(%s)(%s * %s)", T, a, b);
        return 1;
    case KL_FLOOR_DIVIDE: kl_sb_printf(s, "(%s)kl_floordiv(%s, %s)", T, a, b); return 1;
    case KL_MOD: kl_sb_printf(s, "(%s)kl_mod(%s, %s)", T, a, b); return 1;
    case KL_POW: kl_sb_printf(s, "(%s)kl_ipow(%s, %s)", T, a, b); return 1;
    case KL_MAXIMUM: kl_sb_printf(s, "(%s > %s ? %s : %s)", a, b, a, b); return 1;
    case KL_MINIMUM: kl_sb_printf(s, "(%s < %s ? %s : %s)", a, b, a, b); return 1;
    case KL_BITWISE_AND: kl_sb_printf(s, "(%s)(%s & %s)", T, a, b); return 1;
    case KL_BITWISE_OR: kl_sb_printf(s, "(%s)(%s | %s)", T, a, b); return 1;
    case KL_BITWISE_XOR: kl_sb_printf(s, "(%s)(%s ^ %s)", T, a, b); return 1;
    case KL_LEFT_SHIFT: kl_sb_printf(s, "(%s)kl_shl(%s, %s)", T, a, b); return 1;
    case KL_RIGHT_SHIFT: kl_sb_printf(s, "(%s)kl_shr(%s, %s)", T, a, b); return 1;
    default: return 0;
    }
}

static const char *const index_ops[] = {
    [KL_EXB_ADD] = "+", [KL_EXB_SUB] = "-", [KL_EXB_MUL] = "*", [KL_EXB_DIV] = "/", [KL_EXB_MOD] = "%",
    [KL_EXB_LT] = "<", [KL_EXB_LE] = "<=", [KL_EXB_GT] = ">", [KL_EXB_GE] = ">=", [KL_EXB_EQ] = "==",
    [KL_EXB_NE] = "!=", [KL_EXB_AND] = "&&", [KL_EXB_OR] = "||",
};

/* Index instruction i, its operands by name (deep: written out in full,
 * for offsets used outside the loop body, where the temps do not exist). */
static void index_expr(renderer *r, kl_strbuf *s, int32_t i, int deep)
{
    const kl_instr *in = &r->k->instrs[i];
    if (!is_index_kind(in->kind)) { kl_sb_append(s, name(r, i)); return; }
#define OPERAND(j) (deep ? index_expr(r, s, (j), 1) : kl_sb_append(s, name(r, (j))))
    if (in->kind == KL_I_INDEX) {
        const kl_instr *b = &r->k->instrs[in->b];
        int safe = in->value == 1 || (b->kind == KL_I_CONST && b->value > 0);
        if ((in->op == KL_EXB_DIV || in->op == KL_EXB_MOD) && !safe) {
            kl_sb_append(s, in->op == KL_EXB_DIV ? "kl_idiv(" : "kl_imod(");
            OPERAND(in->a);
            kl_sb_append(s, ", ");
            OPERAND(in->b);
            kl_sb_append(s, ")");
            return;
        }
        kl_sb_append(s, "(int64_t)(");
        OPERAND(in->a);
        kl_sb_printf(s, " %s ", index_ops[in->op]);
        OPERAND(in->b);
        kl_sb_append(s, ")");
        return;
    }
    if (in->kind == KL_I_NEG || in->kind == KL_I_NOT) {
        kl_sb_append(s, in->kind == KL_I_NEG ? "(-" : "(int64_t)!(");
        OPERAND(in->a);
        kl_sb_append(s, ")");
        return;
    }
    static const char *const fn[] = {[KL_I_MIN] = "kl_min_i64(", [KL_I_MAX] = "kl_max_i64(",
                                      [KL_I_CLAMP] = "kl_clamp_i64("};
    kl_sb_append(s, fn[in->kind]);
    OPERAND(in->a);
    kl_sb_append(s, ", ");
    OPERAND(in->b);
    kl_sb_append(s, ")");
#undef OPERAND
}

/* One body statement: instruction i as a temp (or, for a check, an if). */
static kl_status statement(renderer *r, int32_t i)
{
    const kl_instr *in = &r->k->instrs[i];
    kl_strbuf *s = r->out;
    kl_dtype t = (kl_dtype)in->dtype;
    const char *T = kl_dtype_compute_ctype(t);
    const char *a = in->a >= 0 && in->kind != KL_I_LOAD ? name(r, in->a) : "";
    const char *b = in->b >= 0 ? name(r, in->b) : "";
    if (in->kind == KL_I_CHECK) {
        kl_sb_printf(s, "        if (__builtin_expect(%s < %s || %s >= %s, 0))\n"
                        "            kl_index_fail((int64_t *)(intptr_t)%s, %s, %s, %s, %s);\n",
                     a, b, a, name(r, in->c), name(r, in->e), a, b, name(r, in->c), name(r, in->d));
        return KL_OK;
    }
    if (is_index_kind(in->kind)) {
        kl_sb_printf(s, "        const int64_t %s = ", name(r, i));
        index_expr(r, s, i, 0);
        kl_sb_append(s, ";\n");
        return KL_OK;
    }
    kl_sb_printf(s, "        const %s %s = ", T, name(r, i));
    switch (in->kind) {
    case KL_I_SELECT: kl_sb_printf(s, "(%s != 0 ? %s : %s)", a, b, name(r, in->c)); break;
    case KL_I_LOAD:
        if (r->k->buf_dtype[in->a] == KL_FLOAT16) kl_sb_printf(s, "(float)b%d[%s]", in->a, b);
        else if (r->k->buf_dtype[in->a] == KL_BFLOAT16) kl_sb_printf(s, "kl_bf16_load(b%d[%s])", in->a, b);
        else kl_sb_printf(s, "b%d[%s]", in->a, b);
        break;
    case KL_I_CONVERT:
        if (t == KL_BOOL) kl_sb_printf(s, "(uint8_t)(%s != 0)", a);
        else kl_sb_printf(s, "(%s)%s", T, a);
        break;
    case KL_I_UNARY:
        if (in->op == KL_LOGICAL_NOT) kl_sb_printf(s, "(uint8_t)(%s == 0)", a);
        else if (kl_dtype_is_float(t)) float_unary(s, (kl_unary_op)in->op, a, t);
        else int_unary(s, (kl_unary_op)in->op, a, t);
        break;
    case KL_I_BINARY:
        if (!binary_text(s, (kl_binary_op)in->op, a, b, (kl_dtype)in->aux))
            return kl_error(KL_ERR_TYPE, "%s: no code for %s", kl_binary_name((kl_binary_op)in->op),
                            kl_dtype_name((kl_dtype)in->aux));
        break;
    case KL_I_SCALAR:
        if (t == KL_BOOL) kl_sb_printf(s, "(uint8_t)(%s != 0)", a);
        else kl_sb_printf(s, "((%s)%s)", T, a);
        break;
    case KL_I_RANDOM: {
        const char *bits = t == KL_FLOAT64 ? "f64" : "f32";
        const char *flat = name(r, in->c), *lo = name(r, in->d), *hi = name(r, in->e);
        if (in->op == KL_RANDOM_NORMAL)
            kl_sb_printf(s, "(%s)(%s + %s * kl_normal_%s((uint64_t)%s, (uint64_t)(%s + %s)))", T, lo, hi, bits, a, b, flat);
        else
            kl_sb_printf(s, "(%s)kl_uniform_%s(%s, %s, (uint64_t)%s, (uint64_t)(%s + %s))", T, bits, lo, hi, a, b, flat);
        break;
    }
    default: return kl_error(KL_ERR_RUNTIME, "internal: instruction kind %d in a kernel body", in->kind);
    }
    kl_sb_append(s, ";\n");
    return KL_OK;
}

/* The statements of every instruction marked in need, in order. */
static kl_status body(renderer *r, const uint8_t *need, kl_strbuf *out)
{
    kl_strbuf *saved = r->out;
    r->out = out;
    kl_status s = KL_OK;
    for (int32_t i = 0; i < r->k->h.n_instrs && s == KL_OK; i++) {
        if (!need[i]) continue;
        int kind = r->k->instrs[i].kind;
        if (kind == KL_I_LOOP || kind == KL_I_LINEAR || kind == KL_I_CONST || kind == KL_I_IARG || kind == KL_I_FARG)
            continue;
        s = statement(r, i);
    }
    r->out = saved;
    return s;
}

/* The linear offset of the loop indexes over the iteration space. */
static void loop_offset(renderer *r, kl_strbuf *s)
{
    const kl_kd_head *h = &r->k->h;
    if (h->rank == 0) { kl_sb_append(s, "0"); return; }
    kl_strbuf t = {0};
    kl_sb_append(&t, "i0");
    for (int d = 1; d < h->rank; d++) {
        char *prev = kl_sb_take(&t);
        kl_sb_printf(&t, "(%s)*%s + i%d", prev, name(r, h->dims[d]), d);
        free(prev);
    }
    kl_sb_append(s, t.data ? t.data : "");
    kl_sb_free(&t);
}

/* ---- map ---- */

static void map_loops(renderer *r, kl_strbuf *L, int parallel, const char *bd, const char *store)
{
    const kl_kd_head *h = &r->k->h;
    int rank = h->rank;
    if (!h->uses_loops || rank == 0) {
        kl_sb_printf(L, "    #pragma omp %s\n", parallel ? "parallel for simd schedule(static)" : "simd");
        kl_sb_printf(L, "    for (int64_t li = 0; li < n; li++) {\n%s%s    }\n", bd, store);
        return;
    }
    if (parallel && rank == 1) kl_sb_printf(L, "    #pragma omp parallel for simd schedule(static)\n");
    else if (parallel) kl_sb_printf(L, "    #pragma omp parallel for collapse(%d) schedule(static)\n", rank - 1);
    else if (rank == 1) kl_sb_printf(L, "    #pragma omp simd\n");
    for (int d = 0; d < rank; d++) {
        if (d == rank - 1 && rank > 1) { kl_sb_indent(L, 4 + 4 * d); kl_sb_append(L, "#pragma omp simd\n"); }
        kl_sb_indent(L, 4 + 4 * d);
        kl_sb_printf(L, "for (int64_t i%d = 0; i%d < %s; i%d++)\n", d, d, name(r, h->dims[d]), d);
    }
    kl_sb_append(L, "    {\n        const int64_t li = ");
    loop_offset(r, L);
    kl_sb_printf(L, ";\n%s%s    }\n", bd, store);
}

/* expr (a compute-type value) as dtype t's stored form: a cast, or for
 * bfloat16 (stored as its 16 bits) the prelude's rounding conversion. */
static void stored(char *buf, size_t n, kl_dtype t, const char *expr)
{
    if (t == KL_BFLOAT16) snprintf(buf, n, "kl_bf16_store((float)(%s))", expr);
    else snprintf(buf, n, "(%s)(%s)", kl_dtype_ctype(t), expr);
}

static kl_status map_kernel(renderer *r, kl_strbuf *L, const char *bd)
{
    const kl_kd_head *h = &r->k->h;
    char store[160];
    char value[96];
    stored(value, sizeof value, (kl_dtype)h->out_dtype, name(r, h->value));
    snprintf(store, sizeof store, "        out[li] = %s;\n", value);
    kl_sb_printf(L, "    int64_t n = 1;\n");
    for (int d = 0; d < h->rank; d++) kl_sb_printf(L, "    n *= %s;\n", name(r, h->dims[d]));
    kl_sb_printf(L, "    if (n <= 32768) {\n");
    map_loops(r, L, 0, bd, store);
    kl_sb_printf(L, "    } else {\n");
    map_loops(r, L, 1, bd, store);
    kl_sb_printf(L, "    }\n");
    return KL_OK;
}

/* ---- reduce ---- */

static const char *identity_of(kl_reduce_op op, kl_dtype t)
{
    static const char *const lowest[KL_DTYPE_COUNT] = {"0", "INT8_MIN", "0", "INT16_MIN", "INT32_MIN", "INT64_MIN", "-INFINITY", "-INFINITY", "-INFINITY", "-INFINITY"};
    static const char *const highest[KL_DTYPE_COUNT] = {"1", "INT8_MAX", "UINT8_MAX", "INT16_MAX", "INT32_MAX", "INT64_MAX", "INFINITY", "INFINITY", "INFINITY", "INFINITY"};
    switch (op) {
    case KL_REDUCE_PROD: case KL_REDUCE_ALL: return "1";
    case KL_REDUCE_BIT_AND: return t == KL_BOOL ? "1" : "-1";  /* every bit set */
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
        rc.identity = identity_of(op, in);
        rc.track_nan = is_float;
        break;
    case KL_REDUCE_ANY: rc.acc_type = "int"; rc.omp_op = "|"; break;
    case KL_REDUCE_ALL: rc.acc_type = "int"; rc.omp_op = "&"; rc.identity = "1"; break;
    case KL_REDUCE_BIT_AND: rc.omp_op = "&"; rc.identity = identity_of(op, in); break;
    case KL_REDUCE_BIT_OR: rc.omp_op = "|"; break;
    case KL_REDUCE_BIT_XOR: rc.omp_op = "^"; break;
    case KL_REDUCE_XOR: rc.acc_type = "int"; rc.omp_op = "^"; break;
    default: break;
    }
    return rc;
}

/* The statement folding value t into accumulator a. */
static void combine(char *out, size_t size, kl_reduce_op op, const char *a, const char *t)
{
    switch (op) {
    case KL_REDUCE_PROD: snprintf(out, size, "%s *= %s;", a, t); break;
    case KL_REDUCE_MAX: snprintf(out, size, "%s = %s > %s ? %s : %s;", a, t, a, t, a); break;
    case KL_REDUCE_MIN: snprintf(out, size, "%s = %s < %s ? %s : %s;", a, t, a, t, a); break;
    case KL_REDUCE_ANY: snprintf(out, size, "%s |= (%s != 0);", a, t); break;
    case KL_REDUCE_ALL: snprintf(out, size, "%s &= (%s != 0);", a, t); break;
    case KL_REDUCE_BIT_AND: snprintf(out, size, "%s &= %s;", a, t); break;
    case KL_REDUCE_BIT_OR: snprintf(out, size, "%s |= %s;", a, t); break;
    case KL_REDUCE_BIT_XOR: snprintf(out, size, "%s ^= %s;", a, t); break;
    case KL_REDUCE_XOR: snprintf(out, size, "%s ^= (%s != 0);", a, t); break;
    default: snprintf(out, size, "%s += %s;", a, t);
    }
}

typedef struct {
    reduce_code rc;
    const char *body, *t_raw;
    char fold[256], nanfold[256], final[256], red_clause[96];
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
 * trailing: kept and reduced dims each flatten into one loop. Tiny
 * reductions run serially; else parallel over outputs when there are
 * enough, over the range when not. */
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

static void open_loop(renderer *r, kl_strbuf *sb, int d, int depth)
{
    kl_sb_indent(sb, 4 * depth);
    kl_sb_printf(sb, "for (int64_t i%d = 0; i%d < %s; i%d++)\n", d, d, name(r, r->k->h.dims[d]), d);
}

static kl_status reduce_kernel(renderer *r, kl_strbuf *L, const char *bd)
{
    const kl_kd_head *h = &r->k->h;
    kl_reduce_op op = (kl_reduce_op)h->op;
    kl_dtype in_t = (kl_dtype)h->in_dtype, out_t = (kl_dtype)h->out_dtype;
    int rank = h->rank, kept[KL_MAX_DIMS], red[KL_MAX_DIMS], nk = 0, nr = 0;
    for (int d = 0; d < rank; d++) { if (h->reduced >> d & 1) red[nr++] = d; else kept[nk++] = d; }
    reduce_parts p;
    memset(&p, 0, sizeof p);
    p.rc = code_for(op, in_t);
    p.t_raw = name(r, h->value);
    char tcast[96];
    if (op == KL_REDUCE_SUM || op == KL_REDUCE_PROD || op == KL_REDUCE_MEAN)
        snprintf(tcast, sizeof tcast, "(%s)%s", p.rc.acc_type, p.t_raw);
    else
        snprintf(tcast, sizeof tcast, "%s", p.t_raw);
    kl_strbuf offb = {0};
    index_expr(r, &offb, h->target, 1);
    const char *off = offb.data ? offb.data : "0";
    kl_sb_printf(L, "    int64_t kn = 1, rn = 1;\n");
    for (int i = 0; i < nk; i++) kl_sb_printf(L, "    kn *= %s;\n", name(r, h->dims[kept[i]]));
    for (int i = 0; i < nr; i++) kl_sb_printf(L, "    rn *= %s;\n", name(r, h->dims[red[i]]));
    const char *value = op == KL_REDUCE_MEAN ? (p.rc.track_nan ? "(n ? NAN : rn ? a / (double)rn : NAN)"
                                                               : "(rn ? a / (double)rn : NAN)")
                                             : (p.rc.track_nan ? "(n ? NAN : a)" : "a");
    stored(p.final, sizeof p.final, out_t, value);
    snprintf(p.red_clause, sizeof p.red_clause, "reduction(%s:a)%s", p.rc.omp_op, p.rc.track_nan ? " reduction(|:n)" : "");
    combine(p.fold, sizeof p.fold, op, "a", tcast);
    if (p.rc.track_nan) snprintf(p.nanfold, sizeof p.nanfold, " n |= %s != %s;", tcast, tcast);
    p.blocked = nr > 0 && (op == KL_REDUCE_SUM || op == KL_REDUCE_MEAN) && (in_t == KL_FLOAT32 || in_t == KL_FLOAT16);
    int trailing = nr > 0;
    for (int i = 0; i < nr; i++) trailing &= red[i] == nk + i;
    if (trailing && !h->uses_loops) {
        p.body = bd;
        flat_reduce_kernel(L, &p);
        kl_sb_free(&offb);
        return KL_OK;
    }
    /* per-dim loops; a load at the input's linear index reads li, defined from them */
    kl_strbuf withli = {0};
    kl_sb_append(&withli, "        const int64_t li = ");
    loop_offset(r, &withli);
    kl_sb_printf(&withli, "; (void)li;\n%s", bd);
    const char *body_li = withli.data ? withli.data : "";
    if (nr == 0 || red[nr - 1] == rank - 1) {
        /* rows: the innermost input dim is reduced */
        for (int variant = 0; variant < 2; variant++) {
            int over_kept = variant == 0;
            kl_sb_printf(L, over_kept ? "    if (kn >= 16 || rn <= 32768) {\n" : "    } else {\n");
            if (over_kept && nk)
                kl_sb_printf(L, "    #pragma omp parallel for collapse(%d) if(kn * rn > 32768) schedule(static)\n", nk);
            for (int i = 0; i < nk; i++) open_loop(r, L, kept[i], 1 + i);
            kl_sb_printf(L, "    {\n        %s a = %s; int n = 0; (void)n;\n", p.rc.acc_type, p.rc.identity);
            for (int i = 0; i < nr; i++) {
                int innermost = i == nr - 1;
                if (innermost && p.blocked) {
                    /* float partial sums over short blocks, blocks summed in double */
                    const char *S = name(r, h->dims[red[i]]);
                    if (i == 0 && !over_kept)
                        kl_sb_printf(L, "    #pragma omp parallel for %s if(rn > 32768) schedule(static)\n", p.red_clause);
                    kl_sb_printf(L, "    for (int64_t blk = 0; blk < %s; blk += 1024) {\n", S);
                    kl_sb_printf(L, "        float ba = 0; const int64_t bend = blk + 1024 < %s ? blk + 1024 : %s;\n", S, S);
                    kl_sb_printf(L, "    #pragma omp simd reduction(+:ba)\n");
                    kl_sb_printf(L, "    for (int64_t i%d = blk; i%d < bend; i%d++)\n", red[i], red[i], red[i]);
                    kl_sb_printf(L, "    {\n%s        ba += %s;\n    }\n        a += ba;\n    }\n", body_li, p.t_raw);
                    break;
                }
                if (i == 0 && !over_kept)
                    kl_sb_printf(L, "    #pragma omp parallel for%s %s if(rn > 32768) schedule(static)\n",
                                 nr == 1 ? " simd" : "", p.red_clause);
                else if (innermost)
                    kl_sb_printf(L, "    #pragma omp simd %s\n", p.red_clause);
                open_loop(r, L, red[i], 2 + i);
            }
            if (!p.blocked) kl_sb_printf(L, "    {\n%s        %s%s\n    }\n", body_li, p.fold, p.nanfold);
            kl_sb_printf(L, "        out[%s] = %s;\n    }\n", off, p.final);
        }
        kl_sb_printf(L, "    }\n");
    } else {
        /* columns: the innermost input dim is kept; each task owns a chunk of it */
        int last = rank - 1;
        kl_sb_printf(L, "    const int64_t nlast = %s, nchunk = (nlast + 255) / 256;\n", name(r, h->dims[last]));
        kl_sb_printf(L, "    #pragma omp parallel for collapse(%d) if(kn * rn > 32768) schedule(static)\n", nk);
        for (int i = 0; i < nk - 1; i++) open_loop(r, L, kept[i], 1 + i);
        kl_sb_printf(L, "    for (int64_t chunk = 0; chunk < nchunk; chunk++) {\n");
        kl_sb_printf(L, "        %s acc[256]; int nan[256];\n", p.rc.acc_type);
        kl_sb_printf(L, "        const int64_t j0 = chunk * 256, jn = nlast - j0 < 256 ? nlast - j0 : 256;\n");
        kl_sb_printf(L, "        for (int64_t j = 0; j < jn; j++) { acc[j] = %s; nan[j] = 0; }\n", p.rc.identity);
        for (int i = 0; i < nr; i++) open_loop(r, L, red[i], 2 + i);
        kl_sb_printf(L, "        {\n        #pragma omp simd\n        for (int64_t j = 0; j < jn; j++) {\n");
        kl_sb_printf(L, "        const int64_t i%d = j0 + j;\n%s", last, body_li);
        kl_sb_printf(L, "        %s a = acc[j]; int n = nan[j]; (void)n;\n", p.rc.acc_type);
        kl_sb_printf(L, "        %s%s\n        acc[j] = a; nan[j] = n;\n        }\n        }\n", p.fold, p.nanfold);
        kl_sb_printf(L, "        for (int64_t j = 0; j < jn; j++) {\n            const int64_t i%d = j0 + j;\n", last);
        kl_sb_printf(L, "            const %s a = acc[j]; const int n = nan[j]; (void)n;\n", p.rc.acc_type);
        kl_sb_printf(L, "            out[%s] = %s;\n        }\n    }\n", off, p.final);
    }
    kl_sb_free(&withli);
    kl_sb_free(&offb);
    return KL_OK;
}

/* ---- scatter ---- */

static kl_status scatter_kernel(renderer *r, kl_strbuf *L, const char *bd)
{
    const kl_kd_head *h = &r->k->h;
    kl_reduce_op op = (kl_reduce_op)h->op;
    kl_dtype t = (kl_dtype)h->out_dtype;
    const char *T = kl_dtype_compute_ctype(t);
    const char *val = name(r, h->value), *off = name(r, h->target), *outside = name(r, h->skip);
    kl_sb_printf(L, "    int64_t on = 1;\n");
    for (int d = 0; d < h->out_rank; d++) kl_sb_printf(L, "    on *= %s;\n", name(r, h->out_dims[d]));
    kl_sb_printf(L, "    int64_t yn = 1;\n");
    for (int d = 0; d < h->rank; d++) kl_sb_printf(L, "    yn *= %s;\n", name(r, h->dims[d]));
    char start[96], update[320];
    stored(start, sizeof start, t, identity_of(op, t));
    kl_sb_printf(L, "    #pragma omp parallel for simd if(on > 32768) schedule(static)\n"
                    "    for (int64_t li = 0; li < on; li++) out[li] = %s;\n", start);
    /* the dims whose distinct values write distinct targets run in parallel,
     * no update atomic; with none, add and multiply are atomic, max and min serial */
    int order[KL_MAX_DIMS], n_disjoint = 0, n = 0;
    for (int d = 0; d < h->rank; d++) if (h->disjoint >> d & 1) order[n++] = d;
    n_disjoint = n;
    for (int d = 0; d < h->rank; d++) if (!(h->disjoint >> d & 1)) order[n++] = d;
    int atomic = !n_disjoint && t != KL_FLOAT16 && t != KL_BFLOAT16 && op != KL_REDUCE_MAX && op != KL_REDUCE_MIN;
    if (n_disjoint)
        kl_sb_printf(L, "    #pragma omp parallel for collapse(%d) if(yn > 32768) schedule(static)\n", n_disjoint);
    else if (atomic && h->rank > 0)
        kl_sb_printf(L, "    #pragma omp parallel for collapse(%d) if(yn > 32768) schedule(static)\n", h->rank);
    for (int j = 0; j < h->rank; j++) {
        int d = order[j];
        kl_sb_indent(L, 4 + 4 * j);
        kl_sb_printf(L, "for (int64_t i%d = 0; i%d < %s; i%d++)\n", d, d, name(r, h->dims[d]), d);
    }
    kl_sb_printf(L, "    {\n%s", bd);
    kl_sb_printf(L, "        if (!(%s)) {\n", outside);
    char tgt[96], now[112];
    snprintf(tgt, sizeof tgt, "out[%s]", off);
    if (t == KL_FLOAT16) snprintf(now, sizeof now, "(float)out[%s]", off);
    else if (t == KL_BFLOAT16) snprintf(now, sizeof now, "kl_bf16_load(out[%s])", off);
    else snprintf(now, sizeof now, "%s", tgt);
    if (atomic) kl_sb_printf(L, "            #pragma omp atomic\n");
    switch (op) {
    case KL_REDUCE_SUM:
        if (t == KL_BOOL) kl_sb_printf(L, "            %s |= %s;\n", tgt, val);
        else if (atomic) kl_sb_printf(L, "            %s += %s;\n", tgt, val);
        else {
            char sum[160];
            snprintf(sum, sizeof sum, "%s + %s", now, val);
            stored(update, sizeof update, t, sum);
            kl_sb_printf(L, "            %s = %s;\n", tgt, update);
        }
        break;
    case KL_REDUCE_PROD:
        if (t == KL_BOOL) kl_sb_printf(L, "            %s &= %s;\n", tgt, val);
        else if (atomic) kl_sb_printf(L, "            %s *= %s;\n", tgt, val);
        else {
            char prod[160];
            snprintf(prod, sizeof prod, "%s * %s", now, val);
            stored(update, sizeof update, t, prod);
            kl_sb_printf(L, "            %s = %s;\n", tgt, update);
        }
        break;
    case KL_REDUCE_ANY: kl_sb_printf(L, "            %s |= (uint8_t)(%s != 0);\n", tgt, val); break;
    case KL_REDUCE_ALL: kl_sb_printf(L, "            %s &= (uint8_t)(%s != 0);\n", tgt, val); break;
    case KL_REDUCE_XOR: kl_sb_printf(L, "            %s ^= (uint8_t)(%s != 0);\n", tgt, val); break;
    case KL_REDUCE_BIT_AND: kl_sb_printf(L, "            %s &= %s;\n", tgt, val); break;
    case KL_REDUCE_BIT_OR: kl_sb_printf(L, "            %s |= %s;\n", tgt, val); break;
    case KL_REDUCE_BIT_XOR: kl_sb_printf(L, "            %s ^= %s;\n", tgt, val); break;
    default: {
        const char *cmp = op == KL_REDUCE_MAX ? ">" : "<";
        kl_sb_printf(L, "            const %s cur = %s;\n", T, now);
        char pick[192];
        snprintf(pick, sizeof pick, "(%s %s cur || %s != %s) ? %s : cur", val, cmp, val, val, val);
        stored(update, sizeof update, t, pick);
        kl_sb_printf(L, "            %s = %s;\n", tgt, update);
    }
    }
    kl_sb_printf(L, "        }\n    }\n");
    return KL_OK;
}

/* ---- the kernel ---- */

static const char *op_name(int kind, int param)
{
    if (kind == KL_OP_UNARY) return kl_unary_name((kl_unary_op)param);
    if (kind == KL_OP_BINARY) return kl_binary_name((kl_binary_op)param);
    return kl_op_kind_name((kl_op_kind)kind);
}

kl_status kl_cpu_render(kl_backend *b, const kl_kdesc *k, char **out)
{
    (void)b;
    *out = NULL;
    const kl_kd_head *h = &k->h;
    renderer r = {k, NULL, malloc((size_t)(h->n_instrs ? h->n_instrs : 1) * sizeof *r.names)};
    uint8_t *need = calloc((size_t)(h->n_instrs ? h->n_instrs : 1), 1);
    if (!r.names || !need) {
        free(r.names);
        free(need);
        return kl_error(KL_ERR_MEMORY, "out of memory rendering a kernel");
    }
    for (int32_t i = 0; i < h->n_instrs; i++) {
        const kl_instr *in = &k->instrs[i];
        switch (in->kind) {
        case KL_I_LOOP: snprintf(r.names[i], sizeof r.names[i], "i%d", in->a); break;
        case KL_I_LINEAR: snprintf(r.names[i], sizeof r.names[i], "li"); break;
        case KL_I_CONST:
            if (in->value == INT64_MIN) snprintf(r.names[i], sizeof r.names[i], "INT64_MIN");
            else snprintf(r.names[i], sizeof r.names[i], "INT64_C(%lld)", (long long)in->value);
            break;
        case KL_I_IARG: snprintf(r.names[i], sizeof r.names[i], "k%d", in->a); break;
        case KL_I_FARG: snprintf(r.names[i], sizeof r.names[i], "f%d", in->a); break;
        default: snprintf(r.names[i], sizeof r.names[i], "t%d", i);
        }
    }
    mark(k, h->value, need);
    if (h->kind == KL_KD_SCATTER) { mark(k, h->target, need); mark(k, h->skip, need); }
    for (int i = 0; i < h->n_checks; i++) mark(k, k->checks[i], need);
    kl_strbuf bd = {0}, L = {0}, src = {0};
    kl_status s = body(&r, need, &bd);
    const char *bdt = bd.data ? bd.data : "";
    if (s == KL_OK) {
        if (h->kind == KL_KD_MAP) s = map_kernel(&r, &L, bdt);
        else if (h->kind == KL_KD_REDUCE) s = reduce_kernel(&r, &L, bdt);
        else s = scatter_kernel(&r, &L, bdt);
    }
    if (s == KL_OK) {
        const char *kind = h->kind == KL_KD_MAP ? "map" : h->kind == KL_KD_SCATTER ? "scatter"
                                                        : kl_reduce_name((kl_reduce_op)h->op);
        kl_sb_printf(&src, "/* kiln kernel (%s):\n", kind);
        for (int i = 0; i < h->n_locals; i++)
            kl_sb_printf(&src, " *   v%d: %s %s%s\n", i, kl_dtype_name((kl_dtype)k->locals[i].dtype),
                         k->locals[i].loaded ? "input" : op_name(k->locals[i].kind, k->locals[i].param),
                         k->locals[i].mean ? " (mean)" : "");
        kl_sb_printf(&src, " */\n");
        const char *T = kl_dtype_ctype((kl_dtype)h->out_dtype);
        kl_sb_printf(&src, "void kl_kernel(void *const *buf, const int64_t *iarg, const double *farg)\n{\n"
                           "    (void)iarg; (void)farg;\n    %s *restrict out = (%s *)buf[0]; /* v0 */\n", T, T);
        for (int i = 1; i < h->n_bufs; i++) {
            const char *bt = kl_dtype_ctype((kl_dtype)k->buf_dtype[i]);
            kl_sb_printf(&src, "    const %s *restrict b%d = (const %s *)buf[%d]; /* v%d */\n", bt, i, bt, i,
                         k->buf_local[i]);
        }
        for (int i = 0; i < h->n_iargs; i++) kl_sb_printf(&src, "    const int64_t k%d = iarg[%d];\n", i, i);
        for (int i = 0; i < h->n_fargs; i++) kl_sb_printf(&src, "    const double f%d = farg[%d];\n", i, i);
        kl_sb_append(&src, L.data ? L.data : "");
        kl_sb_append(&src, "}\n");
        if (src.failed || L.failed || bd.failed) s = kl_error(KL_ERR_MEMORY, "out of memory rendering a kernel");
        else *out = kl_sb_take(&src);
    }
    kl_sb_free(&src);
    kl_sb_free(&L);
    kl_sb_free(&bd);
    free(r.names);
    free(need);
    return s;
}
