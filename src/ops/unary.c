/* unary.c: the unary element-wise family and cast: dtype rules, the scalar C
 * expression of each op, and each op's derivative written with meta-ops. */
#include "ops/ops.h"
#include "ops/builder.h"
#include "core/dtype.h"
#include <string.h>


static kl_status infer(kl_unary_op op, kl_dtype in, kl_dtype *out)
{
    if (op == KL_LOGICAL_NOT) { *out = KL_BOOL; return KL_OK; }
    if (op == KL_BITWISE_NOT) {
        if (kl_dtype_is_float(in))
            return kl_error(KL_ERR_TYPE, "bitwise_not: not defined for %s (integer or bool input needed)", kl_dtype_name(in));
        *out = in;
        return KL_OK;
    }
    if ((op == KL_NEG || op == KL_SIGN) && in == KL_BOOL)
        return kl_error(KL_ERR_TYPE, "%s: not defined for bool (use logical_not)", kl_unary_name(op));
    if ((kl_unary_traits(op) & KL_FLOAT_MATH) || (in == KL_BOOL && op != KL_ABS)) {
        *out = kl_dtype_is_float(in) ? in : KL_FLOAT32;
        return KL_OK;
    }
    *out = in;
    return KL_OK;
}

kl_status kl_unary(kl_unary_op op, kl_var *x, kl_var **out)
{
    KL_ARG(out, "kl_unary", "out");
    *out = NULL;
    if ((unsigned)op >= KL_UNARY_COUNT) return kl_error(KL_ERR_VALUE, "unary: invalid op code %d", (int)op);
    KL_VAR_ARG(x, kl_unary_name(op), "input");
    kl_dtype dtype = x->dtype;
    KL_TRY(infer(op, x->dtype, &dtype));
    kl_op o = {.kind = KL_OP_UNARY, .n_inputs = 1, .inputs = {x}, .p.unary = op};
    return kl_var_new(x->ctx, dtype, x->ndim, x->shape, &o, out);
}

kl_status kl_cast(kl_var *x, kl_dtype dtype, kl_var **out)
{
    KL_ARG(out, "kl_cast", "out");
    *out = NULL;
    KL_VAR_ARG(x, "cast", "input");
    if ((unsigned)dtype >= KL_DTYPE_COUNT) return kl_error(KL_ERR_TYPE, "cast: invalid dtype code %d", (int)dtype);
    kl_op o = {.kind = KL_OP_CAST, .n_inputs = 1, .inputs = {x}};
    return kl_var_new(x->ctx, dtype, x->ndim, x->shape, &o, out);
}

int32_t kl_unary_lower(kl_kdesc *k, kl_var *v, const kl_coords *c)
{
    kl_var *x = v->op.inputs[0];
    int32_t a = kl_lower(k, x, c);
    if (v->op.kind == KL_OP_CAST) return kl_lower_convert(k, a, x->dtype, v->dtype);
    kl_unary_op op = v->op.p.unary;
    /* logical_not reads its input as it is; the others compute in the result's type */
    int32_t xa = op == KL_LOGICAL_NOT ? a : kl_lower_convert(k, a, x->dtype, v->dtype);
    kl_instr in = {KL_I_UNARY, (uint8_t)v->dtype, (uint8_t)x->dtype, 0, op, xa, -1, -1, -1, -1, 0};
    return xa < 0 ? -1 : kl_kd_add(k, &in);
}

/* dv * f'(x), with y = f(x) at hand where the derivative is cheaper in y. */
kl_status kl_unary_backward(kl_var *v, int k, kl_var *dv, kl_var **out)
{
    (void)k;
    kl_var *x = v->op.inputs[0], *y = v;
    kl_builder b = {0};
    *out = NULL;
    if (v->op.kind == KL_OP_CAST) {
        if (!kl_dtype_is_float(x->dtype)) return KL_OK;
        return kb_finish(&b, kb_cast(&b, dv, x->dtype), out);
    }
    if (!kl_dtype_is_float(x->dtype)) return KL_OK; /* integer inputs take no gradient */
#define ONE kb_scalar(&b, x, 1.0)
#define MUL(p, q) kb_binary(&b, KL_MUL, p, q)
#define DIV(p, q) kb_binary(&b, KL_DIV, p, q)
#define ADD(p, q) kb_binary(&b, KL_ADD, p, q)
#define SUB(p, q) kb_binary(&b, KL_SUB, p, q)
#define U(op, p) kb_unary(&b, op, p)
#define C(value) kb_scalar(&b, x, value)
    kl_var *g = NULL;
    kl_var *xx = MUL(x, x);
    switch (v->op.p.unary) {
    case KL_NEG: g = U(KL_NEG, dv); break;
    case KL_ABS: g = MUL(dv, U(KL_SIGN, x)); break;
    case KL_EXP: g = MUL(dv, y); break;
    case KL_LOG: g = DIV(dv, x); break;
    case KL_SQRT: g = DIV(MUL(dv, C(0.5)), y); break;
    case KL_RSQRT: g = MUL(dv, MUL(C(-0.5), MUL(y, MUL(y, y)))); break;
    case KL_SIN: g = MUL(dv, U(KL_COS, x)); break;
    case KL_COS: g = U(KL_NEG, MUL(dv, U(KL_SIN, x))); break;
    case KL_TAN: g = MUL(dv, ADD(ONE, MUL(y, y))); break;
    case KL_ASIN: g = MUL(dv, U(KL_RSQRT, SUB(ONE, xx))); break;
    case KL_ACOS: g = U(KL_NEG, MUL(dv, U(KL_RSQRT, SUB(ONE, xx)))); break;
    case KL_ATAN: g = DIV(dv, ADD(ONE, xx)); break;
    case KL_SINH: g = MUL(dv, U(KL_COSH, x)); break;
    case KL_COSH: g = MUL(dv, U(KL_SINH, x)); break;
    case KL_TANH: g = MUL(dv, SUB(ONE, MUL(y, y))); break;
    case KL_ASINH: g = MUL(dv, U(KL_RSQRT, ADD(xx, ONE))); break;
    case KL_ACOSH: g = MUL(dv, U(KL_RSQRT, SUB(xx, ONE))); break;
    case KL_ATANH: g = DIV(dv, SUB(ONE, xx)); break;
    case KL_SIGMOID: g = MUL(dv, MUL(y, SUB(ONE, y))); break;
    case KL_ERF: g = MUL(dv, MUL(C(1.1283791670955126), U(KL_EXP, U(KL_NEG, xx)))); break;
    case KL_LOG2: g = DIV(dv, MUL(x, C(0.6931471805599453))); break;
    case KL_EXP2: g = MUL(dv, MUL(y, C(0.6931471805599453))); break;
    case KL_LOG1P: g = DIV(dv, ADD(x, ONE)); break;
    case KL_EXPM1: g = MUL(dv, ADD(y, ONE)); break;
    default: break; /* piecewise constant: no gradient */
    }
#undef ONE
#undef MUL
#undef DIV
#undef ADD
#undef SUB
#undef U
#undef C
    return kb_finish(&b, g, out);
}
