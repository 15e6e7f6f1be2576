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

int32_t kl_leaf_lower(kl_kdesc *k, kl_var *v, const kl_coords *c)
{
    switch (v->op.kind) {
    case KL_OP_FULL: {
        int32_t arg = kl_dtype_is_float(v->dtype) ? kl_kd_farg(k, v, KL_ARG_FULL) : kl_kd_iarg(k, v, KL_ARG_FULL, 0);
        return kl_kd_op(k, KL_I_SCALAR, v->dtype, 0, arg, -1, -1);
    }
    case KL_OP_INDEX:
        return kl_lower_convert(k, c->c[v->op.p.index.dim], KL_INT64, v->dtype);
    default: {
        int32_t ops[5] = {kl_kd_iarg(k, v, KL_ARG_SEED, 0), kl_kd_iarg(k, v, KL_ARG_OFFSET, 0),
                          kl_lower_offset(k, v, c), kl_kd_farg(k, v, KL_ARG_RAND_A), kl_kd_farg(k, v, KL_ARG_RAND_B)};
        for (int j = 0; j < 5; j++) if (ops[j] < 0) return -1;
        kl_instr in = {KL_I_RANDOM, (uint8_t)v->dtype, 0, 0, v->op.p.random.kind, ops[0], ops[1], ops[2], ops[3], ops[4], 0};
        return kl_kd_add(k, &in);
    }
    }
}
