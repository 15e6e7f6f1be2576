/* conv.c: the replacement pass for convolutions (the forms are in conv.h).
 * The window reindex's index expressions are read as affine maps of the
 * iteration dims; they give the batch, channel (and group) and the
 * (output, kernel) pair of each spatial dim. Which dim of a pair is the
 * kernel's, and where the output channel is, comes from the strides of
 * the weights and of the output gradient (an operand's, or the result's
 * layout when the form produces it); both must be exactly the row-major
 * layouts oneDNN is given, else the pattern is left to the fused kernels. */
#include "opt/conv.h"
#include "core/error.h"
#include "opt/operand.h"
#include <stddef.h>
#include <string.h>

/* The window: which iteration dim is the batch, channel, group, and each
 * spatial dim's pair (pair[j][1] = -1 when the expression has one term). */
typedef struct {
    int nd, n, c, g, o;
    int pair[3][2];
    int64_t pair_coef[3][2], pad[3];
} window;

static int terms(const kl_affine *a, int R, int *dims)
{
    int t = 0;
    for (int d = 0; d < R; d++)
        if (a->coef[d]) {
            if (t == 2) return 3;
            dims[t++] = d;
        }
    return t;
}

static int parse_window(kl_expr *const *indexes, int n_indexes, const int64_t *xshape, int R, const int64_t *S,
                        window *w)
{
    if (n_indexes < 3 || n_indexes > 5) return 0;
    memset(w, -1, sizeof *w);
    w->nd = n_indexes - 2;
    kl_affine a[5];
    uint32_t used = 0;
    int dims[2];
    for (int i = 0; i < n_indexes; i++) {
        if (!kl_expr_affine(indexes[i], R, &a[i])) return 0;
        int t = terms(&a[i], R, dims);
        if (t < 1 || t > 2) return 0;
        for (int j = 0; j < t; j++) {
            if (used >> dims[j] & 1) return 0;
            used |= 1u << dims[j];
        }
        if (i == 0) { /* batch */
            if (t != 1 || a[0].coef[dims[0]] != 1 || a[0].constant || S[dims[0]] != xshape[0]) return 0;
            w->n = dims[0];
        } else if (i == 1) { /* channel, or group * C/G + channel */
            if (a[1].constant) return 0;
            if (t == 1) {
                if (a[1].coef[dims[0]] != 1 || S[dims[0]] != xshape[1]) return 0;
                w->c = dims[0];
                continue;
            }
            for (int s = 0; s < 2 && w->c < 0; s++) {
                int c = dims[s], g = dims[1 - s];
                if (a[1].coef[c] == 1 && a[1].coef[g] == S[c] && S[c] * S[g] == xshape[1]) { w->c = c; w->g = g; }
            }
            if (w->c < 0) return 0;
        } else { /* out * stride + k * dilation - pad */
            int j = i - 2;
            if (a[i].constant > 0) return 0;
            w->pad[j] = -a[i].constant;
            for (int s = 0; s < t; s++) {
                if (a[i].coef[dims[s]] <= 0) return 0;
                w->pair[j][s] = dims[s];
                w->pair_coef[j][s] = a[i].coef[dims[s]];
            }
        }
    }
    for (int d = 0; d < R; d++) { /* the output channel: the one dim x does not see */
        if ((used >> d & 1) || S[d] == 1) continue;
        if (w->o >= 0) return 0;
        w->o = d;
    }
    return 1;
}

static int64_t size_of(const int64_t *S, int d) { return d >= 0 ? S[d] : 1; }

/* Decides each pair's kernel dim from the weight and output-gradient strides,
 * checks both layouts, and fills the shape. */
static int solve(window *w, int R, const int64_t *S, const int64_t *xshape, const int64_t *wstr,
                 const int64_t *dystr, kl_conv_shape *cs)
{
    int nd = w->nd, out[3], k[3];
    for (int j = 0; j < nd; j++) {
        int d0 = w->pair[j][0], d1 = w->pair[j][1];
        int first_is_k = d1 >= 0 && (wstr[d0] || dystr[d1]);
        int second_is_k = d1 >= 0 && !first_is_k;
        out[j] = first_is_k ? d1 : d0;
        k[j] = first_is_k ? d0 : second_is_k ? d1 : -1;
        cs->stride[j] = w->pair_coef[j][first_is_k ? 1 : 0];
        cs->dilation[j] = k[j] < 0 ? 1 : w->pair_coef[j][first_is_k ? 0 : 1];
    }
    int64_t G = size_of(S, w->g), Og = size_of(S, w->o), Cg = S[w->c], K = 1, P = 1;
    for (int j = 0; j < nd; j++) { K *= size_of(S, k[j]); P *= S[out[j]]; }
    int64_t ew[KL_MAX_DIMS] = {0}, edy[KL_MAX_DIMS] = {0}, s = 1;
    for (int j = nd - 1; j >= 0; j--) {
        if (k[j] >= 0) ew[k[j]] = s;
        s *= size_of(S, k[j]);
    }
    ew[w->c] = K;
    if (w->o >= 0) ew[w->o] = Cg * K;
    if (w->g >= 0) ew[w->g] = Og * Cg * K;
    s = 1;
    for (int j = nd - 1; j >= 0; j--) { edy[out[j]] = s; s *= S[out[j]]; }
    if (w->o >= 0) edy[w->o] = P;
    if (w->g >= 0) edy[w->g] = Og * P;
    edy[w->n] = G * Og * P;
    for (int d = 0; d < R; d++)
        if (S[d] != 1 && (wstr[d] != ew[d] || dystr[d] != edy[d])) return 0;
    memset(cs, 0, offsetof(kl_conv_shape, stride));
    cs->nd = nd;
    cs->groups = (int32_t)G;
    cs->n = S[w->n];
    cs->ic = xshape[1];
    cs->oc = G * Og;
    for (int j = 0; j < nd; j++) {
        cs->in[j] = xshape[2 + j];
        cs->out[j] = S[out[j]];
        cs->k[j] = size_of(S, k[j]);
        cs->pad_lo[j] = w->pad[j];
        /* the high padding that makes oneDNN's output size this one */
        int64_t extent = (cs->k[j] - 1) * cs->dilation[j] + 1;
        int64_t hi = (cs->out[j] - 1) * cs->stride[j] + extent - cs->in[j] - cs->pad_lo[j];
        if (hi < 0) {
            if (-hi >= cs->stride[j]) return 0; /* a cropped output: not oneDNN's shape */
            hi = 0;
        }
        cs->pad_hi[j] = hi;
    }
    for (int j = nd; j < 3; j++) cs->in[j] = cs->out[j] = cs->k[j] = cs->stride[j] = cs->dilation[j] = 1;
    return 1;
}

/* Row-major strides of a reduce's result over its input's dims (0: reduced). */
static void result_strides(const kl_var *v, const int64_t *S, int R, int64_t *str)
{
    uint8_t mask = v->op.p.reduce.mask;
    int64_t s = 1;
    for (int d = R - 1; d >= 0; d--) {
        str[d] = (mask >> d & 1) ? 0 : s;
        if (!(mask >> d & 1)) s *= S[d];
    }
}

static int plain_reindex(const kl_var *r)
{
    return r->op.kind == KL_OP_REINDEX && !r->buf && !r->materialize && r->op.n_inputs == 1 &&
           r->op.p.reindex.n_conditions == 0 && r->op.p.reindex.overflow_value == 0;
}

static int match_form(kl_var *v, int assume_roots, kl_pattern *p)
{
    if (v->dtype != KL_FLOAT32 || v->op.n_inputs < 1) return 0;
    kl_var *prod = kl_operand_through(v->op.inputs[0]);
    if (prod->buf || prod->materialize || prod->op.kind != KL_OP_BINARY || prod->op.p.binary != KL_MUL) return 0;
    int R = prod->ndim;
    const int64_t *S = prod->shape;
    window w;
    int64_t wstr[KL_MAX_DIMS], dystr[KL_MAX_DIMS], mine[KL_MAX_DIMS];
    kl_var *src;
    if (v->op.kind == KL_OP_REINDEX_REDUCE) { /* backward data */
        if (v->op.p.reindex.op != KL_REDUCE_SUM || v->op.n_inputs != 1 || v->op.p.reindex.n_conditions) return 0;
        if (!parse_window(v->op.p.reindex.indexes, v->op.p.reindex.n_indexes, v->shape, R, S, &w)) return 0;
        for (int s = 0; s < 2; s++) {
            kl_var *dy = prod->op.inputs[s], *wt = prod->op.inputs[1 - s], *dys, *wts;
            if (!kl_operand_view(dy, R, S, assume_roots, &dys, dystr) ||
                !kl_operand_view(wt, R, S, assume_roots, &wts, wstr))
                continue;
            if (dys->dtype != KL_FLOAT32 || wts->dtype != KL_FLOAT32) continue;
            if (!solve(&w, R, S, v->shape, wstr, dystr, &p->conv)) continue;
            p->conv.kind = KL_CONV_BACKWARD_DATA;
            p->a = dys;
            p->b = wts;
            return 1;
        }
        return 0;
    }
    if (v->op.kind != KL_OP_REDUCE || v->op.p.reduce.op != KL_REDUCE_SUM) return 0;
    result_strides(v, S, R, mine);
    for (int s = 0; s < 2; s++) {
        kl_var *r = kl_operand_through(prod->op.inputs[s]), *other = prod->op.inputs[1 - s];
        if (!plain_reindex(r)) continue;
        kl_var *x = kl_operand_through(r->op.inputs[0]);
        if (x->dtype != KL_FLOAT32 || !kl_operand_stored(x, assume_roots)) continue;
        if (!parse_window(r->op.p.reindex.indexes, r->op.p.reindex.n_indexes, x->shape, R, S, &w)) continue;
        if (!kl_operand_view(other, R, S, assume_roots, &src, wstr) || src->dtype != KL_FLOAT32) continue;
        /* forward: the other operand is the weights, the result the output;
         * backward weights: the other is the output gradient, the result the weights */
        if (solve(&w, R, S, x->shape, wstr, mine, &p->conv)) {
            p->conv.kind = KL_CONV_FORWARD;
        } else {
            memcpy(dystr, wstr, sizeof dystr);
            if (!solve(&w, R, S, x->shape, mine, dystr, &p->conv)) continue;
            p->conv.kind = KL_CONV_BACKWARD_WEIGHTS;
        }
        p->a = x;
        p->b = src;
        return 1;
    }
    return 0;
}

int kl_conv_match(kl_var *v, int assume_roots, kl_pattern *p)
{
    memset(p, 0, sizeof *p);
    if (!match_form(v, assume_roots, p)) return 0;
    p->kind = KL_PATTERN_CONV;
    p->dtype = KL_FLOAT32;
    /* the stored operands must hold exactly the arrays a library reads */
    const kl_conv_shape *s = &p->conv;
    int64_t x = s->n * s->ic, w = s->oc * (s->ic / s->groups), y = s->n * s->oc;
    for (int j = 0; j < s->nd; j++) { x *= s->in[j]; w *= s->k[j]; y *= s->out[j]; }
    int64_t want_a = s->kind == KL_CONV_BACKWARD_DATA ? y : x;
    int64_t want_b = s->kind == KL_CONV_BACKWARD_WEIGHTS ? y : w;
    return p->a->numel == want_a && p->b->numel == want_b;
}

/* The high padding that makes a library's output size out; -1 when the
 * output is cropped (no library shape gives it). */
static int64_t pad_high(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t dilation, int64_t lo)
{
    int64_t hi = (out - 1) * stride + (k - 1) * dilation + 1 - in - lo;
    if (hi >= 0) return hi;
    return -hi >= stride ? -1 : 0;
}

/* Whether v's device runs g as a library call (forward; transposed: the
 * input gradient, which is the transposed convolution's scatter form). */
static int library_runs(const kl_var *v, kl_dtype dtype, const kl_conv_geometry *g)
{
    /* the direct form's iteration space: n, [g,] o, out..., c, k... */
    if (3 + 2 * g->nd + (g->groups > 1) > KL_MAX_DIMS) return 0;
    kl_pattern p;
    memset(&p, 0, sizeof p);
    p.kind = KL_PATTERN_CONV;
    p.dtype = dtype;
    kl_conv_shape *cs = &p.conv;
    cs->kind = g->transposed ? KL_CONV_BACKWARD_DATA : KL_CONV_FORWARD;
    cs->nd = g->nd;
    cs->groups = g->groups;
    cs->n = g->n;
    cs->ic = g->ic;
    cs->oc = g->oc;
    for (int j = 0; j < 3; j++) {
        int on = j < g->nd;
        cs->in[j] = on ? g->in[j] : 1;
        cs->out[j] = on ? g->out[j] : 1;
        cs->k[j] = on ? g->kernel[j] : 1;
        cs->stride[j] = on ? g->stride[j] : 1;
        cs->dilation[j] = on ? g->dilation[j] : 1;
        cs->pad_lo[j] = on ? g->pad_lo[j] : 0;
        cs->pad_hi[j] = on ? pad_high(cs->in[j], cs->out[j], cs->k[j], cs->stride[j], cs->dilation[j], cs->pad_lo[j])
                           : 0;
        if (cs->pad_hi[j] < 0) return 0;
    }
    kl_backend *dev = v->device;
    return dev->ops->supports(dev, &p);
}

kl_status kl_conv_choose(const kl_var *v, kl_dtype dtype, const kl_conv_geometry *g, kl_conv_form *out)
{
    KL_ARG(out, "kl_conv_choose", "out");
    *out = KL_CONV_DIRECT;
    KL_VAR_ARG(v, "kl_conv_choose", "var");
    KL_ARG(g, "kl_conv_choose", "geometry");
    if (g->nd < 1 || g->nd > 3 || g->groups < 1 || g->n < 0 || g->ic < 1 || g->oc < 1 || g->ic % g->groups ||
        g->oc % g->groups)
        return kl_error(KL_ERR_VALUE, "kl_conv_choose: %d-d convolution of %lld to %lld channels in %d groups",
                        g->nd, (long long)g->ic, (long long)g->oc, g->groups);
    for (int j = 0; j < g->nd; j++)
        if (g->in[j] < 1 || g->out[j] < 1 || g->kernel[j] < 1 || g->stride[j] < 1 || g->dilation[j] < 1 ||
            g->pad_lo[j] < 0)
            return kl_error(KL_ERR_VALUE, "kl_conv_choose: spatial dim %d: input %lld, output %lld, kernel %lld, "
                            "stride %lld, dilation %lld, padding %lld", j, (long long)g->in[j],
                            (long long)g->out[j], (long long)g->kernel[j], (long long)g->stride[j],
                            (long long)g->dilation[j], (long long)g->pad_lo[j]);
    if (library_runs(v, dtype, g)) return KL_OK;
    if (g->transposed) {
        *out = KL_CONV_IM2COL;
        return KL_OK;
    }
    /* a gemm form where the device has matrix products and the product is
     * wide enough to beat the fused kernel (depthwise and narrow groups: not) */
    kl_pattern gemm;
    memset(&gemm, 0, sizeof gemm);
    gemm.kind = KL_PATTERN_GEMM;
    gemm.dtype = dtype;
    int wide = g->groups == 1 || g->oc / g->groups >= 4;
    kl_backend *dev = v->device;
    if (wide && (dtype == KL_FLOAT32 || dtype == KL_FLOAT64) && dev->ops->supports(dev, &gemm)) *out = KL_CONV_IM2COL;
    return KL_OK;
}
