/* nvrtc.c: NVRTC, CUDA's runtime compiler, loaded with dlopen so that kiln
 * builds and runs without CUDA. Its C declarations are kept here (the
 * calls use plain int for nvrtcResult and void * for nvrtcProgram). */
#include "backend/cuda/cuda.h"
#include "core/error.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bind(kl_nvrtc *n, void **slot, const char *symbol)
{
    *slot = dlsym(n->lib, symbol);
    if (!*slot) snprintf(n->why, sizeof n->why, "%s has no %s", n->path, symbol);
    return *slot != NULL;
}

kl_status kl_nvrtc_load(kl_nvrtc *n)
{
    if (n->lib) return KL_OK;
    if (n->tried) return kl_error(KL_ERR_RUNTIME, "NVRTC is not available: %s", n->why);
    n->tried = 1;
    const char *env = getenv("KILN_NVRTC"); /* when set, the only library tried */
    const char *names[] = {env && *env ? env : "libnvrtc.so.13", env && *env ? NULL : "libnvrtc.so.12",
                           env && *env ? NULL : "/usr/local/cuda/lib64/libnvrtc.so", env && *env ? NULL : "libnvrtc.so"};
    char tried[400] = "";
    for (size_t i = 0; i < sizeof names / sizeof *names && !n->lib; i++) {
        if (!names[i]) continue;
        n->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (n->lib) snprintf(n->path, sizeof n->path, "%s", names[i]);
        else if (strlen(tried) + strlen(names[i]) + 3 < sizeof tried) {
            if (*tried) strcat(tried, ", ");
            strcat(tried, names[i]);
        }
    }
    if (!n->lib) {
        snprintf(n->why, sizeof n->why, "no NVRTC library found (tried %s; install CUDA or set KILN_NVRTC)", tried);
        return kl_error(KL_ERR_RUNTIME, "NVRTC is not available: %s", n->why);
    }
    int ok = bind(n, (void **)&n->version, "nvrtcVersion") && bind(n, (void **)&n->create, "nvrtcCreateProgram") &&
             bind(n, (void **)&n->compile, "nvrtcCompileProgram") &&
             bind(n, (void **)&n->log_size, "nvrtcGetProgramLogSize") &&
             bind(n, (void **)&n->log, "nvrtcGetProgramLog") && bind(n, (void **)&n->ptx_size, "nvrtcGetPTXSize") &&
             bind(n, (void **)&n->ptx, "nvrtcGetPTX") && bind(n, (void **)&n->cubin_size, "nvrtcGetCUBINSize") &&
             bind(n, (void **)&n->cubin, "nvrtcGetCUBIN") && bind(n, (void **)&n->destroy, "nvrtcDestroyProgram") &&
             bind(n, (void **)&n->error_string, "nvrtcGetErrorString");
    if (ok && n->version(&n->major, &n->minor) != 0) {
        snprintf(n->why, sizeof n->why, "%s: nvrtcVersion failed", n->path);
        ok = 0;
    } else if (ok && n->major * 100 + n->minor < 1102) { /* the kernels use __builtin_assume_aligned */
        snprintf(n->why, sizeof n->why, "%s is NVRTC %d.%d; kiln's kernels need 11.2 or later", n->path, n->major,
                 n->minor);
        ok = 0;
    }
    if (!ok) {
        dlclose(n->lib);
        n->lib = NULL;
        return kl_error(KL_ERR_RUNTIME, "NVRTC is not available: %s", n->why);
    }
    return KL_OK;
}

kl_status kl_nvrtc_compile(kl_nvrtc *n, const char *source, const char *name, const char *arch, char **image,
                           size_t *size)
{
    *image = NULL;
    *size = 0;
    KL_TRY(kl_nvrtc_load(n));
    void *prog = NULL;
    int rc = n->create(&prog, source, name, 0, NULL, NULL);
    if (rc != 0) return kl_error(KL_ERR_RUNTIME, "nvrtcCreateProgram: %s", n->error_string(rc));
    char archopt[48];
    snprintf(archopt, sizeof archopt, "--gpu-architecture=%s", arch);
    const char *opts[] = {archopt, "--std=c++17", "--device-as-default-execution-space"};
    rc = n->compile(prog, 3, opts);
    kl_status s = KL_OK;
    if (rc != 0) {
        size_t ls = 0;
        n->log_size(prog, &ls);
        char *log = malloc(ls + 1);
        if (log) { log[0] = 0; n->log(prog, log); log[ls] = 0; }
        s = kl_error(KL_ERR_RUNTIME, "NVRTC (%d.%d, %s) could not compile %s: %s\n%s", n->major, n->minor, arch,
                     name, n->error_string(rc), log ? log : "");
        free(log);
    } else {
        int cubin = strncmp(arch, "sm_", 3) == 0;
        rc = cubin ? n->cubin_size(prog, size) : n->ptx_size(prog, size);
        *image = rc == 0 ? malloc(*size ? *size : 1) : NULL;
        if (rc == 0 && !*image) s = kl_error(KL_ERR_MEMORY, "out of memory for a compiled CUDA kernel");
        else if (rc == 0) rc = cubin ? n->cubin(prog, *image) : n->ptx(prog, *image);
        if (rc != 0 && s == KL_OK) s = kl_error(KL_ERR_RUNTIME, "NVRTC: reading the compiled %s: %s", name,
                                                n->error_string(rc));
        if (s != KL_OK) { free(*image); *image = NULL; *size = 0; }
    }
    n->destroy(&prog);
    return s;
}

/* The library stays mapped: NVRTC keeps process-wide state (its own C++
 * runtime's pools) that unloading it would leak, and dlopen counts
 * references, so a later load finds it again. */
void kl_nvrtc_unload(kl_nvrtc *n)
{
    memset(n, 0, sizeof *n);
}
