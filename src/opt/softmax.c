/* softmax.c: the softmax replacement pass (the forms are in softmax.h),
 * walking from y down to x as rows.h says. */
#include "opt/softmax.h"
#include "opt/operand.h"
#include "opt/rows.h"
#include "codegen/kdesc.h"
#include <string.h>

/* v (seen through) is x - max(x, d), for some float32 x: returns x. */
static kl_var *shifted(kl_row_set *s, kl_var *v, int d)
{
    v = kl_row_through(s, v);
    if (!kl_row_is_binary(v, KL_SUB) || !kl_row_add(s, v)) return NULL;
    kl_var *x = kl_operand_through(v->op.inputs[0]);
    if (x->dtype != KL_FLOAT32 || x->ndim != v->ndim || memcmp(x->shape, v->shape, sizeof(int64_t) * (size_t)x->ndim))
        return NULL;
    return kl_row_reduce(s, v->op.inputs[1], KL_REDUCE_MAX, d, x, 0) ? x : NULL;
}

/* The dim y's second operand is reduced along (its one size-1 dim where y is not 1). */
static int reduced_dim(const kl_var *y, const kl_var *r)
{
    if (r->ndim != y->ndim) return -1;
    int d = -1;
    for (int j = 0; j < y->ndim; j++)
        if (r->shape[j] != y->shape[j]) {
            if (r->shape[j] != 1 || d >= 0) return -1;
            d = j;
        }
    return d;
}

int kl_softmax_match(kl_var *y, kl_pattern *p, kl_var **inner, int *n_inner)
{
    *n_inner = 0;
    if (y->dtype != KL_FLOAT32 || y->op.kind != KL_OP_BINARY || y->numel == 0) return 0;
    int log = y->op.p.binary == KL_SUB;
    if (!log && y->op.p.binary != KL_DIV) return 0;
    kl_row_set s = {.n = 0, .full = 0};
    kl_var *top = kl_row_through(&s, y->op.inputs[0]), *bottom = kl_row_through(&s, y->op.inputs[1]);
    int d = reduced_dim(y, bottom);
    if (d < 0 || top->ndim != y->ndim) return 0;
    kl_var *x = NULL;
    if (!log) { /* y = e / sum(e), e = exp(x - max x) */
        if (!kl_row_is_op(top, KL_OP_UNARY) || top->op.p.unary != KL_EXP || !kl_row_add(&s, top)) return 0;
        x = shifted(&s, top->op.inputs[0], d);
        if (!x || !kl_row_reduce(&s, bottom, KL_REDUCE_SUM, d, top, 1)) return 0;
    } else { /* y = a - log(sum(exp(a))), a = x - max x */
        x = shifted(&s, top, d);
        if (!x || !kl_row_is_op(bottom, KL_OP_UNARY) || bottom->op.p.unary != KL_LOG || !kl_row_add(&s, bottom))
            return 0;
        kl_var *sum = kl_row_reduction(&s, bottom->op.inputs[0], KL_REDUCE_SUM, d);
        if (!sum) return 0;
        kl_var *e = kl_row_through(&s, sum->op.inputs[0]);
        if (!kl_row_is_op(e, KL_OP_UNARY) || e->op.p.unary != KL_EXP || !kl_row_add(&s, e) ||
            kl_row_through(&s, e->op.inputs[0]) != top)
            return 0;
    }
    if (!kl_row_closed(&s, y)) return 0;
    memset(p, 0, sizeof *p);
    p->kind = KL_PATTERN_SOFTMAX;
    p->dtype = KL_FLOAT32;
    p->a = x;
    p->softmax.log = log;
    p->softmax.dim = d;
    p->softmax.outer = p->softmax.inner = 1;
    for (int j = 0; j < d; j++) p->softmax.outer *= x->shape[j];
    p->softmax.axis = x->shape[d];
    for (int j = d + 1; j < x->ndim; j++) p->softmax.inner *= x->shape[j];
    memcpy(inner, s.v, (size_t)s.n * sizeof *inner);
    *n_inner = s.n;
    return 1;
}

kl_status kl_softmax_describe(kl_var *y, const kl_pattern *p, kl_kdesc *k)
{
    kl_var *x = p->a;
    k->local_vars[0] = y;
    kl_kd_local(k, y);
    k->h.out_dtype = (uint8_t)y->dtype;
    if (kl_kd_buffer(k, y) != 0 || kl_kd_buffer(k, x) != 1) return k->status;
    k->h.kind = KL_KD_SOFTMAX;
    k->h.op = p->softmax.log;
    k->h.in_dtype = (uint8_t)x->dtype;
    k->h.rank = (uint8_t)x->ndim;
    k->h.reduced = (uint8_t)(1u << p->softmax.dim);
    for (int d = 0; d < x->ndim; d++) k->h.dims[d] = kl_kd_shape(k, x, d);
    kl_kd_hash(k);
    return k->status;
}
