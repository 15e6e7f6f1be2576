/* The CUDA backend's device half (src/backend/cuda/device.c) against a
 * stand-in driver (tests/c/fake_cuda_driver.c, built here and named with
 * KILN_CUDA_DRIVER) whose stream runs its work only when the host waits and
 * whose copies from pinned memory read it then, as a GPU's do: opening the
 * device, copies in every size class (pageable, through the pinned staging
 * buffers, past them) round-tripping while earlier copies are still queued,
 * fills, and memory freed on the stream (its addresses fault if the host
 * reads them, as a GPU's would). On a GPU, scripts/gpu_check.sh runs
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
    if (ctx && !CHECK_OK(kl_context_set_device(ctx, "cuda"))) {
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

CHECK_MAIN(TEST(test_copies_round_trip_while_earlier_ones_are_queued),
           TEST(test_a_reused_source_does_not_change_queued_copies), TEST(test_fill_and_memory_counts))
