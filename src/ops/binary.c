/* binary.c: the binary element-wise family with NumPy broadcasting: dtype
 * rules, scalar C expressions, derivatives, and the unbroadcast helper that
 * sums a gradient back to an operand's shape. */
#include "ops/ops.h"
#include "ops/builder.h"
#include "core/dtype.h"
#include <stdio.h>
#include <string.h>

static void shape_text(const kl_var *v, char *buf, size_t size)
{
    size_t pos = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < v->ndim && pos < size; i++)
        pos += (size_t)snprintf(buf + pos, size - pos, i ? ", %lld" : "%lld", (long long)v->shape[i]);
    if (pos < size) snprintf(buf + pos, size - pos, v->ndim == 1 ? ",)" : ")");
}

/* NumPy's broadcast of a list of shapes. */
static kl_status broadcast_shapes(const char *op, int n, kl_var *const *vs, int *ndim, int64_t *shape)
{
    *ndim = 0;
    for (int i = 0; i < n; i++) if (vs[i]->ndim > *ndim) *ndim = vs[i]->ndim;
    for (int d = 0; d < *ndim; d++) {
        int64_t size = 1;
        for (int i = 0; i < n; i++) {
            int k = d - (*ndim - vs[i]->ndim);
            if (k < 0) continue;
            int64_t s = vs[i]->shape[k];
            if (s == size || s == 1) continue;
            if (size != 1) {
                char sa[128], sb[128];
                shape_text(vs[0], sa, sizeof sa);
                shape_text(vs[i], sb, sizeof sb);
                return kl_error(KL_ERR_VALUE, "%s: shapes %s and %s cannot be broadcast together (axis %d: %lld vs %lld)",
                                op, sa, sb, d, (long long)size, (long long)s);
            }
            size = s;
        }
        shape[d] = size;
    }
    return KL_OK;
}

static int is_comparison(kl_binary_op op) { return op >= KL_LESS && op <= KL_NOT_EQUAL; }
static int is_logical(kl_binary_op op) { return op >= KL_LOGICAL_AND && op <= KL_LOGICAL_XOR; }
static int is_bitwise(kl_binary_op op) { return op >= KL_BITWISE_AND && op <= KL_RIGHT_SHIFT; }

/* The dtype both operands are converted to before the op. */
static kl_status compute_dtype(kl_binary_op op, kl_dtype a, kl_dtype b, kl_dtype *out)
{
    kl_dtype p;
    KL_TRY(kl_dtype_promote(a, b, &p));
    if (is_bitwise(op) && kl_dtype_is_float(p))
        return kl_error(KL_ERR_TYPE, "%s: not defined for %s and %s (integer or bool operands needed)",
                        kl_binary_name(op), kl_dtype_name(a), kl_dtype_name(b));
    if (p == KL_BOOL) {
        if (op == KL_FLOOR_DIVIDE || op == KL_MOD || op == KL_POW || op == KL_LEFT_SHIFT || op == KL_RIGHT_SHIFT) p = KL_INT8;
    }
    if ((op == KL_DIV || op == KL_ARCTAN2) && !kl_dtype_is_float(p)) p = KL_FLOAT32;
    *out = p;
    return KL_OK;
}

kl_status kl_binary(kl_binary_op op, kl_var *a, kl_var *b, kl_var **out)
{
    KL_ARG(out, "kl_binary", "out");
    *out = NULL;
    if ((unsigned)op >= KL_BINARY_COUNT) return kl_error(KL_ERR_VALUE, "binary: invalid op code %d", (int)op);
    KL_VAR_ARG(a, kl_binary_name(op), "input a");
    KL_VAR_ARG(b, kl_binary_name(op), "input b");
    if (a->ctx != b->ctx) return kl_error(KL_ERR_VALUE, "%s: operands belong to different contexts", kl_binary_name(op));
    /* Jittor's bool subtraction: a - b on bools is a != b */
    if (op == KL_SUB && a->dtype == KL_BOOL && b->dtype == KL_BOOL) op = KL_LOGICAL_XOR;
    kl_dtype ct;
    KL_TRY(compute_dtype(op, a->dtype, b->dtype, &ct));
    kl_var *ins[2] = {a, b};
    int ndim;
    int64_t shape[KL_MAX_DIMS];
    KL_TRY(broadcast_shapes(kl_binary_name(op), 2, ins, &ndim, shape));
    kl_dtype dtype = (is_comparison(op) || is_logical(op)) ? KL_BOOL : ct;
    kl_op o = {.kind = KL_OP_BINARY, .n_inputs = 2, .inputs = {a, b}, .p.binary = op};
    return kl_var_new(a->ctx, dtype, ndim, shape, &o, out);
}

kl_status kl_where(kl_var *cond, kl_var *a, kl_var *b, kl_var **out)
{
    KL_ARG(out, "kl_where", "out");
    *out = NULL;
    KL_VAR_ARG(cond, "where", "cond");
    KL_VAR_ARG(a, "where", "input a");
    KL_VAR_ARG(b, "where", "input b");
    if (cond->ctx != a->ctx || a->ctx != b->ctx) return kl_error(KL_ERR_VALUE, "where: operands belong to different contexts");
    kl_dtype dtype;
    KL_TRY(kl_dtype_promote(a->dtype, b->dtype, &dtype));
    kl_var *ins[3] = {cond, a, b};
    int ndim;
    int64_t shape[KL_MAX_DIMS];
    KL_TRY(broadcast_shapes("where", 3, ins, &ndim, shape));
    kl_op o = {.kind = KL_OP_WHERE, .n_inputs = 3, .inputs = {cond, a, b}};
    return kl_var_new(a->ctx, dtype, ndim, shape, &o, out);
}

int32_t kl_binary_lower(kl_kdesc *k, kl_var *v, const kl_coords *c)
{
    kl_binary_op op = v->op.p.binary;
    kl_var *a = v->op.inputs[0], *b = v->op.inputs[1];
    kl_coords ca = kl_lower_broadcast_coords(k, c, v, a);
    kl_coords cb = kl_lower_broadcast_coords(k, c, v, b);
    int32_t ta = kl_lower(k, a, &ca);
    int32_t tb = kl_lower(k, b, &cb);
    kl_dtype ct;
    if (compute_dtype(op, a->dtype, b->dtype, &ct) != KL_OK) return kl_kd_fail(k, KL_ERR_TYPE);
    int32_t xa = kl_lower_convert(k, ta, a->dtype, ct), xb = kl_lower_convert(k, tb, b->dtype, ct);
    if (xa < 0 || xb < 0) return -1;
    kl_instr in = {KL_I_BINARY, (uint8_t)v->dtype, (uint8_t)ct, 0, op, xa, xb, -1, -1, -1, 0};
    return kl_kd_add(k, &in);
}

int32_t kl_where_lower(kl_kdesc *k, kl_var *v, const kl_coords *c)
{
    kl_var *cond = v->op.inputs[0], *a = v->op.inputs[1], *b = v->op.inputs[2];
    kl_coords cc = kl_lower_broadcast_coords(k, c, v, cond);
    kl_coords ca = kl_lower_broadcast_coords(k, c, v, a);
    kl_coords cb = kl_lower_broadcast_coords(k, c, v, b);
    int32_t tc = kl_lower(k, cond, &cc);
    int32_t ta = kl_lower_convert(k, kl_lower(k, a, &ca), a->dtype, v->dtype);
    int32_t tb = kl_lower_convert(k, kl_lower(k, b, &cb), b->dtype, v->dtype);
    return kl_kd_op(k, KL_I_SELECT, v->dtype, 0, tc, ta, tb);
}

kl_status kl_scalar_like(kl_var *like, kl_dtype dtype, double value, kl_var **out)
{
    return kl_full(like->ctx, dtype, 0, NULL, value, out);
}

kl_status kl_binary_take(kl_binary_op op, kl_var *a, kl_var *b, kl_var **out)
{
    kl_status s = kl_binary(op, a, b, out);
    kl_var_release(a);
    kl_var_release(b);
    return s;
}

kl_status kl_unbroadcast(kl_var *g, kl_var *to, kl_var **out)
{
    kl_builder b = {0};
    int dims[KL_MAX_DIMS], n = 0, lead = g->ndim - to->ndim;
    for (int d = 0; d < g->ndim; d++)
        if (d < lead || (to->shape[d - lead] == 1 && g->shape[d] != 1)) dims[n++] = d;
    kl_var *r = g;
    if (n) r = kb_reshape(&b, kb_reduce(&b, KL_REDUCE_SUM, g, n, dims, 1), to->ndim, to->shape);
    else if (g->ndim != to->ndim) r = kb_reshape(&b, g, to->ndim, to->shape);
    r = kb_cast(&b, r, to->dtype);
    return kb_finish(&b, r, out);
}

kl_status kl_binary_backward(kl_var *v, int k, kl_var *dv, kl_var **out)
{
    kl_var *a = v->op.inputs[0], *bb = v->op.inputs[1];
    kl_var *x = v->op.inputs[k];
    *out = NULL;
    if (!kl_dtype_is_float(x->dtype) || !kl_dtype_is_float(v->dtype)) return KL_OK;
    kl_builder b = {0};
#define MUL(p, q) kb_binary(&b, KL_MUL, p, q)
#define DIV(p, q) kb_binary(&b, KL_DIV, p, q)
#define C(value) kb_scalar(&b, v, value)
#define F(p) kb_cast(&b, p, v->dtype)
    kl_var *g = NULL;
    switch (v->op.p.binary) {
    case KL_ADD: g = dv; break;
    case KL_SUB: g = k == 0 ? dv : kb_unary(&b, KL_NEG, dv); break;
    case KL_MUL: g = MUL(dv, F(k == 0 ? bb : a)); break;
    case KL_DIV: g = k == 0 ? DIV(dv, F(bb)) : kb_unary(&b, KL_NEG, DIV(MUL(dv, v), F(bb))); break;
    case KL_POW:
        if (k == 0) g = MUL(dv, MUL(F(bb), kb_binary(&b, KL_POW, F(a), kb_binary(&b, KL_SUB, F(bb), C(1)))));
        else g = MUL(dv, MUL(v, kb_where(&b, kb_binary(&b, KL_GREATER, a, C(0)), kb_unary(&b, KL_LOG, F(a)), C(0))));
        break;
    case KL_MAXIMUM: case KL_MINIMUM: {
        kl_binary_op wins = v->op.p.binary == KL_MAXIMUM ? KL_GREATER : KL_LESS;
        kl_var *mine = k == 0 ? a : bb, *other = k == 0 ? bb : a;
        kl_var *share = kb_binary(&b, KL_ADD, F(kb_binary(&b, wins, mine, other)),
                                  MUL(C(0.5), F(kb_binary(&b, KL_EQUAL, mine, other))));
        g = MUL(dv, share);
        break;
    }
    case KL_ARCTAN2: {
        kl_var *den = kb_binary(&b, KL_ADD, MUL(F(a), F(a)), MUL(F(bb), F(bb)));
        g = k == 0 ? DIV(MUL(dv, F(bb)), den) : kb_unary(&b, KL_NEG, DIV(MUL(dv, F(a)), den));
        break;
    }
    case KL_MOD:
        g = k == 0 ? dv : kb_unary(&b, KL_NEG, MUL(dv, kb_binary(&b, KL_FLOOR_DIVIDE, F(a), F(bb))));
        break;
    default: break; /* floor_divide and predicates: no gradient */
    }
#undef MUL
#undef DIV
#undef C
#undef F
    if (!g) return kb_finish(&b, NULL, out);
    kl_var *r = NULL;
    kl_status s = kb_finish(&b, g, &r);
    if (s != KL_OK) return s;
    s = kl_unbroadcast(r, x, out);
    kl_var_release(r);
    return s;
}

kl_status kl_where_backward(kl_var *v, int k, kl_var *dv, kl_var **out)
{
    *out = NULL;
    kl_var *x = v->op.inputs[k];
    if (k == 0 || !kl_dtype_is_float(x->dtype)) return KL_OK;
    kl_builder b = {0};
    kl_var *zero = kb_scalar(&b, dv, 0);
    kl_var *g = k == 1 ? kb_where(&b, v->op.inputs[0], dv, zero) : kb_where(&b, v->op.inputs[0], zero, dv);
    kl_var *r = NULL;
    KL_TRY(kb_finish(&b, g, &r));
    kl_status s = kl_unbroadcast(r, x, out);
    kl_var_release(r);
    return s;
}
