/* test_fusion.c: element-wise chains and reduces fuse into one kernel, kernels
 * are reused across lengths, user-held intermediates survive, and fused
 * results equal the unfused ones. */
#include "check.h"

static kl_counters counters(kl_context *ctx)
{
    kl_counters c;
    memset(&c, 0, sizeof c);
    kl_context_counters(ctx, &c);
    return c;
}

static void print_counters(const char *what, const kl_counters *c)
{
    printf("      %s: compiled %llu, mem hits %llu, disk hits %llu, launched %llu\n", what,
           (unsigned long long)c->kernels_compiled, (unsigned long long)c->cache_hits_memory,
           (unsigned long long)c->cache_hits_disk, (unsigned long long)c->kernels_launched);
}

/* ((x*2+1).exp()*x).sum() built from handles released at once; returns the
 * pending result (NULL on failure). */
static kl_var *build_expr(kl_context *ctx, kl_var *x)
{
    kl_var *two = check_scalar(ctx, KL_FLOAT32, 2), *one = check_scalar(ctx, KL_FLOAT32, 1);
    kl_var *t1 = check_bin(KL_MUL, x, two);
    kl_var *t2 = check_bin(KL_ADD, t1, one);
    kl_var *t3 = check_un(KL_EXP, t2);
    kl_var *t4 = check_bin(KL_MUL, t3, x);
    kl_var *y = NULL;
    if (t4) CHECK_OK(kl_reduce(t4, KL_REDUCE_SUM, 0, NULL, 0, &y));
    kl_var *tmp[] = {two, one, t1, t2, t3, t4};
    for (size_t k = 0; k < sizeof tmp / sizeof tmp[0]; k++) check_release(tmp[k]);
    return y;
}

static kl_var *make_input(kl_context *ctx, int64_t n, double *ref)
{
    float *v = malloc((size_t)n * sizeof *v);
    uint64_t st = 17;
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        v[i] = (float)(2 * check_rand01(&st) - 1);
        s += exp(2.0 * v[i] + 1.0) * v[i];
    }
    *ref = s;
    kl_var *x = NULL;
    if (!CHECK_OK(kl_var_from_host(ctx, KL_FLOAT32, 1, &n, v, &x))) x = NULL;
    free(v);
    return x;
}

static void test_chain_with_sum_is_one_kernel(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    double ref;
    kl_var *x = make_input(ctx, 1 << 20, &ref);
    kl_var *y = x ? build_expr(ctx, x) : NULL;
    if (y) {
        kl_counters before = counters(ctx);
        float got = 0;
        if (CHECK_OK(kl_var_copy_to_host(y, &got, sizeof got))) {
            kl_counters after = counters(ctx);
            CHECK_MSG(after.kernels_launched - before.kernels_launched == 1,
                      "((x*2+1).exp()*x).sum() launched %llu kernels, expected 1",
                      (unsigned long long)(after.kernels_launched - before.kernels_launched));
            CHECK_MSG(fabs(got - ref) <= 1e-5 * fabs(ref), "got %.9g, double reference %.9g (rel %.3g)",
                      got, ref, fabs(got - ref) / fabs(ref));
        }
        CHECK(kl_var_is_computed(y));
        CHECK_SHAPE(y, 0, 0);
        CHECK_DTYPE(y, KL_FLOAT32);
    }
    check_release(x);
    check_release(y);
    kl_context_free(ctx);
}

static int run_length(kl_context *ctx, int64_t n)
{
    double ref;
    kl_var *x = make_input(ctx, n, &ref);
    kl_var *y = x ? build_expr(ctx, x) : NULL;
    int ok = 0;
    float got = 0;
    if (y && CHECK_OK(kl_var_copy_to_host(y, &got, sizeof got)))
        ok = CHECK_MSG(fabs(got - ref) <= 1e-5 * fabs(ref), "n=%lld: got %.9g, expected %.9g",
                       (long long)n, got, ref);
    check_release(x);
    check_release(y);
    return ok;
}

static void test_new_length_compiles_nothing(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    run_length(ctx, 1000);
    kl_counters a = counters(ctx);
    run_length(ctx, 3000);
    kl_counters b = counters(ctx);
    run_length(ctx, 17);
    kl_counters c = counters(ctx);
    CHECK_EQ_INT(b.kernels_compiled, a.kernels_compiled);
    CHECK_EQ_INT(b.cache_hits_disk, a.cache_hits_disk);
    CHECK(b.cache_hits_memory > a.cache_hits_memory);
    CHECK_EQ_INT(c.kernels_compiled, a.kernels_compiled);
    CHECK_EQ_INT(c.cache_hits_disk, a.cache_hits_disk);
    CHECK(c.cache_hits_memory > b.cache_hits_memory);
    CHECK(a.kernels_compiled + a.cache_hits_disk >= 1); /* the first run did find a kernel */
    if (check_failures_) {
        print_counters("after n=1000", &a);
        print_counters("after n=3000", &b);
        print_counters("after n=17", &c);
    }
    kl_context_free(ctx);
}

static void test_user_held_intermediate_keeps_value(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 4096;
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = (float)((i % 97) * 0.01 - 0.5);
    kl_var *x = NULL, *t = NULL, *e = NULL, *y = NULL;
    kl_var *two = check_scalar(ctx, KL_FLOAT32, 2), *one = check_scalar(ctx, KL_FLOAT32, 1), *t1 = NULL;
    if (CHECK_OK(kl_var_from_host(ctx, KL_FLOAT32, 1, &n, v, &x)) && (t1 = check_bin(KL_MUL, x, two)) &&
        (t = check_bin(KL_ADD, t1, one)) && (e = check_un(KL_EXP, t)) &&
        CHECK_OK(kl_reduce(e, KL_REDUCE_SUM, 0, NULL, 0, &y))) {
        float s = 0;
        CHECK_OK(kl_var_copy_to_host(y, &s, sizeof s));
        double ref = 0;
        for (int64_t i = 0; i < n; i++) ref += exp(2.0 * v[i] + 1);
        CHECK_CLOSE(s, ref, 1e-5, 0);
        /* t is held by the user: its value survives the fused sync */
        double *g = check_read(t);
        if (g) {
            double *want = malloc((size_t)n * sizeof *want);
            for (int64_t i = 0; i < n; i++) want[i] = (float)(2.0f * v[i]) + 1.0f;
            CHECK_ARRAY_CLOSE(g, want, n, 1e-7, 1e-7, "t = x*2+1 read after sum(exp(t))");
            free(want);
            free(g);
        }
        CHECK(kl_var_is_computed(t));
        /* reading t again costs no kernel */
        kl_counters before = counters(ctx);
        g = check_read(t);
        free(g);
        kl_counters after = counters(ctx);
        CHECK_EQ_INT(after.kernels_launched, before.kernels_launched);
        /* and y too */
        float s2 = 0;
        CHECK_OK(kl_var_copy_to_host(y, &s2, sizeof s2));
        CHECK(s2 == s);
    }
    /* kl_sync of the result and the intermediate together */
    kl_var *e2 = t ? check_un(KL_NEG, t) : NULL, *y2 = NULL;
    if (e2 && CHECK_OK(kl_reduce(e2, KL_REDUCE_MAX, 0, NULL, 0, &y2))) {
        kl_var *both[2] = {y2, e2};
        CHECK_OK(kl_sync(both, 2));
        CHECK(kl_var_is_computed(y2));
        CHECK(kl_var_is_computed(e2));
        double *g = check_read(e2), *m = check_read(y2);
        if (g && m) {
            double mx = -INFINITY;
            for (int64_t i = 0; i < n; i++) mx = fmax(mx, g[i]);
            CHECK_CLOSE(m[0], mx, 0, 0);
            CHECK_CLOSE(g[0], -((float)(2.0f * v[0]) + 1.0f), 1e-7, 0);
        }
        free(g);
        free(m);
    }
    kl_var *all[] = {x, t, e, y, two, one, t1, e2, y2};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    free(v);
    kl_context_free(ctx);
}

/* A longer chain on a (64, 128) float32: x*2+1 -> exp -> *x -> sigmoid -
 * tanh(x) -> where(x > 0, e, -e) -> sum over dim 1 (keepdims) -> / rows max.
 * With sync_each, every intermediate is synced before the next op is built;
 * without, only the final result is read. */
static double *chain(kl_context *ctx, int sync_each, uint64_t *launched)
{
    enum { R = 64, C = 128 };
    int64_t s[2] = {R, C};
    double v[R * C];
    uint64_t st = 11;
    for (int i = 0; i < R * C; i++) v[i] = 2 * check_rand01(&st) - 1;
    kl_var *x = check_var(ctx, KL_FLOAT32, 2, s, v);
    if (!x) return NULL;
    kl_var *vars[32];
    int nv = 0;
    kl_counters before = counters(ctx);
#define STEP(expr)                                    \
    do {                                              \
        kl_var *v_ = (expr);                          \
        if (!v_) goto fail;                           \
        vars[nv++] = v_;                              \
        if (sync_each) CHECK_OK(kl_sync(&v_, 1));     \
    } while (0)
#define LAST vars[nv - 1]
    kl_var *two = check_scalar(ctx, KL_FLOAT32, 2), *one = check_scalar(ctx, KL_FLOAT32, 1);
    kl_var *zero = check_scalar(ctx, KL_FLOAT32, 0);
    vars[nv++] = two;
    vars[nv++] = one;
    vars[nv++] = zero;
    STEP(check_bin(KL_MUL, x, two));
    STEP(check_bin(KL_ADD, LAST, one));
    STEP(check_un(KL_EXP, LAST));
    STEP(check_bin(KL_MUL, LAST, x));
    STEP(check_un(KL_SIGMOID, LAST));
    kl_var *sg = LAST;
    STEP(check_un(KL_TANH, x));
    STEP(check_bin(KL_SUB, sg, LAST));
    kl_var *e = LAST;
    STEP(check_un(KL_NEG, e));
    kl_var *ne = LAST;
    STEP(check_bin(KL_GREATER, x, zero));
    kl_var *w = NULL;
    if (!CHECK_OK(kl_where(LAST, e, ne, &w))) goto fail;
    STEP(w);
    int dim = 1;
    kl_var *r = NULL;
    if (!CHECK_OK(kl_reduce(LAST, KL_REDUCE_SUM, 1, &dim, 1, &r))) goto fail;
    STEP(r);
    kl_var *m = NULL;
    if (!CHECK_OK(kl_reduce(x, KL_REDUCE_MAX, 1, &dim, 1, &m))) goto fail;
    STEP(m);
    STEP(check_bin(KL_DIV, r, m));
    /* Drop every handle but the result's (the ops hold what they need), so
     * nothing but the result is "used by the user" and the chain may fuse. */
    kl_var *result = LAST;
    for (int k = 0; k < nv - 1; k++) kl_var_release(vars[k]);
    kl_var_release(x);
    double *out = check_read(result);
    *launched = counters(ctx).kernels_launched - before.kernels_launched;
    kl_var_release(result);
    return out;
fail:
    for (int k = 0; k < nv; k++) check_release(vars[k]);
    kl_var_release(x);
    return NULL;
#undef STEP
#undef LAST
}

static void test_fused_equals_unfused(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    uint64_t fused_launches = 0, unfused_launches = 0;
    double *fused = chain(ctx, 0, &fused_launches);
    double *unfused = chain(ctx, 1, &unfused_launches);
    if (fused && unfused) {
        CHECK_ARRAY_CLOSE(fused, unfused, 64, 1e-5, 1e-5, "fused vs step-by-step chain");
        /* a double reference too */
        double v[64 * 128], want[64];
        uint64_t st = 11;
        for (int i = 0; i < 64 * 128; i++) v[i] = (float)(2 * check_rand01(&st) - 1);
        for (int i = 0; i < 64; i++) {
            double s = 0, mx = -INFINITY;
            for (int j = 0; j < 128; j++) {
                double x = v[i * 128 + j];
                double e = 1 / (1 + exp(-exp(2 * x + 1) * x)) - tanh(x);
                s += x > 0 ? e : -e;
                mx = fmax(mx, x);
            }
            want[i] = s / mx;
        }
        CHECK_ARRAY_CLOSE(fused, want, 64, 1e-4, 1e-5, "fused chain vs double reference");
        CHECK_MSG(fused_launches < unfused_launches, "fused chain launched %llu kernels, step by step %llu",
                  (unsigned long long)fused_launches, (unsigned long long)unfused_launches);
        /* At most: e (used twice, so it may be materialised), the two row
         * reductions, and the divide. */
        CHECK_MSG(fused_launches <= 4, "fused chain launched %llu kernels (expected at most 4)",
                  (unsigned long long)fused_launches);
    }
    free(fused);
    free(unfused);
    kl_context_free(ctx);
}

/* broadcast * broadcast -> sum: a matmul spelled with meta-ops. */
static void test_broadcast_mul_sum_matmul(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    enum { M = 8, K = 16, N = 5 };
    int64_t sa[2] = {M, K}, sb[2] = {K, N}, s3[3] = {M, K, N};
    double a[M * K], b[K * N];
    uint64_t st = 23;
    for (int i = 0; i < M * K; i++) a[i] = check_rand01(&st) - 0.5;
    for (int i = 0; i < K * N; i++) b[i] = check_rand01(&st) - 0.5;
    kl_var *A = check_var(ctx, KL_FLOAT64, 2, sa, a), *B = check_var(ctx, KL_FLOAT64, 2, sb, b);
    kl_var *Ab = NULL, *Bb = NULL, *P = NULL, *C = NULL;
    int d2 = 2, d0 = 0, d1 = 1;
    if (A && B && CHECK_OK(kl_broadcast_to(A, 3, s3, 1, &d2, &Ab)) &&
        CHECK_OK(kl_broadcast_to(B, 3, s3, 1, &d0, &Bb)) && (P = check_bin(KL_MUL, Ab, Bb)) &&
        CHECK_OK(kl_reduce(P, KL_REDUCE_SUM, 1, &d1, 0, &C))) {
        CHECK_SHAPE(C, 2, M, N);
        double *g = check_read(C);
        if (g) {
            double want[M * N];
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int k = 0; k < K; k++) s += a[i * K + k] * b[k * N + j];
                    want[i * N + j] = s;
                }
            CHECK_ARRAY_CLOSE(g, want, M * N, 1e-12, 1e-14, "matmul by broadcast-mul-sum");
            free(g);
        }
    }
    kl_var *all[] = {A, B, Ab, Bb, P, C};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

/* The same graph built again in the same context reuses the loaded kernel. */
static void test_rebuild_hits_memory_cache(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    run_length(ctx, 500);
    kl_counters a = counters(ctx);
    run_length(ctx, 500);
    kl_counters b = counters(ctx);
    CHECK_EQ_INT(b.kernels_compiled, a.kernels_compiled);
    CHECK_EQ_INT(b.cache_hits_disk, a.cache_hits_disk);
    CHECK(b.cache_hits_memory > a.cache_hits_memory);
    CHECK_EQ_INT(b.kernels_launched - a.kernels_launched, 1);
    kl_context_free(ctx);
}

/* A sum of 150 computed arrays reads more buffers than one kernel may
 * (KL_KD_MAX_BUFS): fusion stores a partial sum now and then, so it runs as
 * a few kernels instead of failing. */
static void test_many_inputs_split_into_several_kernels(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    enum { N = 150 };
    kl_var *xs[N] = {0}, *acc = NULL;
    int64_t n = 3;
    double want[3] = {0, 0, 0};
    for (int i = 0; i < N; i++) {
        double v[3] = {i, 0.5 * i, -i};
        for (int j = 0; j < 3; j++) want[j] += v[j];
        xs[i] = check_var(ctx, KL_FLOAT64, 1, &n, v);
        if (!xs[i]) break;
        double *done = check_read(xs[i]); /* computed: each is a buffer of its own */
        free(done);
        kl_var *next = acc ? check_bin(KL_ADD, acc, xs[i]) : NULL;
        if (acc) { check_release(acc); acc = next; }
        else { kl_var_retain(xs[i]); acc = xs[i]; }
    }
    if (acc) {
        kl_counters before = counters(ctx);
        double *got = check_read(acc);
        kl_counters after = counters(ctx);
        if (got) CHECK_ARRAY_CLOSE(got, want, 3, 1e-15, 0, "sum of 150 arrays");
        free(got);
        uint64_t k = after.kernels_launched - before.kernels_launched;
        CHECK_MSG(k >= 2 && k <= 6, "150 inputs ran as %llu kernels, expected a few", (unsigned long long)k);
    }
    check_release(acc);
    for (int i = 0; i < N; i++) check_release(xs[i]);
    CHECK_OK(kl_context_free(ctx));
}

CHECK_MAIN(TEST(test_chain_with_sum_is_one_kernel), TEST(test_new_length_compiles_nothing),
           TEST(test_user_held_intermediate_keeps_value), TEST(test_fused_equals_unfused),
           TEST(test_broadcast_mul_sum_matmul), TEST(test_rebuild_hits_memory_cache),
           TEST(test_many_inputs_split_into_several_kernels))
