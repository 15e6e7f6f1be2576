/* cublas.c: matrix products on the device with cuBLAS, loaded with dlopen
 * at the first product (libcublas.so.13, then .12; KILN_CUBLAS=0 turns it
 * off and products run as generated kernels). TF32 stays off unless
 * KILN_TF32=1: float32 products keep float32's accuracy by default.
 *
 * kiln's products are row-major, cuBLAS's column-major: a row-major
 * C[m, n] = op(A) op(B) is the column-major C^T[n, m] = op(B)^T op(A)^T,
 * so the call swaps the operands and the two sizes and keeps each
 * operand's transpose flag and leading dimension (kl_cublas_gemm_call). */
#include "backend/cuda/cuda.h"
#include "core/error.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OP_N = 0, OP_T = 1, MATH_DEFAULT = 0, MATH_TF32 = 3 };

kl_cublas_call kl_cublas_gemm_call(const kl_gemm_shape *g)
{
    kl_cublas_call c = {
        .op_first = g->trans_b ? OP_T : OP_N, .op_second = g->trans_a ? OP_T : OP_N,
        .m = g->n, .n = g->m, .k = g->k, .ld_first = g->ldb, .ld_second = g->lda, .ld_out = g->ldc,
    };
    return c;
}

static int cublas_load(kl_cuda_backend *c)
{
    kl_cublas *b = &c->cublas;
    if (b->base.tried) return b->base.handle != NULL;
    static const char *const names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
    if (!kl_cuda_library_open(&b->base, "KILN_CUBLAS", names, 3)) return 0;
    *(void **)&b->base.create = dlsym(b->base.lib, "cublasCreate_v2");
    *(void **)&b->base.destroy = dlsym(b->base.lib, "cublasDestroy_v2");
    *(void **)&b->base.set_stream = dlsym(b->base.lib, "cublasSetStream_v2");
    *(void **)&b->set_math = dlsym(b->base.lib, "cublasSetMathMode");
    *(void **)&b->sgemm = dlsym(b->base.lib, "cublasSgemm_v2");
    *(void **)&b->dgemm = dlsym(b->base.lib, "cublasDgemm_v2");
    if (!b->base.create || !b->base.destroy || !b->base.set_stream || !b->set_math || !b->sgemm || !b->dgemm) return 0;
    if (!kl_cuda_library_handle(&b->base, c->stream)) return 0;
    b->set_math(b->base.handle, b->base.tf32 ? MATH_TF32 : MATH_DEFAULT);
    return 1;
}

int kl_cuda_supports(kl_backend *b, const kl_pattern *p)
{
    kl_cuda_backend *c = (kl_cuda_backend *)b;
    if (p->kind == KL_PATTERN_CONV) return kl_cudnn_supports_shape(&p->conv, p->dtype) && kl_cudnn_load(&c->cudnn);
    /* kernels of their own (render_cuda.c), no library */
    if (p->kind == KL_PATTERN_SOFTMAX || p->kind == KL_PATTERN_LAYERNORM) return 1;
    return p->kind == KL_PATTERN_GEMM && (p->dtype == KL_FLOAT32 || p->dtype == KL_FLOAT64) && cublas_load(c);
}

kl_status kl_cuda_run(kl_backend *b, const kl_pattern *p, void *out, const void *const *in, uint64_t bc)
{
    (void)bc;
    const void *a = in[0], *bp = in[1];
    kl_cuda_backend *c = (kl_cuda_backend *)b;
    kl_cublas *cb = &c->cublas;
    if (p->kind == KL_PATTERN_CONV && kl_cudnn_load(&c->cudnn)) {
        c->drv.ctx_set_current(c->context);
        return kl_cudnn_run(c, p, out, a, bp);
    }
    if (p->kind != KL_PATTERN_GEMM || !cublas_load(c))
        return kl_error(KL_ERR_RUNTIME, "internal: %s was asked for a library call it does not run", b->name);
    c->drv.ctx_set_current(c->context);
    const kl_gemm_shape *g = &p->gemm;
    kl_cublas_call k = kl_cublas_gemm_call(g);
    size_t size = p->dtype == KL_FLOAT64 ? 8 : 4;
    int64_t count = 1;
    for (int i = 0; i < g->n_batch; i++) count *= g->batch_size[i];
    for (int64_t t = 0; t < count; t++) {
        int64_t rest = t, oa = 0, ob = 0, oc = 0;
        for (int i = g->n_batch - 1; i >= 0; i--) {
            int64_t idx = rest % g->batch_size[i];
            rest /= g->batch_size[i];
            oa += idx * g->batch_a[i]; ob += idx * g->batch_b[i]; oc += idx * g->batch_c[i];
        }
        const char *A = (const char *)a + oa * (int64_t)size, *B = (const char *)bp + ob * (int64_t)size;
        char *C = (char *)out + oc * (int64_t)size;
        int rc;
        if (p->dtype == KL_FLOAT32) {
            const float one = 1, zero = 0;
            rc = cb->sgemm(cb->base.handle, k.op_first, k.op_second, k.m, k.n, k.k, &one, (const float *)B, k.ld_first,
                           (const float *)A, k.ld_second, &zero, (float *)C, k.ld_out);
        } else {
            const double one = 1, zero = 0;
            rc = cb->dgemm(cb->base.handle, k.op_first, k.op_second, k.m, k.n, k.k, &one, (const double *)B, k.ld_first,
                           (const double *)A, k.ld_second, &zero, (double *)C, k.ld_out);
        }
        if (rc != 0)
            return kl_error(KL_ERR_RUNTIME, "%s: cuBLAS gemm (%d x %d x %d) failed with status %d", b->name, g->m, g->n,
                            g->k, rc);
    }
    return KL_OK;
}

void kl_cublas_close(kl_cuda_backend *c)
{
    kl_cublas *b = &c->cublas;
    if (b->base.handle) b->base.destroy(b->base.handle);
    b->base.handle = NULL;
}
