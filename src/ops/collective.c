/* collective.c: MPI's all-reduce, reduce and broadcast as lazy ops. Each is
 * a library call of its own at sync (its input stored first), run in graph
 * order; in a world of one rank each is the identity (an alias of x). A
 * device with collectives of its own (NCCL on a GPU) runs them on its
 * memory; otherwise a device's memory goes through host memory and MPI. */
#include "ops/ops.h"
#include "backend/backend.h"
#include "core/context.h"
#include "dist/mpi.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAMES[] = {"mpi_all_reduce", "mpi_reduce", "mpi_broadcast"};

static kl_status check_op(const char *name, kl_var *x, kl_reduce_op op)
{
    if (op != KL_REDUCE_SUM && op != KL_REDUCE_MEAN && op != KL_REDUCE_MAX && op != KL_REDUCE_MIN)
        return kl_error(KL_ERR_VALUE, "%s: op must be add (sum), mean, max or min, got %s", name,
                        (unsigned)op < KL_REDUCE_COUNT ? kl_reduce_name(op) : "an invalid op");
    if (!kl_mpi_dtype_supported(x->dtype))
        return kl_error(KL_ERR_TYPE, "%s: %s has no MPI arithmetic; cast to float32 or an integer type", name,
                        kl_dtype_name(x->dtype));
    if (op == KL_REDUCE_MEAN && !kl_dtype_is_float(x->dtype))
        return kl_error(KL_ERR_TYPE, "%s: the mean of %s across ranks would be truncated; use op=add and divide",
                        name, kl_dtype_name(x->dtype));
    return KL_OK;
}

static kl_status collective(kl_collective_kind kind, kl_var *x, kl_reduce_op op, int root, kl_var **out)
{
    const char *name = NAMES[kind];
    KL_ARG(out, name, "out");
    *out = NULL;
    KL_VAR_ARG(x, name, "input");
    if (kind != KL_COLLECTIVE_BROADCAST) KL_TRY(check_op(name, x, op));
    int size = kl_mpi_info_size(x->ctx->mpi);
    if (kind != KL_COLLECTIVE_ALL_REDUCE && (root < 0 || root >= size))
        return kl_error(KL_ERR_VALUE, "%s: root %d is not a rank of this job (%d rank%s)", name, root, size,
                        size == 1 ? "" : "s");
    if (size == 1) return kl_reshape(x, x->ndim, x->shape, out);
    kl_op o = {.kind = KL_OP_COLLECTIVE, .n_inputs = 1, .inputs = {x}};
    o.p.collective.kind = kind;
    o.p.collective.op = op;
    o.p.collective.root = root;
    return kl_var_new(x->ctx, x->dtype, x->ndim, x->shape, &o, out);
}

kl_status kl_mpi_all_reduce(kl_var *x, kl_reduce_op op, kl_var **out)
{
    return collective(KL_COLLECTIVE_ALL_REDUCE, x, op, 0, out);
}

kl_status kl_mpi_reduce(kl_var *x, kl_reduce_op op, int root, kl_var **out)
{
    return collective(KL_COLLECTIVE_REDUCE, x, op, root, out);
}

kl_status kl_mpi_broadcast(kl_var *x, int root, kl_var **out)
{
    return collective(KL_COLLECTIVE_BROADCAST, x, KL_REDUCE_SUM, root, out);
}

kl_status kl_mpi_all_reduce_many(int n, kl_var *const *xs, kl_reduce_op op, kl_var **out)
{
    const char *name = "mpi_all_reduce_many";
    KL_ARG(out, name, "out");
    *out = NULL;
    KL_ARG(xs, name, "xs");
    _Static_assert(KL_MPI_MAX_BUCKET <= KL_MAX_INPUTS, "a bucket's vars are one op's inputs");
    if (n < 1 || n > KL_MPI_MAX_BUCKET)
        return kl_error(KL_ERR_VALUE, "%s: %d vars given (1 to %d)", name, n, KL_MPI_MAX_BUCKET);
    int64_t total = 0;
    kl_op o = {.kind = KL_OP_COLLECTIVE, .n_inputs = n};
    for (int i = 0; i < n; i++) {
        KL_VAR_ARG(xs[i], name, "a var");
        if (xs[i]->ctx != xs[0]->ctx || xs[i]->dtype != xs[0]->dtype)
            return kl_error(KL_ERR_TYPE, "%s: var %d is %s, var 0 %s (one dtype and context per call)", name, i,
                            kl_dtype_name(xs[i]->dtype), kl_dtype_name(xs[0]->dtype));
        total += xs[i]->numel;
        o.inputs[i] = xs[i];
    }
    KL_TRY(check_op(name, xs[0], op));
    o.p.collective.kind = KL_COLLECTIVE_ALL_REDUCE;
    o.p.collective.op = op;
    o.p.collective.bucket = 1;
    return kl_var_new(xs[0]->ctx, xs[0]->dtype, 1, &total, &o, out);
}

/* A bucket's vars one after another in dst (host memory). */
static kl_status pack(const kl_var *v, char *dst)
{
    for (int i = 0; i < v->op.n_inputs; i++) {
        const kl_var *x = v->op.inputs[i];
        size_t nbytes = (size_t)x->numel * kl_dtype_size(x->dtype);
        const void *src = kl_buffer_host(x->buf);
        if (!src) return KL_ERR_MEMORY;
        memcpy(dst, src, nbytes);
        dst += nbytes;
    }
    return KL_OK;
}

/* out becomes v's result when the call went well (s), else it goes */
static kl_status settle(kl_context *ctx, kl_var *v, kl_buffer *out, kl_status s)
{
    if (s != KL_OK) {
        kl_buffer_release(out);
        return s;
    }
    ctx->counters.library_calls++;
    kl_var_set_computed(v, out);
    return KL_OK;
}

static kl_status share_through_mpi(void *job, void *bytes, size_t nbytes)
{
    return kl_mpi_do_broadcast(job, bytes, bytes, nbytes, 0);
}

static kl_status agree_through_mpi(void *job, int32_t *value)
{
    return kl_mpi_do_all_reduce(job, value, value, 1, KL_INT32, KL_REDUCE_MIN);
}

/* The collective on the device's own memory (NCCL on a GPU), a bucket's
 * vars packed there first: *done 0 when the device cannot run it (asked
 * before anything is made). */
static kl_status on_device(kl_context *ctx, kl_var *v, int *done)
{
    kl_backend *dev = v->device;
    kl_collective_call call = {.kind = (int)v->op.p.collective.kind, .op = v->op.p.collective.op,
                               .root = v->op.p.collective.root, .dtype = v->dtype, .count = v->numel,
                               .rank = kl_mpi_info_rank(ctx->mpi), .size = kl_mpi_info_size(ctx->mpi),
                               .share = share_through_mpi, .agree = agree_through_mpi, .job = ctx->mpi, .probe = 1};
    *done = 0;
    KL_TRY(dev->ops->collective(dev, &call, done));
    if (!*done) return KL_OK;
    *done = 0;
    /* the inputs on the device (pinned) before the result is made, which must not move them */
    kl_residency_next_step(ctx);
    for (int i = 0; i < v->op.n_inputs; i++) KL_TRY(kl_buffer_resident(v->op.inputs[i]->buf));
    size_t nbytes = (size_t)v->numel * kl_dtype_size(v->dtype);
    kl_buffer *out = kl_buffer_new(ctx, dev, nbytes);
    if (!out) return kl_error(KL_ERR_MEMORY, "out of memory: %zu bytes on %s for an MPI collective's result", nbytes,
                              dev->name);
    out->pin = ctx->residency_step;
    kl_status s = KL_OK;
    call.src = out->data;
    if (v->op.p.collective.bucket) {
        size_t at = 0;
        for (int i = 0; i < v->op.n_inputs && s == KL_OK; i++) {
            kl_var *x = v->op.inputs[i];
            size_t n = (size_t)x->numel * kl_dtype_size(x->dtype);
            if (n) s = dev->ops->copy(dev, (char *)out->data + at, x->buf->data, n, KL_COPY_DEVICE_TO_DEVICE);
            at += n;
        }
    } else {
        call.src = v->op.inputs[0]->buf->data;
    }
    call.dst = out->data;
    call.probe = 0;
    if (s == KL_OK) s = dev->ops->collective(dev, &call, done);
    if (s == KL_OK && !*done) s = kl_error(KL_ERR_RUNTIME, "internal: %s took a collective, then refused it", dev->name);
    return settle(ctx, v, out, s);
}

kl_status kl_collective_run(kl_context *ctx, kl_var *v)
{
    const char *name = NAMES[v->op.p.collective.kind];
    for (int i = 0; i < v->op.n_inputs; i++)
        if (!v->op.inputs[i]->buf) return kl_error(KL_ERR_RUNTIME, "internal: %s input not computed", name);
    if (ctx->mpi && v->device->ops->collective) {
        int done = 0;
        KL_TRY(on_device(ctx, v, &done));
        if (done) return KL_OK;
    }
    kl_var *x = v->op.inputs[0];
    int many = v->op.p.collective.bucket;
    size_t nbytes = (size_t)v->numel * kl_dtype_size(v->dtype);
    /* a bucket is an op in a world of one too */
    if (!ctx->mpi && !many) return kl_error(KL_ERR_RUNTIME, "%s: this process already left its MPI job", name);
    /* an input no one else can read (a temporary, such as a gradient) is
     * reduced in place: its buffer becomes the result, under a new id since
     * its contents change. A device's memory MPI cannot read goes through
     * host memory: the inputs' host copies in, the result copied back. */
    int staged = !v->device->ops->host_visible;
    int in_place = !staged && !many && x->user_refs == 0 && x->graph_refs == 1 && x->buf->refcount == 1;
    kl_buffer *out = in_place ? x->buf : kl_buffer_new(ctx, v->device, nbytes);
    if (!out) return kl_error(KL_ERR_MEMORY, "out of memory: %zu bytes for an MPI collective's result", nbytes);
    if (in_place) {
        out->refcount++;
        out->id = ++ctx->next_buffer_id;
    }
    void *result = staged ? malloc(nbytes ? nbytes : 1) : out->data;
    const void *input = many ? result : staged ? kl_buffer_host(x->buf) : x->buf->data;
    kl_status s = result && input ? KL_OK
                                   : kl_error(KL_ERR_MEMORY, "%s: out of memory staging %zu bytes", name, nbytes);
    kl_mpi *m = ctx->mpi;
    const kl_collective_kind kind = v->op.p.collective.kind;
    const kl_reduce_op op = v->op.p.collective.op;
    if (s == KL_OK && kind == KL_COLLECTIVE_ALL_REDUCE) {
        if (many) s = pack(v, result);
        if (m && s == KL_OK) s = kl_mpi_do_all_reduce(m, input, result, v->numel, v->dtype, op);
    } else if (s == KL_OK && kind == KL_COLLECTIVE_REDUCE) {
        s = kl_mpi_do_reduce(m, input, result, v->numel, v->dtype, op, v->op.p.collective.root);
    } else if (s == KL_OK) {
        s = kl_mpi_do_broadcast(m, input, result, nbytes, v->op.p.collective.root);
    }
    if (s == KL_OK && staged && nbytes)
        s = v->device->ops->copy(v->device, out->data, result, nbytes, KL_COPY_HOST_TO_DEVICE);
    if (staged) free(result);
    return settle(ctx, v, out, s);
}

/* all_reduce's gradient is the all_reduce of the gradient (every rank's
 * output depends on every rank's input); reduce's is the root's gradient
 * broadcast; broadcast's is every rank's gradient summed at the root. */
/* Input k's part of a bucket's gradient, in input k's shape. */
static kl_status bucket_part(kl_var *v, int k, kl_var *dv, kl_var **out)
{
    int64_t offset = 0;
    for (int i = 0; i < k; i++) offset += v->op.inputs[i]->numel;
    kl_var *x = v->op.inputs[k], *flat = NULL;
    char index[48];
    snprintf(index, sizeof index, "i0+%lld", (long long)offset);
    const char *indexes[1] = {index};
    kl_status s = kl_reindex(dv, 1, &x->numel, indexes, 0, 0, NULL, 0, NULL, &flat);
    if (s == KL_OK) s = kl_reshape(flat, x->ndim, x->shape, out);
    kl_var_release(flat);
    return s;
}

kl_status kl_collective_backward(kl_var *v, int k, kl_var *dv, kl_var **out)
{
    kl_reduce_op op = v->op.p.collective.op;
    int root = v->op.p.collective.root;
    const char *name = NAMES[v->op.p.collective.kind];
    if (v->op.p.collective.kind != KL_COLLECTIVE_BROADCAST && op != KL_REDUCE_SUM && op != KL_REDUCE_MEAN)
        return kl_error(KL_ERR_VALUE, "%s: no gradient for op %s (only add and mean have one)", name,
                        kl_reduce_name(op));
    switch (v->op.p.collective.kind) {
    case KL_COLLECTIVE_ALL_REDUCE: {
        if (!v->op.p.collective.bucket) return kl_mpi_all_reduce(dv, op, out);
        kl_var *part = NULL;
        kl_status s = bucket_part(v, k, dv, &part);
        if (s == KL_OK) s = kl_mpi_all_reduce(part, op, out);
        kl_var_release(part);
        return s;
    }
    case KL_COLLECTIVE_REDUCE: {
        if (op == KL_REDUCE_SUM) return kl_mpi_broadcast(dv, root, out);
        kl_var *b = NULL, *scale = NULL;
        kl_status s = kl_mpi_broadcast(dv, root, &b);
        if (s == KL_OK) s = kl_scalar_like(dv, dv->dtype, 1.0 / kl_mpi_info_size(v->ctx->mpi), &scale);
        if (s == KL_OK) return kl_binary_take(KL_MUL, b, scale, out);
        kl_var_release(b);
        kl_var_release(scale);
        return s;
    }
    default:
        return kl_mpi_reduce(dv, KL_REDUCE_SUM, root, out);
    }
}
