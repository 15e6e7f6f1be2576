/* render_stmt.c: instructions as C-family statements (see render_stmt.h).
 * The text is the same for every dialect but for half precision, whose
 * loads and stores go through the CUDA prelude's conversions there. */
#include "codegen/render_stmt.h"
#include "core/dtype.h"
#include "core/error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef kl_stmt_printer renderer;

static const char *name(const renderer *r, int32_t i) { return r->names[i]; }

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
        if (t == KL_BOOL) kl_sb_printf(s, "(%s)!%s", T, x);
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
        kl_sb_printf(s, "(%s)(%s %s %s)", kl_dtype_compute_ctype(KL_BOOL), a, text[op - KL_LESS], b);
        return 1;
    }
    if (is_logical(op)) {
        static const char *const logic[] = {"&", "|", "^"};
        kl_sb_printf(s, "(%s)((%s != 0) %s (%s != 0))", kl_dtype_compute_ctype(KL_BOOL), a, logic[op - KL_LOGICAL_AND], b);
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
        /* | not ||: both sides are cheap, and a branch on data mispredicts
         * (ReLU's sign is a coin toss: measured 3-10x on pooling kernels) */
        case KL_MAXIMUM: kl_sb_printf(s, "(((%s > %s) | (%s != %s)) ? %s : %s)", a, b, a, a, a, b); return 1;
        case KL_MINIMUM: kl_sb_printf(s, "(((%s < %s) | (%s != %s)) ? %s : %s)", a, b, a, a, a, b); return 1;
        default: return 0;
        }
    }
    int is_bool = t == KL_BOOL;
    switch (op) {
    case KL_ADD:
        if (is_bool) kl_sb_printf(s, "(%s)(%s | %s)", T, a, b);
        else kl_sb_printf(s, "(%s)(%s + %s)", T, a, b);
        return 1;
    case KL_SUB: kl_sb_printf(s, "(%s)(%s - %s)", T, a, b); return 1;
    case KL_MUL:
        if (is_bool) kl_sb_printf(s, "(%s)(%s & %s)", T, a, b);
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
void kl_stmt_index_expr(const renderer *r, kl_strbuf *s, int32_t i, int deep)
{
    const kl_instr *in = &r->k->instrs[i];
    if (!is_index_kind(in->kind)) { kl_sb_append(s, name(r, i)); return; }
#define OPERAND(j) (deep ? kl_stmt_index_expr(r, s, (j), 1) : kl_sb_append(s, name(r, (j))))
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
        if (in->op == KL_EXB_AND || in->op == KL_EXB_OR) {
            /* without short-circuit: a bounds test's branch would follow the data */
            kl_sb_append(s, "(int64_t)((");
            OPERAND(in->a);
            kl_sb_printf(s, " != 0) %s (", in->op == KL_EXB_AND ? "&" : "|");
            OPERAND(in->b);
            kl_sb_append(s, " != 0))");
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
static kl_status statement(const renderer *r, kl_strbuf *s, int32_t i)
{
    const kl_instr *in = &r->k->instrs[i];
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
        kl_stmt_index_expr(r, s, i, 0);
        kl_sb_append(s, ";\n");
        return KL_OK;
    }
    kl_sb_printf(s, "        const %s %s = ", T, name(r, i));
    switch (in->kind) {
    case KL_I_SELECT: kl_sb_printf(s, "(%s != 0 ? %s : %s)", a, b, name(r, in->c)); break;
    case KL_I_LOAD:
        if (r->k->buf_dtype[in->a] == KL_FLOAT16 && r->dialect == KL_DIALECT_CUDA)
            kl_sb_printf(s, "kl_f16_load(b%d[%s])", in->a, b);
        else if (r->k->buf_dtype[in->a] == KL_FLOAT16) kl_sb_printf(s, "(float)b%d[%s]", in->a, b);
        else if (r->k->buf_dtype[in->a] == KL_BFLOAT16) kl_sb_printf(s, "kl_bf16_load(b%d[%s])", in->a, b);
        else kl_sb_printf(s, "b%d[%s]", in->a, b);
        break;
    case KL_I_CONVERT:
        if (t == KL_BOOL) kl_sb_printf(s, "(%s)(%s != 0)", T, a);
        else kl_sb_printf(s, "(%s)%s", T, a);
        break;
    case KL_I_UNARY:
        if (in->op == KL_LOGICAL_NOT) kl_sb_printf(s, "(%s)(%s == 0)", T, a);
        else if (kl_dtype_is_float(t)) float_unary(s, (kl_unary_op)in->op, a, t);
        else int_unary(s, (kl_unary_op)in->op, a, t);
        break;
    case KL_I_BINARY:
        if (!binary_text(s, (kl_binary_op)in->op, a, b, (kl_dtype)in->aux))
            return kl_error(KL_ERR_TYPE, "%s: no code for %s", kl_binary_name((kl_binary_op)in->op),
                            kl_dtype_name((kl_dtype)in->aux));
        break;
    case KL_I_SCALAR:
        if (t == KL_BOOL) kl_sb_printf(s, "(%s)(%s != 0)", T, a);
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

kl_status kl_stmt_body(const renderer *r, kl_strbuf *out)
{
    kl_status s = KL_OK;
    for (int32_t i = 0; i < r->k->h.n_instrs && s == KL_OK; i++) {
        if (!r->need[i]) continue;
        int kind = r->k->instrs[i].kind;
        if (kind == KL_I_LOOP || kind == KL_I_LINEAR || kind == KL_I_CONST || kind == KL_I_IARG || kind == KL_I_FARG)
            continue;
        s = statement(r, out, i);
    }
    return s;
}

/* The linear offset of the loop indexes over the iteration space. */
void kl_stmt_loop_offset(const renderer *r, kl_strbuf *s)
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

void kl_stmt_product(const renderer *r, kl_strbuf *s, const char *var, const int32_t *dims, int n)
{
    kl_sb_printf(s, "    int64_t %s = 1;\n", var);
    for (int d = 0; d < n; d++) kl_sb_printf(s, "    %s *= %s;\n", var, name(r, dims[d]));
}

_Static_assert(KL_MAX_SIBLINGS <= 3, "the renderers name and size up to four outputs");

const char *kl_stmt_out_suffix(int j)
{
    static const char *const s[] = {"", "1", "2", "3"};
    return j >= 0 && j <= KL_MAX_SIBLINGS ? s[j] : "?";
}

void kl_stmt_map_stores(const renderer *r, kl_strbuf *s)
{
    const kl_kd_head *h = &r->k->h;
    for (int j = 0; j <= h->n_extra; j++) {
        char value[160];
        kl_stmt_stored(r, value, sizeof value, (kl_dtype)r->k->buf_dtype[j], name(r, j ? h->extra_value[j - 1] : h->value));
        kl_sb_printf(s, "        out%s[li] = %s;\n", kl_stmt_out_suffix(j), value);
    }
}

/* A cast, or for the 16-bit floats stored as bits the prelude's rounding
 * conversion (float16 in C is the compiler's _Float16: a cast). */
void kl_stmt_stored(const renderer *r, char *buf, size_t n, kl_dtype t, const char *expr)
{
    if (t == KL_BFLOAT16) snprintf(buf, n, "kl_bf16_store((float)(%s))", expr);
    else if (t == KL_FLOAT16 && r->dialect == KL_DIALECT_CUDA) snprintf(buf, n, "kl_f16_store((float)(%s))", expr);
    else snprintf(buf, n, "(%s)(%s)", kl_stmt_buffer_type(r, t), expr);
}

const char *kl_stmt_buffer_type(const renderer *r, kl_dtype t)
{
    if (t == KL_FLOAT16 && r->dialect == KL_DIALECT_CUDA) return "uint16_t";
    return kl_dtype_ctype(t);
}

const char *kl_stmt_identity(kl_reduce_op op, kl_dtype t)
{
    static const char *const lowest[KL_DTYPE_COUNT] = {"0", "INT8_MIN", "0", "INT16_MIN", "INT32_MIN", "INT64_MIN", "-INFINITY", "-INFINITY", "-INFINITY", "-INFINITY"};
    static const char *const highest[KL_DTYPE_COUNT] = {"1", "INT8_MAX", "UINT8_MAX", "INT16_MAX", "INT32_MAX", "INT64_MAX", "INFINITY", "INFINITY", "INFINITY", "INFINITY"};
    switch (op) {
    case KL_REDUCE_PROD: case KL_REDUCE_ALL: return "1";
    case KL_REDUCE_BIT_AND: return t == KL_BOOL ? "1" : "-1";  /* every bit set */
    case KL_REDUCE_MAX: case KL_REDUCE_ARGMAX: return lowest[t];
    case KL_REDUCE_MIN: case KL_REDUCE_ARGMIN: return highest[t];
    default: return "0";
    }
}

/* The statement folding value t into accumulator a. */
void kl_stmt_combine(char *out, size_t size, kl_reduce_op op, const char *a, const char *t)
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

void kl_stmt_row_extents(const kl_stmt_printer *p, kl_strbuf *s)
{
    const kl_kd_head *h = &p->k->h;
    int d = 0;
    while (d < h->rank - 1 && !(h->reduced >> d & 1)) d++;
    kl_stmt_product(p, s, "outer", h->dims, d);
    kl_stmt_product(p, s, "inner", h->dims + d + 1, h->rank - d - 1);
    kl_sb_printf(s, "    const int64_t axis = %s;\n", kl_stmt_name(p, h->dims[d]));
}

void kl_stmt_layernorm_value(const kl_kd_head *h, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "(x[j] - m) * rs");
    if (h->op & 1) n += (size_t)snprintf(out + n, size - n, " * b2[j]");
    if (h->op & 2) snprintf(out + n, size - n, " + b%d[j]", h->op & 1 ? 3 : 2);
}

void kl_stmt_arg_fold(char *out, size_t size, kl_reduce_op op, kl_dtype in, const char *t, const char *rank)
{
    /* strictly beyond: a tie keeps the first; the first NaN wins and stays.
     * Selects, not a branch: on random data a branch mispredicts about
     * every other element (measured 6x slower on 2x2 pooling windows). */
    const char *cmp = op == KL_REDUCE_ARGMAX ? ">" : "<";
    if (kl_dtype_is_float(in))
        snprintf(out, size, "{ const int kl_b = (%s %s a) | ((%s != %s) & (a == a)); a = kl_b ? %s : a; "
                            "ai = kl_b ? (int32_t)(%s) : ai; }", t, cmp, t, t, t, rank);
    else
        snprintf(out, size, "{ const int kl_b = (%s %s a); a = kl_b ? %s : a; ai = kl_b ? (int32_t)(%s) : ai; }",
                 t, cmp, t, rank);
}

void kl_stmt_fold_operand(char *out, size_t size, kl_reduce_op op, const char *acc_type, const char *raw)
{
    if (op == KL_REDUCE_SUM || op == KL_REDUCE_PROD || op == KL_REDUCE_MEAN) snprintf(out, size, "(%s)%s", acc_type, raw);
    else snprintf(out, size, "%s", raw);
}

void kl_stmt_reduce_result(char *out, size_t size, kl_reduce_op op, int track_nan, const char *acc)
{
    if (op == KL_REDUCE_MEAN)
        snprintf(out, size, track_nan ? "(n ? NAN : rn ? %s / (double)rn : NAN)" : "(rn ? %s / (double)rn : NAN)", acc);
    else
        snprintf(out, size, track_nan ? "(n ? NAN : %s)" : "%s", acc);
}

kl_reduce_acc kl_stmt_reduce_acc(kl_reduce_op op, kl_dtype in)
{
    kl_reduce_acc rc = {kl_dtype_is_float(in) ? "double" : "int64_t", "0", 0};
    switch (op) {
    case KL_REDUCE_PROD: rc.identity = "1"; break;
    case KL_REDUCE_MAX: case KL_REDUCE_MIN:
        rc.acc_type = kl_dtype_compute_ctype(in);
        rc.identity = kl_stmt_identity(op, in);
        rc.track_nan = kl_dtype_is_float(in);
        break;
    case KL_REDUCE_ARGMAX: case KL_REDUCE_ARGMIN: /* the extreme so far; its position apart */
        rc.acc_type = kl_dtype_compute_ctype(in);
        rc.identity = kl_stmt_identity(op, in);
        break;
    case KL_REDUCE_ANY: case KL_REDUCE_XOR: rc.acc_type = "int"; break;
    case KL_REDUCE_ALL: rc.acc_type = "int"; rc.identity = "1"; break;
    case KL_REDUCE_BIT_AND: rc.identity = kl_stmt_identity(op, in); break;
    default: break;
    }
    return rc;
}

static const char *op_name(int kind, int param)
{
    if (kind == KL_OP_UNARY) return kl_unary_name((kl_unary_op)param);
    if (kind == KL_OP_BINARY) return kl_binary_name((kl_binary_op)param);
    return kl_op_kind_name((kl_op_kind)kind);
}

void kl_stmt_header_comment(const kl_kdesc *k, kl_strbuf *s)
{
    const kl_kd_head *h = &k->h;
    const char *kind = h->kind == KL_KD_MAP ? "map" : h->kind == KL_KD_SCATTER ? "scatter"
                                                    : kl_reduce_name((kl_reduce_op)h->op);
    kl_sb_printf(s, "/* kiln kernel (%s):\n", kind);
    for (int i = 0; i < h->n_locals; i++)
        kl_sb_printf(s, " *   v%d: %s %s%s\n", i, kl_dtype_name((kl_dtype)k->locals[i].dtype),
                     k->locals[i].loaded ? "input" : op_name(k->locals[i].kind, k->locals[i].param),
                     k->locals[i].mean ? " (mean)" : "");
    kl_sb_printf(s, " */\n");
}

kl_status kl_stmt_init(renderer *r, const kl_kdesc *k, kl_dialect dialect)
{
    const kl_kd_head *h = &k->h;
    size_t n = (size_t)(h->n_instrs ? h->n_instrs : 1);
    r->k = k;
    r->dialect = dialect;
    r->names = malloc(n * sizeof *r->names);
    r->need = calloc(n, 1);
    if (!r->names || !r->need) {
        kl_stmt_free(r);
        return kl_error(KL_ERR_MEMORY, "out of memory rendering a kernel");
    }
    for (int32_t i = 0; i < h->n_instrs; i++) {
        const kl_instr *in = &k->instrs[i];
        switch (in->kind) {
        case KL_I_LOOP: snprintf(r->names[i], sizeof r->names[i], "i%d", in->a); break;
        case KL_I_LINEAR: snprintf(r->names[i], sizeof r->names[i], "li"); break;
        case KL_I_CONST:
            if (in->value == INT64_MIN) snprintf(r->names[i], sizeof r->names[i], "INT64_MIN");
            else snprintf(r->names[i], sizeof r->names[i], "INT64_C(%lld)", (long long)in->value);
            break;
        case KL_I_IARG: snprintf(r->names[i], sizeof r->names[i], "k%d", in->a); break;
        case KL_I_FARG: snprintf(r->names[i], sizeof r->names[i], "f%d", in->a); break;
        default: snprintf(r->names[i], sizeof r->names[i], "t%d", i);
        }
    }
    mark(k, h->value, r->need);
    for (int j = 0; j < h->n_extra; j++) mark(k, h->extra_value[j], r->need);
    if (h->kind == KL_KD_SCATTER) { mark(k, h->target, r->need); mark(k, h->skip, r->need); }
    for (int i = 0; i < h->n_checks; i++) mark(k, k->checks[i], r->need);
    return KL_OK;
}

void kl_stmt_free(renderer *r)
{
    free(r->names);
    free(r->need);
    r->names = NULL;
    r->need = NULL;
}

void kl_stmt_declare_args(const renderer *r, kl_strbuf *s, const char *indent, const char *buf, const char *iarg,
                          const char *farg)
{
    const kl_kdesc *k = r->k;
    const kl_kd_head *h = &k->h;
    const char *restrict_ = r->dialect == KL_DIALECT_CUDA ? "__restrict__" : "restrict";
    const char *T = kl_stmt_buffer_type(r, (kl_dtype)h->out_dtype);
    kl_sb_printf(s, "%s%s *%s out = (%s *)%s[0]; /* v0 */\n", indent, T, restrict_, T, buf);
    for (int i = 1; i < h->n_bufs; i++) {
        const char *bt = kl_stmt_buffer_type(r, (kl_dtype)k->buf_dtype[i]);
        if (i <= h->n_extra) /* a sibling's output */
            kl_sb_printf(s, "%s%s *%s out%d = (%s *)%s[%d]; /* v%d */\n", indent, bt, restrict_, i, bt, buf, i,
                         k->buf_local[i]);
        else
            kl_sb_printf(s, "%sconst %s *%s b%d = (const %s *)%s[%d]; /* v%d */\n", indent, bt, restrict_, i, bt, buf,
                         i, k->buf_local[i]);
    }
    for (int i = 0; i < h->n_iargs; i++) kl_sb_printf(s, "%sconst int64_t k%d = %s[%d];\n", indent, i, iarg, i);
    for (int i = 0; i < h->n_fargs; i++) kl_sb_printf(s, "%sconst double f%d = %s[%d];\n", indent, i, farg, i);
}

kl_status kl_stmt_group_form(const kl_kdesc *k, kl_dialect dialect, kl_group_printer print, char **out)
{
    *out = NULL;
    const kl_kd_head *h = &k->h;
    if (h->kind != KL_KD_MAP || h->uses_loops || h->n_checks) return KL_OK;
    kl_stmt_printer p;
    KL_TRY(kl_stmt_init(&p, k, dialect));
    kl_strbuf bd = {0}, stores = {0}, src = {0};
    kl_status s = kl_stmt_body(&p, &bd);
    if (s == KL_OK) {
        kl_stmt_map_stores(&p, &stores);
        kl_stmt_header_comment(k, &src);
        kl_sb_append(&src, "/* a group: iarg[0] members, iarg[1..] where each one's elements end, then\n"
                           " * each one's integer arguments; buffers and float arguments member by member */\n");
        print(&p, &src, bd.data ? bd.data : "", stores.data ? stores.data : "");
        if (src.failed || bd.failed || stores.failed) s = kl_error(KL_ERR_MEMORY, "out of memory rendering a kernel");
        else *out = kl_sb_take(&src);
    }
    kl_sb_free(&src);
    kl_sb_free(&stores);
    kl_sb_free(&bd);
    kl_stmt_free(&p);
    return s;
}
