/* siblings.c: multi-output kernels. A batch norm's statistics are two sums
 * over the same elements, its gradient two more; computed apart, each pass
 * reads the activations (and whatever its inlined chain reads) again. An
 * optimiser's step writes a parameter and its state, each a kernel reading
 * the other's inputs again. Folded in one kernel, the loops run once and
 * what the chains share is computed once (the kernel description's extra
 * values).
 *
 * Usually the later of two is the kernel: every input of both is computed
 * by then, and the earlier one's result waits for it, so nothing between
 * them may read that result; a map sibling that reads the earlier one
 * element by element computes it in the same loop instead (a parameter's
 * update reads its new momentum). Where something between them reads the
 * earlier one (a running mean's update, which reads the first sum only),
 * the earlier one is the kernel if the later one reads nothing computed
 * between them. Only kernels that read a stored var in common are folded:
 * folding unrelated ones would keep the earlier one's inputs alive longer. */
#include "opt/siblings.h"
#include "backend/backend.h"
#include "core/context.h"
#include "core/dtype.h"
#include <stdlib.h>
#include <string.h>

/* how many earlier candidates a kernel looks back over, how many of those
 * with equal loops it checks, and how far (each check walks the order
 * between them): bounds that keep the pass linear in the graph */
#define LOOKBACK 16
#define MAX_CHECKS 4
#define MAX_DISTANCE 1024 /* positions apart (ResNet's siblings: at most 12) */
/* the nodes of the chains one kernel computes (a batch norm's sums: ~20),
 * below its locals (KL_KD_MAX_LOCALS) and scalar arguments (KL_KD_MAX_FARGS) */
#define MAX_FOLDED_NODES 112
#define MAX_LOADS KL_KD_MAX_BUFS

/* The renderers of v's device (and of the compile check, which renders the
 * same descriptions) fold extra values. */
static int device_folds_siblings(const kl_var *v)
{
    const kl_backend *check = v->ctx->compile_check;
    return v->device->ops->sibling_outputs && (!check || check->ops->sibling_outputs);
}

/* The kernels that can share: a sum or mean of floats, or an element-wise
 * kernel (a map). */
enum { NONE, REDUCE, MAP };

static int candidate(const kl_var *v)
{
    if (!v->materialize || v->pattern || v->absorbed || v->buf) return NONE;
    switch (v->op.kind) {
    case KL_OP_REDUCE: {
        kl_reduce_op op = v->op.p.reduce.op;
        kl_dtype in = v->op.inputs[0]->dtype;
        return (op == KL_REDUCE_SUM || op == KL_REDUCE_MEAN) && (in == KL_FLOAT32 || in == KL_FLOAT64) ? REDUCE : NONE;
    }
    case KL_OP_UNARY: case KL_OP_CAST: case KL_OP_BINARY: case KL_OP_WHERE: case KL_OP_BROADCAST: case KL_OP_REINDEX:
        return MAP;
    default:
        return NONE;
    }
}

/* Read from memory by a kernel (computed, or stored by this sync), not inlined into it. */
static int stored(const kl_var *v) { return v->buf || v->materialize; }

static int same_shape(const kl_var *a, const kl_var *b)
{
    return a->ndim == b->ndim && memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof *a->shape) == 0;
}

/* a's and b's loops are the same: a reduce's input shape, reduced dims, op
 * and dtypes; a map's shape. */
static int same_loops(const kl_var *a, const kl_var *b, int kind)
{
    if (a->device != b->device) return 0;
    if (kind == MAP) return same_shape(a, b);
    const kl_var *x = a->op.inputs[0], *y = b->op.inputs[0];
    return same_shape(x, y) && a->op.p.reduce.mask == b->op.p.reduce.mask &&
           a->op.p.reduce.keepdims == b->op.p.reduce.keepdims && a->op.p.reduce.op == b->op.p.reduce.op &&
           x->dtype == y->dtype && a->dtype == b->dtype;
}

/* A set of stored vars, at most MAX_LOADS (full: past it). */
typedef struct {
    const kl_var *v[MAX_LOADS];
    int n, full;
} load_set;

static int in_set(const load_set *s, const kl_var *v)
{
    for (int i = 0; i < s->n; i++)
        if (s->v[i] == v) return 1;
    return 0;
}

static void add_load(load_set *s, const kl_var *v)
{
    if (in_set(s, v)) return;
    if (s->n == MAX_LOADS) s->full = 1;
    else s->v[s->n++] = v;
}

/* The stored vars v reads, through what is inlined into it (short chains:
 * fuse.c bounds their cost). */
static void loads_through(const kl_var *v, load_set *s)
{
    for (int k = 0; k < v->op.n_inputs && !s->full; k++) {
        const kl_var *in = v->op.inputs[k];
        if (stored(in)) add_load(s, in);
        else loads_through(in, s);
    }
}

/* What the kernel computing v reads. */
static void kernel_loads(const kl_var *v, int kind, load_set *s)
{
    const kl_var *x = v->op.inputs[0];
    if (kind == REDUCE && stored(x)) add_load(s, x);
    else loads_through(kind == REDUCE ? x : v, s);
}

/* Whether v's kernel reads a at all (through what is inlined into it). */
static int reads_at_all(const kl_var *v, const kl_var *a)
{
    for (int k = 0; k < v->op.n_inputs; k++) {
        const kl_var *in = v->op.inputs[k];
        if (in == a || (!stored(in) && reads_at_all(in, a))) return 1;
    }
    return 0;
}

/* The nodes a kernel computing v walks (its inlined chains, a tree count). */
static int cone_nodes(const kl_var *v, int limit)
{
    int n = 1;
    for (int k = 0; k < v->op.n_inputs && n <= limit; k++) {
        const kl_var *in = v->op.inputs[k];
        n += stored(in) ? 1 : cone_nodes(in, limit - n);
    }
    return n;
}

static int cone_size(const kl_var *v, int kind)
{
    return cone_nodes(kind == REDUCE ? v->op.inputs[0] : v, MAX_FOLDED_NODES + 1);
}

static int elementwise(const kl_var *v)
{
    kl_op_kind k = v->op.kind;
    return k == KL_OP_UNARY || k == KL_OP_CAST || k == KL_OP_BINARY || k == KL_OP_WHERE || k == KL_OP_STOP_GRAD ||
           k == KL_OP_CUSTOM_GRAD;
}

/* How v's kernel reads a: 0 not at all, 1 only element by element (through
 * element-wise ops of a's shape: a map sibling computes a in the same loop,
 * as a's own kernel would), -1 otherwise (at other positions, or a of a
 * dtype whose stored form is rounded from the value computed: float16 and
 * bfloat16, which a load would read rounded). */
static int reads_elementwise(const kl_var *v, const kl_var *a)
{
    if (a->dtype != KL_BOOL && strcmp(kl_dtype_ctype(a->dtype), kl_dtype_compute_ctype(a->dtype)) != 0)
        return -1 + !reads_at_all(v, a);
    int found = 0;
    for (int k = 0; k < v->op.n_inputs; k++) {
        const kl_var *in = v->op.inputs[k];
        int r = in == a ? 1 : !stored(in) ? reads_elementwise(in, a) : 0;
        if (r < 0 || (r > 0 && (!elementwise(v) || !same_shape(v, in)))) return -1;
        found |= r;
    }
    return found;
}

/* Whether a sibling computed in w's kernel reads a. */
static int kernel_computes_reader_of(const kl_var *w, const kl_var *a)
{
    for (int k = 0; k < w->n_siblings; k++)
        if (reads_at_all(w->siblings[k], a)) return 1;
    return 0;
}

/* Whether a kernel that runs from order[from] to order[to] (root's place)
 * reads v: a stored var there that reads it, directly or through the vars
 * inlined into it, or whose kernel computes a sibling (from elsewhere in
 * the order) that reads it; root's own kernel (root and its siblings)
 * counts unless it may (its_own_may_read). An inlined reader whose kernel
 * comes later is no obstacle (a mean scaled before the sum of squares is
 * taken, say). The marks are cleared again before returning. */
static int kernel_between_reads(kl_var **order, int from, int to, const kl_var *v, const kl_var *root,
                                int its_own_may_read)
{
    int found = 0;
    for (int i = from; i <= to && !found; i++) {
        kl_var *w = order[i];
        for (int k = 0; k < w->op.n_inputs && !w->reads_candidate; k++) {
            const kl_var *in = w->op.inputs[k];
            w->reads_candidate = in == v || (in->reads_candidate && !stored(in));
        }
        int its_own = w == root || w->sibling_of == root;
        int reads = w->reads_candidate || (w->n_siblings && kernel_computes_reader_of(w, v));
        found = reads && (w->materialize || i == to) && !(its_own && its_own_may_read);
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
 * computed from there on (before order[to], v's place). */
static int kernel_reads_from(kl_var **order, int from, int to, const kl_var *v)
{
    for (int i = from; i < to; i++) order[i]->reads_candidate = (uint8_t)(order[i]->materialize != 0);
    int found = kernel_reads_marked(v);
    for (int i = from; i < to; i++) order[i]->reads_candidate = 0;
    return found;
}

/* root's kernel computes sib too: sib points back, the root lists it
 * (lowering walks the list: src/ops/lower.c). */
static void join(kl_var *root, kl_var *sib)
{
    sib->sibling_of = root;
    root->siblings[root->n_siblings++] = sib;
}

/* Tries to fold a (at order[i]) with b (at order[j], later); kernel holds
 * what b's kernel reads so far and grows with a's reads. Returns 1 when
 * folded, -1 when b went into a's kernel (b takes no more). */
static int try_fold(kl_var **order, int i, int j, int kind, load_set *kernel)
{
    kl_var *a = order[i], *b = order[j];
    /* how b's kernel (b and its siblings so far) reads a: a sum never may,
     * a map element by element */
    int reads_a = 0, size = cone_size(a, kind);
    for (int k = -1; k < b->n_siblings; k++) {
        const kl_var *member = k < 0 ? b : b->siblings[k];
        int r = kind == MAP ? reads_elementwise(member, a) : -reads_at_all(member, a);
        if (r < 0) return 0;
        reads_a |= r;
        size += cone_size(member, kind);
    }
    /* the instructions' locals and scalar arguments must fit one kernel */
    if (size > MAX_FOLDED_NODES) return 0;
    load_set mine = {.n = 0};
    kernel_loads(a, kind, &mine);
    int shared = reads_a, fresh = 0;
    for (int k = 0; k < mine.n; k++) {
        if (in_set(kernel, mine.v[k])) shared = 1;
        else if (mine.v[k] != a) fresh++; /* a itself is computed in the kernel, not read */
    }
    /* buffers: the outputs and the reads */
    if (!shared || mine.full || 2 + b->n_siblings + kernel->n + fresh > KL_KD_MAX_BUFS) return 0;
    if (!kernel_between_reads(order, i + 1, j, a, b, reads_a > 0)) {
        join(b, a);
    } else if (!b->n_siblings && !kernel_reads_from(order, reads_a > 0 ? i + 1 : i, j, b)) {
        join(a, b); /* both run in a's place */
        return -1;
    } else {
        return 0;
    }
    for (int k = 0; k < mine.n; k++)
        if (mine.v[k] != a) add_load(kernel, mine.v[k]);
    return 1;
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
    if (!at) return; /* only a saving: without it each result is its own kernel */
    for (int i = 0; i < n; i++)
        if (candidate(order[i]) && device_folds_siblings(order[i])) at[m++] = i;
    /* the latest first: it takes what it can of those before it (an
     * optimiser step's new parameter takes its new state) */
    for (int q = m - 1; q >= 0; q--) {
        int j = at[q];
        kl_var *b = order[j];
        int kind = candidate(b);
        if (b->sibling_of || b->n_siblings >= KL_MAX_SIBLINGS) continue;
        load_set kernel = {.n = 0};
        kernel_loads(b, kind, &kernel);
        for (int k = 0; k < b->n_siblings; k++) kernel_loads(b->siblings[k], kind, &kernel);
        if (kernel.full) continue;
        for (int r = q - 1, checks = 0; r >= 0 && r >= q - LOOKBACK && checks < MAX_CHECKS &&
                                        b->n_siblings < KL_MAX_SIBLINGS; r--) {
            int i = at[r];
            kl_var *a = order[i];
            if (j - i > MAX_DISTANCE) break;
            if (a->sibling_of || a->n_siblings || candidate(a) != kind || !same_loops(a, b, kind)) continue;
            checks++;
            if (try_fold(order, i, j, kind, &kernel) < 0) break;
        }
    }
    free(at);
}
