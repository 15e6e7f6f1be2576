/* layernorm.c: the layer norm replacement pass (the form is in
 * layernorm.h), walking from y down to x as rows.h says: first the
 * optional bias add and weight multiply (the operand that is a vector along
 * the last dim), then the normalising multiply, its rsqrt of the variance
 * plus eps, and the centring difference both read. */
#include "opt/layernorm.h"
#include "codegen/kdesc.h"
#include "opt/operand.h"
#include <string.h>

/* x read over y's shape is a float32 vector along the last dim (one value
 * per column, the same for every row): the stored var behind it. */
static kl_var *row_vector(kl_var *x, const kl_var *y)
{
    kl_var *src;
    int64_t str[KL_MAX_DIMS];
    int last = y->ndim - 1;
    if (!kl_operand_view(x, y->ndim, y->shape, 1, &src, str) || src->dtype != KL_FLOAT32 ||
        src->numel != y->shape[last])
        return NULL;
    for (int d = 0; d < y->ndim; d++)
        if (y->shape[d] != 1 && str[d] != (d == last ? 1 : 0)) return NULL;
    return src;
}

/* x is a scalar full var (seen through broadcasts, reshapes, stop_grads
 * and casts between float types, which keep eps's value to float's
 * precision, as the kernel uses it). */
static kl_var *full_scalar(kl_var *x)
{
    while (!x->buf && (x->op.kind == KL_OP_BROADCAST || x->op.kind == KL_OP_RESHAPE ||
                       x->op.kind == KL_OP_STOP_GRAD ||
                       (x->op.kind == KL_OP_CAST && kl_dtype_is_float(x->dtype) &&
                        kl_dtype_is_float(x->op.inputs[0]->dtype))))
        x = x->op.inputs[0];
    return !x->buf && x->op.kind == KL_OP_FULL && x->numel == 1 && kl_dtype_is_float(x->dtype) ? x : NULL;
}

/* An optional step at v (y itself, or recorded): v is binary op with a row
 * vector on one side; gives the vector and moves v to the other side. */
static kl_var *affine_step(kl_row_set *s, kl_var **v, kl_var *y, kl_binary_op op)
{
    kl_var *at = *v;
    if (at->buf || at->op.kind != KL_OP_BINARY || at->op.p.binary != op || (at != y && at->materialize)) return NULL;
    for (int side = 0; side < 2; side++) {
        kl_var *vec = row_vector(at->op.inputs[1 - side], y);
        kl_var *rest = at->op.inputs[side];
        if (!vec || !kl_operand_same_shape(rest, y)) continue;
        if (at != y && !kl_row_add(s, at)) return NULL;
        *v = kl_row_through(s, rest);
        return vec;
    }
    return NULL;
}

/* v (seen through) is x - mean(x, d) for a float32 x of y's shape: x. */
static kl_var *centred(kl_row_set *s, kl_var *v, int d, const kl_var *y)
{
    if (!kl_row_is_binary(v, KL_SUB) || !kl_row_add(s, v)) return NULL;
    kl_var *x = kl_operand_through(v->op.inputs[0]);
    if (x->dtype != KL_FLOAT32 || !kl_operand_same_shape(x, y)) return NULL;
    return kl_row_reduce(s, v->op.inputs[1], KL_REDUCE_MEAN, d, x, 0) ? x : NULL;
}

int kl_layernorm_match(kl_var *y, kl_pattern *p, kl_var **inner, int *n_inner)
{
    *n_inner = 0;
    /* rows of one element are 0 anyway, and their rsqrt operand would look
     * like a vector; a single row would run on one thread (rows are the
     * kernel's parallelism), where the meta-op reductions use them all */
    if (y->dtype != KL_FLOAT32 || y->op.kind != KL_OP_BINARY || y->numel == 0 || y->ndim < 1 ||
        y->shape[y->ndim - 1] < 2 || y->numel == y->shape[y->ndim - 1])
        return 0;
    int d = y->ndim - 1;
    kl_row_set s = {.n = 0, .full = 0};
    kl_var *v = y;
    kl_var *bias = affine_step(&s, &v, y, KL_ADD);
    kl_var *weight = affine_step(&s, &v, y, KL_MUL);
    if (weight && weight == bias) return 0; /* one buffer for both: the kernel reads them by position */
    /* v = c * rsqrt(mean(c * c) + eps) */
    if ((v != y && !kl_row_is_binary(v, KL_MUL)) || v->op.kind != KL_OP_BINARY || v->op.p.binary != KL_MUL) return 0;
    if (v != y && !kl_row_add(&s, v)) return 0;
    kl_var *c = NULL, *r = NULL;
    for (int side = 0; side < 2 && !c; side++) {
        kl_row_set t = s;
        kl_var *a = kl_row_through(&t, v->op.inputs[side]), *b = kl_row_through(&t, v->op.inputs[1 - side]);
        if (kl_operand_same_shape(a, y) && b->ndim == y->ndim && b->shape[d] == 1) {
            s = t;
            c = a;
            r = b;
        }
    }
    if (!c || !kl_row_is_op(r, KL_OP_UNARY) || r->op.p.unary != KL_RSQRT || !kl_row_add(&s, r)) return 0;
    kl_var *plus = kl_row_through(&s, r->op.inputs[0]), *eps = NULL, *var = NULL;
    if (!kl_row_is_binary(plus, KL_ADD) || !kl_row_add(&s, plus)) return 0;
    for (int side = 0; side < 2 && !eps; side++)
        if ((eps = full_scalar(plus->op.inputs[1 - side])) != NULL) var = plus->op.inputs[side];
    if (!eps) return 0;
    kl_var *mean_square = kl_row_reduction(&s, var, KL_REDUCE_MEAN, d);
    if (!mean_square) return 0;
    kl_var *square = kl_row_through(&s, mean_square->op.inputs[0]);
    if (!kl_row_is_binary(square, KL_MUL) || !kl_row_add(&s, square) ||
        kl_row_through(&s, square->op.inputs[0]) != c || kl_row_through(&s, square->op.inputs[1]) != c)
        return 0;
    kl_var *x = centred(&s, c, d, y);
    if (!x || !kl_row_closed(&s, y)) return 0;
    memset(p, 0, sizeof *p);
    p->kind = KL_PATTERN_LAYERNORM;
    p->dtype = KL_FLOAT32;
    p->a = x;
    p->b = weight;
    p->layernorm.bias = bias;
    p->layernorm.eps = eps;
    p->layernorm.axis = y->shape[d];
    p->layernorm.rows = y->numel / y->shape[d];
    memcpy(inner, s.v, (size_t)s.n * sizeof *inner);
    *n_inner = s.n;
    return 1;
}

kl_status kl_layernorm_describe(kl_var *y, const kl_pattern *p, kl_kdesc *k)
{
    const kl_layernorm_shape *ln = &p->layernorm;
    kl_var *x = p->a;
    k->local_vars[0] = y;
    kl_kd_local(k, y);
    k->h.out_dtype = (uint8_t)y->dtype;
    int next = 2;
    if (kl_kd_buffer(k, y) != 0 || kl_kd_buffer(k, x) != 1) return k->status;
    if (p->b && kl_kd_buffer(k, p->b) != next++) return k->status;
    if (ln->bias && kl_kd_buffer(k, ln->bias) != next++) return k->status;
    kl_kd_farg(k, ln->eps, KL_ARG_FULL);
    k->h.kind = KL_KD_LAYERNORM;
    k->h.op = (p->b ? 1 : 0) | (ln->bias ? 2 : 0);
    k->h.in_dtype = (uint8_t)x->dtype;
    k->h.rank = (uint8_t)x->ndim;
    k->h.reduced = (uint8_t)(1u << (x->ndim - 1));
    for (int d = 0; d < x->ndim; d++) k->h.dims[d] = kl_kd_shape(k, x, d);
    kl_kd_hash(k);
    return k->status;
}
