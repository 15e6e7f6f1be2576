/* test_matmul.c: the gemm replacement of reduce(sum, mul(broadcast, broadcast))
 * gives what the fused loop kernel gives, in every layout it accepts, through
 * each library (float32: oneDNN's sgemm, or OpenBLAS with KILN_DNNL=0;
 * float64: OpenBLAS), and the counters show which path ran. KILN_BLAS=0
 * forces the fused path. */
#include "check.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    int rank, reduce_dim;
    int64_t shape[4];          /* iteration space */
    int a_ndim, b_ndim;
    int64_t a_shape[4], b_shape[4];
    int a_new[2], b_new[2], a_n_new, b_n_new; /* dims broadcast adds */
    int wrap; /* every var passes through a stop_grad and an identity cast, as no_grad builds it */
} layout;

/* C = sum over reduce_dim of broadcast(A) * broadcast(B), computed in ctx. */
static double *product(kl_context *ctx, kl_dtype t, const layout *l, const double *a, const double *b,
                       uint64_t *library_calls)
{
    kl_counters before, after;
    kl_context_counters(ctx, &before);
    kl_var *A = check_var(ctx, t, l->a_ndim, l->a_shape, a), *B = check_var(ctx, t, l->b_ndim, l->b_shape, b);
    kl_var *Ab = NULL, *Bb = NULL, *P = NULL, *C = NULL;
    double *out = NULL;
    kl_var *As = A, *Bs = B;
    if (A && B && (!l->wrap || (CHECK_OK(kl_stop_grad(A, &As)) && CHECK_OK(kl_stop_grad(B, &Bs)))) &&
        CHECK_OK(kl_broadcast_to(As, l->rank, l->shape, l->a_n_new, l->a_new, &Ab)) &&
        CHECK_OK(kl_broadcast_to(Bs, l->rank, l->shape, l->b_n_new, l->b_new, &Bb)) &&
        check_pass_through(l->wrap, &Ab) && check_pass_through(l->wrap, &Bb) && CHECK_OK(kl_binary(KL_MUL, Ab, Bb, &P)) &&
        check_pass_through(l->wrap, &P) && CHECK_OK(kl_reduce(P, KL_REDUCE_SUM, 1, &l->reduce_dim, 0, &C))) {
        /* intermediates the caller still held would be stored, not fused */
        kl_var_release(Ab); kl_var_release(Bb); kl_var_release(P);
        Ab = Bb = P = NULL;
        out = check_read(C);
    }
    kl_context_counters(ctx, &after);
    *library_calls = after.library_calls - before.library_calls;
    if (As != A) check_release(As);
    if (Bs != B) check_release(Bs);
    check_release(A); check_release(B); check_release(Ab); check_release(Bb); check_release(P); check_release(C);
    return out;
}

static void compare(const layout *l, kl_dtype t, int expect_blas, const char *label)
{
    int64_t na = 1, nb = 1, nc = 1;
    for (int d = 0; d < l->a_ndim; d++) na *= l->a_shape[d];
    for (int d = 0; d < l->b_ndim; d++) nb *= l->b_shape[d];
    for (int d = 0; d < l->rank; d++) if (d != l->reduce_dim) nc *= l->shape[d];
    double *a = malloc((size_t)na * sizeof *a), *b = malloc((size_t)nb * sizeof *b);
    uint64_t st = 99;
    for (int64_t i = 0; i < na; i++) a[i] = check_round_to(t, check_rand01(&st) - 0.5);
    for (int64_t i = 0; i < nb; i++) b[i] = check_round_to(t, check_rand01(&st) - 0.5);
    kl_context *with_blas = check_context();
    kl_context *openblas = check_context_without("KILN_DNNL");
    kl_context *fused_only = check_context_without("KILN_BLAS");
    uint64_t calls_blas = 0, calls_openblas = 0, calls_fused = 0;
    double *got = with_blas ? product(with_blas, t, l, a, b, &calls_blas) : NULL;
    double *got_openblas = openblas ? product(openblas, t, l, a, b, &calls_openblas) : NULL;
    double *want = fused_only ? product(fused_only, t, l, a, b, &calls_fused) : NULL;
    if (got && got_openblas && want) {
        double tol = t == KL_FLOAT64 ? 1e-12 : 2e-5;
        CHECK_ARRAY_CLOSE(got, want, nc, tol, tol, label);
        CHECK_ARRAY_CLOSE(got_openblas, want, nc, tol, tol, label);
        CHECK_MSG(calls_blas == (uint64_t)expect_blas, "%s: %llu library calls, expected %d", label,
                  (unsigned long long)calls_blas, expect_blas);
        CHECK_MSG(calls_openblas == (uint64_t)expect_blas, "%s: %llu OpenBLAS calls, expected %d", label,
                  (unsigned long long)calls_openblas, expect_blas);
        CHECK_MSG(calls_fused == 0, "%s: KILN_BLAS=0 still called the library", label);
    }
    free(got); free(got_openblas); free(want); free(a); free(b);
    if (with_blas) kl_context_free(with_blas);
    if (openblas) kl_context_free(openblas);
    if (fused_only) kl_context_free(fused_only);
}

static void test_plain(void)
{
    /* (M,K)@(K,N): iteration (M,K,N), reduce K */
    layout l = {3, 1, {33, 47, 21}, 2, 2, {33, 47}, {47, 21}, {2}, {0}, 1, 1, 0};
    compare(&l, KL_FLOAT32, 1, "plain f32");
    compare(&l, KL_FLOAT64, 1, "plain f64");
}

static void test_transposed_a(void)
{
    /* A stored (K,M): iteration (K,M,N), reduce K */
    layout l = {3, 0, {19, 23, 29}, 2, 2, {19, 23}, {19, 29}, {2}, {1}, 1, 1, 0};
    compare(&l, KL_FLOAT32, 1, "A transposed");
}

static void test_transposed_b(void)
{
    /* B stored (N,K): iteration (M,N,K), reduce K */
    layout l = {3, 2, {17, 13, 31}, 2, 2, {17, 31}, {13, 31}, {1}, {0}, 1, 1, 0};
    compare(&l, KL_FLOAT64, 1, "B transposed");
}

static void test_column_major_output(void)
{
    /* iteration (N,M,K): the output's rows are N, so gemm computes C^T */
    layout l = {3, 2, {11, 7, 9}, 2, 2, {7, 9}, {11, 9}, {0}, {1}, 1, 1, 0};
    compare(&l, KL_FLOAT32, 1, "column-major output");
}

static void test_matrix_vector(void)
{
    /* (1,K)@(K,N), a batch-1 linear layer: iteration (1,K,N), reduce K */
    layout row = {3, 1, {1, 300, 70}, 2, 2, {1, 300}, {300, 70}, {2}, {0}, 1, 1, 0};
    compare(&row, KL_FLOAT32, 1, "row vector times matrix");
    /* (M,K)@(K,1) */
    layout col = {3, 1, {40, 30, 1}, 2, 2, {40, 30}, {30, 1}, {2}, {0}, 1, 1, 0};
    compare(&col, KL_FLOAT64, 1, "matrix times column vector");
    /* weight stored (N,K), as nn.Linear keeps it: iteration (1,N,K), reduce K */
    layout lin = {3, 2, {1, 50, 64}, 2, 2, {1, 64}, {50, 64}, {1}, {0}, 1, 1, 0};
    compare(&lin, KL_FLOAT32, 1, "linear layer at batch 1");
    /* a dot product (no row or column dim) stays a reduction */
    layout dot = {3, 1, {1, 64, 1}, 2, 2, {1, 64}, {64, 1}, {2}, {0}, 1, 1, 0};
    compare(&dot, KL_FLOAT32, 0, "dot product");
}

static void test_through_stop_grads_and_identity_casts(void)
{
    /* no_grad wraps every result in a stop_grad; neither it nor a cast to the
     * same type changes what gemm reads */
    layout l = {3, 1, {33, 47, 21}, 2, 2, {33, 47}, {47, 21}, {2}, {0}, 1, 1, 1};
    compare(&l, KL_FLOAT32, 1, "wrapped f32");
    layout lin = {3, 2, {1, 50, 64}, 2, 2, {1, 64}, {50, 64}, {1}, {0}, 1, 1, 1};
    compare(&lin, KL_FLOAT64, 1, "wrapped linear layer");
}

static void test_batched(void)
{
    layout l = {4, 2, {3, 6, 10, 5}, 3, 3, {3, 6, 10}, {3, 10, 5}, {3}, {1}, 1, 1, 0};
    compare(&l, KL_FLOAT32, 1, "batched");
}

static void test_unmatched_left_to_fused(void)
{
    /* both operands vary along every dim: an element-wise product summed,
     * not a matrix product, so the fused kernel must run */
    layout l = {2, 1, {8, 9}, 2, 2, {8, 9}, {8, 9}, {0}, {0}, 0, 0, 0};
    compare(&l, KL_FLOAT32, 0, "not a matmul");
}

static void test_gemm_between_kernels(void)
{
    /* exp(relu-ish(x) @ w): a fused kernel, gemm, and a fused kernel in one sync */
    kl_context *ctx = check_context();
    if (!ctx) return;
    enum { M = 6, K = 5, N = 4 };
    int64_t sx[2] = {M, K}, sw[2] = {K, N}, s3[3] = {M, K, N};
    double x[M * K], w[K * N], want[M * N];
    uint64_t st = 5;
    for (int i = 0; i < M * K; i++) x[i] = check_rand01(&st) - 0.5;
    for (int i = 0; i < K * N; i++) w[i] = check_rand01(&st) - 0.5;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += fabs(x[i * K + k]) * w[k * N + j];
            want[i * N + j] = exp(s);
        }
    kl_var *X = check_var(ctx, KL_FLOAT64, 2, sx, x), *W = check_var(ctx, KL_FLOAT64, 2, sw, w);
    kl_var *A = NULL, *Ab = NULL, *Wb = NULL, *P = NULL, *C = NULL, *E = NULL;
    int d2 = 2, d0 = 0, d1 = 1;
    if (X && W && CHECK_OK(kl_unary(KL_ABS, X, &A)) && CHECK_OK(kl_broadcast_to(A, 3, s3, 1, &d2, &Ab)) &&
        CHECK_OK(kl_broadcast_to(W, 3, s3, 1, &d0, &Wb)) && CHECK_OK(kl_binary(KL_MUL, Ab, Wb, &P)) &&
        CHECK_OK(kl_reduce(P, KL_REDUCE_SUM, 1, &d1, 0, &C)) && CHECK_OK(kl_unary(KL_EXP, C, &E))) {
        kl_var_release(A); kl_var_release(Ab); kl_var_release(Wb); kl_var_release(P); kl_var_release(C);
        A = Ab = Wb = P = C = NULL;
        kl_counters before, after;
        kl_context_counters(ctx, &before);
        double *got = check_read(E);
        kl_context_counters(ctx, &after);
        if (got) CHECK_ARRAY_CLOSE(got, want, M * N, 1e-12, 1e-12, "exp(|x| @ w)");
        CHECK_EQ_INT(after.library_calls - before.library_calls, 1);
        CHECK_EQ_INT(after.kernels_launched - before.kernels_launched, 3);
        free(got);
    }
    check_release(X); check_release(W); check_release(A); check_release(Ab); check_release(Wb);
    check_release(P); check_release(C); check_release(E);
    kl_context_free(ctx);
}

CHECK_MAIN(TEST(test_gemm_between_kernels), TEST(test_plain), TEST(test_through_stop_grads_and_identity_casts), TEST(test_matrix_vector), TEST(test_transposed_a), TEST(test_transposed_b), TEST(test_column_major_output),
           TEST(test_batched), TEST(test_unmatched_left_to_fused))
