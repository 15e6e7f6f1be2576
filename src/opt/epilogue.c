/* epilogue.c: the chain a convolution's epilogue is (the forms are in
 * epilogue.h). Walked from the stored var down: each binary op has the
 * chain on one side, the whole result's shape, and on the other a
 * per-channel vector, a residual or (for a ReLU) the literal zero; stop_grads
 * and identity casts (no_grad puts one above every op) are walked through.
 * Every var walked is computed inside the call, so each must be read by the
 * chain alone and held by nobody; and no gradient may pass through the
 * stored var (only stop_grads read it: no_grad's mark), since a backward
 * pass through the chain would compute the convolution again. */
#include "opt/epilogue.h"
#include "opt/operand.h"
#include <string.h>

enum { OTHER_NONE, OTHER_CHANNEL, OTHER_FULL };

static int is_alias(const kl_var *x) { return kl_op_traits(x->op.kind) & KL_ALIAS; }

/* The literal zero, seen through broadcasts, reshapes and passes. */
static int is_zero(const kl_var *x)
{
    while (!x->buf && (x->op.kind == KL_OP_BROADCAST || x->op.kind == KL_OP_RESHAPE || kl_operand_passes(x)))
        x = x->op.inputs[0];
    return !x->buf && x->op.kind == KL_OP_FULL && x->op.p.full.value == 0.0;
}

/* Whether x can be a link of the chain (computed inside the call): pending,
 * read once, held by nobody, and not stored unless it is a convolution or
 * an alias (which stores nothing of its own). */
static int private_link(const kl_var *x, const kl_var *e)
{
    return !x->buf && !x->absorbed && x->graph_refs == 1 && x->user_refs == 0 && x->device == e->device &&
           (!x->materialize || x->pattern || is_alias(x));
}

/* What the operand beside the chain is, read over e's shape: a float32
 * vector along dim 1, or an array of e's shape, row-major. */
static int classify(kl_var *x, const kl_var *e, kl_var **src)
{
    int64_t str[KL_MAX_DIMS];
    if (!kl_operand_view(x, e->ndim, e->shape, 1, src, str) || (*src)->dtype != KL_FLOAT32) return OTHER_NONE;
    int channel = (*src)->numel == e->shape[1], full = (*src)->numel == e->numel;
    int64_t s = 1;
    for (int d = e->ndim - 1; d >= 0; d--) {
        if (e->shape[d] != 1) {
            channel &= str[d] == (d == 1 ? 1 : 0);
            full &= str[d] == s;
        }
        s *= e->shape[d];
    }
    return channel ? OTHER_CHANNEL : full ? OTHER_FULL : OTHER_NONE;
}

/* One step of the chain at binary x: which input continues it (-1: x is
 * not a step), the step and its operand. Where both inputs could continue
 * it (a sum of two convolutions' results), the one whose partner is stored
 * already does: that partner is then the residual. */
static int step_at(kl_var *x, const kl_var *e, uint8_t *op, kl_var **operand)
{
    int best = -1;
    for (int s = 0; s < 2; s++) {
        kl_var *c = x->op.inputs[s], *o = x->op.inputs[1 - s], *src = NULL;
        /* the chain goes on through binary ops (and passes) to the convolution:
         * a broadcast partner of the same shape is an operand, not a link */
        const kl_var *next = c;
        while (!next->buf && !next->materialize && kl_operand_passes(next)) next = next->op.inputs[0];
        /* a computed var ends the chain: it is an operand, whatever it was */
        int link = !next->buf && (next->pattern || is_alias(next) || next->op.kind == KL_OP_BINARY);
        if (!link || !kl_operand_same_shape(c, e) || !private_link(c, e)) continue;
        int kind = OTHER_NONE, step = -1;
        if (x->op.p.binary == KL_MAXIMUM && is_zero(o)) {
            step = KL_EPI_RELU;
        } else if (x->op.p.binary == KL_MUL || x->op.p.binary == KL_ADD) {
            kind = classify(o, e, &src);
            if (kind == OTHER_CHANNEL) step = x->op.p.binary == KL_MUL ? KL_EPI_SCALE : KL_EPI_SHIFT;
            if (kind == OTHER_FULL && x->op.p.binary == KL_ADD) step = KL_EPI_RESIDUAL;
        }
        if (step < 0 || (best >= 0 && !(o->buf || o->materialize))) continue;
        best = s;
        *op = (uint8_t)step;
        *operand = step == KL_EPI_RELU ? NULL : src;
    }
    return best;
}

int kl_epilogue_match(kl_var *e, kl_var *const *later, int n_later, kl_pattern *p, kl_var **chain, int *n_chain)
{
    *n_chain = 0;
    if ((e->op.kind != KL_OP_BINARY && e->op.kind != KL_OP_CAST) || e->buf || e->pattern || e->dtype != KL_FLOAT32 ||
        e->ndim < 3 || e->ndim > 5)
        return 0;
    uint8_t ops[KL_MAX_EPILOGUE];
    kl_var *operands[KL_MAX_EPILOGUE];
    int n = 0, residuals = 0;
    kl_var *x = e;
    while (!x->pattern) {
        if (x != e) {
            if (!private_link(x, e) || *n_chain == KL_EPILOGUE_MAX_CHAIN) return 0;
            chain[(*n_chain)++] = x;
        }
        if (kl_operand_passes(x)) {
            x = x->op.inputs[0];
            continue;
        }
        if (x->op.kind != KL_OP_BINARY || n == KL_MAX_EPILOGUE) return 0;
        int side = step_at(x, e, &ops[n], &operands[n]);
        if (side < 0 || (ops[n] == KL_EPI_RESIDUAL && residuals++)) return 0; /* one sum post-op */
        n++;
        x = x->op.inputs[side];
    }
    if (x == e || !private_link(x, e) || *n_chain == KL_EPILOGUE_MAX_CHAIN) return 0;
    chain[(*n_chain)++] = x;
    const kl_pattern *conv = x->pattern;
    if (conv->kind != KL_PATTERN_CONV || conv->conv.kind != KL_CONV_FORWARD || conv->conv.epilogue.n ||
        conv->dtype != KL_FLOAT32 || !kl_operand_same_shape(x, e) || n == 0 ||
        !kl_operand_gradient_free(e, later, n_later))
        return 0;
    *p = *conv;
    p->conv.epilogue.n = n;
    for (int i = 0; i < n; i++) { /* the walk met the steps last first */
        p->conv.epilogue.op[i] = ops[n - 1 - i];
        p->epilogue_operand[i] = operands[n - 1 - i];
    }
    return 1;
}
