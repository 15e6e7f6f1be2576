/* test_softmax.c: the softmax replacement (src/opt/softmax.c): softmax and
 * log-softmax built from meta-ops give what a float64 loop gives, in one
 * kernel of their own (a pass per row, KL_KD_SOFTMAX), along the last or a
 * middle dim, also through no_grad's stop_grads; near misses (an
 * intermediate someone else reads, reductions along different dims,
 * float64) are left to the fused kernels and stay right. KILN_BLAS=0 turns
 * the replacement off (the fused kernels, for comparison). */
#include "check.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    const char *label;
    int ndim, dim, log;
    int64_t shape[3];
    int wrap;        /* stop_grads and identity casts between the ops */
    int keep_inner;  /* the caller keeps the exp (softmax) or the shifted x (log-softmax) */
    int sum_dim;     /* the sum's dim, when it differs from the max's (-1: the same) */
    kl_dtype dtype;
} sm_case;

/* The case's output computed in ctx; *kernels: the kernels its sync ran;
 * *inner: the kept intermediate's values when keep_inner. */
static double *run(kl_context *ctx, const sm_case *sc, const double *x, uint64_t *kernels, double **inner)
{
    kl_counters c0, c1;
    kl_var *X = check_var(ctx, sc->dtype, sc->ndim, sc->shape, x);
    kl_var *m = NULL, *a = NULL, *e = NULL, *s = NULL, *l = NULL, *y = NULL;
    double *out = NULL;
    int sum_dim = sc->sum_dim >= 0 ? sc->sum_dim : sc->dim;
    int ok = X && CHECK_OK(kl_reduce(X, KL_REDUCE_MAX, 1, &sc->dim, 1, &m)) && check_pass_through(sc->wrap, &m) &&
             CHECK_OK(kl_binary(KL_SUB, X, m, &a)) && check_pass_through(sc->wrap, &a) &&
             CHECK_OK(kl_unary(KL_EXP, a, &e)) && check_pass_through(sc->wrap, &e) &&
             CHECK_OK(kl_reduce(e, KL_REDUCE_SUM, 1, &sum_dim, 1, &s)) && check_pass_through(sc->wrap, &s);
    if (ok && sc->log)
        ok = CHECK_OK(kl_unary(KL_LOG, s, &l)) && check_pass_through(sc->wrap, &l) && CHECK_OK(kl_binary(KL_SUB, a, l, &y));
    else if (ok)
        ok = CHECK_OK(kl_binary(KL_DIV, e, s, &y));
    if (ok) {
        /* intermediates the caller still held would be read by it: released, they are the pattern's */
        check_release(m); check_release(s); check_release(l);
        m = s = l = NULL;
        kl_var **drop = sc->log ? &e : &a, **keep = sc->log ? &a : &e;
        check_release(*drop);
        *drop = NULL;
        if (!sc->keep_inner) {
            check_release(*keep);
            *keep = NULL;
        }
        kl_context_counters(ctx, &c0);
        out = check_read(y);
        kl_context_counters(ctx, &c1);
        *kernels = c1.kernels_launched - c0.kernels_launched + c1.library_calls - c0.library_calls;
        if (*keep) *inner = check_read(*keep);
    }
    check_release(X); check_release(m); check_release(a); check_release(e); check_release(s); check_release(l);
    check_release(y);
    return out;
}

static int64_t numel(const sm_case *sc)
{
    int64_t n = 1;
    for (int j = 0; j < sc->ndim; j++) n *= sc->shape[j];
    return n;
}

/* The float64 softmax / log-softmax of x along dim (a sum along sum_dim). */
static double *reference(const sm_case *sc, const double *x)
{
    int64_t n = numel(sc), outer = 1, inner = 1, axis = sc->shape[sc->dim];
    for (int j = 0; j < sc->dim; j++) outer *= sc->shape[j];
    for (int j = sc->dim + 1; j < sc->ndim; j++) inner *= sc->shape[j];
    double *y = malloc((size_t)n * sizeof *y);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double mx = -INFINITY, sum = 0;
            for (int64_t k = 0; k < axis; k++) mx = fmax(mx, x[(o * axis + k) * inner + i]);
            for (int64_t k = 0; k < axis; k++) sum += exp(x[(o * axis + k) * inner + i] - mx);
            for (int64_t k = 0; k < axis; k++) {
                double v = x[(o * axis + k) * inner + i] - mx;
                y[(o * axis + k) * inner + i] = sc->log ? v - log(sum) : exp(v) / sum;
            }
        }
    return y;
}

/* matched: the replacement runs (one kernel), else the fused kernels (more). */
static void compare(const sm_case *sc, int matched)
{
    int64_t n = numel(sc);
    double *x = malloc((size_t)n * sizeof *x);
    uint64_t st = 17;
    for (int64_t i = 0; i < n; i++) x[i] = check_round_to(sc->dtype, 8 * (check_rand01(&st) - 0.5));
    kl_context *lib = check_context();
    kl_context *fused = check_context_without("KILN_BLAS");
    if (!lib || !fused) return;
    uint64_t kernels_lib = 0, kernels_fused = 0;
    double *inner_lib = NULL, *inner_fused = NULL;
    double *got = run(lib, sc, x, &kernels_lib, &inner_lib), *plain = run(fused, sc, x, &kernels_fused, &inner_fused);
    if (got && plain) {
        double tol = sc->dtype == KL_FLOAT64 ? 1e-12 : 2e-6;
        if (sc->sum_dim < 0) {
            double *ref = reference(sc, x);
            CHECK_ARRAY_CLOSE(got, ref, n, tol, tol, sc->label);
            free(ref);
        }
        CHECK_ARRAY_CLOSE(got, plain, n, tol, tol, sc->label);
        CHECK_MSG(matched ? kernels_lib == 1 : kernels_lib > 1, "%s: %llu kernels, expected %s", sc->label,
                  (unsigned long long)kernels_lib, matched ? "1" : "several");
        CHECK_MSG(kernels_fused > 1, "%s: KILN_BLAS=0 still replaced the softmax", sc->label);
    }
    if (sc->keep_inner && inner_lib && inner_fused) CHECK_ARRAY_CLOSE(inner_lib, inner_fused, n, 1e-6, 1e-6, sc->label);
    free(got); free(plain); free(inner_lib); free(inner_fused); free(x);
    kl_context_free(lib);
    kl_context_free(fused);
}

static void test_softmax_last_dim(void)
{
    sm_case sc = {"softmax (37, 53) dim 1", 2, 1, 0, {37, 53, 1}, 0, 0, -1, KL_FLOAT32};
    compare(&sc, 1);
    sm_case lg = {"log-softmax (37, 53) dim 1", 2, 1, 1, {37, 53, 1}, 0, 0, -1, KL_FLOAT32};
    compare(&lg, 1);
}

static void test_middle_dim(void)
{
    sm_case sc = {"softmax (4, 9, 5) dim 1", 3, 1, 0, {4, 9, 5}, 0, 0, -1, KL_FLOAT32};
    compare(&sc, 1);
    sm_case first = {"log-softmax (6, 7) dim 0", 2, 0, 1, {6, 7, 1}, 0, 0, -1, KL_FLOAT32};
    compare(&first, 1);
}

static void test_through_stop_grads_and_identity_casts(void)
{
    sm_case sc = {"wrapped softmax", 2, 1, 0, {8, 100, 1}, 1, 0, -1, KL_FLOAT32};
    compare(&sc, 1);
    sm_case lg = {"wrapped log-softmax", 3, 2, 1, {2, 3, 40}, 1, 0, -1, KL_FLOAT32};
    compare(&lg, 1);
}

static void test_near_misses_left_to_kernels(void)
{
    sm_case kept = {"the caller keeps exp", 2, 1, 0, {5, 30, 1}, 0, 1, -1, KL_FLOAT32};
    compare(&kept, 0);
    sm_case kept_log = {"the caller keeps x - max", 2, 1, 1, {5, 30, 1}, 0, 1, -1, KL_FLOAT32};
    compare(&kept_log, 0);
    sm_case dims = {"sum along another dim", 2, 1, 0, {5, 6, 1}, 0, 0, 0, KL_FLOAT32};
    compare(&dims, 0);
    sm_case f64 = {"float64", 2, 1, 0, {5, 30, 1}, 0, 0, -1, KL_FLOAT64};
    compare(&f64, 0);
}

CHECK_MAIN(TEST(test_softmax_last_dim), TEST(test_middle_dim), TEST(test_through_stop_grads_and_identity_casts),
           TEST(test_near_misses_left_to_kernels))
