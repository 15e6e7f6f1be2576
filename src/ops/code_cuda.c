/* code_cuda.c: what the host code of a CUDA user op (jt.code's cuda_src) is
 * given to reach the device (kl_code_cuda_runtime): the op's device code
 * compiled by the device's toolchain (once; the jit's caches keep it) and
 * its kernels launched by name on the device's queue, device memory filled
 * and copied, the device waited for, host copies of the op's constants. The
 * first failure is kept and ends the op with its message. */
#include "ops/ops.h"
#include "backend/backend.h"
#include "core/context.h"
#include "jit/jit.h"
#include <stdio.h>
#include <string.h>

#define KL_STR_(...) #__VA_ARGS__
#define KL_STR(...) KL_STR_(__VA_ARGS__)

const char *kl_code_cuda_runtime_decl(void)
{
    return "typedef struct kl_code_cuda_runtime { " KL_STR(KL_CODE_CUDA_RUNTIME_FIELDS) " } kl_code_cuda_runtime;";
}

/* a failure of call is kept and returned */
#define KEEP(call) do { kl_status keep_s_ = (call); if (keep_s_ != KL_OK) return failed(r, keep_s_); } while (0)

enum { MAX_BLOCK_THREADS = 1024, MAX_GRID_YZ = 65535, MAX_BLOCK_Z = 64 };

static kl_code_runtime *runtime_of(kl_code_cuda_runtime *rt) { return (kl_code_runtime *)rt->self; }

/* Keeps the first failure (the status and the message kl_error set). */
static int failed(kl_code_runtime *r, kl_status s)
{
    if (s == KL_OK) return 0;
    if (!r->rt.status) {
        r->rt.status = (int)s;
        snprintf(r->message, sizeof r->message, "%s", kl_last_error());
    }
    return r->rt.status;
}

static kl_status check_dims(const char *kernel, const unsigned *grid, const unsigned *block)
{
    unsigned long long threads = (unsigned long long)block[0] * block[1] * block[2];
    const char *why = NULL;
    if (!grid[0] || !grid[1] || !grid[2]) why = "a grid needs at least one block in each dim";
    else if (!block[0] || !block[1] || !block[2]) why = "a block needs at least one thread in each dim";
    else if (threads > MAX_BLOCK_THREADS) why = "a block holds at most 1024 threads";
    else if (block[2] > MAX_BLOCK_Z) why = "a block's z dim is at most 64";
    else if (grid[1] > MAX_GRID_YZ || grid[2] > MAX_GRID_YZ || grid[0] > 0x7fffffffu)
        why = "a grid's y and z dims are at most 65535, its x dim at most 2^31 - 1";
    if (!why) return KL_OK;
    return kl_error(KL_ERR_VALUE, "jt.code: %s<<<(%u, %u, %u), (%u, %u, %u)>>>: %s", kernel, grid[0], grid[1],
                    grid[2], block[0], block[1], block[2], why);
}

static int rt_launch(kl_code_cuda_runtime *rt, const char *device_source, const char *kernel, const unsigned *grid,
                     const unsigned *block, unsigned shared_bytes, void **params)
{
    kl_code_runtime *r = runtime_of(rt);
    if (rt->status) return rt->status;
    kl_backend *dev = r->device;
    if (!dev->ops->launch_named)
        return failed(r, kl_error(KL_ERR_RUNTIME, "jt.code: %s cannot launch %s (it runs no CUDA kernels)",
                                  dev->name, kernel));
    KEEP(check_dims(kernel, grid, block));
    if (device_source != r->source) { /* the op's kernels are one module: compiled (or found) once a run */
        kl_lang lang = KL_LANG_CUDA;
        kl_kernel_fn fn = NULL, checked = NULL;
        KEEP(kl_jit_get_many(r->ctx, dev, 1, &device_source, &lang, &fn));
        if (r->ctx->compile_check && r->ctx->compile_check != dev)
            KEEP(kl_jit_get_many(r->ctx, r->ctx->compile_check, 1, &device_source, &lang, &checked));
        r->source = device_source;
        r->module = fn;
    }
    KEEP(dev->ops->launch_named(dev, r->module, kernel, grid, block, shared_bytes, params));
    r->ctx->counters.kernels_launched++;
    return 0;
}

static int rt_fill(kl_code_cuda_runtime *rt, void *dst, int byte, size_t nbytes)
{
    kl_code_runtime *r = runtime_of(rt);
    if (rt->status) return rt->status;
    return failed(r, r->device->ops->fill(r->device, dst, nbytes, (uint8_t)byte));
}

static int rt_copy(kl_code_cuda_runtime *rt, void *dst, const void *src, size_t nbytes, int kind)
{
    kl_code_runtime *r = runtime_of(rt);
    if (rt->status) return rt->status;
    kl_backend *dev = r->device;
    static const kl_copy_kind kinds[] = {[1] = KL_COPY_HOST_TO_DEVICE, [2] = KL_COPY_DEVICE_TO_HOST,
                                         [3] = KL_COPY_DEVICE_TO_DEVICE};
    if (kind == 0) {
        if (nbytes) memmove(dst, src, nbytes);
        return 0;
    }
    if (kind < 0 || kind > 3)
        return failed(r, kl_error(KL_ERR_VALUE, "jt.code: cudaMemcpy kind %d: say which way the copy goes "
                                  "(cudaMemcpyHostToDevice, DeviceToHost or DeviceToDevice)", kind));
    return failed(r, dev->ops->copy(dev, dst, src, nbytes, kinds[kind]));
}

static int rt_synchronize(kl_code_cuda_runtime *rt)
{
    kl_code_runtime *r = runtime_of(rt);
    if (rt->status) return rt->status;
    return failed(r, r->device->ops->synchronize(r->device));
}

static const void *rt_host_input(kl_code_cuda_runtime *rt, int k)
{
    kl_code_runtime *r = runtime_of(rt);
    if (k < 0 || k >= r->v->op.n_inputs || !r->v->op.inputs[k]->buf) {
        failed(r, kl_error(KL_ERR_VALUE, "jt.code: no input %d to read on the host", k));
        return NULL;
    }
    const void *p = kl_buffer_host(r->v->op.inputs[k]->buf);
    if (!p) failed(r, KL_ERR_MEMORY);
    return p;
}

static const char *rt_message(kl_code_cuda_runtime *rt)
{
    return rt->status ? runtime_of(rt)->message : "no error";
}

void kl_code_runtime_init(kl_code_runtime *r, kl_context *ctx, kl_var *v)
{
    memset(r, 0, sizeof *r);
    r->rt.self = r;
    r->rt.launch = rt_launch;
    r->rt.fill = rt_fill;
    r->rt.copy = rt_copy;
    r->rt.synchronize = rt_synchronize;
    r->rt.host_input = rt_host_input;
    r->rt.message = rt_message;
    r->ctx = ctx;
    r->device = v->device;
    r->v = v;
}

kl_status kl_code_runtime_status(const kl_code_runtime *r)
{
    if (!r->rt.status) return KL_OK;
    return kl_error((kl_status)r->rt.status, "%s", r->message);
}
