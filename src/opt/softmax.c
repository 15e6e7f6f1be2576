/* softmax.c: the softmax replacement pass (the forms are in softmax.h). A
 * match walks from y down to x through the two forms' ops, collecting every
 * var in between; the pattern holds only when each of those is read by the
 * pattern's own vars and nothing else (its pending consumers are all
 * inside), so computing y in one library call leaves nothing unfed. */
#include "opt/softmax.h"
#include "opt/operand.h"
#include "codegen/kdesc.h"
#include <string.h>

typedef struct {
    kl_var *v[KL_SOFTMAX_MAX_INNER];
    int n, full;
} var_set;

/* Records v once (a var reached twice, like the shared exp, is one entry). */
static int add(var_set *s, kl_var *v)
{
    for (int i = 0; i < s->n; i++)
        if (s->v[i] == v) return 1;
    if (s->n == KL_SOFTMAX_MAX_INNER) {
        s->full = 1;
        return 0;
    }
    s->v[s->n++] = v;
    return 1;
}

/* x with pass-throughs skipped, each recorded in s. */
static kl_var *through(var_set *s, kl_var *x)
{
    kl_var *end = kl_operand_through(x);
    for (; x != end; x = x->op.inputs[0]) add(s, x);
    return end;
}

static int is_op(const kl_var *v, kl_op_kind kind) { return !v->buf && !v->materialize && v->op.kind == kind; }

static int is_binary(const kl_var *v, kl_binary_op op)
{
    return is_op(v, KL_OP_BINARY) && v->op.p.binary == op;
}

/* v (seen through) is a keepdims reduce of op along dim d alone whose input
 * (seen through) is want; records the vars on the way (want's own
 * pass-throughs only when it is inside the pattern: x's belong to x). */
static int row_reduce(var_set *s, kl_var *v, kl_reduce_op op, int d, kl_var *want, int want_inside)
{
    v = through(s, v);
    if (!is_op(v, KL_OP_REDUCE) || v->op.p.reduce.op != op || v->op.p.reduce.mask != 1u << d ||
        !v->op.p.reduce.keepdims || !add(s, v))
        return 0;
    return (want_inside ? through(s, v->op.inputs[0]) : kl_operand_through(v->op.inputs[0])) == want;
}

/* v (seen through) is x - max(x, d), for some float32 x: returns x. */
static kl_var *shifted(var_set *s, kl_var *v, int d)
{
    v = through(s, v);
    if (!is_binary(v, KL_SUB) || !add(s, v)) return NULL;
    kl_var *x = kl_operand_through(v->op.inputs[0]);
    if (x->dtype != KL_FLOAT32 || x->ndim != v->ndim || memcmp(x->shape, v->shape, sizeof(int64_t) * (size_t)x->ndim))
        return NULL;
    return row_reduce(s, v->op.inputs[1], KL_REDUCE_MAX, d, x, 0) ? x : NULL;
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

/* Every recorded var is read only by recorded vars and y: its pending
 * consumers are those, and nothing outside holds it. */
static int closed(const var_set *s, const kl_var *y)
{
    for (int i = 0; i < s->n; i++) {
        const kl_var *v = s->v[i];
        if (v->user_refs > 0 || v->buf || v->materialize) return 0;
        int readers = 0;
        for (int j = 0; j <= s->n; j++) {
            const kl_var *c = j < s->n ? s->v[j] : y;
            for (int k = 0; k < c->op.n_inputs; k++) readers += c->op.inputs[k] == v;
        }
        if (readers != v->graph_refs) return 0;
    }
    return 1;
}

int kl_softmax_match(kl_var *y, kl_pattern *p, kl_var **inner, int *n_inner)
{
    *n_inner = 0;
    if (y->dtype != KL_FLOAT32 || y->op.kind != KL_OP_BINARY || y->numel == 0) return 0;
    int log = y->op.p.binary == KL_SUB;
    if (!log && y->op.p.binary != KL_DIV) return 0;
    var_set s = {.n = 0, .full = 0};
    kl_var *top = through(&s, y->op.inputs[0]), *bottom = through(&s, y->op.inputs[1]);
    int d = reduced_dim(y, bottom);
    if (d < 0 || top->ndim != y->ndim) return 0;
    kl_var *x = NULL;
    if (!log) { /* y = e / sum(e), e = exp(x - max x) */
        if (!is_op(top, KL_OP_UNARY) || top->op.p.unary != KL_EXP || !add(&s, top)) return 0;
        x = shifted(&s, top->op.inputs[0], d);
        if (!x || !row_reduce(&s, bottom, KL_REDUCE_SUM, d, top, 1)) return 0;
    } else { /* y = a - log(sum(exp(a))), a = x - max x */
        x = shifted(&s, top, d);
        if (!x || !is_op(bottom, KL_OP_UNARY) || bottom->op.p.unary != KL_LOG || !add(&s, bottom)) return 0;
        kl_var *sum = through(&s, bottom->op.inputs[0]);
        if (!is_op(sum, KL_OP_REDUCE) || sum->op.p.reduce.op != KL_REDUCE_SUM || sum->op.p.reduce.mask != 1u << d ||
            !sum->op.p.reduce.keepdims || !add(&s, sum))
            return 0;
        kl_var *e = through(&s, sum->op.inputs[0]);
        if (!is_op(e, KL_OP_UNARY) || e->op.p.unary != KL_EXP || !add(&s, e) || through(&s, e->op.inputs[0]) != top)
            return 0;
    }
    if (s.full || !closed(&s, y)) return 0;
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
