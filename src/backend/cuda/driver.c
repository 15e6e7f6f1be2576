/* driver.c: the CUDA driver API (libcuda.so.1, installed with NVIDIA's
 * driver), loaded with dlopen so that kiln builds and runs without it; and
 * what loading cuBLAS and cuDNN have alike (kl_cuda_library). The
 * declarations are kept here: handles are void *, device pointers 64-bit
 * integers, CUresult an int; symbols carry the version suffix the header
 * maps each name to (cuMemcpyDtoH -> cuMemcpyDtoH_v2). */
#include "backend/cuda/cuda.h"
#include "core/error.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIND(field, symbol) \
    do { \
        if (ok && !(*(void **)&d->field = dlsym(d->lib, symbol))) { \
            snprintf(d->why, sizeof d->why, "the driver library has no %s (a driver older than CUDA 12?)", symbol); \
            ok = 0; \
        } \
    } while (0)

kl_status kl_cuda_driver_load(kl_cuda_driver *d)
{
    if (d->lib) return KL_OK;
    const char *env = getenv("KILN_CUDA_DRIVER"); /* another driver library (a test's stand-in) */
    const char *name = env && *env ? env : "libcuda.so.1";
    d->lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!d->lib) {
        snprintf(d->why, sizeof d->why, "%s (NVIDIA's driver library) could not be loaded (%s)", name, dlerror());
        return kl_error(KL_ERR_RUNTIME, "use_cuda: no CUDA driver: %s; kiln runs on the CPU", d->why);
    }
    int ok = 1;
    BIND(init, "cuInit");
    BIND(error_string, "cuGetErrorString");
    BIND(driver_version, "cuDriverGetVersion");
    BIND(device_count, "cuDeviceGetCount");
    BIND(device_get, "cuDeviceGet");
    BIND(device_attribute, "cuDeviceGetAttribute");
    BIND(device_name, "cuDeviceGetName");
    BIND(primary_retain, "cuDevicePrimaryCtxRetain");
    BIND(primary_release, "cuDevicePrimaryCtxRelease_v2");
    BIND(ctx_set_current, "cuCtxSetCurrent");
    BIND(stream_create, "cuStreamCreate");
    BIND(stream_destroy, "cuStreamDestroy_v2");
    BIND(stream_sync, "cuStreamSynchronize");
    BIND(mem_alloc_async, "cuMemAllocAsync");
    BIND(mem_free_async, "cuMemFreeAsync");
    BIND(default_pool, "cuDeviceGetDefaultMemPool");
    BIND(pool_set, "cuMemPoolSetAttribute");
    BIND(pool_get, "cuMemPoolGetAttribute");
    BIND(pool_trim, "cuMemPoolTrimTo");
    BIND(mem_info, "cuMemGetInfo_v2");
    BIND(htod_async, "cuMemcpyHtoDAsync_v2");
    BIND(dtoh_async, "cuMemcpyDtoHAsync_v2");
    BIND(dtod_async, "cuMemcpyDtoDAsync_v2");
    BIND(dtoh, "cuMemcpyDtoH_v2");
    BIND(memset_async, "cuMemsetD8Async");
    BIND(host_register, "cuMemHostRegister_v2");
    BIND(host_unregister, "cuMemHostUnregister");
    BIND(module_load, "cuModuleLoadData");
    BIND(module_unload, "cuModuleUnload");
    BIND(module_function, "cuModuleGetFunction");
    BIND(module_global, "cuModuleGetGlobal_v2");
    BIND(launch, "cuLaunchKernel");
    BIND(func_set_attribute, "cuFuncSetAttribute");
    BIND(func_get_attribute, "cuFuncGetAttribute");
    BIND(host_alloc, "cuMemHostAlloc");
    BIND(host_free, "cuMemFreeHost");
    BIND(event_create, "cuEventCreate");
    BIND(event_destroy, "cuEventDestroy_v2");
    BIND(event_record, "cuEventRecord");
    BIND(event_sync, "cuEventSynchronize");
    int rc = ok ? d->init(0) : 0;
    if (rc != 0) {
        const char *what = NULL;
        d->error_string(rc, &what);
        snprintf(d->why, sizeof d->why, "cuInit failed: %s (CUDA error %d)%s", what ? what : "unknown error", rc,
                 rc == 100 ? ": no CUDA device is visible" : "");
        ok = 0;
    }
    if (!ok) {
        dlclose(d->lib);
        d->lib = NULL;
        return kl_error(KL_ERR_RUNTIME, "use_cuda: %s", d->why);
    }
    return KL_OK;
}

const char *kl_cuda_driver_error(const kl_cuda_driver *d, int rc)
{
    const char *s = NULL;
    if (d->error_string) d->error_string(rc, &s);
    return s ? s : "unknown CUDA error";
}

int kl_cuda_device_count(void)
{
    kl_cuda_driver d;
    memset(&d, 0, sizeof d);
    int n = 0;
    if (kl_cuda_driver_load(&d) != KL_OK || d.device_count(&n) != 0) n = 0;
    return n; /* the library stays loaded: dlopen counts, and opening the device later finds it */
}

int kl_cuda_library_open(kl_cuda_library *l, const char *off_env, const char *const *names, int n)
{
    if (l->tried) return l->lib != NULL;
    l->tried = 1;
    const char *off = getenv(off_env), *tf32 = getenv("KILN_TF32");
    if (off && strcmp(off, "0") == 0) return 0;
    l->tf32 = tf32 && strcmp(tf32, "1") == 0;
    for (int i = 0; i < n && !l->lib; i++) l->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    return l->lib != NULL;
}

int kl_cuda_library_handle(kl_cuda_library *l, void *stream)
{
    if (l->handle) return 1;
    if (!l->create || l->create(&l->handle) != 0) {
        l->handle = NULL;
        return 0;
    }
    l->set_stream(l->handle, stream); /* ordered with the kernels */
    return 1;
}
