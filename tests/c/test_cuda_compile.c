/* test_cuda_compile.c: the CUDA renderer and NVRTC without a GPU
 * (src/backend/cuda/), here so that they also run under the sanitizers:
 * with the compile check on, an element-wise kernel, reductions over rows,
 * columns and everything, a split float16 reduction and scatters (atomic
 * and disjoint) each compile to PTX; a second context on the same cache
 * compiles none; an unknown backend and a missing NVRTC are clear errors;
 * launches size their grid to the work, within the workspace's bound; a
 * row-major product becomes the column-major call cuBLAS receives; kiln's
 * convolution shapes become cuDNN descriptors that give kiln's output. The
 * NVRTC tests are skipped, saying why, where NVRTC is missing. */
#include "check.h"

#include "backend/cuda/cuda.h"
#include <stdlib.h>

static int nvrtc_missing(void)
{
    kl_context *ctx = NULL;
    if (kl_context_new(&ctx) != KL_OK) return 1;
    kl_status s = kl_context_set_compile_check(ctx, "cuda");
    if (s != KL_OK) printf("    skipped: %s\n", kl_last_error());
    kl_context_free(ctx);
    return s != KL_OK;
}

/* The kernels of a few ops of each family, synced; returns the counters. */
static void run_ops(kl_context *ctx, kl_counters *c)
{
    int64_t shape[3] = {4, 3, 70};
    kl_var *x = NULL, *h = NULL, *outs[8] = {0};
    int n = 0;
    if (!CHECK_OK(kl_full(ctx, KL_FLOAT32, 3, shape, 1.5, &x))) return;
    CHECK_OK(kl_unary(KL_EXP, x, &outs[n++]));
    int last = 2, first = 0;
    CHECK_OK(kl_reduce(x, KL_REDUCE_SUM, 1, &last, 0, &outs[n++]));   /* rows */
    CHECK_OK(kl_reduce(x, KL_REDUCE_MAX, 1, &first, 0, &outs[n++]));  /* columns */
    CHECK_OK(kl_cast(x, KL_FLOAT16, &h));
    CHECK_OK(kl_reduce(h, KL_REDUCE_MEAN, 0, NULL, 0, &outs[n++]));    /* everything */
    const int64_t to[2] = {3, 70};
    const char *shared[3] = {"i0 % 3", "i2", ""}, *own[3] = {"i0", "i1", "i2"};
    const int64_t same[3] = {4, 3, 70};
    CHECK_OK(kl_reindex_reduce(x, KL_REDUCE_SUM, 2, to, shared, 0, NULL, 0, NULL, &outs[n++]));
    CHECK_OK(kl_reindex_reduce(h, KL_REDUCE_MIN, 2, to, shared, 0, NULL, 0, NULL, &outs[n++]));
    CHECK_OK(kl_reindex_reduce(x, KL_REDUCE_PROD, 3, same, own, 0, NULL, 0, NULL, &outs[n++]));
    CHECK_OK(kl_sync(outs, n));
    kl_context_counters(ctx, c);
    for (int i = 0; i < n; i++) kl_var_release(outs[i]);
    kl_var_release(h);
    kl_var_release(x);
}

static void test_every_family_compiles_for_cuda(void)
{
    if (nvrtc_missing()) return;
    char dir[] = "/tmp/kiln_cuda_check_XXXXXX";
    if (!CHECK(mkdtemp(dir) != NULL)) return;
    kl_counters first = {0}, second = {0};
    for (int round = 0; round < 2; round++) {
        kl_context *ctx = NULL;
        if (!CHECK_OK(kl_context_new(&ctx))) return;
        CHECK_OK(kl_context_set_cache_dir(ctx, dir));
        CHECK_OK(kl_context_set_compile_check(ctx, "cuda"));
        run_ops(ctx, round ? &second : &first);
        CHECK_OK(kl_context_free(ctx));
    }
    CHECK_MSG(first.kernels_checked >= 7 && first.kernels_checked == first.kernels_compiled,
              "checked %llu, compiled %llu", (unsigned long long)first.kernels_checked,
              (unsigned long long)first.kernels_compiled);
    CHECK_EQ_INT(second.kernels_checked, 0); /* every PTX came from the cache */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

static void test_unknown_backend_and_missing_nvrtc_are_errors(void)
{
    kl_context *ctx = NULL;
    if (!CHECK_OK(kl_context_new(&ctx))) return;
    CHECK_STATUS(kl_context_set_compile_check(ctx, "metal"), KL_ERR_VALUE);
    CHECK(strstr(kl_last_error(), "no backend \"metal\"") != NULL);
    CHECK_OK(kl_context_set_compile_check(ctx, NULL)); /* off: always fine */
    setenv("KILN_NVRTC", "/nonexistent/libnvrtc.so.99", 1);
    CHECK_STATUS(kl_context_set_compile_check(ctx, "cuda"), KL_ERR_RUNTIME);
    CHECK_MSG(strstr(kl_last_error(), "/nonexistent/libnvrtc.so.99") != NULL, "%s", kl_last_error());
    unsetenv("KILN_NVRTC");
    /* a device that cannot be opened says why instead of running on the CPU */
    CHECK_STATUS(kl_context_set_device(ctx, "cuda"), KL_ERR_RUNTIME);
    CHECK_MSG(strstr(kl_last_error(), "use_cuda") != NULL, "%s", kl_last_error());
    CHECK_EQ_STR(kl_context_device(ctx), "cpu");
    CHECK_OK(kl_context_free(ctx));
}

static void test_grid_sizes(void)
{
    CHECK_EQ_INT(kl_cuda_grid(1, 1056), 1);           /* a tiny kernel: one block */
    CHECK_EQ_INT(kl_cuda_grid(1024, 1056), 1);        /* a block takes 256 threads x 4 elements */
    CHECK_EQ_INT(kl_cuda_grid(1025, 1056), 2);
    CHECK_EQ_INT(kl_cuda_grid(1 << 22, 1056), 1056);  /* large: every resident block, grid-stride beyond */
    CHECK_EQ_INT(kl_cuda_grid(0, 1056), 1056);        /* unknown work */
    CHECK_EQ_INT(kl_cuda_grid(5, 0), 1);
}

/* BLAS's column-major gemm, as cuBLAS computes it: X(i, j) is X[i + j * ld]. */
static void column_major_gemm(int op_a, int op_b, int m, int n, int k, const double *A, int lda, const double *B,
                              int ldb, double *C, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int l = 0; l < k; l++)
                s += (op_a ? A[l + i * lda] : A[i + l * lda]) * (op_b ? B[j + l * ldb] : B[l + j * ldb]);
            C[i + j * ldc] = s;
        }
}

/* kiln's row-major products, each flag and padded leading dimensions, give
 * the same values through the column-major call cuBLAS receives. */
static void test_cublas_call_is_the_row_major_product(void)
{
    enum { M = 3, N = 5, K = 4, PAD = 2 };
    uint64_t seed = 7;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            kl_gemm_shape g = {.trans_a = ta, .trans_b = tb, .m = M, .n = N, .k = K,
                               .lda = (ta ? M : K) + PAD, .ldb = (tb ? K : N) + PAD, .ldc = N + PAD};
            double A[(K + PAD) * (M + PAD)], B[(K + PAD) * (N + PAD)], C[M * (N + PAD)], want[M * N];
            for (size_t i = 0; i < sizeof A / sizeof *A; i++) A[i] = check_rand01(&seed) - 0.5;
            for (size_t i = 0; i < sizeof B / sizeof *B; i++) B[i] = check_rand01(&seed) - 0.5;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int l = 0; l < K; l++)
                        s += (ta ? A[l * g.lda + i] : A[i * g.lda + l]) * (tb ? B[j * g.ldb + l] : B[l * g.ldb + j]);
                    want[i * N + j] = s;
                }
            kl_cublas_call c = kl_cublas_gemm_call(&g);
            column_major_gemm(c.op_first, c.op_second, c.m, c.n, c.k, B, c.ld_first, A, c.ld_second, C, c.ld_out);
            double got[M * N];
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) got[i * N + j] = C[i * g.ldc + j];
            CHECK_ARRAY_CLOSE(got, want, M * N, 1e-12, 1e-12, ta ? (tb ? "A^T B^T" : "A^T B") : (tb ? "A B^T" : "A B"));
        }
}

/* kiln's convolution shapes as cuDNN descriptors (no device needed): the
 * output dims cuDNN derives are kiln's, for 1-, 2- and 3-d convolutions
 * with strides, padding, dilation and groups; uneven padding is refused. */
static void test_cudnn_descriptors_match_kiln_shapes(void)
{
    kl_cudnn d;
    memset(&d, 0, sizeof d);
    if (!kl_cudnn_load(&d)) {
        printf("    skipped: cuDNN 9 (libcudnn.so.9) is not installed\n");
        return;
    }
    struct { int nd, groups; int64_t n, ic, oc, in[3], k[3], stride[3], dil[3], pad[3]; } cases[] = {
        {2, 1, 2, 3, 8, {10, 12}, {3, 3}, {1, 1}, {1, 1}, {1, 1}},
        {2, 1, 1, 64, 64, {56, 56}, {3, 3}, {2, 2}, {1, 1}, {1, 1}},
        {2, 4, 2, 8, 12, {9, 7}, {3, 2}, {1, 2}, {2, 1}, {2, 0}},
        {1, 1, 3, 5, 7, {20}, {5}, {3}, {1}, {2}},
        {1, 5, 2, 10, 5, {16}, {3}, {1}, {2}, {0}},
        {3, 1, 1, 2, 4, {6, 7, 8}, {3, 3, 3}, {1, 2, 1}, {1, 1, 2}, {1, 0, 2}},
        {2, 32, 1, 32, 32, {14, 14}, {3, 3}, {1, 1}, {1, 1}, {1, 1}}, /* depthwise */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        kl_conv_shape s;
        memset(&s, 0, sizeof s);
        s.kind = KL_CONV_FORWARD;
        s.nd = cases[c].nd;
        s.groups = cases[c].groups;
        s.n = cases[c].n; s.ic = cases[c].ic; s.oc = cases[c].oc;
        for (int i = 0; i < s.nd; i++) {
            s.in[i] = cases[c].in[i]; s.k[i] = cases[c].k[i]; s.stride[i] = cases[c].stride[i];
            s.dilation[i] = cases[c].dil[i]; s.pad_lo[i] = s.pad_hi[i] = cases[c].pad[i];
            s.out[i] = (s.in[i] + 2 * s.pad_lo[i] - s.dilation[i] * (s.k[i] - 1) - 1) / s.stride[i] + 1;
        }
        for (int t = 0; t < 2; t++) {
            kl_cudnn_descs ds;
            if (!CHECK_OK(kl_cudnn_describe(&d, &s, t ? KL_FLOAT64 : KL_FLOAT32, &ds))) continue;
            int dims[5] = {0};
            CHECK_EQ_INT(d.output_dims(ds.conv, ds.x, ds.w, ds.nd + 2, dims), 0);
            CHECK_EQ_INT(dims[0], s.n);
            CHECK_EQ_INT(dims[1], s.oc);
            for (int i = 0; i < s.nd; i++) CHECK_MSG(dims[2 + ds.nd - s.nd + i] == s.out[i], "case %zu dim %d: cuDNN %d, kiln %lld",
                                                     c, i, dims[2 + ds.nd - s.nd + i], (long long)s.out[i]);
            kl_cudnn_describe_free(&d, &ds);
        }
    }
    kl_conv_shape uneven = {.kind = KL_CONV_FORWARD, .nd = 2, .groups = 1, .n = 1, .ic = 1, .oc = 1,
                            .in = {5, 5}, .out = {5, 5}, .k = {2, 2}, .stride = {1, 1}, .dilation = {1, 1},
                            .pad_lo = {0, 0}, .pad_hi = {1, 1}};
    CHECK(!kl_cudnn_supports_shape(&uneven, KL_FLOAT32));
    CHECK(!kl_cudnn_supports_shape(&uneven, KL_INT32));
}

/* partials (8 B), NaN flags and counters (4 B each) for every block of the largest grid */
_Static_assert(KL_CUDA_WS_BYTES >= KL_CUDA_MAX_GRID * 16, "the workspace holds a split reduction of the largest grid");

CHECK_MAIN(TEST(test_every_family_compiles_for_cuda), TEST(test_unknown_backend_and_missing_nvrtc_are_errors),
           TEST(test_grid_sizes), TEST(test_cublas_call_is_the_row_major_product),
           TEST(test_cudnn_descriptors_match_kiln_shapes))
