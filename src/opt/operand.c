/* operand.c: seeing through broadcasts to the stored var a library call reads. */
#include "opt/operand.h"
#include <string.h>

int kl_operand_passes(const kl_var *x)
{
    return x->op.kind == KL_OP_STOP_GRAD || (x->op.kind == KL_OP_CAST && x->op.inputs[0]->dtype == x->dtype);
}

int kl_operand_same_shape(const kl_var *a, const kl_var *b)
{
    return a->ndim == b->ndim && memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0]) == 0;
}

kl_var *kl_operand_through(kl_var *x)
{
    while (!x->buf && !x->materialize && kl_operand_passes(x)) x = x->op.inputs[0];
    return x;
}

int kl_operand_stored(const kl_var *x, int assume_roots)
{
    return x->buf || x->materialize || (assume_roots && x->op.kind != KL_OP_BROADCAST && !kl_operand_passes(x));
}

int kl_operand_view(kl_var *x, int R, const int64_t *shape, int assume_roots, kl_var **src, int64_t *strides)
{
    int map[KL_MAX_DIMS];
    for (int d = 0; d < R; d++) {
        int k = d - (R - x->ndim);
        map[d] = (k >= 0 && !(x->shape[k] == 1 && shape[d] != 1)) ? k : -1;
    }
    while (!kl_operand_stored(x, assume_roots)) {
        kl_var *in = x->op.inputs[0];
        if (x->op.kind == KL_OP_BROADCAST) {
            int to_in[KL_MAX_DIMS];
            for (int e = 0, j = 0; e < x->ndim; e++) {
                if (x->op.p.broadcast.mask >> e & 1) { to_in[e] = -1; continue; }
                to_in[e] = in->shape[j] == 1 && x->shape[e] != 1 ? -1 : j;
                j++;
            }
            for (int d = 0; d < R; d++) if (map[d] >= 0) map[d] = to_in[map[d]];
        } else if (!kl_operand_passes(x)) {
            return 0;
        }
        x = in;
    }
    int64_t stride[KL_MAX_DIMS], s = 1;
    for (int j = x->ndim - 1; j >= 0; j--) { stride[j] = s; s *= x->shape[j]; }
    for (int d = 0; d < R; d++) strides[d] = map[d] >= 0 && x->shape[map[d]] != 1 ? stride[map[d]] : 0;
    *src = x;
    return 1;
}

int kl_operand_gradient_free(const kl_var *v, kl_var *const *later, int n_later)
{
    if (v->user_refs) return 0;
    int cut = 0;
    for (int j = 0; j < n_later; j++)
        for (int k = 0; k < later[j]->op.n_inputs; k++)
            if (later[j]->op.inputs[k] == v) {
                /* a stop_grad cuts; an identity cast passes the question on */
                const kl_var *c = later[j];
                if (c->op.kind != KL_OP_STOP_GRAD &&
                    !(kl_operand_passes(c) && kl_operand_gradient_free(c, later + j + 1, n_later - j - 1)))
                    return 0;
                cut++;
            }
    return cut == v->graph_refs;
}
