/* layout.c: keeping convolution results in the library's layout (the rule
 * is in layout.h). A result is read through the stop_grads no_grad puts
 * above it (aliases of its buffer, or inlined: the same values); every
 * input slot that reads the result or one of those must be accounted for:
 * another of those (whose readers are then checked too), the window
 * reindex of a convolution that reads it as its input, or the link of an
 * absorbed epilogue chain that adds it as the residual (as many of each as
 * there are such convolutions, and each reindex read by one consumer, so
 * none feeds a kernel besides; a pattern may name the result where its
 * reindex reads an alias: one buffer). The slots must be all of each one's
 * consumers (graph_refs), so nothing outside the sync reads the buffer
 * later, and each convolution that reads it must let no gradient through
 * (a backward pass would read its input as row-major). One walk checks the
 * readers and collects them; only then are they marked. */
#include "opt/layout.h"
#include "backend/backend.h"
#include "opt/operand.h"

#define MAX_ALIASES 16
#define MAX_READERS 16 /* convolutions reading one result; more keep it row-major */

typedef struct {
    kl_var *v[MAX_ALIASES]; /* the result and the stop_grads (identity casts) above it */
    int n;
    int slots[MAX_ALIASES]; /* input slots reading each */
    int reindex_reads, chain_reads; /* slots of each kind, over all of them */
    kl_pattern *inputs[MAX_READERS], *residuals[MAX_READERS]; /* convolutions reading the buffer so */
    int n_inputs, n_residuals;
} holders;

static int index_of(const holders *h, const kl_var *v)
{
    for (int i = 0; i < h->n; i++)
        if (h->v[i] == v) return i;
    return -1;
}

static int forward_conv(const kl_var *v)
{
    return v->pattern && v->pattern->kind == KL_PATTERN_CONV && v->pattern->conv.kind == KL_CONV_FORWARD;
}

static int residual_index(const kl_pattern *p, const holders *h)
{
    for (int i = 0; i < p->conv.epilogue.n; i++)
        if (p->conv.epilogue.op[i] == KL_EPI_RESIDUAL) return index_of(h, p->epilogue_operand[i]);
    return -1;
}

/* Whether every read of order[i]'s result is a convolution's, in layout L;
 * when so, h holds those convolutions. */
static int readers_agree(kl_var **order, int n, int i, const uint8_t *is_target, uint32_t L, holders *h)
{
    *h = (holders){.n = 1, .v = {order[i]}};
    kl_backend *dev = order[i]->device;
    for (int j = i + 1; j < n; j++) {
        kl_var *c = order[j];
        for (int k = 0; k < c->op.n_inputs; k++) {
            int m = index_of(h, c->op.inputs[k]);
            if (m < 0) continue;
            h->slots[m]++;
            if (kl_operand_passes(c) && !c->absorbed) { /* the same values: its readers are checked too */
                if (h->n == MAX_ALIASES || is_target[j] || c->user_refs) return 0;
                h->v[h->n++] = c;
            } else if (c->op.kind == KL_OP_REINDEX && !c->materialize && !c->absorbed && c->graph_refs == 1) {
                h->reindex_reads++; /* one consumer: the product of the convolution it is counted for */
            } else if (c->absorbed && c->op.kind == KL_OP_BINARY && c->op.p.binary == KL_ADD) {
                h->chain_reads++;   /* an epilogue's residual add */
            } else {
                return 0;
            }
        }
        if (!forward_conv(c)) continue;
        int a = index_of(h, c->pattern->a), r = residual_index(c->pattern, h);
        if (a < 0 && r < 0) continue;
        if (index_of(h, c->pattern->b) >= 0 || !kl_operand_gradient_free(c, order + j + 1, n - j - 1)) return 0;
        if (a >= 0 && dev->ops->layout(dev, c->pattern, 0) != L) return 0;
        if (r >= 0 && dev->ops->layout(dev, c->pattern, 1) != L) return 0;
        if ((a >= 0 && h->n_inputs == MAX_READERS) || (r >= 0 && h->n_residuals == MAX_READERS)) return 0;
        if (a >= 0) h->inputs[h->n_inputs++] = c->pattern;
        if (r >= 0) h->residuals[h->n_residuals++] = c->pattern;
    }
    for (int m = 0; m < h->n; m++)
        if (h->slots[m] != h->v[m]->graph_refs) return 0;
    return h->reindex_reads == h->n_inputs && h->chain_reads == h->n_residuals;
}

void kl_layout_plan(kl_var **order, int n, const uint8_t *is_target)
{
    for (int i = 0; i < n; i++) {
        kl_var *v = order[i];
        kl_backend *dev = v->device;
        if (!forward_conv(v) || is_target[i] || v->user_refs || !dev->ops->layout) continue;
        uint32_t L = dev->ops->layout(dev, v->pattern, 1);
        holders h;
        if (!L || !readers_agree(order, n, i, is_target, L, &h)) continue;
        for (int k = 0; k < h.n_inputs; k++) h.inputs[k]->a_layout = L;
        for (int k = 0; k < h.n_residuals; k++) h.residuals[k]->residual_layout = L;
        v->pattern->out_layout = L;
    }
}
