/* blas.c: finding OpenBLAS at run time. */
#include "backend/cpu/blas.h"
#include <dlfcn.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

void kl_blas_init(kl_blas *b)
{
    const char *want = getenv("KILN_BLAS");
    b->disabled = want && strcmp(want, "0") == 0;
    if (want && !b->disabled) snprintf(b->path, sizeof b->path, "%s", want);
}

int kl_blas_available(kl_blas *b)
{
    if (b->tried) return b->available;
    b->tried = 1;
    if (b->disabled) return 0;
    const char *const names[] = {*b->path ? b->path : "libopenblas.so.0", "libopenblas.so", "libopenblasp-r0.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !b->handle; i++)
        b->handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!b->handle) return 0;
    b->sgemm = (kl_sgemm_fn)(uintptr_t)dlsym(b->handle, "cblas_sgemm");
    b->dgemm = (kl_dgemm_fn)(uintptr_t)dlsym(b->handle, "cblas_dgemm");
    b->available = b->sgemm && b->dgemm;
    return b->available;
}
