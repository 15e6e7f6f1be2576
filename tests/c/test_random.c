/* test_random.c: kl_random is counter-based and reproducible; its moments
 * and ranges are right. */
#include "check.h"

/* n random numbers from a fresh context seeded with seed, as raw bytes. */
static void *draw(uint64_t seed, kl_dtype t, int64_t n, kl_random_kind kind, double a, double b)
{
    kl_context *ctx = check_context();
    if (!ctx) return NULL;
    kl_context_seed(ctx, seed);
    kl_var *r = NULL;
    void *buf = NULL;
    if (CHECK_OK(kl_random(ctx, t, 1, &n, kind, a, b, &r))) {
        CHECK_DTYPE(r, t);
        CHECK_SHAPE(r, 1, n);
        buf = malloc((size_t)n * kl_dtype_size(t));
        if (!CHECK_OK(kl_var_copy_to_host(r, buf, (size_t)n * kl_dtype_size(t)))) {
            free(buf);
            buf = NULL;
        }
        kl_var_release(r);
    }
    kl_context_free(ctx);
    return buf;
}

static void test_same_seed_is_bit_identical(void)
{
    const int64_t n = 100000;
    kl_dtype types[2] = {KL_FLOAT32, KL_FLOAT64};
    kl_random_kind kinds[2] = {KL_RANDOM_UNIFORM, KL_RANDOM_NORMAL};
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 2; k++) {
            void *a = draw(42, types[t], n, kinds[k], 0, 1), *b = draw(42, types[t], n, kinds[k], 0, 1);
            if (a && b)
                CHECK_MSG(memcmp(a, b, (size_t)n * kl_dtype_size(types[t])) == 0,
                          "%s %s with seed 42 differs between two contexts", kl_dtype_name(types[t]),
                          k ? "normal" : "uniform");
            free(a);
            free(b);
        }
}

static void test_different_seeds_differ(void)
{
    const int64_t n = 1000;
    float *a = draw(1, KL_FLOAT32, n, KL_RANDOM_UNIFORM, 0, 1);
    float *b = draw(2, KL_FLOAT32, n, KL_RANDOM_UNIFORM, 0, 1);
    if (a && b) {
        int same = 0;
        for (int64_t i = 0; i < n; i++) same += a[i] == b[i];
        CHECK_MSG(same < 10, "%d of 1000 uniforms equal under seeds 1 and 2", same);
    }
    free(a);
    free(b);
    double *c = draw(1, KL_FLOAT64, n, KL_RANDOM_NORMAL, 0, 1);
    double *d = draw(2, KL_FLOAT64, n, KL_RANDOM_NORMAL, 0, 1);
    if (c && d) {
        int same = 0;
        for (int64_t i = 0; i < n; i++) same += c[i] == d[i];
        CHECK_MSG(same < 10, "%d of 1000 normals equal under seeds 1 and 2", same);
    }
    free(c);
    free(d);
}

static void test_successive_draws_differ(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    kl_context_seed(ctx, 7);
    int64_t n = 1000;
    kl_var *r1 = NULL, *r2 = NULL;
    if (CHECK_OK(kl_random(ctx, KL_FLOAT32, 1, &n, KL_RANDOM_UNIFORM, 0, 1, &r1)) &&
        CHECK_OK(kl_random(ctx, KL_FLOAT32, 1, &n, KL_RANDOM_UNIFORM, 0, 1, &r2))) {
        double *a = check_read(r1), *b = check_read(r2);
        if (a && b) {
            int same = 0;
            for (int64_t i = 0; i < n; i++) same += a[i] == b[i];
            CHECK_MSG(same < 10, "two draws from one context share %d of 1000 values", same);
            /* a var's value is fixed once drawn: reading again gives the same */
            double *a2 = check_read(r1);
            if (a2) CHECK(memcmp(a, a2, (size_t)n * sizeof(double)) == 0);
            free(a2);
        }
        free(a);
        free(b);
    }
    check_release(r1);
    check_release(r2);
    kl_context_free(ctx);
}

/* The values depend on the seed and the count handed out, not on fusion:
 * random(n)*2 summed in one fused kernel equals 2*random(n) read alone. */
static void test_random_is_independent_of_fusion(void)
{
    const int64_t n = 1 << 16;
    float *alone = draw(5, KL_FLOAT32, n, KL_RANDOM_NORMAL, 0, 1);
    kl_context *ctx = check_context();
    if (!ctx || !alone) {
        free(alone);
        if (ctx) kl_context_free(ctx);
        return;
    }
    kl_context_seed(ctx, 5);
    kl_var *r = NULL, *two = check_scalar(ctx, KL_FLOAT32, 2), *y = NULL, *s = NULL;
    int64_t nn = n;
    if (CHECK_OK(kl_random(ctx, KL_FLOAT32, 1, &nn, KL_RANDOM_NORMAL, 0, 1, &r)) &&
        (y = check_bin(KL_MUL, r, two)) && CHECK_OK(kl_reduce(y, KL_REDUCE_SUM, 0, NULL, 0, &s))) {
        kl_var_release(r); /* not held: free to fuse into the sum */
        r = NULL;
        kl_var *both[2] = {s, y};
        CHECK_OK(kl_sync(both, 2));
        double *g = check_read(y);
        if (g) {
            int bad = 0;
            double ref = 0;
            for (int64_t i = 0; i < n; i++) {
                bad += g[i] != 2.0f * alone[i];
                ref += 2.0 * alone[i];
            }
            CHECK_MSG(bad == 0, "%d of %lld values differ between fused and unfused draws", bad,
                      (long long)n);
            float sum = 0;
            if (CHECK_OK(kl_var_copy_to_host(s, &sum, sizeof sum))) CHECK_CLOSE(sum, ref, 1e-4, 1e-2);
            free(g);
        }
    }
    check_release(r);
    check_release(two);
    check_release(y);
    check_release(s);
    kl_context_free(ctx);
    free(alone);
}

static void moments(const double *v, int64_t n, double *mean, double *std)
{
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int64_t i = 0; i < n; i++) ss += (v[i] - *mean) * (v[i] - *mean);
    *std = sqrt(ss / n);
}

static void test_normal_moments(void)
{
    const int64_t n = 1000000;
    kl_dtype types[2] = {KL_FLOAT32, KL_FLOAT64};
    for (int t = 0; t < 2; t++) {
        kl_context *ctx = check_context();
        if (!ctx) return;
        kl_context_seed(ctx, 123);
        kl_var *r = NULL, *r2 = NULL;
        int64_t nn = n;
        if (CHECK_OK(kl_random(ctx, types[t], 1, &nn, KL_RANDOM_NORMAL, 0, 1, &r))) {
            double *g = check_read(r), mean, std;
            if (g) {
                moments(g, n, &mean, &std);
                CHECK_MSG(fabs(mean) < 0.01, "%s normal(0,1): mean %g", kl_dtype_name(types[t]), mean);
                CHECK_MSG(fabs(std - 1) < 0.01, "%s normal(0,1): std %g", kl_dtype_name(types[t]), std);
                int finite = 1, tail = 0;
                for (int64_t i = 0; i < n; i++) {
                    finite &= isfinite(g[i]);
                    tail += fabs(g[i]) > 3;
                }
                CHECK(finite);
                /* P(|z| > 3) = 0.0027 */
                CHECK_MSG(tail > 2200 && tail < 3200, "%d of 1M beyond 3 sigma", tail);
                free(g);
            }
        }
        if (CHECK_OK(kl_random(ctx, types[t], 1, &nn, KL_RANDOM_NORMAL, 3, 2, &r2))) {
            double *g = check_read(r2), mean, std;
            if (g) {
                moments(g, n, &mean, &std);
                CHECK_MSG(fabs(mean - 3) < 0.02, "normal(3,2): mean %g", mean);
                CHECK_MSG(fabs(std - 2) < 0.02, "normal(3,2): std %g", std);
                free(g);
            }
        }
        check_release(r);
        check_release(r2);
        kl_context_free(ctx);
    }
}

static void test_uniform_range_and_moments(void)
{
    const int64_t n = 1000000;
    kl_dtype types[2] = {KL_FLOAT32, KL_FLOAT64};
    for (int t = 0; t < 2; t++) {
        kl_context *ctx = check_context();
        if (!ctx) return;
        kl_context_seed(ctx, 99);
        kl_var *r = NULL;
        int64_t nn = n;
        if (CHECK_OK(kl_random(ctx, types[t], 1, &nn, KL_RANDOM_UNIFORM, 2, 5, &r))) {
            double *g = check_read(r);
            if (g) {
                double lo = INFINITY, hi = -INFINITY, mean, std;
                int64_t bins[10] = {0};
                for (int64_t i = 0; i < n; i++) {
                    lo = fmin(lo, g[i]);
                    hi = fmax(hi, g[i]);
                    int b = (int)((g[i] - 2) / 3 * 10);
                    if (b >= 0 && b < 10) bins[b]++;
                }
                CHECK_MSG(lo >= 2 && hi < 5, "%s uniform [2,5): min %.17g max %.17g", kl_dtype_name(types[t]), lo, hi);
                CHECK_MSG(lo < 2.001 && hi > 4.999, "range not covered: min %g max %g", lo, hi);
                moments(g, n, &mean, &std);
                CHECK_MSG(fabs(mean - 3.5) < 0.01, "uniform [2,5): mean %g", mean);
                CHECK_MSG(fabs(std - 3 / sqrt(12.0)) < 0.01, "uniform [2,5): std %g", std);
                for (int b = 0; b < 10; b++)
                    CHECK_MSG(bins[b] > 98500 && bins[b] < 101500, "bin %d holds %lld of 1M", b,
                              (long long)bins[b]);
                free(g);
            }
        }
        check_release(r);
        kl_context_free(ctx);
    }
}

static void test_uniform_never_reaches_b_in_float32(void)
{
    /* [0, 1) in float32: rounding a double close to 1 must not give 1.0f. */
    const int64_t n = 1 << 20;
    float *a = draw(2024, KL_FLOAT32, n, KL_RANDOM_UNIFORM, 0, 1);
    if (a) {
        int bad = 0;
        for (int64_t i = 0; i < n; i++) bad += !(a[i] >= 0.0f && a[i] < 1.0f);
        CHECK_MSG(bad == 0, "%d of %lld float32 uniforms outside [0, 1)", bad, (long long)n);
    }
    free(a);
}

static void test_random_shapes(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[3] = {4, 5, 6};
    kl_var *r = NULL, *r0 = NULL;
    if (CHECK_OK(kl_random(ctx, KL_FLOAT64, 3, s, KL_RANDOM_UNIFORM, -1, 1, &r))) {
        CHECK_SHAPE(r, 3, 4, 5, 6);
        double *g = check_read(r);
        if (g) {
            int distinct = 1;
            for (int i = 1; i < 120; i++) distinct &= g[i] != g[i - 1];
            CHECK(distinct);
            free(g);
        }
    }
    if (CHECK_OK(kl_random(ctx, KL_FLOAT32, 0, NULL, KL_RANDOM_NORMAL, 0, 1, &r0))) {
        CHECK_SHAPE(r0, 0, 0);
        double *g = check_read(r0);
        if (g) CHECK(isfinite(g[0]));
        free(g);
    }
    check_release(r);
    check_release(r0);
    kl_context_free(ctx);
}

CHECK_MAIN(TEST(test_same_seed_is_bit_identical), TEST(test_different_seeds_differ),
           TEST(test_successive_draws_differ), TEST(test_random_is_independent_of_fusion),
           TEST(test_normal_moments), TEST(test_uniform_range_and_moments),
           TEST(test_uniform_never_reaches_b_in_float32), TEST(test_random_shapes))
