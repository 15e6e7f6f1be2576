/* test_reduce.c: every reduce op over every subset of axes, keepdims on and
 * off, negative dims; accuracy of a long float32 sum; NaN in max/min; result
 * dtypes of integer reductions. */
#include "check.h"

static const kl_reduce_op all_ops[] = {KL_REDUCE_SUM, KL_REDUCE_PROD, KL_REDUCE_MAX, KL_REDUCE_MIN,
                                       KL_REDUCE_MEAN, KL_REDUCE_ANY, KL_REDUCE_ALL};
#define N_OPS ((int)(sizeof all_ops / sizeof all_ops[0]))

/* Reference reduction of x (shape nd/shape) over the dims in mask into out
 * (laid out as the kept dims in order). */
static void ref_reduce(kl_reduce_op op, int nd, const int64_t *shape, const double *x, int mask,
                       double *out, int64_t *out_n)
{
    int64_t total = 1, n_out = 1, count = 1;
    for (int d = 0; d < nd; d++) {
        total *= shape[d];
        if (mask >> d & 1)
            count *= shape[d];
        else
            n_out *= shape[d];
    }
    double init = 0;
    switch (op) {
    case KL_REDUCE_PROD: case KL_REDUCE_ALL: init = 1; break;
    case KL_REDUCE_MAX: init = -INFINITY; break;
    case KL_REDUCE_MIN: init = INFINITY; break;
    default: init = 0; break;
    }
    for (int64_t o = 0; o < n_out; o++) out[o] = init;
    for (int64_t i = 0; i < total; i++) {
        int64_t rem = i, o = 0, stride = 1;
        for (int d = nd - 1; d >= 0; d--) {
            int64_t c = rem % shape[d];
            rem /= shape[d];
            if (!(mask >> d & 1)) {
                o += c * stride;
                stride *= shape[d];
            }
        }
        double v = x[i];
        switch (op) {
        case KL_REDUCE_SUM: case KL_REDUCE_MEAN: out[o] += v; break;
        case KL_REDUCE_PROD: out[o] *= v; break;
        case KL_REDUCE_MAX: out[o] = (isnan(v) || isnan(out[o])) ? NAN : (v > out[o] ? v : out[o]); break;
        case KL_REDUCE_MIN: out[o] = (isnan(v) || isnan(out[o])) ? NAN : (v < out[o] ? v : out[o]); break;
        case KL_REDUCE_ANY: out[o] = out[o] || v != 0; break;
        case KL_REDUCE_ALL: out[o] = out[o] && v != 0; break;
        default: break;
        }
    }
    if (op == KL_REDUCE_MEAN)
        for (int64_t o = 0; o < n_out; o++) out[o] /= (double)count;
    *out_n = n_out;
}

typedef struct {
    kl_var *v;
    kl_reduce_op op;
    int mask, keepdims, all_form;
} reduce_case;

/* Every op x every nonempty subset of axes (plus the ndims == 0 form) x
 * keepdims, all built first and synced together. Dims alternate between
 * their positive and negative spelling. */
static void run_all_subsets(kl_dtype t, int nd, const int64_t *shape, double rtol, double atol)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t total = 1;
    for (int d = 0; d < nd; d++) total *= shape[d];
    double *xv = malloc((size_t)total * sizeof *xv), *xb = malloc((size_t)total * sizeof *xb);
    uint64_t st = 99;
    for (int64_t i = 0; i < total; i++) {
        double m = 0.7 + 0.6 * check_rand01(&st); /* products stay in range */
        xv[i] = check_round_to(t, check_rand01(&st) < 0.3 ? -m : m);
        xb[i] = check_rand01(&st) < 0.25 ? 0.0 : xv[i]; /* zeros for any/all */
    }
    kl_var *x = check_var(ctx, t, nd, shape, xv), *xz = check_var(ctx, t, nd, shape, xb);
    if (!x || !xz) goto done;

    int n_masks = 1 << nd;
    int max_cases = N_OPS * (n_masks + 1) * 2;
    reduce_case *cases = calloc((size_t)max_cases, sizeof *cases);
    kl_var **live = calloc((size_t)max_cases, sizeof *live);
    int n_cases = 0;
    for (int o = 0; o < N_OPS; o++) {
        kl_reduce_op op = all_ops[o];
        kl_var *in = (op == KL_REDUCE_ANY || op == KL_REDUCE_ALL) ? xz : x;
        for (int mask = 1; mask <= n_masks; mask++) { /* mask == n_masks: the ndims == 0 form */
            for (int keep = 0; keep < 2; keep++) {
                int dims[KL_MAX_DIMS], ndims = 0;
                int all_form = mask == n_masks;
                int m = all_form ? n_masks - 1 : mask;
                if (!all_form)
                    for (int d = 0; d < nd; d++)
                        if (m >> d & 1) dims[ndims++] = ((d + m + keep) & 1) ? d - nd : d;
                kl_var *y = NULL;
                kl_status s = kl_reduce(in, op, ndims, dims, keep, &y);
                if (!CHECK_OK(s)) {
                    printf("      %s mask %d keepdims %d\n", kl_reduce_name(op), m, keep);
                    continue;
                }
                reduce_case *c = &cases[n_cases++];
                c->v = y;
                c->op = op;
                c->mask = m;
                c->keepdims = keep;
                c->all_form = all_form;
                live[n_cases - 1] = y;
            }
        }
    }
    CHECK_OK(kl_sync(live, n_cases));

    double *want = malloc((size_t)total * sizeof *want);
    for (int c = 0; c < n_cases; c++) {
        reduce_case *rc = &cases[c];
        char label[96];
        snprintf(label, sizeof label, "%s(%s) mask 0x%x keepdims %d%s", kl_reduce_name(rc->op),
                 kl_dtype_name(t), rc->mask, rc->keepdims, rc->all_form ? " (ndims=0)" : "");
        /* shape */
        int want_nd = 0;
        int64_t want_shape[KL_MAX_DIMS];
        for (int d = 0; d < nd; d++) {
            if (rc->mask >> d & 1) {
                if (rc->keepdims) want_shape[want_nd++] = 1;
            } else {
                want_shape[want_nd++] = shape[d];
            }
        }
        int shape_ok = kl_var_ndim(rc->v) == want_nd;
        for (int d = 0; shape_ok && d < want_nd; d++) shape_ok = kl_var_shape(rc->v)[d] == want_shape[d];
        CHECK_MSG(shape_ok, "%s: wrong shape (ndim %d, expected %d)", label, kl_var_ndim(rc->v), want_nd);
        /* dtype */
        kl_dtype want_t = (rc->op == KL_REDUCE_ANY || rc->op == KL_REDUCE_ALL) ? KL_BOOL : t;
        CHECK_MSG(kl_var_dtype(rc->v) == want_t, "%s: dtype %s, expected %s", label,
                  kl_dtype_name(kl_var_dtype(rc->v)), kl_dtype_name(want_t));
        /* values */
        int64_t n_out;
        const double *in = (rc->op == KL_REDUCE_ANY || rc->op == KL_REDUCE_ALL) ? xb : xv;
        ref_reduce(rc->op, nd, shape, in, rc->mask, want, &n_out);
        if (shape_ok && kl_var_numel(rc->v) == n_out) {
            double *got = check_read(rc->v);
            if (got) {
                int exact = rc->op == KL_REDUCE_MAX || rc->op == KL_REDUCE_MIN ||
                            rc->op == KL_REDUCE_ANY || rc->op == KL_REDUCE_ALL;
                CHECK_ARRAY_CLOSE(got, want, n_out, exact ? 0 : rtol, exact ? 0 : atol, label);
                free(got);
            }
        }
        kl_var_release(rc->v);
    }
    free(want);
    free(cases);
    free(live);
done:
    check_release(x);
    check_release(xz);
    free(xv);
    free(xb);
    kl_context_free(ctx);
}

static void test_all_subsets_3d_float64(void)
{
    int64_t shape[3] = {3, 4, 5};
    run_all_subsets(KL_FLOAT64, 3, shape, 1e-12, 1e-12);
}

static void test_all_subsets_4d_float32(void)
{
    int64_t shape[4] = {2, 3, 4, 5};
    run_all_subsets(KL_FLOAT32, 4, shape, 3e-5, 3e-5);
}

static void test_long_float32_sum_is_accurate(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 4 << 20;
    float *x = malloc((size_t)n * sizeof *x);
    uint64_t st = 7;
    double ref = 0, ref_abs = 0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)(check_rand01(&st) + 0.01);
        ref += x[i];
    }
    ref_abs = ref;
    kl_var *v = NULL, *s = NULL, *m = NULL;
    if (CHECK_OK(kl_var_from_host(ctx, KL_FLOAT32, 1, &n, x, &v)) &&
        CHECK_OK(kl_reduce(v, KL_REDUCE_SUM, 0, NULL, 0, &s)) &&
        CHECK_OK(kl_reduce(v, KL_REDUCE_MEAN, 0, NULL, 0, &m))) {
        float got = 0, mean = 0;
        CHECK_DTYPE(s, KL_FLOAT32);
        if (CHECK_OK(kl_var_copy_to_host(s, &got, sizeof got))) {
            double rel = fabs(got - ref) / ref_abs;
            CHECK_MSG(rel < 1e-6, "sum of 4M float32: got %.9g, double reference %.9g, relative error %.3g",
                      got, ref, rel);
        }
        if (CHECK_OK(kl_var_copy_to_host(m, &mean, sizeof mean))) {
            double rel = fabs(mean - ref / n) / (ref / n);
            CHECK_MSG(rel < 1e-6, "mean of 4M float32: got %.9g, expected %.9g, relative error %.3g",
                      mean, ref / n, rel);
        }
    }
    /* Along an axis too: (4, 1M) summed over the long axis. */
    kl_var *r = NULL, *rs = NULL;
    int64_t shape2[2] = {4, 1 << 20};
    int dim = -1;
    if (v && CHECK_OK(kl_reshape(v, 2, shape2, &r)) &&
        CHECK_OK(kl_reduce(r, KL_REDUCE_SUM, 1, &dim, 0, &rs))) {
        float got[4];
        if (CHECK_OK(kl_var_copy_to_host(rs, got, sizeof got))) {
            for (int k = 0; k < 4; k++) {
                double w = 0;
                for (int64_t i = 0; i < (1 << 20); i++) w += x[(int64_t)k * (1 << 20) + i];
                CHECK_MSG(fabs(got[k] - w) / w < 1e-6, "row %d: got %.9g, expected %.9g", k, got[k], w);
            }
        }
    }
    check_release(v);
    check_release(s);
    check_release(m);
    check_release(r);
    check_release(rs);
    free(x);
    kl_context_free(ctx);
}

static void test_nan_propagates_in_max_min(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t shape[2] = {4, 5};
    double v[20];
    for (int i = 0; i < 20; i++) v[i] = (i * 7) % 11 - 5;
    v[1 * 5 + 2] = NAN;
    kl_var *x = check_var(ctx, KL_FLOAT32, 2, shape, v);
    static const kl_reduce_op ops[2] = {KL_REDUCE_MAX, KL_REDUCE_MIN};
    for (int o = 0; o < 2; o++) {
        for (int mask = 1; mask <= 3; mask++) {
            int dims[2], nd = 0;
            if (mask & 1) dims[nd++] = 0;
            if (mask & 2) dims[nd++] = 1;
            kl_var *y = NULL;
            if (!x || !CHECK_OK(kl_reduce(x, ops[o], nd, dims, 0, &y))) continue;
            double *got = check_read(y);
            if (got) {
                double want[20];
                int64_t n_out;
                ref_reduce(ops[o], 2, shape, v, mask, want, &n_out);
                char label[64];
                snprintf(label, sizeof label, "%s with NaN, mask %d", kl_reduce_name(ops[o]), mask);
                CHECK_ARRAY_CLOSE(got, want, n_out, 0, 0, label);
                free(got);
            }
            kl_var_release(y);
        }
    }
    /* NaN first and last too (a max seeded from element 0 must not lose it) */
    int64_t n = 4;
    double first[4] = {NAN, 1, 2, 3}, last[4] = {1, 2, 3, NAN};
    for (int k = 0; k < 2; k++) {
        kl_var *z = check_var(ctx, KL_FLOAT64, 1, &n, k ? last : first), *mx = NULL, *mn = NULL;
        if (z && CHECK_OK(kl_reduce(z, KL_REDUCE_MAX, 0, NULL, 0, &mx)) &&
            CHECK_OK(kl_reduce(z, KL_REDUCE_MIN, 0, NULL, 0, &mn))) {
            double a = 0, b = 0;
            if (CHECK_OK(kl_var_copy_to_host(mx, &a, sizeof a))) CHECK_MSG(isnan(a), "max = %g", a);
            if (CHECK_OK(kl_var_copy_to_host(mn, &b, sizeof b))) CHECK_MSG(isnan(b), "min = %g", b);
        }
        check_release(z);
        check_release(mx);
        check_release(mn);
    }
    check_release(x);
    kl_context_free(ctx);
}

static void test_integer_reduce_dtypes(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t shape[2] = {2, 3};
    double v[6] = {2000000000, 2000000000, 2000000000, -7, 3, 5};
    kl_var *x = check_var(ctx, KL_INT32, 2, shape, v);
    int dim1 = 1;
    kl_var *s = NULL, *sa = NULL, *mx = NULL, *mn = NULL, *p = NULL, *me = NULL;
    if (!x) goto done;
    /* NumPy: sum and prod of int32 give int64 (no overflow at 6e9) */
    if (CHECK_OK(kl_reduce(x, KL_REDUCE_SUM, 1, &dim1, 0, &s))) {
        CHECK_DTYPE(s, KL_INT64);
        int64_t got[2];
        if (kl_var_dtype(s) == KL_INT64 && CHECK_OK(kl_var_copy_to_host(s, got, sizeof got))) {
            CHECK_EQ_INT(got[0], 6000000000LL);
            CHECK_EQ_INT(got[1], 1);
        }
    }
    if (CHECK_OK(kl_reduce(x, KL_REDUCE_SUM, 0, NULL, 0, &sa))) {
        CHECK_DTYPE(sa, KL_INT64);
        CHECK_SHAPE(sa, 0, 0);
        int64_t got;
        if (kl_var_dtype(sa) == KL_INT64 && CHECK_OK(kl_var_copy_to_host(sa, &got, sizeof got)))
            CHECK_EQ_INT(got, 6000000001LL);
    }
    if (CHECK_OK(kl_reduce(x, KL_REDUCE_PROD, 1, &dim1, 0, &p))) {
        CHECK_DTYPE(p, KL_INT64);
        double *g = check_read(p);
        if (g) {
            CHECK_EQ_INT((int64_t)g[1], -105);
            free(g);
        }
    }
    /* max and min keep the dtype */
    if (CHECK_OK(kl_reduce(x, KL_REDUCE_MAX, 1, &dim1, 0, &mx))) {
        CHECK_DTYPE(mx, KL_INT32);
        double *g = check_read(mx);
        if (g) {
            CHECK_EQ_INT(g[0], 2000000000);
            CHECK_EQ_INT(g[1], 5);
            free(g);
        }
    }
    if (CHECK_OK(kl_reduce(x, KL_REDUCE_MIN, 0, NULL, 1, &mn))) {
        CHECK_DTYPE(mn, KL_INT32);
        CHECK_SHAPE(mn, 2, 1, 1);
        double *g = check_read(mn);
        if (g) {
            CHECK_EQ_INT(g[0], -7);
            free(g);
        }
    }
    /* mean of integers is a float, value exact here */
    if (CHECK_OK(kl_reduce(x, KL_REDUCE_MEAN, 1, &dim1, 0, &me))) {
        CHECK(kl_dtype_is_float(kl_var_dtype(me)));
        double *g = check_read(me);
        if (g) {
            CHECK_CLOSE(g[0], 2e9, 1e-6, 0);
            CHECK_CLOSE(g[1], 1.0 / 3.0, 1e-6, 0);
            free(g);
        }
    }
done:
    check_release(x);
    check_release(s);
    check_release(sa);
    check_release(mx);
    check_release(mn);
    check_release(p);
    check_release(me);
    kl_context_free(ctx);
}

static void test_bool_sum_counts(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 300;
    double v[300];
    int count = 0;
    for (int i = 0; i < 300; i++) count += (v[i] = (i % 3 == 0));
    kl_var *x = check_var(ctx, KL_BOOL, 1, &n, v), *s = NULL, *a = NULL, *l = NULL;
    if (x && CHECK_OK(kl_reduce(x, KL_REDUCE_SUM, 0, NULL, 0, &s))) {
        CHECK_DTYPE(s, KL_INT64); /* NumPy: sum of bool is int64 and counts past 255 */
        double *g = check_read(s);
        if (g) {
            CHECK_EQ_INT(g[0], count);
            free(g);
        }
    }
    if (x && CHECK_OK(kl_reduce(x, KL_REDUCE_ANY, 0, NULL, 0, &a)) &&
        CHECK_OK(kl_reduce(x, KL_REDUCE_ALL, 0, NULL, 0, &l))) {
        CHECK_DTYPE(a, KL_BOOL);
        double *ga = check_read(a), *gl = check_read(l);
        if (ga) CHECK_EQ_INT(ga[0], 1);
        if (gl) CHECK_EQ_INT(gl[0], 0);
        free(ga);
        free(gl);
    }
    check_release(x);
    check_release(s);
    check_release(a);
    check_release(l);
    kl_context_free(ctx);
}

static void test_reduce_rank0_and_size1(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    kl_var *c = check_scalar(ctx, KL_FLOAT32, 3.5), *s = NULL;
    if (c && CHECK_OK(kl_reduce(c, KL_REDUCE_SUM, 0, NULL, 0, &s))) {
        CHECK_SHAPE(s, 0, 0);
        double *g = check_read(s);
        if (g) {
            CHECK_CLOSE(g[0], 3.5, 0, 0);
            free(g);
        }
    }
    int64_t shape[3] = {1, 3, 1};
    kl_var *x = check_var(ctx, KL_FLOAT64, 3, shape, ((double[]){1, 2, 4})), *y = NULL;
    int dims[2] = {0, 2};
    if (x && CHECK_OK(kl_reduce(x, KL_REDUCE_PROD, 2, dims, 0, &y))) {
        CHECK_SHAPE(y, 1, 3);
        double *g = check_read(y);
        if (g) {
            CHECK_ARRAY_CLOSE(g, ((double[]){1, 2, 4}), 3, 0, 0, "prod over size-1 dims");
            free(g);
        }
    }
    check_release(c);
    check_release(s);
    check_release(x);
    check_release(y);
    kl_context_free(ctx);
}

/* A reduce of an element-wise expression, and an element-wise op of a reduce. */
static void test_reduce_in_a_chain(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t shape[2] = {6, 7};
    double v[42];
    for (int i = 0; i < 42; i++) v[i] = (i % 9) * 0.5 - 2;
    kl_var *x = check_var(ctx, KL_FLOAT64, 2, shape, v);
    kl_var *sq = check_bin(KL_MUL, x, x), *rs = NULL, *rt = NULL;
    int dim = 1;
    if (sq && CHECK_OK(kl_reduce(sq, KL_REDUCE_SUM, 1, &dim, 1, &rs))) {
        CHECK_SHAPE(rs, 2, 6, 1);
        rt = check_un(KL_SQRT, rs);
        kl_var *normed = check_bin(KL_DIV, x, rt); /* (6,7) / (6,1) */
        CHECK_SHAPE(normed, 2, 6, 7);
        double *g = check_read(normed);
        if (g) {
            double want[42];
            for (int i = 0; i < 6; i++) {
                double s = 0;
                for (int j = 0; j < 7; j++) s += v[i * 7 + j] * v[i * 7 + j];
                for (int j = 0; j < 7; j++) want[i * 7 + j] = v[i * 7 + j] / sqrt(s);
            }
            CHECK_ARRAY_CLOSE(g, want, 42, 1e-13, 1e-15, "x / sqrt(sum(x*x, 1, keepdims))");
            free(g);
        }
        check_release(normed);
    }
    check_release(x);
    check_release(sq);
    check_release(rs);
    check_release(rt);
    kl_context_free(ctx);
}


/* Big enough for parallel loops: (512, 2048) reduced along each axis. */
static void test_large_axis_reductions(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    enum { R = 512, C = 2048 };
    int64_t shape[2] = {R, C};
    float *v = malloc((size_t)R * C * sizeof *v);
    uint64_t st = 31;
    for (int64_t i = 0; i < (int64_t)R * C; i++) v[i] = (float)(check_rand01(&st) * 2 - 1);
    kl_var *x = NULL;
    if (!CHECK_OK(kl_var_from_host(ctx, KL_FLOAT32, 2, shape, v, &x))) {
        free(v);
        kl_context_free(ctx);
        return;
    }
    int d0 = 0, d1 = 1;
    kl_var *s0 = NULL, *s1 = NULL, *m0 = NULL, *m1 = NULL;
    CHECK_OK(kl_reduce(x, KL_REDUCE_SUM, 1, &d0, 0, &s0));
    CHECK_OK(kl_reduce(x, KL_REDUCE_SUM, 1, &d1, 0, &s1));
    CHECK_OK(kl_reduce(x, KL_REDUCE_MAX, 1, &d0, 0, &m0));
    CHECK_OK(kl_reduce(x, KL_REDUCE_MIN, 1, &d1, 1, &m1));
    double *ws0 = calloc(C, sizeof *ws0), *ws1 = calloc(R, sizeof *ws1);
    double *wm0 = malloc(C * sizeof *wm0), *wm1 = malloc(R * sizeof *wm1);
    for (int j = 0; j < C; j++) wm0[j] = -INFINITY;
    for (int i = 0; i < R; i++) wm1[i] = INFINITY;
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) {
            double e = v[(int64_t)i * C + j];
            ws0[j] += e;
            ws1[i] += e;
            wm0[j] = fmax(wm0[j], e);
            wm1[i] = fmin(wm1[i], e);
        }
    double *g;
    if (s0 && (g = check_read(s0))) { CHECK_ARRAY_CLOSE(g, ws0, C, 1e-5, 1e-4, "sum over axis 0"); free(g); }
    if (s1 && (g = check_read(s1))) { CHECK_ARRAY_CLOSE(g, ws1, R, 1e-5, 1e-4, "sum over axis 1"); free(g); }
    if (m0 && (g = check_read(m0))) { CHECK_ARRAY_CLOSE(g, wm0, C, 0, 0, "max over axis 0"); free(g); }
    if (m1 && (g = check_read(m1))) { CHECK_ARRAY_CLOSE(g, wm1, R, 0, 0, "min over axis 1"); free(g); }
    free(ws0);
    free(ws1);
    free(wm0);
    free(wm1);
    kl_var *all[] = {x, s0, s1, m0, m1};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    free(v);
    kl_context_free(ctx);
}

CHECK_MAIN(TEST(test_all_subsets_3d_float64), TEST(test_all_subsets_4d_float32),
           TEST(test_long_float32_sum_is_accurate), TEST(test_nan_propagates_in_max_min),
           TEST(test_integer_reduce_dtypes), TEST(test_bool_sum_counts),
           TEST(test_reduce_rank0_and_size1), TEST(test_reduce_in_a_chain),
           TEST(test_large_axis_reductions))
