/* CUDA user ops (src/ops/code_cuda.c): host code given the device's memory
 * and the kl_code_cuda_runtime, launching a kernel of its device code by
 * name, on the CUDA emulator. The host code here is written by hand against
 * the declared runtime (python/kiln/_code_cuda.py generates it for jt.code),
 * so these tests check the C side alone: launches, fills, copies, constants
 * read through a host copy, and each failure kept and reported. */
#include "check.h"

/* Device code as the emulator compiles it: kernels with C linkage, and the
 * dispatcher running one by name (what _code_cuda.py adds). */
static const char device_code[] =
    "extern \"C\" __global__ void axpb(const float *x, float *y, long long n, double a) {\n"
    "    for (long long i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)\n"
    "        y[i] += (float)a * x[i];\n"
    "}\n"
    "#ifdef KL_EMULATE\n"
    "extern \"C\" int kl_emulate_user(const char *name, void **p, const unsigned *g, const unsigned *b,\n"
    "                               unsigned shared) {\n"
    "    if (!strcmp(name, \"axpb\")) return kl_emu_user_launch(axpb, p, g, b, shared);\n"
    "    return -1;\n"
    "}\n"
    "#endif\n";

/* y = 1 + a * x with a read from input 1 on the host; `launch` is the
 * kernel's name and block size, to make launches that fail. */
static char *host_code(const char *kernel, unsigned block)
{
    static char text[8192];
    char body[2048];
    snprintf(body, sizeof body,
             "    float *y = (float *)buf[0];\n"
             "    const float *x = (const float *)buf[1];\n"
             "    long long n = iarg[0];\n"
             "    const double *a = (const double *)rt->host_input(rt, 1);\n"
             "    if (!a) return;\n"
             "    float one = 1;\n"
             "    for (long long i = 0; i < n; i++) rt->copy(rt, y + i, &one, sizeof one, 1);\n"
             "    double scale = a[0];\n"
             "    void *params[] = {&x, &y, &n, &scale};\n"
             "    const unsigned grid[3] = {2, 1, 1}, block[3] = {%u, 1, 1};\n"
             "    rt->launch(rt, device_code, \"%s\", grid, block, 0, params);\n",
             block, kernel);
    check_cuda_host_code(text, sizeof text, device_code, 4, body);
    return text;
}

static kl_status run(kl_context *ctx, const char *kernel, unsigned block, float *got)
{
    enum { N = 300 };
    float x[N];
    double a = 2.5;
    for (int i = 0; i < N; i++) x[i] = (float)i;
    int64_t n = N, one = 1;
    kl_var *in[2] = {NULL, NULL}, *out = NULL;
    kl_code_output co = {KL_FLOAT32, 1, {N}};
    kl_status s = kl_var_from_host(ctx, KL_FLOAT32, 1, &n, x, &in[0]);
    if (s == KL_OK) s = kl_var_from_host(ctx, KL_FLOAT64, 1, &one, &a, &in[1]);
    if (s == KL_OK) s = kl_code(ctx, 2, in, 1, &co, host_code(kernel, block), KL_CODE_CUDA, 0, NULL, &out);
    if (s == KL_OK) s = kl_var_copy_to_host(out, got, sizeof(float) * N);
    kl_var_release(out);
    kl_var_release(in[0]);
    kl_var_release(in[1]);
    return s;
}

static kl_context *emulated(void)
{
    kl_context *ctx = check_context();
    if (ctx && !CHECK_OK(kl_context_set_device(ctx, "cuda-emulate"))) {
        kl_context_free(ctx);
        return NULL;
    }
    return ctx;
}

static void test_host_code_launches_its_kernel_by_name(void)
{
    kl_context *ctx = emulated();
    if (!ctx) return;
    float got[300];
    CHECK_OK(run(ctx, "axpb", 64, got));
    for (int i = 0; i < 300; i++) CHECK_CLOSE(got[i], 1 + 2.5 * i, 1e-6, 1e-5);
    CHECK_OK(kl_context_free(ctx));
}

static void test_a_block_too_large_fails_the_op_with_the_launch(void)
{
    kl_context *ctx = emulated();
    if (!ctx) return;
    float got[300];
    CHECK_STATUS(run(ctx, "axpb", 2048, got), KL_ERR_VALUE);
    CHECK_MSG(strstr(kl_last_error(), "axpb<<<(2, 1, 1), (2048, 1, 1)>>>: a block holds at most 1024") != NULL,
              "%s", kl_last_error());
    CHECK_OK(run(ctx, "axpb", 32, got)); /* the context goes on */
    CHECK_OK(kl_context_free(ctx));
}

static void test_an_unknown_kernel_is_named(void)
{
    kl_context *ctx = emulated();
    if (!ctx) return;
    float got[300];
    CHECK_STATUS(run(ctx, "axpy", 32, got), KL_ERR_VALUE);
    CHECK_MSG(strstr(kl_last_error(), "no kernel named axpy") != NULL, "%s", kl_last_error());
    CHECK_OK(kl_context_free(ctx));
}

static void test_the_cpu_runs_no_cuda_kernels(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    float got[300];
    CHECK(run(ctx, "axpb", 32, got) != KL_OK);
    CHECK_MSG(strstr(kl_last_error(), "cpu") != NULL, "%s", kl_last_error());
    CHECK_OK(kl_context_free(ctx));
}

static void test_an_unknown_language_is_refused(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    kl_code_output co = {KL_FLOAT32, 1, {3}};
    kl_var *out = NULL;
    CHECK_STATUS(kl_code(ctx, 0, NULL, 1, &co, "", (kl_code_lang)7, 0, NULL, &out), KL_ERR_VALUE);
    CHECK(out == NULL);
    CHECK_OK(kl_context_free(ctx));
}

CHECK_MAIN(TEST(test_host_code_launches_its_kernel_by_name), TEST(test_a_block_too_large_fails_the_op_with_the_launch),
           TEST(test_an_unknown_kernel_is_named), TEST(test_the_cpu_runs_no_cuda_kernels),
           TEST(test_an_unknown_language_is_refused))
