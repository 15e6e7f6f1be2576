/* test_reindex.c: broadcast_to, reindex (transpose, flip, pad, conditions,
 * extras, conv windows), reindex_reduce (scatter with every op), reshape,
 * index and full. */
#include "check.h"

#include <float.h>

/* Reads v and compares with want[n] exactly (or within rtol). */
static void expect(kl_var *v, const double *want, int64_t n, double rtol, const char *label)
{
    if (!v) return;
    if (!CHECK_MSG(kl_var_numel(v) == n, "%s: numel %lld, expected %lld", label,
                   (long long)kl_var_numel(v), (long long)n))
        return;
    double *got = check_read(v);
    if (got) {
        CHECK_ARRAY_CLOSE(got, want, n, rtol, 0, label);
        free(got);
    }
}

static kl_var *reindex(kl_var *x, int ndim, const int64_t *shape, int n_idx, const char *const *idx,
                       double overflow, int n_cond, const char *const *cond, int n_extras,
                       kl_var *const *extras)
{
    kl_var *out = NULL;
    if (!x) return NULL;
    (void)n_idx;
    if (!CHECK_OK(kl_reindex(x, ndim, shape, idx, overflow, n_cond, cond, n_extras, extras, &out)))
        return NULL;
    return out;
}

static double seq(int i) { return i * 1.25 - 3; }

/* ---- broadcast_to ---- */

static void test_broadcast_to_with_dims(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s3 = 3, out_shape[3] = {2, 3, 4};
    kl_var *x = check_var(ctx, KL_FLOAT32, 1, &s3, ((double[]){1, 2, 3})), *y = NULL;
    int dims[2] = {0, 2}; /* new dims; x's dim 0 maps to output dim 1 */
    if (x && CHECK_OK(kl_broadcast_to(x, 3, out_shape, 2, dims, &y))) {
        CHECK_SHAPE(y, 3, 2, 3, 4);
        CHECK_DTYPE(y, KL_FLOAT32);
        double want[24];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
                for (int k = 0; k < 4; k++) want[(i * 3 + j) * 4 + k] = j + 1;
        expect(y, want, 24, 0, "broadcast (3,) to (2,3,4) dims {0,2}");
    }
    /* x (3,1) with dims {0}: x's dims map to output dims 1, 2 and the size-1 dim expands */
    int64_t s31[2] = {3, 1};
    kl_var *x2 = check_var(ctx, KL_INT32, 2, s31, ((double[]){7, 8, 9})), *y2 = NULL;
    int dim0 = 0;
    if (x2 && CHECK_OK(kl_broadcast_to(x2, 3, out_shape, 1, &dim0, &y2))) {
        CHECK_SHAPE(y2, 3, 2, 3, 4);
        CHECK_DTYPE(y2, KL_INT32);
        double want[24];
        for (int i = 0; i < 24; i++) want[i] = 7 + (i / 4) % 3;
        expect(y2, want, 24, 0, "broadcast (3,1) to (2,3,4) dims {0}");
    }
    /* x (4,) to (4,3) with dims {1}: a column broadcast NumPy cannot spell directly */
    int64_t s4 = 4, s43[2] = {4, 3};
    kl_var *x3 = check_var(ctx, KL_FLOAT64, 1, &s4, ((double[]){1, 2, 3, 4})), *y3 = NULL;
    int dim1 = 1;
    if (x3 && CHECK_OK(kl_broadcast_to(x3, 2, s43, 1, &dim1, &y3))) {
        CHECK_SHAPE(y3, 2, 4, 3);
        double want[12] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4};
        expect(y3, want, 12, 0, "broadcast (4,) to (4,3) dims {1}");
    }
    check_release(x);
    check_release(y);
    check_release(x2);
    check_release(y2);
    check_release(x3);
    check_release(y3);
    kl_context_free(ctx);
}

static void test_broadcast_to_right_aligned(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s31[2] = {3, 1}, s4 = 4, out_shape[3] = {2, 3, 4};
    kl_var *a = check_var(ctx, KL_FLOAT32, 2, s31, ((double[]){1, 2, 3}));
    kl_var *b = check_var(ctx, KL_FLOAT32, 1, &s4, ((double[]){10, 20, 30, 40}));
    kl_var *ya = NULL, *yb = NULL, *yc = NULL;
    if (a && CHECK_OK(kl_broadcast_to(a, 3, out_shape, 0, NULL, &ya))) {
        CHECK_SHAPE(ya, 3, 2, 3, 4);
        double want[24];
        for (int i = 0; i < 24; i++) want[i] = 1 + (i / 4) % 3;
        expect(ya, want, 24, 0, "broadcast (3,1) to (2,3,4)");
    }
    if (b && CHECK_OK(kl_broadcast_to(b, 3, out_shape, 0, NULL, &yb))) {
        double want[24];
        for (int i = 0; i < 24; i++) want[i] = 10 * (i % 4 + 1);
        expect(yb, want, 24, 0, "broadcast (4,) to (2,3,4)");
    }
    kl_var *s = check_scalar(ctx, KL_INT64, 5);
    int64_t s22[2] = {2, 2};
    if (s && CHECK_OK(kl_broadcast_to(s, 2, s22, 0, NULL, &yc))) {
        CHECK_SHAPE(yc, 2, 2, 2);
        CHECK_DTYPE(yc, KL_INT64);
        expect(yc, ((double[]){5, 5, 5, 5}), 4, 0, "broadcast () to (2,2)");
    }
    /* a broadcast feeding an element-wise op */
    kl_var *sum = check_bin(KL_ADD, ya, yb);
    if (sum) {
        double want[24];
        for (int i = 0; i < 24; i++) want[i] = 1 + (i / 4) % 3 + 10 * (i % 4 + 1);
        expect(sum, want, 24, 0, "broadcast + broadcast");
    }
    kl_var *all[] = {a, b, ya, yb, yc, s, sum};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

/* ---- reindex ---- */

static void test_reindex_transpose(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[2] = {3, 4}, t[2] = {4, 3};
    double v[12];
    for (int i = 0; i < 12; i++) v[i] = seq(i);
    kl_var *x = check_var(ctx, KL_FLOAT32, 2, s, v);
    const char *idx[2] = {"i1", "i0"};
    kl_var *y = reindex(x, 2, t, 2, idx, 0, 0, NULL, 0, NULL);
    CHECK_SHAPE(y, 2, 4, 3);
    CHECK_DTYPE(y, KL_FLOAT32);
    double want[12];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) want[i * 3 + j] = v[j * 4 + i];
    expect(y, want, 12, 0, "transpose");
    /* transposing twice gives x back */
    kl_var *z = reindex(y, 2, s, 2, idx, 0, 0, NULL, 0, NULL);
    expect(z, v, 12, 0, "transpose twice");
    check_release(x);
    check_release(y);
    check_release(z);
    kl_context_free(ctx);
}

static void test_reindex_flip(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 5;
    kl_var *x = check_var(ctx, KL_FLOAT64, 1, &n, ((double[]){1, 2, 3, 4, 5}));
    const char *idx[1] = {"xshape0-1-i0"};
    kl_var *y = reindex(x, 1, &n, 1, idx, 0, 0, NULL, 0, NULL);
    expect(y, ((double[]){5, 4, 3, 2, 1}), 5, 0, "flip");
    /* flip of a lazy value, along the second axis of a 2-D var */
    int64_t s[2] = {2, 3};
    kl_var *a = check_var(ctx, KL_INT32, 2, s, ((double[]){1, 2, 3, 4, 5, 6}));
    kl_var *two = check_scalar(ctx, KL_INT32, 2);
    kl_var *a2 = check_bin(KL_MUL, a, two);
    const char *idx2[2] = {"i0", "xshape1-1-i1"};
    kl_var *f = reindex(a2, 2, s, 2, idx2, 0, 0, NULL, 0, NULL);
    CHECK_DTYPE(f, KL_INT32);
    expect(f, ((double[]){6, 4, 2, 12, 10, 8}), 6, 0, "flip axis 1 of 2*a");
    kl_var *all[] = {x, y, a, two, a2, f};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

static void test_reindex_pad_overflow_value(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[2] = {3, 4}, p[2] = {5, 6};
    double v[12];
    for (int i = 0; i < 12; i++) v[i] = i + 1;
    kl_var *x = check_var(ctx, KL_FLOAT32, 2, s, v);
    const char *idx[2] = {"i0-1", "i1-1"};
    kl_var *y = reindex(x, 2, p, 2, idx, -7, 0, NULL, 0, NULL);
    CHECK_SHAPE(y, 2, 5, 6);
    double want[30];
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 6; j++) {
            int a = i - 1, b = j - 1;
            want[i * 6 + j] = (a >= 0 && a < 3 && b >= 0 && b < 4) ? v[a * 4 + b] : -7;
        }
    expect(y, want, 30, 0, "pad by 1 with -7");
    /* Out of range on one side only, and far out of range */
    int64_t q[2] = {3, 4};
    const char *idx2[2] = {"i0+2", "i1*10"};
    kl_var *z = reindex(x, 2, q, 2, idx2, 0.5, 0, NULL, 0, NULL);
    double want2[12];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
            int a = i + 2, b = j * 10;
            want2[i * 4 + j] = (a < 3 && b < 4) ? v[a * 4 + b] : 0.5;
        }
    expect(z, want2, 12, 0, "shifted by 2 rows, columns *10");
    check_release(x);
    check_release(y);
    check_release(z);
    kl_context_free(ctx);
}

static void test_reindex_overflow_conditions(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[2] = {4, 4};
    double v[16];
    for (int i = 0; i < 16; i++) v[i] = i + 1;
    kl_var *x = check_var(ctx, KL_FLOAT64, 2, s, v);
    const char *idx[2] = {"i0", "i1"};
    const char *cond[1] = {"i0<i1"};
    kl_var *tril = reindex(x, 2, s, 2, idx, 0, 1, cond, 0, NULL);
    double want[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) want[i * 4 + j] = i < j ? 0 : v[i * 4 + j];
    expect(tril, want, 16, 0, "tril via overflow condition");
    /* Two conditions: either one true gives the overflow value */
    const char *cond2[2] = {"i0==0", "i1==3"};
    kl_var *y = reindex(x, 2, s, 2, idx, -1, 2, cond2, 0, NULL);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) want[i * 4 + j] = (i == 0 || j == 3) ? -1 : v[i * 4 + j];
    expect(y, want, 16, 0, "two overflow conditions");
    check_release(x);
    check_release(tril);
    check_release(y);
    kl_context_free(ctx);
}

static void test_reindex_extras_gather(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n5 = 5, n6 = 6;
    double xv[5] = {10, 11, 12, 13, 14};
    kl_var *x = check_var(ctx, KL_FLOAT32, 1, &n5, xv);
    kl_var *idx = check_var(ctx, KL_INT32, 1, &n6, ((double[]){4, 0, 2, 2, 1, 3}));
    const char *e[1] = {"@e0(i0)"};
    kl_var *y = reindex(x, 1, &n6, 1, e, -1, 0, NULL, 1, &idx);
    CHECK_SHAPE(y, 1, 6);
    expect(y, ((double[]){14, 10, 12, 12, 11, 13}), 6, 0, "gather x[idx]");
    /* indexes outside x give the overflow value */
    kl_var *bad = check_var(ctx, KL_INT64, 1, &n6, ((double[]){0, -1, 5, 4, 100, -100}));
    kl_var *yb = reindex(x, 1, &n6, 1, e, -1, 0, NULL, 1, &bad);
    expect(yb, ((double[]){10, -1, -1, 14, -1, -1}), 6, 0, "gather with out-of-range indexes");
    /* rows of a 2-D var, and an index var computed in the same graph */
    int64_t s[2] = {3, 4}, n2 = 2, o[2] = {2, 4};
    double m[12];
    for (int i = 0; i < 12; i++) m[i] = i;
    kl_var *mat = check_var(ctx, KL_FLOAT64, 2, s, m);
    kl_var *r = check_var(ctx, KL_INT32, 1, &n2, ((double[]){1, 0}));
    kl_var *one = check_scalar(ctx, KL_INT32, 1);
    kl_var *r1 = check_bin(KL_ADD, r, one); /* {2, 1} */
    const char *e2[2] = {"@e0(i0)", "i1"};
    kl_var *rows = reindex(mat, 2, o, 2, e2, 0, 0, NULL, 1, &r1);
    expect(rows, ((double[]){8, 9, 10, 11, 4, 5, 6, 7}), 8, 0, "rows [2, 1]");
    /* a 2-D extra: @e0(i0, i1) */
    int64_t s22[2] = {2, 2};
    kl_var *idx2 = check_var(ctx, KL_INT32, 2, s22, ((double[]){3, 2, 1, 0}));
    const char *e3[2] = {"i0+1", "@e0(i0,i1)"};
    kl_var *z = reindex(mat, 2, s22, 2, e3, 0, 0, NULL, 1, &idx2);
    expect(z, ((double[]){7, 6, 9, 8}), 4, 0, "x[i0+1, idx[i0,i1]]");
    kl_var *all[] = {x, idx, y, bad, yb, mat, r, one, r1, rows, idx2, z};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

/* conv2d of a (H, W) image with a (3, 3) kernel via reindex, broadcast, mul, sum. */
static void conv_case(kl_context *ctx, int stride, int pad, int line)
{
    enum { H = 7, W = 8, K = 3 };
    int64_t si[2] = {H, W}, sk[2] = {K, K};
    double img[H * W], ker[K * K];
    uint64_t st = 5;
    for (int i = 0; i < H * W; i++) img[i] = check_rand01(&st) * 2 - 1;
    for (int i = 0; i < K * K; i++) ker[i] = check_rand01(&st) * 2 - 1;
    int OH = (H + 2 * pad - K) / stride + 1, OW = (W + 2 * pad - K) / stride + 1;
    int64_t win[4] = {OH, OW, K, K};
    char e0[64], e1[64];
    snprintf(e0, sizeof e0, "i0*%d+i2-%d", stride, pad);
    snprintf(e1, sizeof e1, "i1*%d+i3-%d", stride, pad);
    const char *idx[2] = {e0, e1};
    kl_var *x = check_var(ctx, KL_FLOAT64, 2, si, img), *w = check_var(ctx, KL_FLOAT64, 2, sk, ker);
    kl_var *xr = reindex(x, 4, win, 2, idx, 0, 0, NULL, 0, NULL), *wb = NULL, *prod = NULL, *out = NULL;
    int bdims[2] = {0, 1}, rdims[2] = {2, 3};
    if (xr && w && CHECK_OK(kl_broadcast_to(w, 4, win, 2, bdims, &wb)) &&
        (prod = check_bin(KL_MUL, xr, wb)) && CHECK_OK(kl_reduce(prod, KL_REDUCE_SUM, 2, rdims, 0, &out))) {
        CHECK_SHAPE(out, 2, OH, OW);
        double want[H * W];
        for (int i = 0; i < OH; i++)
            for (int j = 0; j < OW; j++) {
                double s = 0;
                for (int a = 0; a < K; a++)
                    for (int b = 0; b < K; b++) {
                        int y = i * stride + a - pad, z = j * stride + b - pad;
                        if (y >= 0 && y < H && z >= 0 && z < W) s += img[y * W + z] * ker[a * K + b];
                    }
                want[i * OW + j] = s;
            }
        char label[64];
        snprintf(label, sizeof label, "conv stride %d pad %d (line %d)", stride, pad, line);
        expect(out, want, (int64_t)OH * OW, 1e-12, label);
    }
    kl_var *all[] = {x, w, xr, wb, prod, out};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
}

static void test_reindex_conv_window(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    conv_case(ctx, 1, 0, __LINE__);
    conv_case(ctx, 1, 1, __LINE__);
    conv_case(ctx, 2, 1, __LINE__);
    kl_context_free(ctx);
}

/* ---- reindex_reduce ---- */

static kl_var *scatter(kl_var *y, kl_reduce_op op, int ndim, const int64_t *shape,
                       const char *const *idx, int n_cond, const char *const *cond, int n_extras,
                       kl_var *const *extras)
{
    kl_var *out = NULL;
    if (!y) return NULL;
    if (!CHECK_OK(kl_reindex_reduce(y, op, ndim, shape, idx, n_cond, cond, n_extras, extras, &out)))
        return NULL;
    return out;
}

static void test_reindex_reduce_histogram(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    enum { M = 1000, BINS = 10 };
    int64_t m = M, bins = BINS;
    kl_var *ones = NULL;
    CHECK_OK(kl_full(ctx, KL_FLOAT32, 1, &m, 1.0, &ones));
    double iv[M];
    for (int i = 0; i < M; i++) iv[i] = (i * 7) % BINS;
    kl_var *idx = check_var(ctx, KL_INT32, 1, &m, iv);
    const char *e[1] = {"@e0(i0)"};
    kl_var *h = scatter(ones, KL_REDUCE_SUM, 1, &bins, e, 0, NULL, 1, &idx);
    CHECK_SHAPE(h, 1, BINS);
    CHECK_DTYPE(h, KL_FLOAT32);
    double want[BINS];
    for (int b = 0; b < BINS; b++) want[b] = M / BINS;
    expect(h, want, BINS, 0, "histogram of 1000 ones into 10 bins");

    /* targets outside the output are skipped */
    double iv2[M];
    for (int b = 0; b < BINS; b++) want[b] = 0;
    for (int i = 0; i < M; i++) {
        iv2[i] = (i % 13) - 1; /* -1 .. 11 */
        if (iv2[i] >= 0 && iv2[i] < BINS) want[(int)iv2[i]] += 1;
    }
    kl_var *idx2 = check_var(ctx, KL_INT32, 1, &m, iv2);
    kl_var *h2 = scatter(ones, KL_REDUCE_SUM, 1, &bins, e, 0, NULL, 1, &idx2);
    expect(h2, want, BINS, 0, "histogram with targets out of range");

    /* integer counts, and weights computed in the graph */
    kl_var *w = NULL;
    CHECK_OK(kl_index(ctx, KL_INT32, 1, &m, 0, &w)); /* 0..999 */
    kl_var *hw = scatter(w, KL_REDUCE_SUM, 1, &bins, e, 0, NULL, 1, &idx);
    CHECK_DTYPE(hw, KL_INT32);
    for (int b = 0; b < BINS; b++) want[b] = 0;
    for (int i = 0; i < M; i++) want[(int)iv[i]] += i;
    expect(hw, want, BINS, 0, "weighted histogram (int32)");
    kl_var *all[] = {ones, idx, h, idx2, h2, w, hw};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

static void test_reindex_reduce_every_op(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    enum { M = 12, OUT = 6 };
    int64_t m = M, o = OUT;
    double yv[M];
    uint64_t st = 3;
    for (int i = 0; i < M; i++) yv[i] = 0.5 + check_rand01(&st);
    kl_var *y = check_var(ctx, KL_FLOAT64, 1, &m, yv);
    const char *e[1] = {"i0%4"}; /* outputs 4 and 5 are never written */
    static const kl_reduce_op ops[4] = {KL_REDUCE_SUM, KL_REDUCE_PROD, KL_REDUCE_MAX, KL_REDUCE_MIN};
    for (int k = 0; k < 4; k++) {
        kl_var *r = scatter(y, ops[k], 1, &o, e, 0, NULL, 0, NULL);
        if (!r) continue;
        CHECK_DTYPE(r, KL_FLOAT64);
        double *got = check_read(r);
        if (got) {
            double want[4];
            for (int b = 0; b < 4; b++) {
                double a = yv[b], c = yv[b + 4], d = yv[b + 8];
                switch (ops[k]) {
                case KL_REDUCE_SUM: want[b] = a + c + d; break;
                case KL_REDUCE_PROD: want[b] = a * c * d; break;
                case KL_REDUCE_MAX: want[b] = fmax(a, fmax(c, d)); break;
                default: want[b] = fmin(a, fmin(c, d)); break;
                }
            }
            char label[64];
            snprintf(label, sizeof label, "scatter %s", kl_reduce_name(ops[k]));
            CHECK_ARRAY_CLOSE(got, want, 4, 1e-14, 0, label);
            /* untouched outputs hold the op's identity */
            for (int b = 4; b < OUT; b++) {
                switch (ops[k]) {
                case KL_REDUCE_SUM: CHECK_MSG(got[b] == 0, "%s untouched = %g", label, got[b]); break;
                case KL_REDUCE_PROD: CHECK_MSG(got[b] == 1, "%s untouched = %g", label, got[b]); break;
                case KL_REDUCE_MAX: CHECK_MSG(got[b] <= -DBL_MAX, "%s untouched = %g", label, got[b]); break;
                default: CHECK_MSG(got[b] >= DBL_MAX, "%s untouched = %g", label, got[b]); break;
                }
            }
            free(got);
        }
        kl_var_release(r);
    }
    /* logical_or / logical_and on bool */
    double bv[M] = {1, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 1};
    kl_var *b = check_var(ctx, KL_BOOL, 1, &m, bv);
    kl_var *any = scatter(b, KL_REDUCE_ANY, 1, &o, e, 0, NULL, 0, NULL);
    kl_var *all = scatter(b, KL_REDUCE_ALL, 1, &o, e, 0, NULL, 0, NULL);
    CHECK_DTYPE(any, KL_BOOL);
    CHECK_DTYPE(all, KL_BOOL);
    /* bins: 0 <- {1,1,1}, 1 <- {0,0,0}, 2 <- {0,1,1}, 3 <- {0,0,1}; 4, 5 untouched */
    expect(any, ((double[]){1, 0, 1, 1, 0, 0}), OUT, 0, "scatter logical_or");
    expect(all, ((double[]){1, 0, 0, 0, 1, 1}), OUT, 0, "scatter logical_and");
    check_release(y);
    check_release(b);
    check_release(any);
    check_release(all);
    kl_context_free(ctx);
}

static void test_reindex_reduce_2d_and_conditions(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[2] = {3, 4}, t[2] = {4, 3}, r3 = 3;
    double v[12];
    for (int i = 0; i < 12; i++) v[i] = i + 1;
    kl_var *y = check_var(ctx, KL_FLOAT32, 2, s, v);
    /* row sums: out[i0] += y[i0, i1] */
    const char *rows[1] = {"i0"};
    kl_var *rs = scatter(y, KL_REDUCE_SUM, 1, &r3, rows, 0, NULL, 0, NULL);
    expect(rs, ((double[]){10, 26, 42}), 3, 0, "row sums by scatter");
    /* transpose by scatter */
    const char *tr[2] = {"i1", "i0"};
    kl_var *yt = scatter(y, KL_REDUCE_SUM, 2, t, tr, 0, NULL, 0, NULL);
    CHECK_SHAPE(yt, 2, 4, 3);
    double want[12];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) want[i * 3 + j] = v[j * 4 + i];
    expect(yt, want, 12, 0, "transpose by scatter");
    /* a condition skips elements: only odd columns */
    const char *cond[1] = {"i1%2==0"};
    kl_var *odd = scatter(y, KL_REDUCE_SUM, 1, &r3, rows, 1, cond, 0, NULL);
    expect(odd, ((double[]){2 + 4, 6 + 8, 10 + 12}), 3, 0, "row sums of odd columns");
    /* the backward of a pad: out[i0-1, i1-1] += y, edges dropped */
    int64_t inner[2] = {1, 2};
    const char *shift[2] = {"i0-1", "i1-1"};
    kl_var *in = scatter(y, KL_REDUCE_SUM, 2, inner, shift, 0, NULL, 0, NULL);
    expect(in, ((double[]){v[5], v[6]}), 2, 0, "unpad by scatter");
    kl_var *all[] = {y, rs, yt, odd, in};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}


/* A scatter big enough to run in parallel, with heavy contention on few
 * targets: every op must still count each element exactly once. */
static void test_reindex_reduce_large_contended(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    enum { M = 1 << 20, BINS = 7 };
    int64_t m = M, bins = BINS;
    int32_t *iv = malloc(M * sizeof *iv);
    float *yv = malloc(M * sizeof *yv);
    double want_sum[BINS] = {0}, want_max[BINS], want_min[BINS];
    int64_t counts[BINS] = {0};
    for (int b = 0; b < BINS; b++) {
        want_max[b] = -INFINITY;
        want_min[b] = INFINITY;
    }
    uint64_t st = 41;
    for (int i = 0; i < M; i++) {
        iv[i] = (int32_t)(check_rand01(&st) * BINS);
        yv[i] = (float)(int)(check_rand01(&st) * 1000); /* integers: sums are exact in float32 up to 2^24 */
        counts[iv[i]]++;
        want_sum[iv[i]] += 1;
        want_max[iv[i]] = fmax(want_max[iv[i]], yv[i]);
        want_min[iv[i]] = fmin(want_min[iv[i]], yv[i]);
    }
    kl_var *idx = NULL, *y = NULL, *ones = NULL, *cnt = NULL, *mx = NULL, *mn = NULL, *ci = NULL, *cnt64 = NULL;
    CHECK_OK(kl_var_from_host(ctx, KL_INT32, 1, &m, iv, &idx));
    CHECK_OK(kl_var_from_host(ctx, KL_FLOAT32, 1, &m, yv, &y));
    CHECK_OK(kl_full(ctx, KL_FLOAT32, 1, &m, 1, &ones));
    const char *e[1] = {"@e0(i0)"};
    cnt = scatter(ones, KL_REDUCE_SUM, 1, &bins, e, 0, NULL, 1, &idx);
    mx = scatter(y, KL_REDUCE_MAX, 1, &bins, e, 0, NULL, 1, &idx);
    mn = scatter(y, KL_REDUCE_MIN, 1, &bins, e, 0, NULL, 1, &idx);
    if (ones && CHECK_OK(kl_cast(ones, KL_INT64, &ci))) cnt64 = scatter(ci, KL_REDUCE_SUM, 1, &bins, e, 0, NULL, 1, &idx);
    expect(cnt, want_sum, BINS, 0, "parallel histogram (float32)");
    expect(mx, want_max, BINS, 0, "parallel scatter max");
    expect(mn, want_min, BINS, 0, "parallel scatter min");
    double c64[BINS];
    for (int b = 0; b < BINS; b++) c64[b] = (double)counts[b];
    expect(cnt64, c64, BINS, 0, "parallel histogram (int64)");
    kl_var *all[] = {idx, y, ones, cnt, mx, mn, ci, cnt64};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    free(iv);
    free(yv);
    kl_context_free(ctx);
}

/* ---- reshape ---- */

static void test_reshape(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[2] = {2, 6}, t[2] = {3, -1}, u[3] = {-1, 2, 2};
    double v[12];
    for (int i = 0; i < 12; i++) v[i] = i;
    kl_var *x = check_var(ctx, KL_FLOAT32, 2, s, v), *r = NULL, *r2 = NULL;
    /* after x is computed (data from the host): zero-copy */
    if (x && CHECK_OK(kl_reshape(x, 2, t, &r))) {
        CHECK_SHAPE(r, 2, 3, 4);
        expect(r, v, 12, 0, "reshape computed var to (3,-1)");
        const void *px = NULL, *pr = NULL;
        if (CHECK_OK(kl_var_data(x, &px)) && CHECK_OK(kl_var_data(r, &pr)))
            CHECK_MSG(px == pr, "reshape of a computed var copies (%p vs %p)", px, pr);
    }
    /* before its input is computed */
    kl_var *two = check_scalar(ctx, KL_FLOAT32, 2), *x2 = check_bin(KL_MUL, x, two);
    if (x2 && CHECK_OK(kl_reshape(x2, 3, u, &r2))) {
        CHECK_SHAPE(r2, 3, 3, 2, 2);
        double want[12];
        for (int i = 0; i < 12; i++) want[i] = 2 * i;
        expect(r2, want, 12, 0, "reshape lazy var to (-1,2,2)");
        /* and the lazy input still reads right afterwards */
        expect(x2, want, 12, 0, "input of the reshape");
    }
    /* reshape to rank 0 and back, and an op on a reshaped var */
    kl_var *one = NULL, *s0 = NULL, *back = NULL, *rr = NULL;
    int64_t n1 = 1;
    if (CHECK_OK(kl_full(ctx, KL_INT32, 1, &n1, 9, &one)) && CHECK_OK(kl_reshape(one, 0, NULL, &s0))) {
        CHECK_SHAPE(s0, 0, 0);
        if (CHECK_OK(kl_reshape(s0, 1, &n1, &back))) expect(back, ((double[]){9}), 1, 0, "rank 0 and back");
    }
    if (r) {
        kl_var *neg = check_un(KL_NEG, r);
        int64_t flat = 12;
        if (neg && CHECK_OK(kl_reshape(neg, 1, &flat, &rr))) {
            double want[12];
            for (int i = 0; i < 12; i++) want[i] = -i;
            expect(rr, want, 12, 0, "reshape(neg(reshape(x)))");
        }
        check_release(neg);
    }
    kl_var *all[] = {x, r, two, x2, r2, one, s0, back, rr};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

/* ---- index and full ---- */

static void test_index_and_full(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[2] = {3, 4};
    kl_var *i0 = NULL, *i1 = NULL, *i64 = NULL, *f = NULL, *fb = NULL, *fh = NULL;
    if (CHECK_OK(kl_index(ctx, KL_INT32, 2, s, 0, &i0))) {
        CHECK_DTYPE(i0, KL_INT32);
        CHECK_SHAPE(i0, 2, 3, 4);
        expect(i0, ((double[]){0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}), 12, 0, "index dim 0");
    }
    if (CHECK_OK(kl_index(ctx, KL_INT32, 2, s, 1, &i1)))
        expect(i1, ((double[]){0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}), 12, 0, "index dim 1");
    int64_t big = 100000;
    if (CHECK_OK(kl_index(ctx, KL_INT64, 1, &big, 0, &i64))) {
        CHECK_DTYPE(i64, KL_INT64);
        double *g = check_read(i64);
        if (g) {
            int bad = 0;
            for (int64_t k = 0; k < big; k++) bad += g[k] != (double)k;
            CHECK_EQ_INT(bad, 0);
            free(g);
        }
    }
    if (CHECK_OK(kl_full(ctx, KL_FLOAT64, 2, s, -2.5, &f))) {
        CHECK_SHAPE(f, 2, 3, 4);
        double want[12];
        for (int k = 0; k < 12; k++) want[k] = -2.5;
        expect(f, want, 12, 0, "full -2.5");
    }
    if (CHECK_OK(kl_full(ctx, KL_BOOL, 1, s, 1, &fb))) {
        CHECK_DTYPE(fb, KL_BOOL);
        expect(fb, ((double[]){1, 1, 1}), 3, 0, "full bool");
    }
    if (CHECK_OK(kl_full(ctx, KL_FLOAT16, 1, s, 0.1, &fh))) {
        uint16_t bits[3];
        if (CHECK_OK(kl_var_copy_to_host(fh, bits, sizeof bits)))
            for (int k = 0; k < 3; k++) CHECK_EQ_INT(bits[k], check_float_to_half(0.1f));
    }
    kl_var *all[] = {i0, i1, i64, f, fb, fh};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

/* A gather whose index var passes through check_index: in range it is the
 * plain gather; a value outside the range fails the sync with KL_ERR_INDEX
 * naming the op and the value, and the var stays uncomputed. */
static void test_check_index_makes_bad_gathers_errors(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 5, m = 4;
    kl_var *x = check_var(ctx, KL_FLOAT32, 1, &n, ((double[]){10, 11, 12, 13, 14}));
    kl_var *good = check_var(ctx, KL_INT32, 1, &m, ((double[]){4, 0, 2, 2}));
    kl_var *bad = check_var(ctx, KL_INT32, 1, &m, ((double[]){1, 7, 2, -1}));
    const char *idx[1] = {"@e0(i0)"};
    kl_var *cg = NULL, *cb = NULL, *g = NULL, *b = NULL, *twice = NULL, *b2 = NULL;
    if (!CHECK_OK(kl_check_index(good, 0, n, "gather test", &cg)) ||
        !CHECK_OK(kl_check_index(bad, 0, n, "gather test on dim 0 of shape (5,)", &cb)) ||
        !CHECK_OK(kl_reindex(x, 1, &m, idx, 0, 0, NULL, 1, &cg, &g)) ||
        !CHECK_OK(kl_reindex(x, 1, &m, idx, 0, 0, NULL, 1, &cb, &b)))
        return;
    double *got = check_read(g);
    if (got) CHECK_ARRAY_CLOSE(got, ((double[]){14, 10, 12, 12}), 4, 0, 0, "checked gather");
    free(got);
    float out[4];
    CHECK_STATUS(kl_var_copy_to_host(b, out, sizeof out), KL_ERR_INDEX);
    CHECK_MSG(strstr(kl_last_error(), "gather test on dim 0 of shape (5,): index 7 is out of range [0, 5)") ||
                  strstr(kl_last_error(), "gather test on dim 0 of shape (5,): index -1 is out of range [0, 5)"),
              "message: %s", kl_last_error());
    CHECK(!kl_var_is_computed(cb) && !kl_var_is_computed(b));
    CHECK_STATUS(kl_var_copy_to_host(b, out, sizeof out), KL_ERR_INDEX); /* and again */
    /* fused into an element-wise consumer, the check still runs */
    kl_var *one = NULL;
    if (CHECK_OK(kl_full_int(ctx, KL_INT32, 0, NULL, 1, &one)) && CHECK_OK(kl_binary(KL_ADD, cb, one, &twice))) {
        int32_t o[4];
        CHECK_STATUS(kl_var_copy_to_host(twice, o, sizeof o), KL_ERR_INDEX);
    }
    /* a range that holds every value changes nothing */
    if (CHECK_OK(kl_check_index(bad, -1, 8, "wide", &b2))) {
        int32_t o[4];
        if (CHECK_OK(kl_var_copy_to_host(b2, o, sizeof o))) CHECK(o[0] == 1 && o[1] == 7 && o[3] == -1);
    }
    kl_var *f = NULL;
    CHECK_STATUS(kl_check_index(x, 0, 5, "floats", &f), KL_ERR_TYPE);
    CHECK_STATUS(kl_check_index(good, 5, 0, "empty", &f), KL_ERR_VALUE);
    kl_var *all[] = {x, good, bad, cg, cb, g, b, one, twice, b2};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) kl_var_release(all[k]);
    CHECK_OK(kl_context_free(ctx));
}

CHECK_MAIN(TEST(test_check_index_makes_bad_gathers_errors), TEST(test_broadcast_to_with_dims), TEST(test_broadcast_to_right_aligned),
           TEST(test_reindex_transpose), TEST(test_reindex_flip),
           TEST(test_reindex_pad_overflow_value), TEST(test_reindex_overflow_conditions),
           TEST(test_reindex_extras_gather), TEST(test_reindex_conv_window),
           TEST(test_reindex_reduce_histogram), TEST(test_reindex_reduce_every_op),
           TEST(test_reindex_reduce_2d_and_conditions),
           TEST(test_reindex_reduce_large_contended), TEST(test_reshape),
           TEST(test_index_and_full))
