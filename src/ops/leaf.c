/* leaf.c: vars made from nothing but their shape: full, random, index. They
 * fuse into their consumers like any element-wise op; their scalars and
 * seeds are kernel arguments, so new values never mean new kernels. */
#include "ops/ops.h"
#include "core/context.h"
#include "core/dtype.h"

static kl_status leaf(kl_context *ctx, const char *name, kl_dtype dtype, int ndim, const int64_t *shape,
                      kl_op *o, kl_var **out)
{
    KL_ARG(out, name, "out");
    *out = NULL;
    KL_ARG(ctx, name, "context");
    if ((unsigned)dtype >= KL_DTYPE_COUNT) return kl_error(KL_ERR_TYPE, "%s: invalid dtype code %d", name, (int)dtype);
    KL_TRY(kl_check_shape(name, ndim, shape));
    return kl_var_new(ctx, dtype, ndim, shape, o, out);
}

kl_status kl_full(kl_context *ctx, kl_dtype dtype, int ndim, const int64_t *shape, double value, kl_var **out)
{
    kl_op o = {.kind = KL_OP_FULL, .p.full.value = value};
    if ((unsigned)dtype < KL_DTYPE_COUNT && !kl_dtype_is_float(dtype)) {
        if (out) *out = NULL;
        KL_TRY(kl_dtype_int_from_double(dtype, value, "full", &o.p.full.ivalue));
        o.p.full.value = (double)o.p.full.ivalue;
    }
    return leaf(ctx, "full", dtype, ndim, shape, &o, out);
}

kl_status kl_full_int(kl_context *ctx, kl_dtype dtype, int ndim, const int64_t *shape, int64_t value, kl_var **out)
{
    kl_op o = {.kind = KL_OP_FULL, .p.full = {(double)value, value}};
    if ((unsigned)dtype < KL_DTYPE_COUNT && !kl_dtype_is_float(dtype)) {
        if (out) *out = NULL;
        KL_TRY(kl_dtype_int_value(dtype, value, "full", &o.p.full.ivalue));
    }
    return leaf(ctx, "full", dtype, ndim, shape, &o, out);
}

kl_status kl_random(kl_context *ctx, kl_dtype dtype, int ndim, const int64_t *shape,
                    kl_random_kind kind, double a, double b, kl_var **out)
{
    KL_ARG(out, "random", "out");
    *out = NULL;
    if (!kl_dtype_is_float(dtype))
        return kl_error(KL_ERR_TYPE, "random: dtype must be a float type, got %s", kl_dtype_name(dtype));
    if (kind != KL_RANDOM_UNIFORM && kind != KL_RANDOM_NORMAL)
        return kl_error(KL_ERR_VALUE, "random: unknown distribution %d", (int)kind);
    kl_op o = {.kind = KL_OP_RANDOM, .p.random = {kind, a, b, 0, 0}};
    KL_TRY(leaf(ctx, "random", dtype, ndim, shape, &o, out));
    (*out)->op.p.random.seed = ctx->seed;
    (*out)->op.p.random.offset = ctx->rng_offset;
    ctx->rng_offset += (uint64_t)(*out)->numel;
    return KL_OK;
}

kl_status kl_index(kl_context *ctx, kl_dtype dtype, int ndim, const int64_t *shape, int dim, kl_var **out)
{
    KL_ARG(out, "index", "out");
    *out = NULL;
    if (dim < 0) dim += ndim;
    if (dim < 0 || dim >= ndim) return kl_error(KL_ERR_INDEX, "index: dim is out of range for rank %d", ndim);
    kl_op o = {.kind = KL_OP_INDEX, .p.index.dim = dim};
    return leaf(ctx, "index", dtype, ndim, shape, &o, out);
}

const char *kl_leaf_emit(kl_emitter *em, kl_var *v, const kl_coords *c)
{
    const char *T = kl_dtype_compute_ctype(v->dtype);
    switch (v->op.kind) {
    case KL_OP_FULL: {
        const char *arg = kl_dtype_is_float(v->dtype) ? kl_emit_farg(em, v, KL_ARG_FULL) : kl_emit_iarg(em, v, KL_ARG_FULL);
        if (v->dtype == KL_BOOL) return arg ? kl_emit_str(em, "(uint8_t)(%s != 0)", arg) : NULL;
        return arg ? kl_emit_str(em, "((%s)%s)", T, arg) : NULL;
    }
    case KL_OP_INDEX:
        em->needs_coords = 1;
        return kl_emit_str(em, "((%s)%s)", T, c->c[v->op.p.index.dim]);
    default: {
        const char *flat = kl_emit_offset(em, v, c);
        const char *seed = kl_emit_iarg(em, v, KL_ARG_SEED);
        const char *start = kl_emit_iarg(em, v, KL_ARG_OFFSET);
        const char *a = kl_emit_farg(em, v, KL_ARG_RAND_A);
        const char *b = kl_emit_farg(em, v, KL_ARG_RAND_B);
        if (!flat || !seed || !start || !a || !b) return NULL;
        const char *bits = v->dtype == KL_FLOAT64 ? "f64" : "f32";
        if (v->op.p.random.kind == KL_RANDOM_NORMAL)
            return kl_emit_temp(em, T, "(%s)(%s + %s * kl_normal_%s((uint64_t)%s, (uint64_t)(%s + %s)))",
                                T, a, b, bits, seed, start, flat);
        return kl_emit_temp(em, T, "(%s)kl_uniform_%s(%s, %s, (uint64_t)%s, (uint64_t)(%s + %s))",
                            T, bits, a, b, seed, start, flat);
    }
    }
}
