/* test_conv.c: the oneDNN replacement of the three convolution forms
 * (src/opt/conv.h) gives what the fused loop kernels give, forward and both
 * gradients, across strides, padding, dilation, groups and 1 or 2 spatial
 * dims; the forward also matches a float64 loop here. The counters show
 * which path ran; KILN_DNNL=0 forces the fused kernels. Near misses of the
 * pattern must be left to the kernels and still be right. Without oneDNN
 * only the kernels are checked, unless KILN_TEST_REQUIRE_DNNL=1 (set by
 * scripts/test.sh where the package is installed) makes that a failure. */
#include "check.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *label;
    int nd;
    int64_t n, c, o, groups;
    int64_t in[3], k[3], stride[3], dilation[3], pad[3];
    int weight_first;   /* mul(broadcast(w), reindex(x)) instead of the other order */
    int64_t out_trim;   /* output rows fewer than the natural size (stride leftovers) */
    double pad_value;   /* what reads outside the input give (a convolution: 0) */
    int swap_kernel;    /* 2-d: the window reads kernel dims crosswise (not the weight's layout) */
    int wrap;           /* every var passes through a stop_grad and an identity cast (no_grad's graph) */
} conv_case;

typedef struct {
    double *y, *gx, *gw;
    uint64_t forward_calls, backward_calls;
} conv_result;

static int64_t out_size(const conv_case *cc, int j)
{
    int64_t extent = (cc->k[j] - 1) * cc->dilation[j] + 1;
    return (cc->in[j] + 2 * cc->pad[j] - extent) / cc->stride[j] + 1 - (j == 0 ? cc->out_trim : 0);
}

static int64_t prod(const int64_t *v, int n)
{
    int64_t p = 1;
    for (int i = 0; i < n; i++) p *= v[i];
    return p;
}

/* The iteration space (n, [g,] o, out..., c, k...) and the window expressions. */
static int space(const conv_case *cc, int64_t *shape, char exprs[5][96], int *reduce_dims, int *n_reduce,
                 int *bcast_dims, int *n_bcast)
{
    int R = 0, grouped = cc->groups > 1, nd = cc->nd;
    int64_t cg = cc->c / cc->groups, og = cc->o / cc->groups;
    shape[R++] = cc->n;
    if (grouped) shape[R++] = cc->groups;
    shape[R++] = og;
    int out0 = R;
    for (int j = 0; j < nd; j++) shape[R++] = out_size(cc, j);
    int cdim = R;
    shape[R++] = cg;
    int k0 = R;
    for (int j = 0; j < nd; j++) shape[R++] = cc->k[j];
    snprintf(exprs[0], 96, "i0");
    if (grouped) snprintf(exprs[1], 96, "i1*%lld+i%d", (long long)cg, cdim);
    else snprintf(exprs[1], 96, "i%d", cdim);
    for (int j = 0; j < nd; j++)
        snprintf(exprs[2 + j], 96, "i%d*%lld+i%d*%lld-%lld", out0 + j, (long long)cc->stride[j],
                 k0 + (cc->swap_kernel ? nd - 1 - j : j),
                 (long long)cc->dilation[j], (long long)cc->pad[j]);
    *n_reduce = 0;
    reduce_dims[(*n_reduce)++] = cdim;
    for (int j = 0; j < nd; j++) reduce_dims[(*n_reduce)++] = k0 + j;
    *n_bcast = 0;
    bcast_dims[(*n_bcast)++] = 0;
    for (int j = 0; j < nd; j++) bcast_dims[(*n_bcast)++] = out0 + j;
    return R;
}

static void shapes(const conv_case *cc, int64_t *xshape, int64_t *wshape, int *nw)
{
    xshape[0] = cc->n;
    xshape[1] = cc->c;
    *nw = 0;
    if (cc->groups > 1) wshape[(*nw)++] = cc->groups;
    wshape[(*nw)++] = cc->o / cc->groups;
    wshape[(*nw)++] = cc->c / cc->groups;
    for (int j = 0; j < cc->nd; j++) { xshape[2 + j] = cc->in[j]; wshape[(*nw)++] = cc->k[j]; }
}

/* y = the direct form of the convolution of X and W (the case's layout). */
static kl_status forward(const conv_case *cc, kl_var *X, kl_var *W, kl_var **y, int64_t *yshape, int *ny)
{
    int nd = cc->nd;
    int64_t S[KL_MAX_DIMS];
    char exprs[5][96];
    const char *idx[5];
    int rdims[4], nr, bdims[4], nb;
    int R = space(cc, S, exprs, rdims, &nr, bdims, &nb);
    for (int i = 0; i < 2 + nd; i++) idx[i] = exprs[i];
    *ny = 0;
    for (int d = 0; d < R - 1 - nd; d++) yshape[(*ny)++] = S[d];
    kl_var *xs = NULL, *ws = NULL, *xx = NULL, *ww = NULL, *p = NULL;
    kl_status s = cc->wrap ? kl_stop_grad(X, &xs) : kl_var_retain(xs = X);
    if (s == KL_OK) s = cc->wrap ? kl_stop_grad(W, &ws) : kl_var_retain(ws = W);
    if (s == KL_OK) s = kl_reindex(xs, R, S, idx, cc->pad_value, 0, NULL, 0, NULL, &xx);
    if (s == KL_OK && check_pass_through(cc->wrap, &xx)) s = kl_broadcast_to(ws, R, S, nb, bdims, &ww);
    if (s == KL_OK && check_pass_through(cc->wrap, &ww))
        s = cc->weight_first ? kl_binary(KL_MUL, ww, xx, &p) : kl_binary(KL_MUL, xx, ww, &p);
    if (s == KL_OK && check_pass_through(cc->wrap, &p)) s = kl_reduce(p, KL_REDUCE_SUM, nr, rdims, 0, y);
    /* intermediates the caller held would be stored, not fused */
    check_release(xs); check_release(ws); check_release(xx); check_release(ww); check_release(p);
    return s;
}

static conv_result run(kl_context *ctx, const conv_case *cc, const double *x, const double *w, const double *dy)
{
    conv_result r = {0};
    int64_t xshape[5], wshape[6], yshape[6];
    int nw, ny;
    shapes(cc, xshape, wshape, &nw);
    kl_var *X = check_var(ctx, KL_FLOAT32, 2 + cc->nd, xshape, x), *W = check_var(ctx, KL_FLOAT32, nw, wshape, w);
    kl_var *DY = NULL, *y = NULL, *g[2] = {NULL, NULL};
    kl_counters c0, c1, c2;
    kl_context_counters(ctx, &c0);
    if (X && W && CHECK_OK(forward(cc, X, W, &y, yshape, &ny)) &&
        (DY = check_var(ctx, KL_FLOAT32, ny, yshape, dy)) != NULL) {
        kl_var *const wrt[2] = {X, W};
        CHECK_OK(kl_grad(y, DY, 2, wrt, g));
        r.y = check_read(y);
        kl_context_counters(ctx, &c1);
        if (g[0] && g[1] && CHECK_OK(kl_sync(g, 2))) {
            r.gx = check_read(g[0]);
            r.gw = check_read(g[1]);
        }
        kl_context_counters(ctx, &c2);
        r.forward_calls = c1.library_calls - c0.library_calls;
        r.backward_calls = c2.library_calls - c1.library_calls;
    }
    check_release(X); check_release(W); check_release(DY); check_release(y);
    check_release(g[0]); check_release(g[1]);
    return r;
}

/* y[n, o, out...] in float64, straight from the definition. */
static double *reference(const conv_case *cc, const double *x, const double *w, int64_t ny)
{
    int nd = cc->nd;
    int64_t outs[3] = {1, 1, 1}, ins[3] = {1, 1, 1}, ks[3] = {1, 1, 1};
    for (int j = 0; j < nd; j++) { outs[j] = out_size(cc, j); ins[j] = cc->in[j]; ks[j] = cc->k[j]; }
    int64_t cg = cc->c / cc->groups, og = cc->o / cc->groups, P = prod(outs, 3), K = prod(ks, 3), I = prod(ins, 3);
    double *y = calloc((size_t)ny, sizeof *y);
    for (int64_t n = 0; n < cc->n; n++)
        for (int64_t o = 0; o < cc->o; o++)
            for (int64_t q = 0; q < P; q++) {
                int64_t oq[3] = {q / (outs[1] * outs[2]), q / outs[2] % outs[1], q % outs[2]};
                double acc = 0;
                for (int64_t c = 0; c < cg; c++)
                    for (int64_t kk = 0; kk < K; kk++) {
                        int64_t kq[3] = {kk / (ks[1] * ks[2]), kk / ks[2] % ks[1], kk % ks[2]}, pos = 0, inside = 1;
                        for (int j = 0; j < 3; j++) {
                            int64_t kj = cc->swap_kernel && j < nd ? kq[nd - 1 - j] : kq[j];
                            int64_t at = j < nd ? oq[j] * cc->stride[j] + kj * cc->dilation[j] - cc->pad[j] : 0;
                            inside &= at >= 0 && at < ins[j];
                            pos = pos * ins[j] + at;
                        }
                        int64_t ch = o / og * cg + c;
                        double wv = w[(o * cg + c) * K + kk];
                        acc += (inside ? x[(n * cc->c + ch) * I + pos] : cc->pad_value) * wv;
                    }
                y[(n * cc->o + o) * P + q] = acc;
            }
    return y;
}

static void compare(const conv_case *cc)
{
    int nd = cc->nd;
    int64_t nx = cc->n * cc->c, nw = cc->o * (cc->c / cc->groups), ny = cc->n * cc->o;
    for (int j = 0; j < nd; j++) { nx *= cc->in[j]; nw *= cc->k[j]; ny *= out_size(cc, j); }
    double *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)nw * sizeof *w), *dy = malloc((size_t)ny * sizeof *dy);
    uint64_t st = 7;
    for (int64_t i = 0; i < nx; i++) x[i] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
    for (int64_t i = 0; i < nw; i++) w[i] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
    for (int64_t i = 0; i < ny; i++) dy[i] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
    kl_context *lib = check_context();
    kl_context *fused = check_context_without("KILN_DNNL");
    if (!lib || !fused) return;
    uint64_t want_fwd = check_have_dnnl(lib) ? 1 : 0;
    CHECK(!kl_context_has_library(fused, "dnnl"));
    conv_result a = run(lib, cc, x, w, dy), b = run(fused, cc, x, w, dy);
    double *want = reference(cc, x, w, ny);
    if (a.y && b.y && a.gx && b.gx && a.gw && b.gw) {
        char label[160];
        snprintf(label, sizeof label, "%s: oneDNN forward vs float64", cc->label);
        CHECK_ARRAY_CLOSE(a.y, want, ny, 1e-4, 1e-4, label);
        snprintf(label, sizeof label, "%s: fused forward vs float64", cc->label);
        CHECK_ARRAY_CLOSE(b.y, want, ny, 1e-4, 1e-4, label);
        snprintf(label, sizeof label, "%s: input gradient", cc->label);
        CHECK_ARRAY_CLOSE(a.gx, b.gx, nx, 1e-4, 1e-4, label);
        snprintf(label, sizeof label, "%s: weight gradient", cc->label);
        CHECK_ARRAY_CLOSE(a.gw, b.gw, nw, 1e-4, 1e-4, label);
        CHECK_MSG(a.forward_calls == want_fwd && a.backward_calls == 2 * want_fwd,
                  "%s: %llu forward and %llu backward library calls, expected %llu and %llu", cc->label,
                  (unsigned long long)a.forward_calls, (unsigned long long)a.backward_calls,
                  (unsigned long long)want_fwd, (unsigned long long)(2 * want_fwd));
        CHECK_MSG(b.forward_calls == 0 && b.backward_calls == 0, "%s: KILN_DNNL=0 still called oneDNN", cc->label);
    }
    free(a.y); free(a.gx); free(a.gw); free(b.y); free(b.gx); free(b.gw); free(want);
    free(x); free(w); free(dy);
    kl_context_free(lib);
    kl_context_free(fused);
}

static void test_conv2d_plain(void)
{
    conv_case cc = {"3x3 pad 1", 2, 2, 5, 7, 1, {9, 8}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 0, 0, 0, 0, 0};
    compare(&cc);
    conv_case one = {"1x1", 2, 3, 6, 4, 1, {5, 5}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, 1, 0, 0, 0, 0};
    compare(&one);
}

static void test_through_stop_grads_and_identity_casts(void)
{
    /* the graph no_grad builds: every result wrapped in a stop_grad */
    conv_case cases[2] = {{"wrapped 3x3 pad 1", 2, 2, 5, 7, 1, {9, 8}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 0, 0, 0, 0, 1},
                          {"wrapped grouped stride 2", 2, 1, 6, 4, 2, {7, 9}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, 0, 0, 0, 1}};
    kl_context *ctx = check_context();
    if (!ctx) return;
    uint64_t want_calls = check_have_dnnl(ctx) ? 1 : 0;
    for (int i = 0; i < 2; i++) {
        const conv_case *cc = &cases[i];
        int64_t xshape[5], wshape[6], yshape[6];
        int nw, ny;
        shapes(cc, xshape, wshape, &nw);
        int64_t nx = prod(xshape, 2 + cc->nd), nwt = prod(wshape, nw);
        double *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)nwt * sizeof *w);
        uint64_t st = 11;
        for (int64_t j = 0; j < nx; j++) x[j] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
        for (int64_t j = 0; j < nwt; j++) w[j] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
        kl_var *X = check_var(ctx, KL_FLOAT32, 2 + cc->nd, xshape, x), *W = check_var(ctx, KL_FLOAT32, nw, wshape, w);
        kl_var *y = NULL;
        kl_counters c0, c1;
        kl_context_counters(ctx, &c0);
        if (X && W && CHECK_OK(forward(cc, X, W, &y, yshape, &ny))) {
            double *got = check_read(y);
            kl_context_counters(ctx, &c1);
            double *want = reference(cc, x, w, prod(yshape, ny));
            if (got) CHECK_ARRAY_CLOSE(got, want, prod(yshape, ny), 1e-4, 1e-4, cc->label);
            CHECK_MSG(c1.library_calls - c0.library_calls == want_calls, "%s: %llu library calls, expected %llu",
                      cc->label, (unsigned long long)(c1.library_calls - c0.library_calls),
                      (unsigned long long)want_calls);
            free(got);
            free(want);
        }
        check_release(X); check_release(W); check_release(y);
        free(x); free(w);
    }
    kl_context_free(ctx);
}

static void test_conv2d_stride_dilation(void)
{
    conv_case s = {"stride 2 pad 3 7x7", 2, 2, 3, 8, 1, {17, 15}, {7, 7}, {2, 2}, {1, 1}, {3, 3}, 0, 0, 0, 0, 0};
    compare(&s);
    conv_case d = {"dilation 2, stride (1,2)", 2, 1, 4, 6, 1, {11, 12}, {3, 2}, {1, 2}, {2, 3}, {2, 1}, 1, 0, 0, 0, 0};
    compare(&d);
    conv_case odd = {"stride 3 leftover rows", 2, 2, 3, 5, 1, {10, 10}, {2, 3}, {3, 3}, {1, 1}, {0, 1}, 0, 0, 0, 0, 0};
    compare(&odd);
}

static void test_conv_groups(void)
{
    conv_case g = {"groups 2", 2, 2, 6, 4, 2, {7, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 0, 0, 0, 0, 0};
    compare(&g);
    conv_case dw = {"depthwise", 2, 2, 4, 8, 4, {6, 7}, {3, 3}, {2, 1}, {1, 1}, {1, 1}, 1, 0, 0, 0, 0};
    compare(&dw);
}

/* (3-d needs 9 iteration dims, more than KL_MAX_DIMS: kiln's conv3d is im2col + gemm) */
static void test_conv1d(void)
{
    conv_case c1 = {"1-d", 1, 3, 4, 5, 1, {20}, {5}, {2}, {1}, {2}, 0, 0, 0, 0, 0};
    compare(&c1);
    conv_case g1 = {"1-d groups 3 dilation 2", 1, 2, 6, 9, 3, {16}, {3}, {1}, {2}, {2}, 1, 0, 0, 0, 0};
    compare(&g1);
}

/* An output cropped to fewer rows than the convolution has is not oneDNN's
 * shape: the kernels must compute it (no library call), still right. */
static void test_cropped_output_left_to_kernels(void)
{
    conv_case cc = {"cropped", 2, 1, 3, 4, 1, {9, 9}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 0, 3, 0, 0, 0};
    int64_t nx = 1 * 3 * 81, nw = 4 * 3 * 9, ny = 1 * 4 * out_size(&cc, 0) * out_size(&cc, 1);
    double *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)nw * sizeof *w), *dy = malloc((size_t)ny * sizeof *dy);
    uint64_t st = 3;
    for (int64_t i = 0; i < nx; i++) x[i] = check_round_to(KL_FLOAT32, check_rand01(&st));
    for (int64_t i = 0; i < nw; i++) w[i] = check_round_to(KL_FLOAT32, check_rand01(&st));
    for (int64_t i = 0; i < ny; i++) dy[i] = 1;
    kl_context *ctx = check_context();
    if (!ctx) return;
    conv_result r = run(ctx, &cc, x, w, dy);
    double *want = reference(&cc, x, w, ny);
    if (r.y) CHECK_ARRAY_CLOSE(r.y, want, ny, 1e-4, 1e-4, "cropped forward");
    CHECK_EQ_INT(r.forward_calls, 0);
    free(r.y); free(r.gx); free(r.gw); free(want); free(x); free(w); free(dy);
    kl_context_free(ctx);
}

/* Near misses of the pattern (padding reads 1, not 0; the window reading
 * the kernel dims crosswise to the weight's layout) must be left to the
 * kernels, and come out right, gradients too (against KILN_DNNL=0). The
 * input gradient of the first does not depend on what padding reads, so it
 * is still oneDNN's backward data. */
static void test_near_misses_left_to_kernels(void)
{
    conv_case cases[] = {
        {"padding reads 1", 2, 2, 3, 4, 1, {6, 7}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 0, 0, 1.0, 0, 0},
        {"kernel read crosswise", 2, 2, 3, 4, 1, {6, 7}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 0, 0, 0.0, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const conv_case *cc = &cases[i];
        int64_t nx = 2 * 3 * 42, nw = 4 * 3 * 9, ny = 2 * 4 * out_size(cc, 0) * out_size(cc, 1);
        double *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)nw * sizeof *w), *dy = malloc((size_t)ny * sizeof *dy);
        uint64_t st = 5;
        for (int64_t k = 0; k < nx; k++) x[k] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
        for (int64_t k = 0; k < nw; k++) w[k] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
        for (int64_t k = 0; k < ny; k++) dy[k] = 1;
        kl_context *ctx = check_context();
        kl_context *fused = check_context_without("KILN_DNNL");
        if (!ctx || !fused) return;
        conv_result r = run(ctx, cc, x, w, dy), f = run(fused, cc, x, w, dy);
        double *want = reference(cc, x, w, ny);
        if (r.y && r.gx && r.gw && f.gx && f.gw) {
            CHECK_ARRAY_CLOSE(r.y, want, ny, 1e-4, 1e-4, cc->label);
            CHECK_ARRAY_CLOSE(r.gx, f.gx, nx, 1e-4, 1e-4, cc->label);
            CHECK_ARRAY_CLOSE(r.gw, f.gw, nw, 1e-4, 1e-4, cc->label);
        }
        uint64_t want_backward = cc->pad_value != 0 && check_have_dnnl(ctx) ? 1 : 0;
        CHECK_MSG(r.forward_calls == 0 && r.backward_calls == want_backward,
                  "%s: %llu/%llu library calls, expected 0/%llu", cc->label, (unsigned long long)r.forward_calls,
                  (unsigned long long)r.backward_calls, (unsigned long long)want_backward);
        free(r.y); free(r.gx); free(r.gw); free(f.y); free(f.gx); free(f.gw);
        free(want); free(x); free(w); free(dy);
        kl_context_free(ctx);
        kl_context_free(fused);
    }
}

/* Reordered weights are kept per contents (buffer id), from their second
 * use: ten weight arrays of one shape (more than the slots per primitive),
 * each used in turn three times, must each give their own result. */
static void test_weight_cache_follows_contents(void)
{
    conv_case cc = {"cache", 2, 2, 8, 8, 1, {6, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 0, 0, 0, 0, 0};
    enum { NW = 10 };
    int64_t xshape[5], wshape[6], yshape[6], nx = 2 * 8 * 36, nw = 8 * 8 * 9, ny = 2 * 8 * 36;
    int wdims, ydims;
    shapes(&cc, xshape, wshape, &wdims);
    double *x = malloc((size_t)nx * sizeof *x), *w[NW];
    uint64_t st = 11;
    for (int64_t i = 0; i < nx; i++) x[i] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
    kl_context *ctx = check_context();
    if (!ctx) return;
    kl_var *X = check_var(ctx, KL_FLOAT32, 4, xshape, x), *W[NW];
    for (int k = 0; k < NW; k++) {
        w[k] = malloc((size_t)nw * sizeof *w[k]);
        for (int64_t i = 0; i < nw; i++) w[k][i] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
        W[k] = check_var(ctx, KL_FLOAT32, wdims, wshape, w[k]);
    }
    for (int round = 0; round < 3; round++)
        for (int k = 0; k < NW; k++) {
            /* rounds 0-1 cycle through all ten; round 2 repeats each at once (hits) */
            int which = round < 2 ? k : k / 2;
            kl_var *y = NULL;
            if (!X || !W[which] || !CHECK_OK(forward(&cc, X, W[which], &y, yshape, &ydims))) continue;
            double *got = check_read(y), *want = reference(&cc, x, w[which], ny);
            char label[64];
            snprintf(label, sizeof label, "weights %d, round %d", which, round);
            if (got) CHECK_ARRAY_CLOSE(got, want, ny, 1e-4, 1e-4, label);
            free(got); free(want);
            kl_var_release(y);
        }
    kl_counters c;
    kl_context_counters(ctx, &c);
    CHECK_EQ_INT(c.library_calls, check_have_dnnl(ctx) ? 3 * NW : 0);
    check_release(X);
    for (int k = 0; k < NW; k++) { check_release(W[k]); free(w[k]); }
    free(x);
    kl_context_free(ctx);
}

/* Weights used once per primitive (training: new weights every step) are not
 * kept; weights used again (inference) are, and count as memory in use until
 * kl_context_gc drops them. */
static void test_kept_weights_memory(void)
{
    conv_case cc = {"memory", 2, 2, 8, 16, 1, {6, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 0, 0, 0, 0, 0};
    int64_t xshape[5], wshape[6], yshape[6], nx = 2 * 8 * 36, nw = 16 * 8 * 9;
    int wdims, ydims;
    shapes(&cc, xshape, wshape, &wdims);
    double *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)nw * sizeof *w);
    uint64_t st = 13;
    for (int64_t i = 0; i < nx; i++) x[i] = check_rand01(&st);
    for (int64_t i = 0; i < nw; i++) w[i] = check_rand01(&st);
    kl_context *ctx = check_context();
    if (!ctx) return;
    kl_var *X = check_var(ctx, KL_FLOAT32, 4, xshape, x);
    uint64_t in_use[3] = {0};
    for (int phase = 0; phase < 2; phase++) {
        kl_var *W = check_var(ctx, KL_FLOAT32, wdims, wshape, w);
        for (int k = 0; k < 12; k++) {
            kl_var *Wk = phase == 0 ? check_var(ctx, KL_FLOAT32, wdims, wshape, w) : W, *y = NULL;
            if (X && Wk && CHECK_OK(forward(&cc, X, Wk, &y, yshape, &ydims))) CHECK_OK(kl_sync(&y, 1));
            kl_var_release(y);
            if (phase == 0) kl_var_release(Wk);
        }
        kl_var_release(W);
        kl_counters c;
        kl_context_counters(ctx, &c);
        in_use[phase] = c.bytes_in_use;
    }
    kl_context_gc(ctx);
    kl_counters c;
    kl_context_counters(ctx, &c);
    in_use[2] = c.bytes_in_use;
    if (check_have_dnnl(ctx)) {
        /* phase 0: twelve weight arrays once each; phase 1: one array twelve times */
        CHECK_MSG(in_use[1] > in_use[0], "weights used again were not kept (%llu -> %llu bytes in use)",
                  (unsigned long long)in_use[0], (unsigned long long)in_use[1]);
        CHECK_EQ_INT(in_use[2], in_use[0]);
    }
    check_release(X);
    free(x); free(w);
    kl_context_free(ctx);
}

/* The form chosen for a 3x3 conv of 8x8 images, 16 -> 32 channels in groups. */
static kl_conv_form form_for(kl_context *ctx, kl_dtype t, int groups, int transposed, int64_t stride, int64_t out)
{
    int64_t shape[1] = {1};
    double one = 1;
    kl_var *x = check_var(ctx, t, 1, shape, &one);
    kl_conv_geometry g = {.nd = 2, .groups = groups, .transposed = transposed, .n = 2, .ic = 16, .oc = 32,
                          .in = {8, 8}, .out = {out, out}, .kernel = {3, 3}, .stride = {stride, stride},
                          .dilation = {1, 1}, .pad_lo = {1, 1}};
    kl_conv_form f = (kl_conv_form)-1;
    if (x) CHECK_OK(kl_conv_choose(x, t, &g, &f));
    check_release(x);
    return f;
}

static void test_form_follows_the_device(void)
{
    kl_context *ctx = check_context();
    kl_context *blas_only = check_context_without("KILN_DNNL");
    kl_context *none = check_context_without("KILN_BLAS");
    if (!ctx || !blas_only || !none) return;
    if (check_have_dnnl(ctx)) {
        /* the library runs it: the direct form, whose patterns it takes */
        CHECK_EQ_INT(form_for(ctx, KL_FLOAT32, 1, 0, 1, 8), KL_CONV_DIRECT);
        CHECK_EQ_INT(form_for(ctx, KL_FLOAT32, 16, 0, 1, 8), KL_CONV_DIRECT);
        CHECK_EQ_INT(form_for(ctx, KL_FLOAT32, 1, 1, 1, 8), KL_CONV_DIRECT);
        /* a cropped output is no library shape */
        CHECK_EQ_INT(form_for(ctx, KL_FLOAT32, 1, 0, 2, 3), KL_CONV_IM2COL);
    }
    if (kl_context_has_library(blas_only, "blas")) {
        /* products only: im2col where the product is wide, else the fused direct form */
        CHECK_EQ_INT(form_for(blas_only, KL_FLOAT32, 1, 0, 1, 8), KL_CONV_IM2COL);
        CHECK_EQ_INT(form_for(blas_only, KL_FLOAT64, 4, 0, 1, 8), KL_CONV_IM2COL);
        CHECK_EQ_INT(form_for(blas_only, KL_FLOAT32, 16, 0, 1, 8), KL_CONV_DIRECT);
    }
    CHECK_EQ_INT(form_for(ctx, KL_FLOAT64, 1, 1, 1, 8), KL_CONV_IM2COL); /* transposed, no library: gather */
    CHECK_EQ_INT(form_for(none, KL_FLOAT32, 1, 0, 1, 8), KL_CONV_DIRECT);
    CHECK_EQ_INT(form_for(ctx, KL_INT32, 1, 0, 1, 8), KL_CONV_DIRECT);
    /* bad geometry is refused */
    int64_t shape[1] = {1};
    double one = 1;
    kl_var *x = check_var(ctx, KL_FLOAT32, 1, shape, &one);
    kl_conv_geometry bad = {.nd = 2, .groups = 3, .n = 1, .ic = 16, .oc = 32, .in = {8, 8}, .out = {8, 8},
                            .kernel = {3, 3}, .stride = {1, 1}, .dilation = {1, 1}};
    kl_conv_form f;
    CHECK_STATUS(kl_conv_choose(x, KL_FLOAT32, &bad, &f), KL_ERR_VALUE);
    bad.groups = 1;
    bad.stride[1] = 0;
    CHECK_STATUS(kl_conv_choose(x, KL_FLOAT32, &bad, &f), KL_ERR_VALUE);
    CHECK_STATUS(kl_conv_choose(x, KL_FLOAT32, NULL, &f), KL_ERR_VALUE);
    check_release(x);
    kl_context_free(ctx);
    kl_context_free(blas_only);
    kl_context_free(none);
}

/* A no_grad epilogue after the convolution -- relu(y * scale + shift +
 * residual), each result wrapped in a stop_grad -- runs inside the library
 * call (src/opt/epilogue.c): one launch in all. Without the stop_grad above
 * it (a gradient may pass) the chain stays a kernel of its own. Both match
 * a float64 loop. */
static void test_epilogue_runs_in_the_call(void)
{
    conv_case cc = {"epilogue", 2, 2, 5, 16, 1, {7, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 0, 0, 0, 0, 1};
    kl_context *ctx = check_context();
    if (!ctx) return;
    int have = check_have_dnnl(ctx);
    int64_t xshape[5], wshape[6], yshape[6], cshape[4] = {1, 16, 1, 1};
    int nw, ny;
    shapes(&cc, xshape, wshape, &nw);
    int64_t nx = prod(xshape, 4), nwt = prod(wshape, nw), nr = 2 * 16 * 7 * 6;
    double *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)nwt * sizeof *w);
    double *res = malloc((size_t)nr * sizeof *res), scale[16], shift[16];
    uint64_t st = 5;
    for (int64_t j = 0; j < nx; j++) x[j] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
    for (int64_t j = 0; j < nwt; j++) w[j] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
    for (int64_t j = 0; j < nr; j++) res[j] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
    for (int j = 0; j < 16; j++) {
        scale[j] = check_round_to(KL_FLOAT32, check_rand01(&st) + 0.5);
        shift[j] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
    }
    double *want = reference(&cc, x, w, nr);
    for (int64_t j = 0; j < nr; j++) {
        double v = want[j] * scale[j / 42 % 16] + shift[j / 42 % 16] + res[j];
        want[j] = v > 0 ? v : 0;
    }
    for (int wrap_top = 1; wrap_top >= 0; wrap_top--) {
        kl_var *X = check_var(ctx, KL_FLOAT32, 4, xshape, x), *W = check_var(ctx, KL_FLOAT32, nw, wshape, w);
        kl_var *S = check_var(ctx, KL_FLOAT32, 4, cshape, scale), *T = check_var(ctx, KL_FLOAT32, 4, cshape, shift);
        kl_var *y = NULL, *a = NULL, *b = NULL, *c = NULL, *zero = NULL, *out = NULL, *R = NULL;
        kl_counters c0, c1;
        int64_t rshape[4] = {2, 16, 7, 6};
        R = check_var(ctx, KL_FLOAT32, 4, rshape, res);
        int ok = X && W && S && T && R && CHECK_OK(forward(&cc, X, W, &y, yshape, &ny)) &&
                 check_pass_through(1, &y) && CHECK_OK(kl_binary(KL_MUL, y, S, &a)) && check_pass_through(1, &a) &&
                 CHECK_OK(kl_binary(KL_ADD, a, T, &b)) && check_pass_through(1, &b) &&
                 CHECK_OK(kl_binary(KL_ADD, R, b, &c)) && check_pass_through(1, &c) &&
                 CHECK_OK(kl_full(ctx, KL_FLOAT32, 0, NULL, 0.0, &zero)) &&
                 CHECK_OK(kl_binary(KL_MAXIMUM, c, zero, &out)) && check_pass_through(wrap_top, &out);
        check_release(y); check_release(a); check_release(b); check_release(c); check_release(zero);
        kl_context_counters(ctx, &c0);
        double *got = ok ? check_read(out) : NULL;
        kl_context_counters(ctx, &c1);
        if (got) {
            CHECK_ARRAY_CLOSE(got, want, nr, 1e-4, 1e-4, wrap_top ? "epilogue in the call" : "epilogue as a kernel");
            uint64_t launches = c1.kernels_launched - c0.kernels_launched;
            uint64_t want_launches = have && wrap_top ? 1 : 2; /* the call; or the call (or kernel) and the chain */
            CHECK_MSG(launches == want_launches, "wrap_top %d: %llu launches, expected %llu", wrap_top,
                      (unsigned long long)launches, (unsigned long long)want_launches);
        }
        free(got);
        check_release(X); check_release(W); check_release(S); check_release(T); check_release(R);
        check_release(out);
    }
    free(x); free(w); free(res); free(want);
    kl_context_free(ctx);
}

static int stop_at; /* the interrupt check says stop at its call of this number (planning checks too) */

static int stop_after_steps(void *calls)
{
    return ++*(int *)calls == stop_at;
}

/* Two convolutions under no_grad: the first's result stays in oneDNN's
 * layout for the second (src/opt/layout.c). A sync stopped between any two
 * steps must leave nothing behind in that layout: synced again, the result
 * matches a float64 loop, and the first's result read as an array too. */
static void test_stopped_sync_leaves_arrays(void)
{
    conv_case one = {"kept", 2, 2, 16, 16, 1, {6, 5}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 0, 0, 0, 0, 1};
    int64_t xshape[5], wshape[6], yshape[6];
    int nw, ny;
    shapes(&one, xshape, wshape, &nw);
    int64_t nx = prod(xshape, 4), nwt = prod(wshape, nw);
    double *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)nwt * sizeof *w);
    uint64_t st = 13;
    for (int64_t j = 0; j < nx; j++) x[j] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
    for (int64_t j = 0; j < nwt; j++) w[j] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
    double *mid = reference(&one, x, w, nx), *want = reference(&one, mid, w, nx);
    int kept_seen = 0;
    for (stop_at = 1; stop_at <= 16; stop_at++) {
        kl_context *ctx = check_context();
        if (!ctx) break;
        if (!check_have_dnnl(ctx)) {
            kl_context_free(ctx);
            break;
        }
        int calls = 0;
        kl_var *X = check_var(ctx, KL_FLOAT32, 4, xshape, x), *W = check_var(ctx, KL_FLOAT32, nw, wshape, w);
        kl_var *y1 = NULL, *y2 = NULL, *top = NULL;
        if (X && W && CHECK_OK(forward(&one, X, W, &y1, yshape, &ny)) && check_pass_through(1, &y1) &&
            CHECK_OK(forward(&one, y1, W, &y2, yshape, &ny)) && CHECK_OK(kl_stop_grad(y2, &top))) {
            kl_var *first = y1; /* read again after the stopped sync */
            kl_var_retain(first);
            check_release(y1);
            check_release(y2);
            y1 = y2 = NULL;
            kl_var_release(first); /* nothing holds it: a pending reader's input only */
            kl_context_set_profile(ctx, 1);
            kl_context_set_interrupt(ctx, stop_after_steps, &calls);
            kl_status s = kl_sync(&top, 1);
            kl_context_set_interrupt(ctx, NULL, NULL);
            kl_profile_record rec[16];
            int n = kl_context_profile_take(ctx, rec, 16);
            for (int i = 0; i < n; i++) kept_seen |= strstr(rec[i].ops, "result in library layout") != NULL;
            CHECK_MSG(s == KL_OK || s == KL_ERR_INTERRUPTED, "stop at %d: status %d", stop_at, (int)s);
            double *got = check_read(top);
            if (got) {
                char label[64];
                snprintf(label, sizeof label, "stopped before step %d, synced again", stop_at);
                CHECK_ARRAY_CLOSE(got, want, nx, 1e-4, 1e-4, label);
            }
            free(got);
        }
        check_release(X); check_release(W); check_release(y1); check_release(y2); check_release(top);
        kl_context_free(ctx);
    }
    CHECK_MSG(kept_seen || stop_at == 1, "the first convolution's result never stayed in oneDNN's layout");
    free(x); free(w); free(mid); free(want);
}

CHECK_MAIN(TEST(test_form_follows_the_device), TEST(test_conv2d_plain), TEST(test_through_stop_grads_and_identity_casts), TEST(test_conv2d_stride_dilation), TEST(test_conv_groups),
           TEST(test_conv1d), TEST(test_cropped_output_left_to_kernels), TEST(test_near_misses_left_to_kernels),
           TEST(test_weight_cache_follows_contents),
           TEST(test_kept_weights_memory), TEST(test_epilogue_runs_in_the_call),
           TEST(test_stopped_sync_leaves_arrays))
