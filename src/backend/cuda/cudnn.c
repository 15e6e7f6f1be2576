/* cudnn.c: convolutions on the device with cuDNN's convolution API (cuDNN 9,
 * loaded with dlopen at the first convolution; KILN_CUDNN=0 leaves them to
 * generated kernels). Forward, backward data and backward weights, each with
 * the first algorithm cuDNN's heuristics rank that is deterministic and
 * fits its workspace bound (any that fits when none is deterministic), its
 * workspace from the device's pool; cross-correlation, as kiln's and
 * PyTorch's convolutions are; FMA math (no TF32) unless KILN_TF32=1.
 *
 * kiln's convolution shapes become cuDNN descriptors here
 * (kl_cudnn_describe): 1-d convolutions as 2-d ones of height 1. cuDNN pads
 * both sides alike, so a convolution padded unevenly stays with the
 * generated kernels. Describing needs no device, so the C tests check the
 * mapping on any machine with cuDNN: the output dims cuDNN derives from
 * the descriptors are kiln's. */
#include "backend/cuda/cuda.h"
#include "core/error.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DATA_FLOAT = 0, DATA_DOUBLE = 1, TENSOR_NCHW = 0, CROSS_CORRELATION = 1, MATH_DEFAULT = 0, MATH_FMA = 3,
       DETERMINISTIC = 1, MAX_ALGOS = 16 };
#define WORKSPACE_LIMIT ((size_t)1 << 30)

/* cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t: the same layout */
typedef struct {
    int algo, status;
    float time;
    size_t memory;
    int determinism, math_type, reserved[3];
} algo_perf;

#define BIND(field, symbol) \
    do { if (ok && !(*(void **)&d->field = dlsym(d->base.lib, symbol))) ok = 0; } while (0)

int kl_cudnn_load(kl_cudnn *d)
{
    if (d->base.tried) return d->base.lib != NULL;
    static const char *const names[] = {"libcudnn.so.9", "/usr/local/cuda/lib64/libcudnn.so.9"};
    if (!kl_cuda_library_open(&d->base, "KILN_CUDNN", names, 2)) return 0;
    int ok = 1;
    BIND(base.create, "cudnnCreate");
    BIND(base.destroy, "cudnnDestroy");
    BIND(base.set_stream, "cudnnSetStream");
    BIND(create_tensor, "cudnnCreateTensorDescriptor");
    BIND(set_tensor, "cudnnSetTensorNdDescriptor");
    BIND(destroy_tensor, "cudnnDestroyTensorDescriptor");
    BIND(create_filter, "cudnnCreateFilterDescriptor");
    BIND(set_filter, "cudnnSetFilterNdDescriptor");
    BIND(destroy_filter, "cudnnDestroyFilterDescriptor");
    BIND(create_conv, "cudnnCreateConvolutionDescriptor");
    BIND(set_conv, "cudnnSetConvolutionNdDescriptor");
    BIND(set_groups, "cudnnSetConvolutionGroupCount");
    BIND(set_math, "cudnnSetConvolutionMathType");
    BIND(destroy_conv, "cudnnDestroyConvolutionDescriptor");
    BIND(output_dims, "cudnnGetConvolutionNdForwardOutputDim");
    BIND(fwd_algos, "cudnnGetConvolutionForwardAlgorithm_v7");
    BIND(bwd_data_algos, "cudnnGetConvolutionBackwardDataAlgorithm_v7");
    BIND(bwd_filter_algos, "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
    BIND(forward, "cudnnConvolutionForward");
    BIND(backward_data, "cudnnConvolutionBackwardData");
    BIND(backward_filter, "cudnnConvolutionBackwardFilter");
    BIND(error_string, "cudnnGetErrorString");
    if (!ok) {
        dlclose(d->base.lib);
        d->base.lib = NULL;
    }
    return ok;
}

int kl_cudnn_supports_shape(const kl_conv_shape *s, kl_dtype t)
{
    /* an epilogue stays a fused kernel of its own on the GPU */
    if ((t != KL_FLOAT32 && t != KL_FLOAT64) || s->nd < 1 || s->nd > 3 || s->groups < 1 || s->epilogue.n) return 0;
    for (int d = 0; d < s->nd; d++)
        if (s->pad_lo[d] != s->pad_hi[d]) return 0;
    return 1;
}

static const char *status_text(const kl_cudnn *d, int rc)
{
    return d->error_string ? d->error_string(rc) : "cuDNN error";
}

kl_status kl_cudnn_describe(kl_cudnn *d, const kl_conv_shape *s, kl_dtype t, kl_cudnn_descs *out)
{
    memset(out, 0, sizeof *out);
    if (!kl_cudnn_supports_shape(s, t)) return kl_error(KL_ERR_VALUE, "cuDNN: a convolution it does not run");
    /* 1-d as 2-d of height 1: cuDNN wants at least 4-d tensors */
    int nd = s->nd < 2 ? 2 : s->nd, lead = nd - s->nd;
    int x[5] = {(int)s->n, (int)s->ic}, y[5] = {(int)s->n, (int)s->oc}, w[5] = {(int)s->oc, (int)(s->ic / s->groups)};
    int pad[3], stride[3], dil[3];
    for (int i = 0; i < nd; i++) {
        int k = i - lead; /* kiln's dim, or a leading dim of 1 */
        x[2 + i] = k < 0 ? 1 : (int)s->in[k];
        y[2 + i] = k < 0 ? 1 : (int)s->out[k];
        w[2 + i] = k < 0 ? 1 : (int)s->k[k];
        pad[i] = k < 0 ? 0 : (int)s->pad_lo[k];
        stride[i] = k < 0 ? 1 : (int)s->stride[k];
        dil[i] = k < 0 ? 1 : (int)s->dilation[k];
    }
    int xs[5], ys[5];
    xs[nd + 1] = ys[nd + 1] = 1;
    for (int i = nd; i >= 0; i--) { xs[i] = xs[i + 1] * x[i + 1]; ys[i] = ys[i + 1] * y[i + 1]; }
    int dt = t == KL_FLOAT64 ? DATA_DOUBLE : DATA_FLOAT;
    int rc = d->create_tensor(&out->x);
    if (!rc) rc = d->set_tensor(out->x, dt, nd + 2, x, xs);
    if (!rc) rc = d->create_tensor(&out->y);
    if (!rc) rc = d->set_tensor(out->y, dt, nd + 2, y, ys);
    if (!rc) rc = d->create_filter(&out->w);
    if (!rc) rc = d->set_filter(out->w, dt, TENSOR_NCHW, nd + 2, w);
    if (!rc) rc = d->create_conv(&out->conv);
    if (!rc) rc = d->set_conv(out->conv, nd, pad, stride, dil, CROSS_CORRELATION, dt);
    if (!rc) rc = d->set_groups(out->conv, (int)s->groups);
    if (!rc) rc = d->set_math(out->conv, t == KL_FLOAT32 && d->base.tf32 ? MATH_DEFAULT : MATH_FMA);
    if (rc) {
        kl_cudnn_describe_free(d, out);
        return kl_error(KL_ERR_RUNTIME, "cuDNN: describing a %d-d convolution failed: %s", s->nd, status_text(d, rc));
    }
    out->nd = nd;
    return KL_OK;
}

void kl_cudnn_describe_free(kl_cudnn *d, kl_cudnn_descs *s)
{
    if (s->x) d->destroy_tensor(s->x);
    if (s->y) d->destroy_tensor(s->y);
    if (s->w) d->destroy_filter(s->w);
    if (s->conv) d->destroy_conv(s->conv);
    memset(s, 0, sizeof *s);
}

/* The first ranked algorithm that succeeds and fits, deterministic if any is. */
static int pick(const algo_perf *p, int n, size_t *workspace)
{
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++)
            if (p[i].status == 0 && p[i].memory <= WORKSPACE_LIMIT && (pass || p[i].determinism == DETERMINISTIC)) {
                *workspace = p[i].memory;
                return p[i].algo;
            }
    return -1;
}

kl_status kl_cudnn_run(kl_cuda_backend *c, const kl_pattern *p, void *out, const void *a, const void *b)
{
    kl_cudnn *d = &c->cudnn;
    if (!kl_cuda_library_handle(&d->base, c->stream))
        return kl_error(KL_ERR_RUNTIME, "%s: cudnnCreate failed", c->base.name);
    kl_cudnn_descs s;
    KL_TRY(kl_cudnn_describe(d, &p->conv, p->dtype, &s));
    algo_perf perf[MAX_ALGOS];
    int n = 0, rc;
    if (p->conv.kind == KL_CONV_FORWARD) rc = d->fwd_algos(d->base.handle, s.x, s.w, s.conv, s.y, MAX_ALGOS, &n, perf);
    else if (p->conv.kind == KL_CONV_BACKWARD_DATA) rc = d->bwd_data_algos(d->base.handle, s.w, s.y, s.conv, s.x, MAX_ALGOS, &n, perf);
    else rc = d->bwd_filter_algos(d->base.handle, s.x, s.y, s.conv, s.w, MAX_ALGOS, &n, perf);
    size_t ws_bytes = 0;
    int algo = rc == 0 ? pick(perf, n, &ws_bytes) : -1;
    void *ws = NULL;
    kl_status st = KL_OK;
    if (algo < 0)
        st = kl_error(KL_ERR_RUNTIME, "%s: cuDNN found no algorithm for this convolution (%s)", c->base.name,
                      rc ? status_text(d, rc) : "none fits the workspace bound");
    if (st == KL_OK && ws_bytes && !(ws = kl_cuda_alloc(&c->base, ws_bytes)))
        st = kl_error(KL_ERR_MEMORY, "%s: out of memory for %zu bytes of cuDNN workspace", c->base.name, ws_bytes);
    if (st == KL_OK) {
        const double one64 = 1, zero64 = 0;
        const float one32 = 1, zero32 = 0;
        const void *one = p->dtype == KL_FLOAT64 ? (const void *)&one64 : (const void *)&one32;
        const void *zero = p->dtype == KL_FLOAT64 ? (const void *)&zero64 : (const void *)&zero32;
        /* the pattern's operands: forward (src, weights) -> dst; backward data
         * (diff dst, weights) -> diff src; backward weights (src, diff dst) -> diff weights */
        if (p->conv.kind == KL_CONV_FORWARD)
            rc = d->forward(d->base.handle, one, s.x, a, s.w, b, s.conv, algo, ws, ws_bytes, zero, s.y, out);
        else if (p->conv.kind == KL_CONV_BACKWARD_DATA)
            rc = d->backward_data(d->base.handle, one, s.w, b, s.y, a, s.conv, algo, ws, ws_bytes, zero, s.x, out);
        else
            rc = d->backward_filter(d->base.handle, one, s.x, a, s.y, b, s.conv, algo, ws, ws_bytes, zero, s.w, out);
        if (rc) st = kl_error(KL_ERR_RUNTIME, "%s: cuDNN convolution failed: %s", c->base.name, status_text(d, rc));
    }
    if (ws) kl_cuda_free(&c->base, ws, ws_bytes); /* stream-ordered: after the convolution */
    kl_cudnn_describe_free(d, &s);
    return st;
}

void kl_cudnn_close(kl_cudnn *d)
{
    if (d->base.handle) d->base.destroy(d->base.handle);
    d->base.handle = NULL;
}
