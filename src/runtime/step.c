/* step.c: a fused kernel's memory around its launch, for one launch or a
 * group's (group.c): its inputs brought back to the device and pinned, its
 * outputs allocated and pinned, then handed to their vars. */
#include "runtime/step.h"
#include "core/dtype.h"
#include <stddef.h>
#include <stdio.h>
#include <string.h>

void kl_step_init(kl_step *st, kl_var *v)
{
    memset(st, 0, offsetof(kl_step, args));
    st->v = v;
    st->args.n_bufs = st->args.n_iargs = st->args.n_fargs = st->args.n_extra = 0;
}

/* A failed allocation on a device (which says why) that was not for want of
 * memory: a fault of an earlier kernel, say; its message stands. */
int kl_device_failed(const kl_backend *dev)
{
    return !dev->ops->host_visible && kl_last_status() == KL_ERR_RUNTIME;
}

kl_status kl_step_inputs_resident(const kl_step *st)
{
    for (int i = 1 + st->args.n_extra; i < st->args.n_bufs; i++) {
        kl_var *in = st->args.bufs[i];
        if (!in->buf) return kl_error(KL_ERR_RUNTIME, "internal: kernel input b%d not computed", i);
        KL_TRY(kl_buffer_resident(in->buf));
    }
    return KL_OK;
}

void kl_step_input_pointers(const kl_step *st, void **ptrs)
{
    for (int i = 1 + st->args.n_extra; i < st->args.n_bufs; i++) ptrs[i] = st->args.bufs[i]->buf->data;
}

kl_status kl_step_outputs_new(kl_context *ctx, const kl_step *st, kl_buffer **out, void **ptrs)
{
    kl_backend *dev = st->v->device;
    for (int j = 0; j <= st->args.n_extra; j++) {
        kl_var *o = j ? st->args.bufs[j] : st->v;
        size_t nbytes = (size_t)o->numel * kl_dtype_size(o->dtype);
        out[j] = kl_buffer_new(ctx, dev, nbytes);
        if (out[j]) {
            /* pinned: making room for the next output must not move this one */
            out[j]->pin = ctx->residency_step;
            ptrs[j] = out[j]->data;
            continue;
        }
        kl_step_outputs_release(st, out);
        if (kl_device_failed(dev)) return KL_ERR_RUNTIME;
        kl_memory_stats m;
        dev->ops->memory(dev, &m);
        return kl_error(KL_ERR_MEMORY, "out of memory: %zu bytes on %s for a %s result (%llu bytes in use)", nbytes,
                        dev->name, kl_var_op_name(o), (unsigned long long)m.bytes_in_use);
    }
    return KL_OK;
}

void kl_step_outputs_release(const kl_step *st, kl_buffer **out)
{
    for (int j = 0; j <= st->args.n_extra; j++) {
        if (out[j]) kl_buffer_release(out[j]);
        out[j] = NULL;
    }
}

void kl_step_outputs_set(const kl_step *st, kl_buffer **out)
{
    for (int j = 0; j <= st->args.n_extra; j++) kl_var_set_computed(j ? st->args.bufs[j] : st->v, out[j]);
}
