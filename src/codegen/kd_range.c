/* kd_range.c: what each integer instruction of a kernel description can be,
 * given this launch's iteration space and arguments, and the comparisons
 * that settles. A reindex checks every index it computes against its
 * input's extents; where the windows stay inside (pooling without padding,
 * a slice, a transpose) those checks are decided before the kernel runs,
 * and folding them to constants removes the whole chain of selects they
 * guard from the kernel text (the renderers never see them).
 *
 * Only decisions (comparisons, && || !, selects on a decided condition,
 * clamps of an index already inside) fold: arithmetic whose range happens
 * to be one value (an index over an extent of 1) stays as it is, so the
 * same kernel serves batch 1 and batch 8. The description records each
 * decision as a constant, so the plan cache never hands a kernel to a
 * launch its decisions do not hold for.
 */
#include "codegen/kdesc.h"
#include "core/expr.h"
#include "kiln.h"
#include <stdint.h>

static const kl_range any = {INT64_MIN, INT64_MAX};

static kl_range point(int64_t v) { return (kl_range){v, v}; }
static int is_point(kl_range r, int64_t v) { return r.lo == v && r.hi == v; }
static int is_bool(kl_range r) { return r.lo >= 0 && r.hi <= 1; }
static int excludes_zero(kl_range r) { return r.lo > 0 || r.hi < 0; }

/* Instruction i's range, computing the ranges not yet known up to it in
 * order (operands come before their users): most descriptions decide
 * nothing and never pay for ranges. */
kl_range kl_kd_range(kl_kdesc *k, int32_t i)
{
    if (i < 0 || i >= k->h.n_instrs) return any;
    for (; k->n_ranged <= i; k->n_ranged++) k->ranges[k->n_ranged] = kl_kd_range_of(k, &k->instrs[k->n_ranged]);
    return k->ranges[i];
}

/* The range of the values of dtype (bool: 0 or 1), for loads and converts. */
static kl_range dtype_range(uint8_t dtype)
{
    switch (dtype) {
    case KL_BOOL: return (kl_range){0, 1};
    case KL_INT8: return (kl_range){INT8_MIN, INT8_MAX};
    case KL_UINT8: return (kl_range){0, UINT8_MAX};
    case KL_INT16: return (kl_range){INT16_MIN, INT16_MAX};
    case KL_INT32: return (kl_range){INT32_MIN, INT32_MAX};
    default: return any;
    }
}

/* lo and hi of four corner values, any when one overflowed. */
static kl_range corners(const int64_t v[4], int overflow)
{
    if (overflow) return any;
    kl_range r = {v[0], v[0]};
    for (int i = 1; i < 4; i++) {
        if (v[i] < r.lo) r.lo = v[i];
        if (v[i] > r.hi) r.hi = v[i];
    }
    return r;
}

static kl_range compare(int op, kl_range a, kl_range b)
{
    int yes, no;
    switch (op) {
    case KL_EXB_LT: yes = a.hi < b.lo; no = a.lo >= b.hi; break;
    case KL_EXB_LE: yes = a.hi <= b.lo; no = a.lo > b.hi; break;
    case KL_EXB_GT: yes = a.lo > b.hi; no = a.hi <= b.lo; break;
    case KL_EXB_GE: yes = a.lo >= b.hi; no = a.hi < b.lo; break;
    case KL_EXB_EQ: yes = a.lo == a.hi && b.lo == b.hi && a.lo == b.lo; no = a.hi < b.lo || b.hi < a.lo; break;
    default: /* KL_EXB_NE */ no = a.lo == a.hi && b.lo == b.hi && a.lo == b.lo; yes = a.hi < b.lo || b.hi < a.lo; break;
    }
    return yes ? point(1) : no ? point(0) : (kl_range){0, 1};
}

static kl_range index_range(int op, kl_range a, kl_range b)
{
    int64_t v[4];
    int o = 0;
    switch (op) {
    case KL_EXB_ADD:
        o = __builtin_add_overflow(a.lo, b.lo, &v[0]) | __builtin_add_overflow(a.hi, b.hi, &v[1]);
        return o ? any : (kl_range){v[0], v[1]};
    case KL_EXB_SUB:
        o = __builtin_sub_overflow(a.lo, b.hi, &v[0]) | __builtin_sub_overflow(a.hi, b.lo, &v[1]);
        return o ? any : (kl_range){v[0], v[1]};
    case KL_EXB_MUL:
        o = __builtin_mul_overflow(a.lo, b.lo, &v[0]) | __builtin_mul_overflow(a.lo, b.hi, &v[1]) |
            __builtin_mul_overflow(a.hi, b.lo, &v[2]) | __builtin_mul_overflow(a.hi, b.hi, &v[3]);
        return corners(v, o);
    case KL_EXB_DIV:
        /* truncating division by a positive divisor is monotone in both */
        if (b.lo <= 0) return any;
        v[0] = a.lo / b.lo; v[1] = a.lo / b.hi; v[2] = a.hi / b.lo; v[3] = a.hi / b.hi;
        return corners(v, 0);
    case KL_EXB_MOD:
        if (b.lo <= 0) return any;
        if (a.lo >= 0 && a.hi < b.lo) return a;
        if (a.lo >= 0) return (kl_range){0, a.hi < b.hi - 1 ? a.hi : b.hi - 1};
        return (kl_range){-(b.hi - 1), b.hi - 1};
    case KL_EXB_AND:
        if (is_point(a, 0) || is_point(b, 0)) return point(0);
        if (excludes_zero(a) && excludes_zero(b)) return point(1);
        return (kl_range){0, 1};
    case KL_EXB_OR:
        if (excludes_zero(a) || excludes_zero(b)) return point(1);
        if (is_point(a, 0) && is_point(b, 0)) return point(0);
        return (kl_range){0, 1};
    default:
        return compare(op, a, b);
    }
}

kl_range kl_kd_range_of(kl_kdesc *k, const kl_instr *in)
{
    /* only index arithmetic and selects have operands whose range matters
     * (elsewhere a and b name buffers, arguments and dims) */
    kl_range a = any, b = any, c = any;
    switch (in->kind) {
    case KL_I_SELECT: c = kl_kd_range(k, in->c); /* fall through */
    case KL_I_INDEX: case KL_I_MIN: case KL_I_MAX: case KL_I_CLAMP: b = kl_kd_range(k, in->b); /* fall through */
    case KL_I_NEG: case KL_I_NOT: a = kl_kd_range(k, in->a); break;
    default: break;
    }
    switch (in->kind) {
    case KL_I_LOOP:
        return in->a < k->space_rank ? (kl_range){0, k->space[in->a] - 1} : any;
    case KL_I_LINEAR: {
        int64_t n = 1;
        for (int d = 0; d < k->space_rank; d++)
            if (__builtin_mul_overflow(n, k->space[d], &n)) return any;
        return k->space_rank ? (kl_range){0, n - 1} : any;
    }
    case KL_I_CONST: return point(in->value);
    case KL_I_IARG:
        /* an index expression's offsets and bounds are arguments so that one
         * kernel serves them all (x[i:i+7] for each i): never decided on */
        return k->isrc[in->a].kind == KL_ARG_INDEX_CONST ? any : point(k->iargs[in->a]);
    case KL_I_INDEX: return index_range(in->op, a, b);
    case KL_I_NEG: return a.lo == INT64_MIN ? any : (kl_range){-a.hi, -a.lo};
    case KL_I_NOT: return excludes_zero(a) ? point(0) : is_point(a, 0) ? point(1) : (kl_range){0, 1};
    case KL_I_MIN: return (kl_range){a.lo < b.lo ? a.lo : b.lo, a.hi < b.hi ? a.hi : b.hi};
    case KL_I_MAX: return (kl_range){a.lo > b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi};
    case KL_I_CLAMP: return (kl_range){0, b.hi > 0 ? b.hi - 1 : 0};
    case KL_I_SELECT:
        if (in->dtype != KL_INT64) return dtype_range(in->dtype);
        return (kl_range){b.lo < c.lo ? b.lo : c.lo, b.hi > c.hi ? b.hi : c.hi};
    case KL_I_CONVERT:
        /* widening keeps the source's range (a float's: any) */
        return in->dtype == KL_INT64 ? dtype_range(in->aux) : dtype_range(in->dtype);
    default:
        return dtype_range(in->dtype);
    }
}

int kl_kd_may_fold(const kl_instr *in)
{
    return (in->kind == KL_I_INDEX && in->op >= KL_EXB_LT) || in->kind == KL_I_NOT || in->kind == KL_I_SELECT ||
           in->kind == KL_I_CLAMP;
}

int32_t kl_kd_fold(kl_kdesc *k, const kl_instr *in, kl_range r)
{
    if (k->space_rank == 0 || !kl_kd_may_fold(in)) return -1;   /* nothing to decide with, or nothing to decide */
    int decision = (in->kind == KL_I_INDEX && in->op >= KL_EXB_LT) || in->kind == KL_I_NOT;
    if (decision && r.lo == r.hi) return kl_kd_const(k, r.lo);
    if (in->kind == KL_I_INDEX && (in->op == KL_EXB_OR || in->op == KL_EXB_AND)) {
        /* x || 0 and x && 1 are x when x is already 0 or 1 */
        kl_range a = kl_kd_range(k, in->a), b = kl_kd_range(k, in->b);
        int neutral_b = in->op == KL_EXB_OR ? is_point(b, 0) : excludes_zero(b);
        int neutral_a = in->op == KL_EXB_OR ? is_point(a, 0) : excludes_zero(a);
        if (neutral_b && is_bool(a)) return in->a;
        if (neutral_a && is_bool(b)) return in->b;
    }
    if (in->kind == KL_I_CLAMP) {   /* an index already inside needs no clamp */
        kl_range a = kl_kd_range(k, in->a), n = kl_kd_range(k, in->b);
        if (a.lo >= 0 && n.lo > 0 && a.hi <= n.lo - 1) return in->a;
    }
    if (in->kind == KL_I_SELECT) {
        kl_range cond = kl_kd_range(k, in->a);
        int32_t pick = excludes_zero(cond) ? in->b : is_point(cond, 0) ? in->c : -1;
        if (pick >= 0 && k->instrs[pick].dtype == in->dtype) return pick;
    }
    return -1;
}
