/* code.c: user kernels (jt.code). The outputs of one kernel are separate vars
 * sharing a node, so the graph stays single-output; running any of them runs
 * the kernel once and fills every live sibling. Gradients are further user
 * kernels, given per input. */
#include "ops/ops.h"
#include "backend/backend.h"
#include "core/context.h"
#include <stdlib.h>
#include <string.h>

typedef struct kl_code_node {
    int refcount;
    char *source;
    kl_code_lang lang;
    int n_outputs;
    kl_code_output outs[KL_MAX_INPUTS];
    kl_var *vars[KL_MAX_INPUTS]; /* weak: cleared when an output var goes */
    char *grads[KL_MAX_INPUTS];
} kl_code_node;

static void node_release(kl_code_node *n)
{
    if (!n || --n->refcount > 0) return;
    free(n->source);
    for (int i = 0; i < KL_MAX_INPUTS; i++) free(n->grads[i]);
    free(n);
}

static void code_detach(kl_op *op)
{
    kl_code_node *n = op->p.code.node;
    if (!n) return;
    if (n->vars[op->p.code.index]) n->vars[op->p.code.index] = NULL;
    op->p.code.node = NULL;
    node_release(n);
}

static int is_dynamic(const kl_code_output *o)
{
    for (int d = 0; d < o->ndim; d++) if (o->shape[d] < 0) return 1;
    return 0;
}

kl_status kl_code(kl_context *ctx, int n_inputs, kl_var *const *inputs,
                  int n_outputs, const kl_code_output *outs, const char *source, kl_code_lang lang,
                  int n_grads, const char *const *grad_sources, kl_var **outputs)
{
    KL_ARG(outputs, "code", "outputs");
    if (n_outputs < 1 || n_outputs > KL_MAX_INPUTS)
        return kl_error(KL_ERR_VALUE, "code: between 1 and %d outputs, got %d", KL_MAX_INPUTS, n_outputs);
    for (int i = 0; i < n_outputs; i++) outputs[i] = NULL;
    KL_ARG(ctx, "code", "context");
    KL_ARG(source, "code", "source");
    KL_ARG(outs, "code", "outs");
    if ((unsigned)lang > KL_CODE_CUDA) return kl_error(KL_ERR_VALUE, "code: language %d is none of C, C++, CUDA", (int)lang);
    if (n_inputs < 0 || n_inputs > KL_MAX_INPUTS)
        return kl_error(KL_ERR_VALUE, "code: at most %d inputs, got %d", KL_MAX_INPUTS, n_inputs);
    if (n_inputs > 0) KL_ARG(inputs, "code", "inputs");
    if (n_grads < 0 || n_grads > n_inputs) return kl_error(KL_ERR_VALUE, "code: %d gradient kernels for %d inputs", n_grads, n_inputs);
    if (n_grads > 0) KL_ARG(grad_sources, "code", "grad_sources");
    int dynamic = 0;
    for (int i = 0; i < n_outputs; i++) {
        if ((unsigned)outs[i].dtype >= KL_DTYPE_COUNT) return kl_error(KL_ERR_TYPE, "code: output %d has an invalid dtype", i);
        int64_t shape[KL_MAX_DIMS];
        if (outs[i].ndim < 0 || outs[i].ndim > KL_MAX_DIMS) return kl_error(KL_ERR_VALUE, "code: output %d has rank %d", i, outs[i].ndim);
        for (int d = 0; d < outs[i].ndim; d++) {
            if (outs[i].shape[d] == INT64_MIN) return kl_error(KL_ERR_VALUE, "code: output %d has dim %d of INT64_MIN", i, d);
            shape[d] = outs[i].shape[d] < 0 ? -outs[i].shape[d] : outs[i].shape[d];
        }
        KL_TRY(kl_check_shape("code", outs[i].ndim, shape));
        dynamic |= is_dynamic(&outs[i]);
    }
    for (int i = 0; i < n_inputs; i++) {
        KL_VAR_ARG(inputs[i], "code", "an input");
        if (inputs[i]->ctx != ctx) return kl_error(KL_ERR_VALUE, "code: input %d belongs to another context", i);
    }
    kl_code_node *node = calloc(1, sizeof *node);
    if (!node || !(node->source = strdup(source))) {
        free(node);
        return kl_error(KL_ERR_MEMORY, "code: out of memory");
    }
    node->lang = lang;
    node->n_outputs = n_outputs;
    memcpy(node->outs, outs, (size_t)n_outputs * sizeof *outs);
    for (int k = 0; k < n_grads; k++)
        if (grad_sources[k] && !(node->grads[k] = strdup(grad_sources[k]))) { node->refcount = 1; node_release(node); return kl_error(KL_ERR_MEMORY, "code: out of memory"); }
    kl_status s = KL_OK;
    for (int i = 0; i < n_outputs && s == KL_OK; i++) {
        kl_op o = {.kind = KL_OP_CODE, .n_inputs = n_inputs, .p.code = {node, i, code_detach}};
        for (int k = 0; k < n_inputs; k++) o.inputs[k] = inputs[k];
        int64_t shape[KL_MAX_DIMS];
        for (int d = 0; d < outs[i].ndim; d++) {
            if (outs[i].shape[d] == INT64_MIN) return kl_error(KL_ERR_VALUE, "code: output %d has dim %d of INT64_MIN", i, d);
            shape[d] = outs[i].shape[d] < 0 ? -outs[i].shape[d] : outs[i].shape[d];
        }
        node->refcount++;
        s = kl_var_new(ctx, outs[i].dtype, outs[i].ndim, shape, &o, &outputs[i]);
        if (s != KL_OK) node->refcount--;
        else node->vars[i] = outputs[i];
    }
    if (s == KL_OK && dynamic) s = kl_sync(outputs, n_outputs);
    if (s != KL_OK) {
        /* held while the outputs go: the last of them would free the node */
        node->refcount++;
        for (int i = 0; i < n_outputs; i++) { kl_var_release(outputs[i]); outputs[i] = NULL; }
        node_release(node);
    }
    return s;
}

const char *kl_code_source(const kl_var *v, kl_code_lang *lang)
{
    *lang = v->op.p.code.node->lang;
    return v->op.p.code.node->source;
}

/* A code op's kernel is host code: unless it is a CUDA op's (which is given
 * the device's memory), on a device whose memory the host cannot read its
 * inputs are read through host copies and its outputs written to host
 * buffers (bufs), then copied to the device. */
static kl_status stage_outputs_to_device(kl_context *ctx, kl_var *v, kl_buffer **bufs, int no)
{
    kl_status s = KL_OK;
    for (int i = 0; i < no; i++) {
        if (!bufs[i]) continue;
        kl_buffer *d = kl_buffer_new(ctx, v->device, bufs[i]->nbytes);
        if (!d) s = kl_error(KL_ERR_MEMORY, "code: out of memory on %s for output %d", v->device->name, i);
        else if ((s = v->device->ops->copy(v->device, d->data, bufs[i]->data, bufs[i]->nbytes, KL_COPY_HOST_TO_DEVICE)))
            kl_buffer_release(d);
        else { kl_buffer_release(bufs[i]); bufs[i] = d; }
        if (s != KL_OK) break;
    }
    return s;
}

kl_status kl_code_run(kl_context *ctx, kl_var *v, kl_kernel_fn fn)
{
    kl_code_node *node = v->op.p.code.node;
    node->refcount++; /* siblings computed below detach from it */
    kl_backend *host = ctx->backends[0];
    int cuda = node->lang == KL_CODE_CUDA, staging = !cuda && !v->device->ops->host_visible;
    kl_residency_next_step(ctx);
    int no = node->n_outputs, ni = v->op.n_inputs;
    void *ptrs[2 * KL_MAX_INPUTS + 2];
    kl_code_runtime runtime;
    kl_buffer *bufs[KL_MAX_INPUTS] = {0};
    int64_t dims[KL_MAX_INPUTS * KL_MAX_DIMS], iarg[2 * KL_MAX_INPUTS * KL_MAX_DIMS];
    int nd = 0, na = 0;
    kl_status s = KL_OK;
    /* CUDA host code gets the device's memory itself: the inputs there
     * (pinned) before the outputs are made, which must not move them, nor
     * one another */
    for (int k = 0; k < ni && s == KL_OK; k++)
        if (!v->op.inputs[k]->buf) s = kl_error(KL_ERR_RUNTIME, "internal: code input %d not computed", k);
        else if (cuda) s = kl_buffer_resident(v->op.inputs[k]->buf);
    for (int i = 0; i < no && s == KL_OK; i++) {
        const kl_code_output *o = &node->outs[i];
        int64_t numel = 1;
        for (int d = 0; d < o->ndim; d++) {
            int64_t size = o->shape[d] < 0 ? -o->shape[d] : o->shape[d];
            dims[nd++] = iarg[na++] = size;
            numel *= size;
        }
        bufs[i] = kl_buffer_new(ctx, staging ? host : v->device, (size_t)numel * kl_dtype_size(o->dtype));
        if (!bufs[i]) s = kl_error(KL_ERR_MEMORY, "code: out of memory for output %d", i);
        else bufs[i]->pin = ctx->residency_step, ptrs[i] = bufs[i]->data;
    }
    for (int k = 0; k < ni && s == KL_OK; k++) {
        kl_var *in = v->op.inputs[k];
        if (cuda) ptrs[no + k] = in->buf->data;
        else if (!(ptrs[no + k] = (void *)kl_buffer_host(in->buf))) s = KL_ERR_MEMORY;
        for (int d = 0; d < in->ndim; d++) iarg[na++] = in->shape[d];
    }
    ptrs[no + ni] = dims;
    if (cuda) kl_code_runtime_init(&runtime, ctx, v), ptrs[no + ni + 1] = &runtime.rt;
    kl_launch_args la = {ptrs, iarg, NULL, no + ni + 1 + cuda, na, 0, 0, 0};
    if (s == KL_OK) s = host->ops->launch(host, fn, &la);
    if (s == KL_OK && cuda) s = kl_code_runtime_status(&runtime);
    if (s == KL_OK) ctx->counters.kernels_launched++;
    if (s == KL_OK && staging) s = stage_outputs_to_device(ctx, v, bufs, no);
    for (int i = 0, at = 0; i < no; i++) {
        const kl_code_output *o = &node->outs[i];
        kl_var *out = node->vars[i];
        if (s == KL_OK && out && !out->buf) {
            for (int d = 0; d < o->ndim; d++) {
                int64_t max = o->shape[d] < 0 ? -o->shape[d] : o->shape[d];
                if (o->shape[d] < 0 && (dims[at + d] < 0 || dims[at + d] > max))
                    s = kl_error(KL_ERR_RUNTIME, "code: output %d dim %d set to %lld, outside 0..%lld",
                                 i, d, (long long)dims[at + d], (long long)max);
                else if (o->shape[d] < 0) out->shape[d] = dims[at + d];
            }
            out->numel = kl_shape_numel(out->ndim, out->shape);
            if (s == KL_OK) { kl_var_set_computed(out, bufs[i]); bufs[i] = NULL; }
        }
        at += o->ndim;
        kl_buffer_release(bufs[i]);
    }
    node_release(node);
    return s;
}

kl_status kl_code_backward(kl_var *v, int k, kl_var *dv, kl_var **out)
{
    *out = NULL;
    kl_code_node *node = v->op.p.code.node;
    kl_var *x = v->op.inputs[k];
    if (!node || !node->grads[k] || !kl_dtype_is_float(x->dtype)) return KL_OK;
    if (node->n_outputs != 1)
        return kl_error(KL_ERR_VALUE, "code: gradient kernels are supported for one-output code ops only");
    kl_var *ins[KL_MAX_INPUTS + 2];
    int n = v->op.n_inputs;
    if (n + 2 > KL_MAX_INPUTS) return kl_error(KL_ERR_VALUE, "code: too many inputs for a gradient kernel");
    for (int i = 0; i < n; i++) ins[i] = v->op.inputs[i];
    ins[n] = v;
    /* the gradient kernel reads dout with the output's element type */
    kl_var *dcast = NULL;
    if (dv->dtype != v->dtype) KL_TRY(kl_cast(dv, v->dtype, &dcast));
    ins[n + 1] = dcast ? dcast : dv;
    kl_code_output o = {.dtype = x->dtype, .ndim = x->ndim};
    memcpy(o.shape, x->shape, (size_t)x->ndim * sizeof *x->shape);
    kl_status s = kl_code(v->ctx, n + 2, ins, 1, &o, node->grads[k], node->lang, 0, NULL, out);
    kl_var_release(dcast);
    return s;
}

/* Compiles user sources of one language for a backend, and for a second
 * (NULL: none) where the compile check wants them too. */
static kl_status compile_sources(kl_context *ctx, const char *who, int n, const char *const *sources, kl_lang lang,
                                 kl_backend *backend, kl_backend *also)
{
    KL_ARG(ctx, who, "ctx");
    if (n < 0) return kl_error(KL_ERR_VALUE, "%s: %d sources", who, n);
    if (n == 0) return KL_OK;
    KL_ARG(sources, who, "sources");
    for (int i = 0; i < n; i++)
        if (!sources[i]) return kl_error(KL_ERR_VALUE, "%s: source %d is NULL", who, i);
    kl_lang *langs = malloc((size_t)n * sizeof *langs);
    kl_kernel_fn *fns = malloc((size_t)n * sizeof *fns);
    kl_status s = langs && fns ? KL_OK : kl_error(KL_ERR_MEMORY, "%s: out of memory", who);
    for (int i = 0; s == KL_OK && i < n; i++) langs[i] = lang;
    if (s == KL_OK) s = kl_jit_get_many(ctx, backend, n, sources, langs, fns);
    if (s == KL_OK && also && also != backend) s = kl_jit_get_many(ctx, also, n, sources, langs, fns);
    free(langs);
    free(fns);
    return s;
}

kl_status kl_code_compile(kl_context *ctx, int n, const char *const *sources, kl_code_lang lang)
{
    KL_ARG(ctx, "kl_code_compile", "ctx");
    return compile_sources(ctx, "kl_code_compile", n, sources, lang == KL_CODE_C ? KL_LANG_C : KL_LANG_CXX,
                           ctx->backends[0] /* code runs on the host */, NULL);
}

kl_status kl_code_compile_device(kl_context *ctx, int n, const char *const *sources)
{
    KL_ARG(ctx, "kl_code_compile_device", "ctx");
    return compile_sources(ctx, "kl_code_compile_device", n, sources, KL_LANG_CUDA, ctx->device, ctx->compile_check);
}
