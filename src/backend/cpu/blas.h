/* blas.h: OpenBLAS's gemm, loaded with dlopen when first wanted, so kiln
 * builds and runs without it (the fused loop kernel then does the work). */
#ifndef KL_BLAS_H
#define KL_BLAS_H

#include <stdint.h>

enum { KL_BLAS_ROW_MAJOR = 101, KL_BLAS_NO_TRANS = 111, KL_BLAS_TRANS = 112 };

typedef void (*kl_sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha,
                            const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
typedef void (*kl_dgemm_fn)(int order, int ta, int tb, int m, int n, int k, double alpha,
                            const double *a, int lda, const double *b, int ldb, double beta, double *c, int ldc);

typedef struct {
    int tried, available, disabled;
    char path[256];
    void *handle;
    kl_sgemm_fn sgemm;
    kl_dgemm_fn dgemm;
} kl_blas;

/* Reads KILN_BLAS when a context is made: 0 disables BLAS, a path picks the library. */
void kl_blas_init(kl_blas *b);
/* 1 when gemm can be called (loads the library on first use). */
int kl_blas_available(kl_blas *b);

#endif
