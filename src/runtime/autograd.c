/* autograd.c: reverse-mode differentiation over the lazy graph. Each op
 * family's backward rule (in src/ops/) returns the gradient of one input as
 * new meta-ops, so gradients are lazy vars that fuse with the forward pass and
 * can themselves be differentiated. */
#include "ops/builder.h"
#include "core/context.h"
#include "ops/ops.h"
#include <stdlib.h>
#include <string.h>

typedef kl_status (*backward_fn)(kl_var *v, int k, kl_var *dv, kl_var **out);

static const backward_fn backward_table[KL_OP_KIND_COUNT] = {
#define KL_OP(ID, name, emit, backward, traits) [KL_OP_##ID] = backward,
#include "ops/ops.def"
#undef KL_OP
};

static kl_status backward_of(kl_var *v, int k, kl_var *dv, kl_var **out)
{
    *out = NULL;
    return backward_table[v->op.kind] ? backward_table[v->op.kind](v, k, dv, out) : KL_OK;
}

/* All vars y reaches through op inputs, inputs before consumers. */
static kl_status reach(kl_var *y, kl_var ***out, int *n_out)
{
    int cap = 64, n = 0, sn = 0, scap = 64;
    kl_var **order = malloc((size_t)cap * sizeof *order);
    kl_var **stack = malloc((size_t)scap * sizeof *stack);
    int *next = malloc((size_t)scap * sizeof *next);
    uint64_t epoch = ++y->ctx->grad_epoch;
    if (!order || !stack || !next) goto oom;
    y->grad_epoch = epoch;
    stack[sn] = y; next[sn++] = 0;
    while (sn) {
        kl_var *v = stack[sn - 1];
        if (next[sn - 1] < v->op.n_inputs) {
            kl_var *in = v->op.inputs[next[sn - 1]++];
            if (in->grad_epoch == epoch) continue;
            in->grad_epoch = epoch;
            if (sn == scap) {
                scap *= 2;
                kl_var **s2 = realloc(stack, (size_t)scap * sizeof *s2);
                if (s2) stack = s2;
                int *n2 = realloc(next, (size_t)scap * sizeof *n2);
                if (n2) next = n2;
                if (!s2 || !n2) goto oom;
            }
            stack[sn] = in; next[sn++] = 0;
        } else {
            if (n == cap) {
                cap *= 2;
                kl_var **o2 = realloc(order, (size_t)cap * sizeof *o2);
                if (!o2) goto oom;
                order = o2;
            }
            order[n++] = v;
            sn--;
        }
    }
    free(stack);
    free(next);
    *out = order;
    *n_out = n;
    return KL_OK;
oom:
    free(order); free(stack); free(next);
    return kl_error(KL_ERR_MEMORY, "out of memory walking the graph for grad");
}

static kl_status accumulate(kl_var *v, kl_var *g)
{
    if (!v->grad) { v->grad = g; return KL_OK; }
    kl_var *sum;
    kl_status s = kl_binary(KL_ADD, v->grad, g, &sum);
    kl_var_release(v->grad);
    kl_var_release(g);
    v->grad = s == KL_OK ? sum : NULL;
    return s;
}

kl_status kl_grad(kl_var *y, kl_var *dy, int n, kl_var *const *xs, kl_var **grads)
{
    if (n < 0) return kl_error(KL_ERR_VALUE, "grad: %d inputs", n);
    if (n > 0) KL_ARG(grads, "grad", "grads");
    for (int i = 0; i < n; i++) grads[i] = NULL;
    if (n > 0) KL_ARG(xs, "grad", "xs");
    KL_VAR_ARG(y, "grad", "output");
    if (dy) KL_VAR_ARG(dy, "grad", "output gradient");
    if (!kl_dtype_is_float(y->dtype)) return kl_error(KL_ERR_TYPE, "grad: output must be a float var, got %s", kl_dtype_name(y->dtype));
    if (dy && (dy->ndim != y->ndim || memcmp(dy->shape, y->shape, (size_t)y->ndim * sizeof *y->shape) != 0))
        return kl_error(KL_ERR_VALUE, "grad: the output gradient's shape differs from the output's");
    for (int i = 0; i < n; i++) {
        KL_VAR_ARG(xs[i], "grad", "an input");
        if (xs[i]->ctx != y->ctx) return kl_error(KL_ERR_VALUE, "grad: input %d belongs to another context", i);
    }
    if (y->ctx->grad_depth)
        return kl_error(KL_ERR_VALUE, "grad: called from inside a custom gradient rule (jt.Function.grad), "
                        "which may build and compute vars but not take gradients itself");
    kl_var **order = NULL;
    int m = 0;
    KL_TRY(reach(y, &order, &m));
    /* a custom rule may sync, which frees graphs computed vars no longer
     * need: the walk holds every var it reached until it is done */
    /* wanted: v leads to one of xs (so gradients through it matter) */
    uint8_t *wanted = calloc((size_t)m, 1);
    if (!wanted) { free(order); return kl_error(KL_ERR_MEMORY, "out of memory in grad"); }
    for (int i = 0; i < m; i++) kl_var_retain(order[i]);
    y->ctx->grad_depth++;
    for (int i = 0; i < m; i++) {
        kl_var *v = order[i];
        v->grad = NULL;
        v->grad_pos = i; /* position, to find inputs' flags */
        for (int j = 0; j < n; j++) wanted[i] |= v == xs[j];
        if (kl_op_traits(v->op.kind) & KL_STOPS_GRAD) continue;
        for (int k = 0; k < v->op.n_inputs; k++) wanted[i] |= wanted[v->op.inputs[k]->grad_pos];
    }
    kl_status s = KL_OK;
    if (wanted[m - 1]) {
        if (dy) { kl_var_retain(dy); y->grad = dy; }
        else s = kl_full(y->ctx, y->dtype, y->ndim, y->shape, 1.0, &y->grad);
    }
    for (int i = m - 1; i >= 0 && s == KL_OK; i--) {
        kl_var *v = order[i];
        if (!v->grad || !wanted[i]) continue;
        for (int k = 0; k < v->op.n_inputs && s == KL_OK; k++) {
            kl_var *in = v->op.inputs[k];
            if (!wanted[in->grad_pos]) continue;
            kl_var *g = NULL;
            s = backward_of(v, k, v->grad, &g);
            if (s == KL_OK && g) s = accumulate(in, g);
        }
    }
    /* a var computed before any input required grad forgets how it was made:
     * an input it hid cannot be told apart from one y does not depend on */
    int forgotten = 0;
    for (int i = 0; i < m; i++) forgotten |= order[i]->graph_forgotten;
    for (int j = 0; j < n && s == KL_OK; j++) {
        kl_var *x = xs[j];
        int inside = x->grad_epoch == y->ctx->grad_epoch && x->grad_pos < m && order[x->grad_pos] == x;
        if (!inside && forgotten) {
            s = kl_error(KL_ERR_VALUE,
                         "grad: input %d is not reachable from the output, which depends on values computed "
                         "before anything required grad (their graphs were freed, so a zero gradient could be "
                         "wrong). Set x.requires_grad = True before the output is computed, or call grad "
                         "before syncing it", j);
        } else if (inside && x->grad) {
            if (x->grad->dtype != x->dtype) s = kl_cast(x->grad, x->dtype, &grads[j]);
            else { grads[j] = x->grad; kl_var_retain(grads[j]); }
        } else {
            s = kl_full(x->ctx, x->dtype, x->ndim, x->shape, 0.0, &grads[j]);
        }
    }
    for (int i = 0; i < m; i++) { kl_var_release(order[i]->grad); order[i]->grad = NULL; }
    if (s != KL_OK) for (int j = 0; j < n; j++) { kl_var_release(grads[j]); grads[j] = NULL; }
    y->ctx->grad_depth--;
    for (int i = m - 1; i >= 0; i--) kl_var_release(order[i]); /* consumers first: each frees what only it held */
    free(order);
    free(wanted);
    return s;
}
