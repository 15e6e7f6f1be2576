/* siblings.c: multi-output reductions. A batch norm's statistics are two
 * sums over the same elements, its gradient two more; computed apart, each
 * pass reads the activations (and whatever its inlined chain reads) again.
 * Folded in one kernel, the loops run once and the shared chain is computed
 * once for both (the kernel description's extra values). Usually the later
 * of the two is the kernel: every input of both is computed by then, and
 * the earlier one's result waits for it, so nothing between them may read
 * that result. Where something does (a running mean's update, which reads
 * the first sum only), the earlier one is the kernel if the later one reads
 * nothing computed between them. */
#include "opt/siblings.h"
#include "backend/backend.h"
#include "core/context.h"
#include <stdlib.h>
#include <string.h>

/* how many earlier candidates a sum looks back over, and how many of
 * those with equal loops it checks (each check walks the order between
 * them): bounds that keep the pass linear in the graph */
#define LOOKBACK 16
#define MAX_CHECKS 4

/* The renderers of v's device (and of the compile check, which renders the
 * same descriptions) fold extra values. */
static int device_folds_siblings(const kl_var *v)
{
    const kl_backend *check = v->ctx->compile_check;
    return v->device->ops->sibling_reductions && (!check || check->ops->sibling_reductions);
}

static int candidate(const kl_var *v)
{
    if (!v->materialize || v->pattern || v->absorbed || v->buf || v->op.kind != KL_OP_REDUCE) return 0;
    kl_reduce_op op = v->op.p.reduce.op;
    kl_dtype in = v->op.inputs[0]->dtype;
    return (op == KL_REDUCE_SUM || op == KL_REDUCE_MEAN) && (in == KL_FLOAT32 || in == KL_FLOAT64);
}

/* a's and b's loops are the same: input shape, reduced dims, op, dtypes. */
static int same_loops(const kl_var *a, const kl_var *b)
{
    const kl_var *x = a->op.inputs[0], *y = b->op.inputs[0];
    return a->device == b->device && x->ndim == y->ndim &&
           memcmp(x->shape, y->shape, (size_t)x->ndim * sizeof *x->shape) == 0 &&
           a->op.p.reduce.mask == b->op.p.reduce.mask && a->op.p.reduce.keepdims == b->op.p.reduce.keepdims &&
           a->op.p.reduce.op == b->op.p.reduce.op && x->dtype == y->dtype && a->dtype == b->dtype;
}

/* The buffers v's kernel reads, at most (its input's bound, fuse.c). */
static int kernel_reads(const kl_var *v)
{
    const kl_var *x = v->op.inputs[0];
    return x->buf || x->materialize ? 1 : x->reads;
}

/* Whether a kernel that runs from order[from] to order[to] (the last
 * included) reads v: a stored var there that reads it, directly or through
 * the vars inlined into it. An inlined reader whose kernel comes later is
 * no obstacle (a mean scaled before the sum of squares is taken, say). The
 * marks are cleared again before returning. */
static int kernel_between_reads(kl_var **order, int from, int to, const kl_var *v)
{
    int found = 0;
    for (int i = from; i <= to && !found; i++) {
        kl_var *w = order[i];
        for (int k = 0; k < w->op.n_inputs && !w->reads_candidate; k++) {
            const kl_var *in = w->op.inputs[k];
            w->reads_candidate = in == v || (in->reads_candidate && !in->materialize && !in->buf);
        }
        found = w->reads_candidate && (w->materialize || i == to);
    }
    for (int i = from; i <= to; i++) order[i]->reads_candidate = 0;
    return found;
}

/* Whether v's kernel (v and what is inlined into it) reads a marked var. */
static int kernel_reads_marked(const kl_var *v)
{
    for (int k = 0; k < v->op.n_inputs; k++) {
        const kl_var *in = v->op.inputs[k];
        if (in->buf) continue;
        if (in->reads_candidate || (!in->materialize && kernel_reads_marked(in))) return 1;
    }
    return 0;
}

/* Whether v's kernel, moved back to order[from], would read a result
 * computed from there on (before order[to], v's place). The inlined chains
 * a kernel walks are short (fuse.c bounds their cost). */
static int kernel_reads_from(kl_var **order, int from, int to, const kl_var *v)
{
    for (int i = from; i < to; i++) order[i]->reads_candidate = (uint8_t)(order[i]->materialize != 0);
    int found = kernel_reads_marked(v);
    for (int i = from; i < to; i++) order[i]->reads_candidate = 0;
    return found;
}

void kl_siblings_plan(kl_var **order, int n)
{
    for (int i = 0; i < n; i++) {
        order[i]->n_siblings = order[i]->reads_candidate = 0;
        order[i]->sibling_of = NULL;
    }
    /* the candidates' positions: the graph's order (inputs first, depth
     * first) may put a normalisation's two sums far apart */
    int *at = malloc((size_t)(n > 0 ? n : 1) * sizeof *at), m = 0;
    if (!at) return; /* only a saving: without it each sum is its own kernel */
    for (int i = 0; i < n; i++)
        if (candidate(order[i]) && device_folds_siblings(order[i])) at[m++] = i;
    for (int q = 0; q < m; q++) {
        int j = at[q];
        kl_var *b = order[j];
        if (b->sibling_of) continue;
        int reads = kernel_reads(b), checks = 0;
        for (int r = q - 1; r >= 0 && r >= q - LOOKBACK && checks < MAX_CHECKS && b->n_siblings < KL_MAX_SIBLINGS; r--) {
            int i = at[r];
            kl_var *a = order[i];
            if (a->sibling_of || a->n_siblings || !same_loops(a, b)) continue;
            /* the kernel's buffers: its outputs and both chains' reads (a bound) */
            if (1 + b->n_siblings + 1 + reads + kernel_reads(a) > KL_KD_MAX_BUFS) continue;
            checks++;
            if (!kernel_between_reads(order, i + 1, j, a)) {
                a->sibling_of = b;
                b->siblings[b->n_siblings++] = a;
                reads += kernel_reads(a);
            } else if (!b->n_siblings && !kernel_reads_from(order, i, j, b)) {
                /* a kernel between reads a (a running mean's update), but b
                 * needs nothing computed after a: both run in a's place */
                b->sibling_of = a;
                a->siblings[a->n_siblings++] = b;
                break;
            }
        }
    }
    free(at);
}
