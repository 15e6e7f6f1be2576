/* test_layernorm.c: the layer norm replacement (src/opt/layernorm.c):
 * (x - mean) * rsqrt(mean((x - mean)^2) + eps) [* w] [+ b] over the last
 * dim, built from meta-ops the way no_grad builds it (every result behind a
 * stop_grad), runs as one kernel of its own and gives what a float64 loop
 * gives; where a gradient may pass (no stop_grad above the result) or the
 * mean is read outside, the meta-op kernels run and agree. */
#include "check.h"

#include <math.h>
#include <stdlib.h>

#define ROWS 9
#define AXIS 130

typedef struct {
    const char *label;
    int weight, bias; /* the affine steps */
    int wrap_top;     /* a stop_grad above the result: no gradient passes */
    int keep_mean;    /* the caller reads the mean too */
} ln_case;

/* One meta-op step then no_grad's stop_grad (and an identity cast). */
static int step(kl_status s, kl_var **v)
{
    return CHECK_OK(s) && check_pass_through(1, v);
}

/* t = op(t, v) for the running result t (its handle passed on). */
static int then(kl_binary_op op, kl_var **t, kl_var *v)
{
    kl_var *n = NULL;
    int ok = check_pass_through(1, t) && CHECK_OK(kl_binary(op, *t, v, &n));
    check_release(*t);
    *t = n;
    return ok;
}

/* The case's output computed in ctx; *kernels: the kernels its sync ran. */
static double *run(kl_context *ctx, const ln_case *lc, const double *x, const double *w, const double *b,
                   uint64_t *kernels)
{
    int64_t shape[2] = {ROWS, AXIS}, vshape[1] = {AXIS};
    int last = 1;
    kl_var *X = check_var(ctx, KL_FLOAT32, 2, shape, x), *W = check_var(ctx, KL_FLOAT32, 1, vshape, w);
    kl_var *B = check_var(ctx, KL_FLOAT32, 1, vshape, b);
    kl_var *m = NULL, *c = NULL, *sq = NULL, *var = NULL, *eps = NULL, *plus = NULL, *r = NULL, *t = NULL;
    double *out = NULL;
    int ok = X && W && B && step(kl_reduce(X, KL_REDUCE_MEAN, 1, &last, 1, &m), &m) &&
             step(kl_binary(KL_SUB, X, m, &c), &c) && step(kl_binary(KL_MUL, c, c, &sq), &sq) &&
             step(kl_reduce(sq, KL_REDUCE_MEAN, 1, &last, 1, &var), &var) &&
             CHECK_OK(kl_full(ctx, KL_FLOAT32, 0, NULL, 1e-5, &eps)) && step(kl_binary(KL_ADD, var, eps, &plus), &plus) &&
             step(kl_unary(KL_RSQRT, plus, &r), &r) && CHECK_OK(kl_binary(KL_MUL, c, r, &t));
    if (ok && lc->weight) ok = then(KL_MUL, &t, W);
    if (ok && lc->bias) ok = then(KL_ADD, &t, B);
    if (ok && lc->wrap_top) { /* no_grad's stop_grad over the result */
        kl_var *cut = NULL;
        ok = CHECK_OK(kl_stop_grad(t, &cut));
        check_release(t);
        t = cut;
    }
    /* the intermediates are the graph's now (held, they would be stored) */
    check_release(c); check_release(sq); check_release(var); check_release(eps); check_release(plus);
    check_release(r);
    if (!lc->keep_mean) {
        check_release(m);
        m = NULL;
    }
    if (ok) {
        kl_counters c0, c1;
        kl_var *targets[2] = {t, m};
        kl_context_counters(ctx, &c0);
        if (CHECK_OK(kl_sync(targets, m ? 2 : 1))) out = check_read(t);
        kl_context_counters(ctx, &c1);
        *kernels = c1.kernels_launched - c0.kernels_launched;
        double *mean = m ? check_read(m) : NULL;
        for (int i = 0; mean && i < ROWS; i++) {
            double want = 0;
            for (int j = 0; j < AXIS; j++) want += x[i * AXIS + j];
            CHECK_CLOSE(mean[i], want / AXIS, 1e-6, 1e-6);
        }
        free(mean);
    }
    check_release(X); check_release(W); check_release(B); check_release(m); check_release(t);
    return out;
}

static void compare(const ln_case *lc, int matched)
{
    double x[ROWS * AXIS], w[AXIS], b[AXIS], want[ROWS * AXIS];
    uint64_t st = 23;
    for (int i = 0; i < ROWS * AXIS; i++) x[i] = check_round_to(KL_FLOAT32, 3 * check_rand01(&st) + 1);
    for (int j = 0; j < AXIS; j++) {
        w[j] = check_round_to(KL_FLOAT32, check_rand01(&st) + 0.5);
        b[j] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
    }
    for (int i = 0; i < ROWS; i++) {
        double mean = 0, var = 0;
        for (int j = 0; j < AXIS; j++) mean += x[i * AXIS + j] / AXIS;
        for (int j = 0; j < AXIS; j++) var += (x[i * AXIS + j] - mean) * (x[i * AXIS + j] - mean) / AXIS;
        for (int j = 0; j < AXIS; j++) {
            double v = (x[i * AXIS + j] - mean) / sqrt(var + 1e-5);
            want[i * AXIS + j] = v * (lc->weight ? w[j] : 1) + (lc->bias ? b[j] : 0);
        }
    }
    kl_context *ctx = check_context();
    kl_context *plain = check_context_without("KILN_BLAS");
    if (!ctx || !plain) return;
    uint64_t kernels = 0, plain_kernels = 0;
    double *got = run(ctx, lc, x, w, b, &kernels), *ref = run(plain, lc, x, w, b, &plain_kernels);
    if (got && ref) {
        CHECK_ARRAY_CLOSE(got, want, ROWS * AXIS, 1e-5, 1e-5, lc->label);
        CHECK_ARRAY_CLOSE(got, ref, ROWS * AXIS, 1e-6, 1e-6, lc->label);
        CHECK_MSG(matched ? kernels == 1 : kernels > 1, "%s: %llu kernels, expected %s", lc->label,
                  (unsigned long long)kernels, matched ? "1" : "several");
        CHECK_MSG(plain_kernels > 1, "%s: KILN_BLAS=0 still replaced the layer norm", lc->label);
    }
    free(got);
    free(ref);
    kl_context_free(ctx);
    kl_context_free(plain);
}

static void test_layer_norm_in_one_kernel(void)
{
    ln_case full = {"weight and bias", 1, 1, 1, 0};
    compare(&full, 1);
    ln_case weight = {"weight", 1, 0, 1, 0};
    compare(&weight, 1);
    ln_case bare = {"bare", 0, 0, 1, 0};
    compare(&bare, 1);
}

static void test_near_misses_left_to_kernels(void)
{
    ln_case grad = {"a gradient may pass", 1, 1, 0, 0};
    compare(&grad, 0);
    ln_case kept = {"the caller reads the mean", 1, 1, 1, 1};
    compare(&kept, 0);
}

CHECK_MAIN(TEST(test_layer_norm_in_one_kernel), TEST(test_near_misses_left_to_kernels))
