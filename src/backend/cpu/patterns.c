/* patterns.c: the library patterns the CPU backend runs. Matrix products:
 * float32 with oneDNN's sgemm (it runs on kiln's OpenMP threads, where
 * OpenBLAS's own pthreads would spin against them), float64 and KILN_DNNL=0
 * with OpenBLAS. Convolutions: float32 with oneDNN, whose primitives are
 * made on first use and kept. Softmax and log-softmax run as kiln's own
 * kernel (KL_KD_SOFTMAX, render_c.c), not a library call. KILN_BLAS=0 turns
 * all of it off. */
#include "backend/cpu/cpu.h"
#include "core/context.h"
#include "core/error.h"

static int gemm_supported(kl_cpu_backend *c, kl_dtype dtype)
{
    if (c->blas.disabled || (dtype != KL_FLOAT32 && dtype != KL_FLOAT64)) return 0;
    if (dtype == KL_FLOAT32 && kl_dnnl_available(&c->dnnl)) return 1;
    return kl_blas_available(&c->blas);
}

static int debug_of(kl_backend *b) { return b->ctx ? kl_context_debug(b->ctx) : 0; }

int kl_cpu_supports(kl_backend *b, const kl_pattern *p)
{
    kl_cpu_backend *c = (kl_cpu_backend *)b;
    /* the thread count the call will run with: oneDNN picks implementations (and layouts) by it */
    kl_cpu_threads_apply(&c->threads);
    if (p->kind == KL_PATTERN_GEMM) return gemm_supported(c, p->dtype);
    /* kernels of their own (render_c.c) */
    if (p->kind == KL_PATTERN_SOFTMAX || p->kind == KL_PATTERN_LAYERNORM) return !c->blas.disabled;
    if (p->dtype != KL_FLOAT32 || !kl_dnnl_available(&c->dnnl)) return 0;
    return kl_dnnl_conv_get(&c->dnnl, &p->conv, debug_of(b)) != NULL;
}

static kl_status run_gemm(kl_cpu_backend *c, const kl_pattern *p, void *out, const void *a, const void *bp)
{
    const kl_gemm_shape *g = &p->gemm;
    int64_t count = 1;
    for (int i = 0; i < g->n_batch; i++) count *= g->batch_size[i];
    int ta = g->trans_a ? KL_BLAS_TRANS : KL_BLAS_NO_TRANS, tb = g->trans_b ? KL_BLAS_TRANS : KL_BLAS_NO_TRANS;
    int use_dnnl = p->dtype == KL_FLOAT32 && kl_dnnl_available(&c->dnnl);
    kl_status s = KL_OK;
    for (int64_t t = 0; t < count && s == KL_OK; t++) {
        int64_t rest = t, oa = 0, ob = 0, oc = 0;
        for (int i = g->n_batch - 1; i >= 0; i--) {
            int64_t idx = rest % g->batch_size[i];
            rest /= g->batch_size[i];
            oa += idx * g->batch_a[i]; ob += idx * g->batch_b[i]; oc += idx * g->batch_c[i];
        }
        if (use_dnnl)
            s = kl_dnnl_sgemm(&c->dnnl, g->trans_a, g->trans_b, g->m, g->n, g->k, (const float *)a + oa, g->lda,
                              (const float *)bp + ob, g->ldb, (float *)out + oc, g->ldc);
        else if (p->dtype == KL_FLOAT32)
            c->blas.sgemm(KL_BLAS_ROW_MAJOR, ta, tb, g->m, g->n, g->k, 1.0f, (const float *)a + oa, g->lda,
                          (const float *)bp + ob, g->ldb, 0.0f, (float *)out + oc, g->ldc);
        else
            c->blas.dgemm(KL_BLAS_ROW_MAJOR, ta, tb, g->m, g->n, g->k, 1.0, (const double *)a + oa, g->lda,
                          (const double *)bp + ob, g->ldb, 0.0, (double *)out + oc, g->ldc);
    }
    return s;
}

static kl_status run_conv(kl_cpu_backend *c, const kl_pattern *p, void *out, const void *const *in,
                          uint64_t b_contents)
{
    kl_dnnl_conv *conv = NULL;
    if (!p->a_layout && !p->residual_layout && !p->out_layout)
        conv = kl_dnnl_conv_get_row_major(&c->dnnl, &p->conv, debug_of(&c->base));
    if (!conv) conv = kl_dnnl_conv_get(&c->dnnl, &p->conv, 0);
    if (!conv) return kl_error(KL_ERR_RUNTIME, "internal: oneDNN refused a convolution it accepted before");
    size_t scratch_bytes = kl_dnnl_conv_scratch_bytes(conv);
    void *scratch = scratch_bytes ? kl_host_alloc(&c->alloc, scratch_bytes) : NULL;
    if (scratch_bytes && !scratch)
        return kl_error(KL_ERR_MEMORY, "out of memory: %zu bytes of convolution scratch", scratch_bytes);
    /* the weights' reorder is kept only for forward and backward data: the
     * backward-weights form's b is the output gradient, new every step */
    uint64_t weights = p->conv.kind == KL_CONV_BACKWARD_WEIGHTS ? 0 : b_contents;
    kl_dnnl_kept kept = {p->a_layout, p->residual_layout, p->out_layout};
    kl_status s = kl_dnnl_conv_run(&c->dnnl, conv, in[0], in[1], out, scratch, weights, in + 2, &kept);
    if (scratch) kl_host_free(&c->alloc, scratch, scratch_bytes);
    return s;
}

uint32_t kl_cpu_layout(kl_backend *b, const kl_pattern *p, int of_result)
{
    kl_cpu_backend *c = (kl_cpu_backend *)b;
    if (p->kind != KL_PATTERN_CONV || p->conv.kind != KL_CONV_FORWARD || !kl_dnnl_available(&c->dnnl)) return 0;
    kl_dnnl_conv *conv = kl_dnnl_conv_get(&c->dnnl, &p->conv, 0);
    return conv ? kl_dnnl_conv_layout(conv, of_result) : 0;
}

kl_status kl_cpu_to_row_major(kl_backend *b, const kl_pattern *p, void *result)
{
    kl_cpu_backend *c = (kl_cpu_backend *)b;
    kl_dnnl_conv *conv = p->kind == KL_PATTERN_CONV ? kl_dnnl_conv_get(&c->dnnl, &p->conv, 0) : NULL;
    if (!conv || kl_dnnl_conv_layout(conv, 1) != p->out_layout)
        return kl_error(KL_ERR_RUNTIME, "internal: no convolution left a result in layout %u", (unsigned)p->out_layout);
    return kl_dnnl_conv_to_row_major(&c->dnnl, conv, result);
}

kl_status kl_cpu_run(kl_backend *b, const kl_pattern *p, void *out, const void *const *in, uint64_t b_contents)
{
    kl_cpu_backend *c = (kl_cpu_backend *)b;
    kl_cpu_threads_apply(&c->threads);
    return p->kind == KL_PATTERN_GEMM ? run_gemm(c, p, out, in[0], in[1]) : run_conv(c, p, out, in, b_contents);
}
