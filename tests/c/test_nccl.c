/* The CUDA backend's collectives (src/backend/cuda/nccl.c), in a world of
 * one rank: on a GPU, NCCL loaded, its communicator made and each
 * collective run on the device's stream (scripts/gpu_check.sh's smoke test;
 * skipped, saying why, without a GPU); on the emulator, no NCCL unless
 * KILN_NCCL names one, so the caller goes through MPI. Two ranks through a
 * stand-in NCCL: tests/python/test_distributed.py. */
#include "check.h"
#include "backend/backend.h"
#include "core/context.h"
#include <stdlib.h>

static kl_status share_nothing(void *job, void *bytes, size_t nbytes)
{
    (void)job; (void)bytes; (void)nbytes; /* one rank: its own id */
    return KL_OK;
}

static kl_status agree_alone(void *job, int32_t *value)
{
    (void)job; (void)value; /* one rank: its own answer */
    return KL_OK;
}

static kl_context *on(const char *device)
{
    kl_context *ctx = check_context();
    if (!ctx) return NULL;
    if (kl_context_set_device(ctx, device) != KL_OK) {
        printf("    skipped on %s: %s\n", device, kl_last_error());
        kl_context_free(ctx);
        return NULL;
    }
    return ctx;
}

/* kind on n floats 1..n in a world of one: each is the identity */
static void check_identity(kl_context *ctx, int kind, kl_reduce_op op)
{
    enum { N = 1000 };
    kl_backend *dev = ctx->device;
    float host[N], back[N];
    for (int i = 0; i < N; i++) host[i] = (float)(i + 1);
    void *src = dev->ops->alloc(dev, sizeof host), *dst = dev->ops->alloc(dev, sizeof host);
    if (!CHECK(src && dst)) return;
    CHECK_OK(dev->ops->copy(dev, src, host, sizeof host, KL_COPY_HOST_TO_DEVICE));
    kl_collective_call call = {.kind = kind, .op = op, .root = 0, .dtype = KL_FLOAT32, .count = N, .src = src,
                               .dst = dst, .rank = 0, .size = 1, .share = share_nothing, .agree = agree_alone};
    int done = 0;
    CHECK_OK(dev->ops->collective(dev, &call, &done));
    CHECK_MSG(done, "NCCL did not run the collective (kind %d)", kind);
    CHECK_OK(dev->ops->copy(dev, back, dst, sizeof back, KL_COPY_DEVICE_TO_HOST));
    for (int i = 0; i < N; i++) CHECK_CLOSE(back[i], host[i], 0, 0);
    dev->ops->free(dev, src, sizeof host);
    dev->ops->free(dev, dst, sizeof host);
}

static void test_nccl_runs_each_collective_on_the_gpu(void)
{
    kl_context *ctx = on("cuda");
    if (!ctx) return;
    check_identity(ctx, 0, KL_REDUCE_SUM);
    check_identity(ctx, 0, KL_REDUCE_MEAN);
    check_identity(ctx, 1, KL_REDUCE_MAX);
    check_identity(ctx, 2, KL_REDUCE_SUM);
    CHECK_OK(kl_context_free(ctx));
}

static void test_without_nccl_the_caller_goes_through_mpi(void)
{
    unsetenv("KILN_NCCL");
    kl_context *ctx = on("cuda-emulate");
    if (!ctx) return;
    kl_backend *dev = ctx->device;
    float x = 1;
    kl_collective_call call = {.kind = 0, .op = KL_REDUCE_SUM, .dtype = KL_FLOAT32, .count = 1, .src = &x, .dst = &x,
                               .rank = 0, .size = 1, .share = share_nothing, .agree = agree_alone};
    int done = 1;
    CHECK_OK(dev->ops->collective(dev, &call, &done));
    CHECK(done == 0);
    CHECK_OK(kl_context_free(ctx));
}

static void test_a_type_nccl_lacks_goes_through_mpi(void)
{
    kl_context *ctx = on("cuda");
    if (!ctx) return;
    kl_backend *dev = ctx->device;
    kl_collective_call call = {.kind = 0, .op = KL_REDUCE_SUM, .dtype = KL_INT16, .count = 0, .rank = 0, .size = 1,
                               .share = share_nothing, .agree = agree_alone};
    int done = 1;
    CHECK_OK(dev->ops->collective(dev, &call, &done));
    CHECK(done == 0);
    CHECK_OK(kl_context_free(ctx));
}

CHECK_MAIN(TEST(test_nccl_runs_each_collective_on_the_gpu), TEST(test_without_nccl_the_caller_goes_through_mpi),
           TEST(test_a_type_nccl_lacks_goes_through_mpi))
