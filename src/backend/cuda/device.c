/* device.c: the CUDA backend on a device: the primary context of device 0
 * (the local rank's device under mpirun or torchrun), one stream that every
 * kernel, copy and library call goes on (so Python
 * returns while the device works; reading a result waits), and memory from
 * the driver's stream-ordered pool (cuMemAllocAsync), whose release
 * threshold is kept at the maximum so that freed memory is reused instead
 * of given back; jt.gc() trims it. Kernels are cubins for the device's
 * architecture; a launch passes each buffer, argument and the workspace as
 * one kernel parameter and sizes the grid by the iteration space. */
#include "backend/cuda/cuda.h"
#include "codegen/kdesc.h"
#include "core/context.h"
#include "core/error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { /* the driver's enum values this file uses */
    ATTR_SM_COUNT = 16, ATTR_CC_MAJOR = 75, ATTR_CC_MINOR = 76, ATTR_HOST_POINTER_FOR_REGISTERED = 91,
    ATTR_MAX_SHARED_OPTIN = 97, FUNC_STATIC_SHARED = 1, FUNC_MAX_DYNAMIC_SHARED = 8,
    POOL_RELEASE_THRESHOLD = 4, POOL_RESERVED_CURRENT = 5, POOL_USED_CURRENT = 7,
    STREAM_NON_BLOCKING = 1, HOST_REGISTER_DEVICEMAP = 2, ERROR_OUT_OF_MEMORY = 2, EVENT_DISABLE_TIMING = 2,
    STAGING_MIN = 1 << 20, /* a slot's smallest size */
    BLOCKS_PER_SM = 8 /* 256-thread blocks resident on one SM (2048 threads) */
};

typedef struct {
    void *module, *fn, *init; /* init: a scatter's first kernel, else NULL */
} cuda_kernel;

/* The backend, with its context current on the calling thread (the driver
 * keeps the current context per thread, and kiln is called from several). */
static kl_cuda_backend *as_cuda(kl_backend *b)
{
    kl_cuda_backend *c = (kl_cuda_backend *)b;
    c->drv.ctx_set_current(c->context);
    return c;
}

static kl_status cu_check(kl_cuda_backend *c, int rc, const char *what)
{
    if (rc == 0) return KL_OK;
    return kl_error(rc == ERROR_OUT_OF_MEMORY ? KL_ERR_MEMORY : KL_ERR_RUNTIME, "%s: %s failed: %s (CUDA error %d)",
                    c->base.name, what, kl_cuda_driver_error(&c->drv, rc), rc);
}

int kl_cuda_grid(int64_t work, int max_grid)
{
    if (max_grid < 1) max_grid = 1;
    if (work <= 0) return max_grid;
    const int64_t per_block = (int64_t)KL_CUDA_BLOCK * KL_CUDA_UNROLL;
    int64_t blocks = (work + per_block - 1) / per_block;
    return blocks < max_grid ? (int)blocks : max_grid;
}

kl_status kl_cuda_device_open(kl_cuda_backend *c)
{
    kl_cuda_driver *d = &c->drv;
    KL_TRY(kl_cuda_driver_load(d));
    int n = 0;
    KL_TRY(cu_check(c, d->device_count(&n), "cuDeviceGetCount"));
    if (n == 0) return kl_error(KL_ERR_RUNTIME, "use_cuda: the NVIDIA driver is there but reports no CUDA device");
    int major = 0, minor = 0;
    /* ranks of one machine take one device each (mpirun's local rank, or
     * torchrun's), not all the first (CUDA_VISIBLE_DEVICES narrows the list) */
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (!local) local = getenv("LOCAL_RANK");
    int ordinal = local ? atoi(local) % n : 0;
    KL_TRY(cu_check(c, d->device_get(&c->device, ordinal < 0 ? 0 : ordinal), "cuDeviceGet"));
    KL_TRY(cu_check(c, d->device_attribute(&c->sms, ATTR_SM_COUNT, c->device), "cuDeviceGetAttribute"));
    KL_TRY(cu_check(c, d->device_attribute(&major, ATTR_CC_MAJOR, c->device), "cuDeviceGetAttribute"));
    KL_TRY(cu_check(c, d->device_attribute(&minor, ATTR_CC_MINOR, c->device), "cuDeviceGetAttribute"));
    snprintf(c->arch, sizeof c->arch, "sm_%d%d", major, minor);
    if (d->device_attribute(&c->max_shared, ATTR_MAX_SHARED_OPTIN, c->device) != 0)
        c->max_shared = KL_CUDA_DEFAULT_SHARED;
    c->max_grid = c->sms * BLOCKS_PER_SM < KL_CUDA_MAX_GRID ? c->sms * BLOCKS_PER_SM : KL_CUDA_MAX_GRID;
    KL_TRY(cu_check(c, d->primary_retain(&c->context, c->device), "cuDevicePrimaryCtxRetain"));
    KL_TRY(cu_check(c, d->ctx_set_current(c->context), "cuCtxSetCurrent"));
    KL_TRY(cu_check(c, d->stream_create(&c->stream, STREAM_NON_BLOCKING), "cuStreamCreate"));
    KL_TRY(cu_check(c, d->default_pool(&c->pool, c->device), "cuDeviceGetDefaultMemPool"));
    uint64_t keep = UINT64_MAX;
    KL_TRY(cu_check(c, d->pool_set(c->pool, POOL_RELEASE_THRESHOLD, &keep), "cuMemPoolSetAttribute"));
    KL_TRY(cu_check(c, d->mem_alloc_async(&c->workspace, KL_CUDA_WS_BYTES, c->stream), "allocating the workspace"));
    KL_TRY(cu_check(c, d->memset_async(c->workspace, 0, KL_CUDA_WS_BYTES, c->stream), "clearing the workspace"));
    /* index checks write their first failure into the context's record: the
     * device writes it through the same address (unified addressing) */
    kl_context *ctx = c->base.ctx;
    int same_address = 0;
    d->device_attribute(&same_address, ATTR_HOST_POINTER_FOR_REGISTERED, c->device);
    if (ctx && !same_address)
        return kl_error(KL_ERR_RUNTIME, "use_cuda: this device cannot use registered host memory at its host "
                        "address, which kiln's index checks need (CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_"
                        "REGISTERED_MEM is 0)");
    if (ctx) {
        KL_TRY(cu_check(c, d->host_register(ctx->index_error, sizeof ctx->index_error, HOST_REGISTER_DEVICEMAP),
                        "registering the index-check record"));
        c->record_registered = 1;
    }
    return KL_OK;
}

void kl_cuda_device_close(kl_cuda_backend *c)
{
    kl_cuda_driver *d = &c->drv;
    if (!d->lib) return;
    if (c->context) d->ctx_set_current(c->context);
    kl_cublas_close(c);
    kl_cudnn_close(&c->cudnn);
    if (c->stream) d->stream_sync(c->stream);
    kl_nccl_close(&c->nccl);
    for (int i = 0; i < KL_CUDA_STAGING_SLOTS; i++) {
        if (c->staging[i].event) d->event_destroy(c->staging[i].event);
        if (c->staging[i].host) d->host_free(c->staging[i].host);
    }
    if (c->workspace) d->mem_free_async(c->workspace, c->stream);
    if (c->stream) { d->stream_sync(c->stream); d->stream_destroy(c->stream); }
    if (c->record_registered) d->host_unregister(c->base.ctx->index_error);
    if (c->context) d->primary_release(c->device);
}

/* ---- memory ---- */

void *kl_cuda_alloc(kl_backend *b, size_t nbytes)
{
    kl_cuda_backend *c = as_cuda(b);
    uint64_t p = 0;
    size_t n = nbytes ? nbytes : 1;
    int rc = c->drv.mem_alloc_async(&p, n, c->stream);
    if (rc == ERROR_OUT_OF_MEMORY) { /* what the pool keeps goes back, then once more */
        c->drv.stream_sync(c->stream);
        c->drv.pool_trim(c->pool, 0);
        rc = c->drv.mem_alloc_async(&p, n, c->stream);
    }
    if (rc != 0) {
        cu_check(c, rc, "cuMemAllocAsync");
        return NULL;
    }
    c->bytes_allocated += n;
    c->bytes_in_use += n;
    if (c->bytes_in_use > c->peak_bytes_in_use) c->peak_bytes_in_use = c->bytes_in_use;
    return (void *)(uintptr_t)p;
}

void kl_cuda_free(kl_backend *b, void *p, size_t nbytes)
{
    kl_cuda_backend *c = as_cuda(b);
    if (!p) return;
    c->drv.mem_free_async((uint64_t)(uintptr_t)p, c->stream); /* after every kernel queued before */
    c->bytes_in_use -= nbytes ? nbytes : 1;
}

/* A copy to the device through the next staging slot (kl_cuda_staging):
 * 1 when it was queued, 0 when the slot could not be had (no pinned
 * memory: the caller copies from pageable memory), -1 on a failure. */
static int staged_copy(kl_cuda_backend *c, uint64_t dst, const void *src, size_t nbytes)
{
    kl_cuda_driver *d = &c->drv;
    kl_cuda_staging *slot = &c->staging[c->staging_next];
    if (!slot->event && d->event_create(&slot->event, EVENT_DISABLE_TIMING) != 0) {
        slot->event = NULL;
        return 0;
    }
    if (d->event_sync(slot->event) != 0) return 0; /* its last copy has read it (an unrecorded event is done) */
    if (slot->size < nbytes) {
        if (slot->host) d->host_free(slot->host);
        slot->host = NULL;
        slot->size = 0;
        size_t size = nbytes < STAGING_MIN ? STAGING_MIN : nbytes;
        if (d->host_alloc(&slot->host, size, 0) != 0) {
            slot->host = NULL;
            return 0;
        }
        slot->size = size;
    }
    memcpy(slot->host, src, nbytes);
    if (cu_check(c, d->htod_async(dst, slot->host, nbytes, c->stream), "copy to the device") != KL_OK) return -1;
    if (cu_check(c, d->event_record(slot->event, c->stream), "cuEventRecord") != KL_OK) return -1;
    c->staging_next = (c->staging_next + 1) % KL_CUDA_STAGING_SLOTS;
    return 1;
}

/* To the device: through a pinned slot (kl_cuda_staging) between
 * KL_CUDA_STAGING_MIN and _MAX bytes, so the host need not wait for the
 * kernels queued before the copy; else from pageable memory. */
static kl_status copy_to_device(kl_cuda_backend *c, uint64_t dst, const void *src, size_t nbytes)
{
    int staged = nbytes > KL_CUDA_STAGING_MIN && nbytes <= KL_CUDA_STAGING_MAX ? staged_copy(c, dst, src, nbytes) : 0;
    if (staged < 0) return KL_ERR_RUNTIME;
    if (staged) return KL_OK;
    return cu_check(c, c->drv.htod_async(dst, src, nbytes, c->stream), "copy to the device");
}

kl_status kl_cuda_copy(kl_backend *b, void *dst, const void *src, size_t nbytes, kl_copy_kind kind)
{
    kl_cuda_backend *c = as_cuda(b);
    if (!nbytes) return KL_OK;
    kl_cuda_driver *d = &c->drv;
    switch (kind) {
    case KL_COPY_HOST_TO_DEVICE:
        return copy_to_device(c, (uint64_t)(uintptr_t)dst, src, nbytes);
    case KL_COPY_DEVICE_TO_HOST:
        KL_TRY(cu_check(c, d->dtoh_async(dst, (uint64_t)(uintptr_t)src, nbytes, c->stream), "copy to the host"));
        return cu_check(c, d->stream_sync(c->stream), "waiting for a copy to the host");
    default:
        return cu_check(c, d->dtod_async((uint64_t)(uintptr_t)dst, (uint64_t)(uintptr_t)src, nbytes, c->stream),
                        "copy on the device");
    }
}

kl_status kl_cuda_fill(kl_backend *b, void *dst, size_t nbytes, uint8_t byte)
{
    kl_cuda_backend *c = as_cuda(b);
    if (!nbytes) return KL_OK;
    return cu_check(c, c->drv.memset_async((uint64_t)(uintptr_t)dst, byte, nbytes, c->stream), "cuMemsetD8Async");
}

void kl_cuda_memory(kl_backend *b, kl_memory_stats *out)
{
    kl_cuda_backend *c = as_cuda(b);
    uint64_t reserved = 0, used = 0;
    c->drv.pool_get(c->pool, POOL_RESERVED_CURRENT, &reserved);
    c->drv.pool_get(c->pool, POOL_USED_CURRENT, &used);
    out->bytes_allocated = c->bytes_allocated;
    out->bytes_in_use = c->bytes_in_use;
    out->bytes_cached = reserved > used ? reserved - used : 0;
    out->peak_bytes_in_use = c->peak_bytes_in_use;
}

void kl_cuda_trim(kl_backend *b)
{
    kl_cuda_backend *c = as_cuda(b);
    c->drv.stream_sync(c->stream);
    c->drv.pool_trim(c->pool, 0);
}

/* ---- kernels ---- */

kl_status kl_cuda_device_load(kl_cuda_backend *c, const void *image, const char *path, const char *key, void **handle,
                              kl_kernel_fn *fn)
{
    kl_cuda_driver *d = &as_cuda(&c->base)->drv;
    cuda_kernel *k = calloc(1, sizeof *k);
    if (!k) return kl_error(KL_ERR_MEMORY, "out of memory loading %s", path);
    int rc = d->module_load(&k->module, image);
    kl_status s = KL_OK;
    if (rc != 0) { /* most often versions that do not fit: say which */
        int v = 0;
        d->driver_version(&v);
        s = kl_error(KL_ERR_RUNTIME, "%s: the driver could not load kernel %s: %s (CUDA error %d); it was compiled by "
                     "NVRTC %d.%d for %s, and the driver supports CUDA %d.%d (an older driver than NVRTC cannot load "
                     "its kernels: update the driver, or point KILN_NVRTC at the NVRTC of the driver's CUDA)",
                     c->base.name, path, kl_cuda_driver_error(d, rc), rc, c->nvrtc.major, c->nvrtc.minor, c->arch,
                     v / 1000, v % 1000 / 10);
    }
    if (s == KL_OK) s = cu_check(c, d->module_function(&k->fn, k->module, "kl_kernel"), "finding kl_kernel");
    if (s == KL_OK && d->module_function(&k->init, k->module, "kl_kernel_init") != 0) k->init = NULL;
    uint64_t at = 0;
    size_t size = 0;
    char got[80] = "";
    if (s == KL_OK) s = cu_check(c, d->module_global(&at, &size, k->module, "kl_kernel_key"), "finding kl_kernel_key");
    if (s == KL_OK && size < sizeof got) s = cu_check(c, d->dtoh(got, at, size), "reading kl_kernel_key");
    if (s == KL_OK && (size >= sizeof got || strcmp(got, key) != 0))
        s = kl_error(KL_ERR_RUNTIME, "%s: %s is not kernel %s (another kernel's file)", c->base.name, path, key);
    if (s != KL_OK) {
        if (k->module) d->module_unload(k->module);
        free(k);
        return s;
    }
    *handle = k;
    *fn = (kl_kernel_fn)(uintptr_t)k; /* a launch turns it back: it is never called on the host */
    return KL_OK;
}

void kl_cuda_device_unload(kl_cuda_backend *c, void *handle)
{
    cuda_kernel *k = handle;
    if (!k) return;
    as_cuda(&c->base);
    c->drv.stream_sync(c->stream); /* no queued launch of it left */
    c->drv.module_unload(k->module);
    free(k);
}

/* A launch whose kernel takes the arrays themselves (a group form): they go
 * to device memory on the stream (a copy returns once its bytes are staged,
 * so the caller may free them), the kernel reads them there, and the block
 * is freed after it, on the stream. */
static kl_status launch_arrays(kl_cuda_backend *c, const cuda_kernel *k, const kl_launch_args *a)
{
    size_t nb = (size_t)a->n_buf * sizeof *a->buf, ni = (size_t)a->n_iarg * sizeof *a->iarg,
           nf = (size_t)a->n_farg * sizeof *a->farg;
    unsigned char *host = malloc(nb + ni + nf + 1);
    if (!host) return kl_error(KL_ERR_MEMORY, "out of memory staging a group's arguments");
    memcpy(host, a->buf, nb);
    memcpy(host + nb, a->iarg, ni);
    memcpy(host + nb + ni, a->farg, nf);
    uint64_t block = 0;
    kl_status s = cu_check(c, c->drv.mem_alloc_async(&block, nb + ni + nf + 1, c->stream), "allocating a group's arguments");
    if (s == KL_OK) s = copy_to_device(c, block, host, nb + ni + nf);
    free(host);
    if (s != KL_OK) {
        if (block) c->drv.mem_free_async(block, c->stream);
        return s;
    }
    uint64_t bufs = block, iargs = block + nb, fargs = block + nb + ni;
    void *params[4] = {&bufs, &iargs, &fargs, &c->workspace};
    unsigned grid = (unsigned)kl_cuda_grid(a->work, c->max_grid);
    s = cu_check(c, c->drv.launch(k->fn, grid, 1, 1, KL_CUDA_BLOCK, 1, 1, 0, c->stream, params, NULL),
                 "launching a group's kernel");
    c->drv.mem_free_async(block, c->stream); /* after the kernel, which the stream runs first */
    return s;
}

kl_status kl_cuda_launch(kl_backend *b, kl_kernel_fn fn, const kl_launch_args *a)
{
    kl_cuda_backend *c = as_cuda(b);
    const cuda_kernel *k = (const cuda_kernel *)(uintptr_t)fn;
    if (a->arrays) return launch_arrays(c, k, a);
    if (a->n_buf > KL_KD_MAX_BUFS || a->n_iarg > KL_KD_MAX_IARGS || a->n_farg > KL_KD_MAX_FARGS)
        return kl_error(KL_ERR_VALUE, "%s: a launch with %d buffers, %d integer and %d float arguments is over the "
                        "limits", b->name, a->n_buf, a->n_iarg, a->n_farg);
    void *params[KL_KD_MAX_BUFS + KL_KD_MAX_IARGS + KL_KD_MAX_FARGS + 1];
    int n = 0;
    for (int i = 0; i < a->n_buf; i++) params[n++] = (void *)&a->buf[i];
    for (int i = 0; i < a->n_iarg; i++) params[n++] = (void *)&a->iarg[i];
    for (int i = 0; i < a->n_farg; i++) params[n++] = (void *)&a->farg[i];
    params[n++] = &c->workspace;
    unsigned grid = (unsigned)kl_cuda_grid(a->work, c->max_grid);
    if (k->init)
        KL_TRY(cu_check(c, c->drv.launch(k->init, grid, 1, 1, KL_CUDA_BLOCK, 1, 1, 0, c->stream, params, NULL),
                        "launching kl_kernel_init"));
    return cu_check(c, c->drv.launch(k->fn, grid, 1, 1, KL_CUDA_BLOCK, 1, 1, 0, c->stream, params, NULL),
                    "launching a kernel");
}

/* A kernel of a user's device code (jt.code's cuda_src), by its name, with
 * the block and shared memory its launch asks for. */
kl_status kl_cuda_launch_named(kl_backend *b, kl_kernel_fn fn, const char *name, const unsigned grid[3],
                               const unsigned block[3], unsigned shared_bytes, void **params)
{
    kl_cuda_backend *c = as_cuda(b);
    const cuda_kernel *k = (const cuda_kernel *)(uintptr_t)fn;
    void *f = NULL;
    if (c->drv.module_function(&f, k->module, name) != 0)
        return kl_error(KL_ERR_VALUE, "%s: the op's device code has no kernel named %s", b->name, name);
    int fixed = 0; /* its static __shared__ arrays: they count against the same bound */
    if (c->drv.func_get_attribute(&fixed, FUNC_STATIC_SHARED, f) != 0) fixed = 0;
    if ((long long)shared_bytes + fixed > c->max_shared)
        return kl_error(KL_ERR_VALUE, "%s: %s asks for %u bytes of dynamic shared memory besides its %d static; a "
                        "block of this device may have at most %d in all", b->name, name, shared_bytes, fixed,
                        c->max_shared);
    /* past the default a kernel must opt in (cudaFuncSetAttribute in CUDA's runtime) */
    if ((long long)shared_bytes + fixed > KL_CUDA_DEFAULT_SHARED)
        KL_TRY(cu_check(c, c->drv.func_set_attribute(f, FUNC_MAX_DYNAMIC_SHARED, (int)shared_bytes),
                        "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)"));
    char what[200];
    snprintf(what, sizeof what, "launching %s<<<(%u, %u, %u), (%u, %u, %u), %u>>>", name, grid[0], grid[1], grid[2],
             block[0], block[1], block[2], shared_bytes);
    return cu_check(c, c->drv.launch(f, grid[0], grid[1], grid[2], block[0], block[1], block[2], shared_bytes,
                                     c->stream, params, NULL), what);
}

kl_status kl_cuda_synchronize(kl_backend *b)
{
    kl_cuda_backend *c = as_cuda(b);
    return cu_check(c, c->drv.stream_sync(c->stream), "cuStreamSynchronize");
}
