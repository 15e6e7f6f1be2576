/* rows.c: the row patterns' shared walk (rows.h). */
#include "opt/rows.h"
#include "opt/operand.h"

int kl_row_add(kl_row_set *s, kl_var *v)
{
    for (int i = 0; i < s->n; i++)
        if (s->v[i] == v) return 1;
    if (s->n == KL_ROW_MAX_INNER) {
        s->full = 1;
        return 0;
    }
    s->v[s->n++] = v;
    return 1;
}

kl_var *kl_row_through(kl_row_set *s, kl_var *x)
{
    kl_var *end = kl_operand_through(x);
    for (; x != end; x = x->op.inputs[0]) kl_row_add(s, x);
    return end;
}

int kl_row_is_op(const kl_var *v, kl_op_kind kind) { return !v->buf && !v->materialize && v->op.kind == kind; }

int kl_row_is_binary(const kl_var *v, kl_binary_op op)
{
    return kl_row_is_op(v, KL_OP_BINARY) && v->op.p.binary == op;
}

kl_var *kl_row_reduction(kl_row_set *s, kl_var *v, kl_reduce_op op, int d)
{
    v = kl_row_through(s, v);
    if (!kl_row_is_op(v, KL_OP_REDUCE) || v->op.p.reduce.op != op || v->op.p.reduce.mask != 1u << d ||
        !v->op.p.reduce.keepdims || !kl_row_add(s, v))
        return NULL;
    return v;
}

int kl_row_reduce(kl_row_set *s, kl_var *v, kl_reduce_op op, int d, kl_var *want, int want_inside)
{
    v = kl_row_reduction(s, v, op, d);
    if (!v) return 0;
    return (want_inside ? kl_row_through(s, v->op.inputs[0]) : kl_operand_through(v->op.inputs[0])) == want;
}

int kl_row_closed(const kl_row_set *s, const kl_var *y)
{
    if (s->full) return 0;
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
