/* The CUDA backend's device half (src/backend/cuda/device.c) against a
 * stand-in driver (tests/c/fake_cuda_driver.c, built here and named with
 * KILN_CUDA_DRIVER) whose stream runs its work only when the host waits and
 * whose copies from pinned memory read it then, as a GPU's do: opening the
 * device, copies in every size class (pageable, through the pinned staging
 * buffers, past them) round-tripping while earlier copies are still queued,
 * fills, memory freed on the stream (its addresses fault if the host reads
 * them, as a GPU's would), kernels compiled for sm_90, loaded and launched
 * (a code op's by name, with its shared memory). On a GPU,
 * scripts/gpu_check.sh runs
 * the real thing (tests/python/test_cuda_device.py). */
#include "check.h"
#include "backend/backend.h"
#include "core/context.h"
#include <dlfcn.h>
#include <stdlib.h>

static char driver[256];

/* the stand-in built once per test process (each test runs in its own) */
static int build_driver(void)
{
    snprintf(driver, sizeof driver, "/tmp/kiln_fake_cuda_%d.so", (int)getpid());
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cc -shared -fPIC -O1 -o %s tests/c/fake_cuda_driver.c", driver);
    if (!CHECK_MSG(system(cmd) == 0, "could not build the stand-in driver: %s", cmd)) return 0;
    setenv("KILN_CUDA_DRIVER", driver, 1);
    return 1;
}

static kl_context *on_fake_device(void)
{
    if (!build_driver()) return NULL;
    kl_context *ctx = check_context();
    if (!ctx) return NULL;
    kl_status s = kl_context_set_device(ctx, "cuda");
    if (s != KL_OK && strstr(kl_last_error(), "NVRTC is not available")) { /* the device compiles with it */
        printf("    skipped: %s\n", kl_last_error());
        kl_context_free(ctx);
        unlink(driver);
        return NULL;
    }
    if (!CHECK_OK(s)) {
        kl_context_free(ctx);
        return NULL;
    }
    return ctx;
}

/* one of the stand-in's counters (fake_cuda_queued, fake_cuda_pending_frees) */
static size_t (*counter(const char *name))(void)
{
    void *h = dlopen(driver, RTLD_NOW | RTLD_NOLOAD);
    return h ? (size_t(*)(void))dlsym(h, name) : NULL;
}

static void finish(kl_context *ctx)
{
    CHECK_OK(kl_context_free(ctx));
    unlink(driver);
}

/* Arrays of every size class made one after another (the copies queued,
 * nothing waited for: five in a row wait for the staging buffer used four
 * copies before), then read back. */
static void test_copies_round_trip_while_earlier_ones_are_queued(void)
{
    kl_context *ctx = on_fake_device();
    if (!ctx) return;
    static const int64_t sizes[] = {3, 20000, 300000, 20000, 1 << 20, 65536 / 4 + 1, 300000, 7, 20 << 20, 250000};
    enum { N = sizeof sizes / sizeof *sizes };
    kl_var *vars[N] = {0};
    float *want[N] = {0};
    for (int k = 0; k < N; k++) {
        want[k] = malloc((size_t)sizes[k] * sizeof(float));
        if (!CHECK(want[k] != NULL)) break;
        for (int64_t i = 0; i < sizes[k]; i++) want[k][i] = (float)(k * 1000003 + i);
        CHECK_OK(kl_var_from_host(ctx, KL_FLOAT32, 1, &sizes[k], want[k], &vars[k]));
    }
    size_t (*queued)(void) = counter("fake_cuda_queued");
    CHECK_MSG(queued && queued() > 0, "the copies should still be queued (a lazy stream)");
    for (int k = 0; k < N; k++) {
        float *got = malloc((size_t)sizes[k] * sizeof(float));
        if (!CHECK(got != NULL) || !vars[k]) { free(got); continue; }
        CHECK_OK(kl_var_copy_to_host(vars[k], got, (size_t)sizes[k] * sizeof(float)));
        CHECK_MSG(memcmp(got, want[k], (size_t)sizes[k] * sizeof(float)) == 0, "array %d (%lld floats) differs", k,
                  (long long)sizes[k]);
        free(got);
        kl_var_release(vars[k]);
    }
    for (int k = 0; k < N; k++) free(want[k]);
    finish(ctx);
}

/* The same source buffer refilled between copies: each copy keeps what the
 * source held when it was made, though none has run yet. */
static void test_a_reused_source_does_not_change_queued_copies(void)
{
    kl_context *ctx = on_fake_device();
    if (!ctx) return;
    enum { N = 12 };
    const int64_t n = 100000; /* staged: past the pageable size */
    float *src = malloc((size_t)n * sizeof(float)), *got = malloc((size_t)n * sizeof(float));
    kl_var *vars[N] = {0};
    for (int k = 0; src && k < N; k++) {
        for (int64_t i = 0; i < n; i++) src[i] = (float)(k + i);
        CHECK_OK(kl_var_from_host(ctx, KL_FLOAT32, 1, &n, src, &vars[k]));
    }
    for (int k = 0; got && k < N; k++) {
        if (!vars[k]) continue;
        CHECK_OK(kl_var_copy_to_host(vars[k], got, (size_t)n * sizeof(float)));
        int same = 1;
        for (int64_t i = 0; i < n; i++) same &= got[i] == (float)(k + i);
        CHECK_MSG(same, "copy %d holds another copy's values", k);
        kl_var_release(vars[k]);
    }
    free(src);
    free(got);
    finish(ctx);
}

static void test_fill_and_memory_counts(void)
{
    kl_context *ctx = on_fake_device();
    if (!ctx) return;
    kl_backend *dev = ctx->device;
    unsigned char *p = dev->ops->alloc(dev, 1000), back[1000];
    if (!CHECK(p != NULL)) { finish(ctx); return; }
    CHECK_OK(dev->ops->fill(dev, p, 1000, 0x5a));
    CHECK_OK(dev->ops->copy(dev, back, p, 1000, KL_COPY_DEVICE_TO_HOST));
    int all = 1;
    for (int i = 0; i < 1000; i++) all &= back[i] == 0x5a;
    CHECK(all);
    kl_memory_stats m;
    dev->ops->memory(dev, &m);
    CHECK(m.bytes_in_use >= 1000 && m.peak_bytes_in_use >= m.bytes_in_use);
    uint64_t before = m.bytes_in_use;
    size_t (*pending_frees)(void) = counter("fake_cuda_pending_frees");
    if (!CHECK(pending_frees != NULL)) { finish(ctx); return; }
    CHECK_OK(dev->ops->fill(dev, p, 1000, 1)); /* queued: the free must come after it */
    size_t frees = pending_frees();
    dev->ops->free(dev, p, 1000);
    CHECK_EQ_INT((long long)pending_frees(), (long long)frees + 1); /* on the stream, not at once */
    dev->ops->memory(dev, &m);
    CHECK_EQ_INT((long long)m.bytes_in_use, (long long)(before - 1000));
    CHECK_OK(dev->ops->synchronize(dev));
    CHECK_EQ_INT((long long)pending_frees(), 0);
    finish(ctx);
}

typedef void (*last_launch_fn)(char *name, unsigned *dims, unsigned *shared, int *optin);

static last_launch_fn last_launch(void)
{
    void *h = dlopen(driver, RTLD_NOW | RTLD_NOLOAD);
    return h ? (last_launch_fn)dlsym(h, "fake_cuda_last_launch") : NULL;
}

/* A fused kernel compiled by NVRTC for the device's architecture (sm_90),
 * its cubin loaded (its key read from the module: a file that is another
 * kernel's is refused) and launched with 256-thread blocks and a grid sized
 * to the work (4 elements a thread, at most 8 blocks per SM). */
static void test_a_kernel_is_compiled_loaded_and_launched(void)
{
    kl_context *ctx = on_fake_device();
    if (!ctx) return;
    last_launch_fn last = last_launch();
    const int64_t n = 1 << 20;
    float *x = calloc((size_t)n, sizeof *x);
    kl_var *a = NULL, *y = NULL;
    if (CHECK(x && last) && CHECK_OK(kl_var_from_host(ctx, KL_FLOAT32, 1, &n, x, &a)) &&
        CHECK_OK(kl_unary(KL_EXP, a, &y)) && CHECK_OK(kl_sync(&y, 1))) {
        char name[128];
        unsigned dims[6], shared;
        int optin;
        last(name, dims, &shared, &optin);
        CHECK_MSG(strcmp(name, "kl_kernel") == 0, "launched %s", name);
        CHECK_EQ_INT(dims[0], 1024); /* 1M elements: 1024 blocks of 1024, fewer than 132 SMs x 8 */
        CHECK_EQ_INT(dims[3], 256);
        CHECK(dims[1] == 1 && dims[2] == 1 && dims[4] == 1 && dims[5] == 1 && shared == 0);
    }
    kl_var_release(y);
    kl_var_release(a);
    free(x);
    finish(ctx);
}

static const char tiled_code[] =
    "extern \"C\" __global__ void tiled(float *y) {\n"
    "    __shared__ float fixed[1000];\n"
    "    extern __shared__ float more[];\n"
    "    fixed[threadIdx.x] = 1; more[threadIdx.x] = fixed[threadIdx.x ^ 1]; y[threadIdx.x] = more[0];\n"
    "}\n";

/* a CUDA code op launching `tiled` with `shared` bytes of dynamic shared memory */
static kl_status run_tiled(kl_context *ctx, unsigned shared)
{
    static char host[8192];
    char body[512];
    snprintf(body, sizeof body,
             "    void *y = buf[0];\n    void *params[] = {&y};\n"
             "    const unsigned grid[3] = {3, 1, 1}, block[3] = {128, 1, 1};\n"
             "    rt->launch(rt, device_code, \"tiled\", grid, block, %u, params);\n",
             shared);
    check_cuda_host_code(host, sizeof host, tiled_code, 2, body);
    kl_code_output co = {KL_FLOAT32, 1, {128}};
    kl_var *out = NULL;
    kl_status s = kl_code(ctx, 0, NULL, 1, &co, host, KL_CODE_CUDA, 0, NULL, &out);
    if (s == KL_OK) s = kl_sync(&out, 1);
    kl_var_release(out);
    return s;
}

/* A CUDA code op's kernel, by its name: static and dynamic shared memory
 * together past 48 KB are opted in; past the device's bound, refused. */
static void test_a_code_ops_kernel_is_launched_by_name_with_its_shared_memory(void)
{
    kl_context *ctx = on_fake_device();
    if (!ctx) return;
    last_launch_fn last = last_launch();
    if (CHECK(last != NULL) && CHECK_OK(run_tiled(ctx, 46000))) {
        char name[128];
        unsigned dims[6], shared;
        int optin;
        last(name, dims, &shared, &optin);
        CHECK_MSG(strcmp(name, "tiled") == 0, "launched %s", name);
        CHECK(dims[0] == 3 && dims[3] == 128 && shared == 46000);
        CHECK_EQ_INT(optin, 46000); /* 4000+ static + 46000 dynamic is past 48 KB */
    }
    CHECK_STATUS(run_tiled(ctx, 230000), KL_ERR_VALUE);
    CHECK_MSG(strstr(kl_last_error(), "tiled asks for 230000 bytes of dynamic shared memory besides its") != NULL,
              "%s", kl_last_error());
    finish(ctx);
}

CHECK_MAIN(TEST(test_copies_round_trip_while_earlier_ones_are_queued),
           TEST(test_a_reused_source_does_not_change_queued_copies), TEST(test_fill_and_memory_counts),
           TEST(test_a_kernel_is_compiled_loaded_and_launched),
           TEST(test_a_code_ops_kernel_is_launched_by_name_with_its_shared_memory))
