/* fuse.c: the fusion rules. A var is computed by a kernel of its own when it
 * is asked for, held by the user, a reduction or scatter (those end a loop
 * nest), or read by several consumers and too costly to recompute in each;
 * every other pending var is inlined: element-wise chains, broadcasts and
 * reindexes fold into whoever reads them, and a reduce absorbs its producers.
 * Last, a convolution whose result only flows through an epilogue the
 * device runs with it (epilogue.h) hands its result to the chain's end, and
 * results only convolutions read stay in the library's layout (layout.h),
 * and results over the same loops that read a stored var in common share
 * one kernel (siblings.h). */
#include "opt/fuse.h"
#include "backend/backend.h"
#include "codegen/kdesc.h"
#include "opt/conv.h"
#include "opt/epilogue.h"
#include "opt/layernorm.h"
#include "opt/layout.h"
#include "opt/matmul.h"
#include "opt/siblings.h"
#include "opt/operand.h"
#include "opt/softmax.h"

#define SHARED_INLINE_COST 8  /* recompute rather than store below this */
/* the same for what overlapping windows read, several times each and at
 * gathered positions: a ReLU of a stored array, not an affine map's chain
 * (inlined into ResNet's 3x3 max-pool, an eval batch norm's three ops and
 * their stop_grads made the pool 5x slower than storing them) */
#define WINDOW_INLINE_COST 3
#define SMALL_SHARED_INLINE_COST 32 /* the same for small vars, where a launch costs more */
#define SMALL_NUMEL (1 << 16)
#define MAX_INLINE_COST 96    /* keep generated kernels a readable size */
#define MATH_CALL_COST 8      /* exp, log, tanh...: a libm call costs as much as a pass over memory */
/* a kernel reads at most KL_KD_MAX_BUFS buffers: past this many an input is
 * stored (read as one buffer) instead of inlined, so a sum of 100 arrays
 * becomes a few kernels; the margin covers one op's own inputs */
#define MAX_KERNEL_READS (KL_KD_MAX_BUFS - 2 * KL_MAX_INPUTS)

/* What computing one element of v adds, its inputs aside. */
static int own_cost(const kl_var *v)
{
    if (v->op.kind == KL_OP_UNARY && kl_unary_traits(v->op.p.unary) & KL_LIBM) return MATH_CALL_COST;
    if (v->op.kind == KL_OP_BINARY && kl_binary_traits(v->op.p.binary) & KL_LIBM) return MATH_CALL_COST;
    return 1;
}

static int is_alias(const kl_var *v) { return kl_op_traits(v->op.kind) & KL_ALIAS; }

/* Marks v for storing; a stored alias needs its input stored, down a chain of aliases. */
static void store(kl_var *v)
{
    v->materialize = 1;
    for (kl_var *a = v; is_alias(a) && !a->op.inputs[0]->buf; a = a->op.inputs[0])
        a->op.inputs[0]->materialize = 1;
}

/* A library pattern v's device runs (written to *p), or NULL. The matchers
 * are pure; the device decides. A softmax's intermediates are marked
 * absorbed: the library call computes them along with v. */
static kl_pattern *library_pattern(kl_var *v, kl_pattern *p)
{
    kl_backend *dev = v->device;
    if (!dev->ops->supports) return NULL;
    if (v->op.kind == KL_OP_REDUCE && kl_matmul_match(v, 1, p) && dev->ops->supports(dev, p)) return p;
    if ((v->op.kind == KL_OP_REDUCE || v->op.kind == KL_OP_REINDEX_REDUCE) && kl_conv_match(v, 1, p) &&
        dev->ops->supports(dev, p))
        return p;
    kl_var *inner[KL_ROW_MAX_INNER];
    int n_inner;
    if (v->op.kind == KL_OP_BINARY && kl_softmax_match(v, p, inner, &n_inner) && dev->ops->supports(dev, p)) {
        for (int i = 0; i < n_inner; i++) inner[i]->absorbed = 1;
        return p;
    }
    return NULL;
}

/* v's kernel becomes one library call with the convolution it ends a chain
 * over: the chain is computed inside it, its operands are stored. Returns
 * whether that stored an element-wise var that was inlined (a residual
 * that is itself a convolution's epilogue, say): it may now end a chain. */
static int absorb_epilogue(kl_var *v, kl_var *const *later, int n_later, kl_pattern *p)
{
    kl_var *chain[KL_EPILOGUE_MAX_CHAIN];
    int n_chain, stored_elementwise = 0;
    kl_backend *dev = v->device;
    if (!dev->ops->supports || !kl_epilogue_match(v, later, n_later, p, chain, &n_chain) || !dev->ops->supports(dev, p))
        return 0;
    for (int i = 0; i < n_chain; i++) {
        chain[i]->materialize = 0;
        chain[i]->pattern = NULL;
        chain[i]->absorbed = 1;
    }
    for (int i = 0; i < p->conv.epilogue.n; i++) {
        kl_var *operand = p->epilogue_operand[i];
        if (!operand || operand->buf || operand->materialize) continue;
        stored_elementwise |= operand->op.kind == KL_OP_BINARY || operand->op.kind == KL_OP_CAST;
        store(operand);
    }
    v->pattern = p;
    return stored_elementwise;
}

/* Layer norms, matched from the last var back so that the largest form
 * (with the weight and bias steps) wins over the bare normalisation it
 * contains; their intermediates are absorbed as a softmax's are. Only
 * where no gradient passes (no_grad): a backward pass reads the mean and
 * variance, which the kernel keeps to itself (measured: a training step's
 * layer norm 5.6 -> 8.0 ms when the backward computed them again). */
static void find_layernorms(kl_var **order, int n, kl_pattern *patterns)
{
    kl_var *inner[KL_ROW_MAX_INNER];
    int n_inner;
    for (int i = n - 1; i >= 0; i--) {
        kl_var *v = order[i];
        kl_backend *dev = v->device;
        if (v->absorbed || v->op.kind != KL_OP_BINARY || !dev->ops->supports ||
            !kl_layernorm_match(v, &patterns[i], inner, &n_inner) ||
            !kl_operand_gradient_free(v, order + i + 1, n - i - 1) || !dev->ops->supports(dev, &patterns[i]))
            continue;
        for (int k = 0; k < n_inner; k++) inner[k]->absorbed = 1;
        v->pattern = &patterns[i];
    }
}

void kl_fuse_plan(kl_var **order, int n, const uint8_t *is_target, kl_pattern *patterns)
{
    for (int i = 0; i < n; i++) {
        order[i]->materialize = order[i]->absorbed = 0;
        order[i]->pattern = NULL;
    }
    find_layernorms(order, n, patterns);
    /* extras are read by index, so they must be stored */
    for (int i = 0; i < n; i++) {
        kl_var *v = order[i];
        if (v->op.kind == KL_OP_REINDEX || v->op.kind == KL_OP_REINDEX_REDUCE)
            for (int k = 1; k < v->op.n_inputs; k++) v->op.inputs[k]->materialize = 1;
        /* a matrix product, a convolution or a softmax goes to a library when its operands are stored */
        if (!v->pattern && !v->absorbed && (kl_op_traits(v->op.kind) & KL_ROOT || v->op.kind == KL_OP_BINARY))
            v->pattern = library_pattern(v, &patterns[i]);
        if (v->pattern) {
            if (!v->pattern->a->buf) v->pattern->a->materialize = 1;
            if (v->pattern->b && !v->pattern->b->buf) v->pattern->b->materialize = 1;
            kl_var *bias = v->pattern->kind == KL_PATTERN_LAYERNORM ? v->pattern->layernorm.bias : NULL;
            if (bias && !bias->buf) bias->materialize = 1;
        }
        if (kl_op_traits(v->op.kind) & KL_WHOLE_INPUTS)
            for (int k = 0; k < v->op.n_inputs; k++) v->op.inputs[k]->materialize = 1;
    }
    for (int i = 0; i < n; i++) {
        kl_var *v = order[i];
        if (v->absorbed) {
            v->cost = 0;
            v->reads = 1;
            continue;
        }
        int reads = 0;
        for (int k = 0; k < v->op.n_inputs; k++) {
            kl_var *in = v->op.inputs[k];
            int stored = in->buf || in->materialize;
            if (!stored && reads + in->reads > MAX_KERNEL_READS) {
                store(in);
                stored = 1;
            }
            reads += stored ? 1 : in->reads;
        }
        v->reads = reads;
        int cost = own_cost(v);
        for (int k = 0; k < v->op.n_inputs; k++) {
            kl_var *in = v->op.inputs[k];
            if (!in->buf && !in->materialize) cost += in->cost;
        }
        /* a reindex with more elements than its input (overlapping windows)
         * reads input elements several times, at gathered positions: a costly
         * input is computed once and stored instead */
        if (v->op.kind == KL_OP_REINDEX && v->numel > v->op.inputs[0]->numel) {
            kl_var *in = v->op.inputs[0];
            if (!in->buf && !in->materialize && in->cost > WINDOW_INLINE_COST) {
                store(in);
                cost -= in->cost;
            }
        }
        v->cost = cost;
        int shared = v->graph_refs > 1 &&
                     cost > (v->numel < SMALL_NUMEL ? SMALL_SHARED_INLINE_COST : SHARED_INLINE_COST);
        /* a generator is recomputed for free wherever it is read */
        int generator = kl_op_traits(v->op.kind) & KL_GENERATOR;
        /* a reshape of a stored var is free (an alias); of an inlined one, index arithmetic */
        int alias_free = is_alias(v) && (v->op.inputs[0]->buf || v->op.inputs[0]->materialize);
        if (is_target[i] || shared || cost > MAX_INLINE_COST || alias_free ||
            (v->user_refs > 0 && !generator) || kl_op_traits(v->op.kind) & KL_ROOT || v->pattern ||
            v->stop_fuse)
            v->materialize = 1;
        if (v->materialize) {
            store(v);
            v->cost = 0;
            v->reads = 1;
        }
    }
    for (int again = 1; again;) {
        again = 0;
        for (int i = 0; i < n; i++)
            if (order[i]->materialize && !order[i]->pattern &&
                (order[i]->op.kind == KL_OP_BINARY || order[i]->op.kind == KL_OP_CAST))
                again |= absorb_epilogue(order[i], order + i + 1, n - i - 1, &patterns[i]);
    }
    kl_layout_plan(order, n, is_target);
    kl_siblings_plan(order, n);
}
