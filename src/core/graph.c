/* graph.c: vars and their ops: creation, reference counting and freeing, so a
 * var nobody holds goes away with the part of the graph only it needed. */
#include "core/graph.h"
#include "backend/backend.h"
#include "core/context.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

static const char *const kind_names[KL_OP_KIND_COUNT] = {
#define KL_OP(ID, name, emit, backward, traits) [KL_OP_##ID] = #name,
#include "ops/ops.def"
#undef KL_OP
};

static const int kind_traits[KL_OP_KIND_COUNT] = {
#define KL_OP(ID, name, emit, backward, traits) [KL_OP_##ID] = (traits),
#include "ops/ops.def"
#undef KL_OP
};

int kl_op_traits(kl_op_kind k) { return kind_traits[k]; }
const char *kl_op_kind_name(kl_op_kind k) { return kind_names[k]; }

void kl_shape_format(int ndim, const int64_t *shape, char *buf, size_t n)
{
    size_t used = 0;
    if (n == 0) return;
    buf[0] = 0;
    for (int d = 0; d <= ndim && used < n; d++) {
        int w = d == ndim ? snprintf(buf + used, n - used, "%s)", ndim == 0 ? "(" : "")
                          : snprintf(buf + used, n - used, "%s%lld", d ? ", " : "(", (long long)shape[d]);
        if (w < 0) return;
        used += (size_t)w;
    }
}

int64_t kl_shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

kl_status kl_check_shape(const char *op, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > KL_MAX_DIMS)
        return kl_error(KL_ERR_VALUE, "%s: rank %d is not supported (0 to %d dims)", op, ndim, KL_MAX_DIMS);
    if (ndim > 0) KL_ARG(shape, op, "shape");
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return kl_error(KL_ERR_VALUE, "%s: negative dimension %lld at axis %d", op, (long long)shape[i], i);
        if (shape[i] > 0 && n > (INT64_C(1) << 48) / shape[i])
            return kl_error(KL_ERR_VALUE, "%s: shape has too many elements", op);
        n *= shape[i];
    }
    return KL_OK;
}

kl_buffer *kl_buffer_new(kl_context *ctx, kl_backend *device, size_t nbytes)
{
    kl_buffer *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->data = device->ops->alloc(device, nbytes);
    /* a full device: least recently used buffers move to host memory */
    while (!b->data && kl_residency_make_room(ctx, device, nbytes)) b->data = device->ops->alloc(device, nbytes);
    if (!b->data) { free(b); return NULL; }
    b->refcount = 1;
    b->id = ++ctx->next_buffer_id;
    b->nbytes = nbytes;
    b->ctx = ctx;
    b->backend = device;
    kl_residency_track(b); /* not pinned: a step pins what it reads, and its results as it makes them */
    return b;
}

void kl_buffer_release(kl_buffer *b)
{
    if (!b || --b->refcount > 0) return;
    kl_residency_forget(b);
    if (!b->evicted) b->backend->ops->free(b->backend, b->data, b->nbytes);
    free(b->host);
    free(b);
}

const void *kl_buffer_host(kl_buffer *b)
{
    if (b->backend->ops->host_visible) return b->data;
    if (b->host) return b->host;
    void *h = malloc(b->nbytes ? b->nbytes : 1);
    if (!h) {
        kl_error(KL_ERR_MEMORY, "out of memory: %zu bytes to read a %s var", b->nbytes, b->backend->name);
        return NULL;
    }
    if (b->backend->ops->copy(b->backend, h, b->data, b->nbytes, KL_COPY_DEVICE_TO_HOST) != KL_OK) {
        free(h);
        return NULL;
    }
    return b->host = h;
}

void kl_op_free_params(kl_op *op)
{
    if (op->kind == KL_OP_CODE && op->p.code.detach) op->p.code.detach(op);
    if (op->kind == KL_OP_CHECK_INDEX) { free(op->p.check.what); op->p.check.what = NULL; }
    if (op->kind == KL_OP_CUSTOM_GRAD && op->p.custom_grad.release) {
        op->p.custom_grad.release(op->p.custom_grad.user);
        op->p.custom_grad.release = NULL;
    }
    if (op->kind == KL_OP_REINDEX || op->kind == KL_OP_REINDEX_REDUCE) {
        for (int i = 0; i < op->p.reindex.n_indexes; i++) kl_expr_free(op->p.reindex.indexes[i]);
        for (int i = 0; i < op->p.reindex.n_conditions; i++) kl_expr_free(op->p.reindex.conditions[i]);
        op->p.reindex.n_indexes = op->p.reindex.n_conditions = 0;
    }
}

/* The context's list of pending vars, which kl_sync_all walks. */
static void link_pending(kl_var *v)
{
    kl_context *ctx = v->ctx;
    v->pending_prev = NULL;
    v->pending_next = ctx->pending;
    if (ctx->pending) ctx->pending->pending_prev = v;
    ctx->pending = v;
    v->pending_linked = 1;
}

static void unlink_pending(kl_var *v)
{
    if (!v->pending_linked) return;
    if (v->pending_prev) v->pending_prev->pending_next = v->pending_next;
    else v->ctx->pending = v->pending_next;
    if (v->pending_next) v->pending_next->pending_prev = v->pending_prev;
    v->pending_prev = v->pending_next = NULL;
    v->pending_linked = 0;
}

static void link_live(kl_var *v)
{
    kl_context *ctx = v->ctx;
    v->live_prev = ctx->live_last;
    if (ctx->live_last) ctx->live_last->live_next = v;
    else ctx->live_first = v;
    ctx->live_last = v;
}

static void unlink_live(kl_var *v)
{
    kl_context *ctx = v->ctx;
    if (v->live_prev) v->live_prev->live_next = v->live_next;
    else ctx->live_first = v->live_next;
    if (v->live_next) v->live_next->live_prev = v->live_prev;
    else ctx->live_last = v->live_prev;
    v->live_prev = v->live_next = NULL;
}

/* A freed var goes to the context's graveyard (its magic word says dead,
 * the rest poisoned under ASan); the oldest there is freed for real. */
static void bury(kl_var *v)
{
    kl_context *ctx = v->ctx;
    v->magic = KL_VAR_DEAD;
    kl_var **slot = &ctx->graveyard[ctx->graveyard_next];
    if (ctx->graveyard_count == KL_GRAVEYARD) {
        UNPOISON(*slot, sizeof **slot);
        free(*slot);
    } else {
        ctx->graveyard_count++;
    }
    *slot = v;
    ctx->graveyard_next = (ctx->graveyard_next + 1) % KL_GRAVEYARD;
    POISON((char *)v + sizeof v->magic, sizeof *v - sizeof v->magic);
}

void kl_graveyard_free(kl_context *ctx)
{
    for (int i = 0; i < ctx->graveyard_count; i++) {
        UNPOISON(ctx->graveyard[i], sizeof *ctx->graveyard[i]);
        free(ctx->graveyard[i]);
    }
    ctx->graveyard_count = ctx->graveyard_next = 0;
}

kl_status kl_var_check(const kl_var *v, const char *fn, const char *what)
{
    if (!v) return kl_error(KL_ERR_VALUE, "%s: %s is NULL", fn, what);
    if (v->magic == KL_VAR_LIVE) return KL_OK;
    const char *state = v->magic == KL_VAR_DEAD ? "a var that was already released (freed)"
                                                 : "not a var handle (freed long ago, or never a var)";
#ifdef KL_DEBUG_HANDLES
    fprintf(stderr, "kiln: %s: %s is %s\n", fn, what, state);
    abort();
#endif
    return kl_error(KL_ERR_VALUE, "%s: %s is %s", fn, what, state);
}

/* Frees dead vars without recursion, so a long chain cannot overflow the stack. */
static void collect(kl_var *v)
{
    kl_var *stack_small[64];
    kl_var **stack = stack_small;
    size_t cap = 64, n = 0;
    if (v->user_refs == 0 && v->graph_refs == 0) stack[n++] = v;
    while (n) {
        kl_var *d = stack[--n];
        for (int i = 0; i < d->op.n_inputs; i++) {
            kl_var *in = d->op.inputs[i];
            if (--in->graph_refs == 0 && in->user_refs == 0) {
                if (n == cap) {
                    kl_var **bigger = malloc(2 * cap * sizeof *bigger);
                    if (!bigger) continue; /* leaks this var rather than crash */
                    memcpy(bigger, stack, n * sizeof *stack);
                    if (stack != stack_small) free(stack);
                    stack = bigger;
                    cap *= 2;
                }
                stack[n++] = in;
            }
        }
        if (d->op.kind != KL_OP_ARRAY) d->ctx->ops_alive--;
        kl_op_free_params(&d->op);
        free(d->name);
        d->name = NULL;
        kl_buffer_release(d->buf);
        unlink_pending(d);
        unlink_live(d);
        d->ctx->vars_alive--;
        bury(d);
    }
    if (stack != stack_small) free(stack);
}

kl_status kl_var_new(kl_context *ctx, kl_dtype dtype, int ndim, const int64_t *shape,
                     const kl_op *op, kl_var **out)
{
    *out = NULL;
    /* an op computes where its inputs are; they must all be in one place */
    kl_backend *device = op->n_inputs ? op->inputs[0]->device : ctx->device;
    for (int i = 1; i < op->n_inputs; i++)
        if (op->inputs[i]->device != device)
            return kl_error(KL_ERR_VALUE, "%s: inputs on different devices: input 0 is on %s, input %d on %s "
                            "(move one, or set the device before making them)", kl_op_kind_name(op->kind),
                            device->name, i, op->inputs[i]->device->name);
    kl_var *v = calloc(1, sizeof *v);
    if (!v) return kl_error(KL_ERR_MEMORY, "out of memory creating a var");
    v->magic = KL_VAR_LIVE;
    v->ctx = ctx;
    v->device = device;
    v->id = ++ctx->next_var_id;
    v->user_refs = 1;
    v->dtype = dtype;
    v->ndim = ndim;
    if (ndim) memcpy(v->shape, shape, (size_t)ndim * sizeof *shape);
    v->numel = kl_shape_numel(ndim, shape);
    v->op = *op;
    v->requires_grad = op->n_inputs == 0 && ctx->keep_graphs;
    for (int i = 0; i < op->n_inputs; i++) {
        op->inputs[i]->graph_refs++;
        v->requires_grad |= op->inputs[i]->requires_grad;
    }
    if (!kl_dtype_is_float(dtype) || kl_op_traits(op->kind) & KL_STOPS_GRAD) v->requires_grad = 0;
    if (op->kind != KL_OP_ARRAY) {
        link_pending(v);
        ctx->ops_alive++;
    }
    link_live(v);
    ctx->vars_alive++;
    ctx->vars_held++;
    *out = v;
    return KL_OK;
}

void kl_var_unref_graph(kl_var *v)
{
    if (--v->graph_refs == 0 && v->user_refs == 0) collect(v);
}

static void forget_graph(kl_var *v)
{
    kl_op old = v->op;
    /* a stop_grad cuts gradients anyway; ints and bools have none */
    if (old.n_inputs > 0 && !(kl_op_traits(old.kind) & KL_STOPS_GRAD) && kl_dtype_is_float(v->dtype))
        v->graph_forgotten = 1;
    if (old.kind != KL_OP_ARRAY) v->ctx->ops_alive--;
    memset(&v->op, 0, sizeof v->op);
    v->op.kind = KL_OP_ARRAY;
    for (int i = 0; i < old.n_inputs; i++) kl_var_unref_graph(old.inputs[i]);
    kl_op_free_params(&old);
}

void kl_var_set_computed(kl_var *v, kl_buffer *buf)
{
    v->buf = buf;
    v->sibling_of = NULL; /* a sync's plan, done (its pattern lived in the sync's scratch) */
    v->n_siblings = 0;
    v->pattern = NULL;
    v->materialize = 0;
    unlink_pending(v);
    /* the graph stays for backward, except behind a stop_grad, which no
     * gradient crosses (parameter updates would otherwise chain every step) */
    if (v->requires_grad && v->op.n_inputs > 0 && !(kl_op_traits(v->op.kind) & KL_STOPS_GRAD)) return;
    forget_graph(v);
}

void kl_var_release_graph(kl_var *v)
{
    if (v && kl_var_check(v, "kl_var_release_graph", "var") == KL_OK && v->buf && v->op.kind != KL_OP_ARRAY)
        forget_graph(v);
}

kl_status kl_var_set_name(kl_var *v, const char *name)
{
    KL_VAR_ARG(v, "kl_var_set_name", "var");
    if (!name) return kl_error(KL_ERR_VALUE, "kl_var_set_name: name is NULL");
    char *copy = strdup(name);
    if (!copy) return kl_error(KL_ERR_MEMORY, "kl_var_set_name: out of memory");
    free(v->name);
    v->name = copy;
    return KL_OK;
}

kl_status kl_var_stop_fuse(kl_var *v)
{
    KL_VAR_ARG(v, "kl_var_stop_fuse", "var");
    v->stop_fuse = 1;
    return KL_OK;
}

void kl_var_set_requires_grad(kl_var *v, int on)
{
    if (kl_var_check(v, "kl_var_set_requires_grad", "var") == KL_OK)
        v->requires_grad = on && kl_dtype_is_float(v->dtype);
}

/* The getters below answer a neutral value for a NULL or released var, with
 * the reason in kl_last_error(). */
static int live(const kl_var *v, const char *fn) { return kl_var_check(v, fn, "var") == KL_OK; }

int kl_var_requires_grad(const kl_var *v) { return live(v, "kl_var_requires_grad") ? v->requires_grad : 0; }

kl_status kl_var_retain(kl_var *v)
{
    KL_VAR_ARG(v, "kl_var_retain", "var");
    if (v->user_refs++ == 0) v->ctx->vars_held++;
    return KL_OK;
}

kl_status kl_var_release(kl_var *v)
{
    if (!v) return KL_OK; /* like free(NULL) */
    KL_VAR_ARG(v, "kl_var_release", "var");
    if (v->user_refs <= 0) return kl_error(KL_ERR_VALUE, "kl_var_release: the var has no handle left to release");
    if (--v->user_refs == 0) {
        v->ctx->vars_held--;
        if (v->graph_refs == 0) collect(v);
    }
    return KL_OK;
}

kl_context *kl_var_context(const kl_var *v) { return live(v, "kl_var_context") ? v->ctx : NULL; }
kl_dtype kl_var_dtype(const kl_var *v) { return live(v, "kl_var_dtype") ? v->dtype : KL_DTYPE_COUNT; }
int kl_var_ndim(const kl_var *v) { return live(v, "kl_var_ndim") ? v->ndim : -1; }
const int64_t *kl_var_shape(const kl_var *v) { return live(v, "kl_var_shape") ? v->shape : NULL; }
int64_t kl_var_numel(const kl_var *v) { return live(v, "kl_var_numel") ? v->numel : -1; }
uint64_t kl_var_id(const kl_var *v) { return live(v, "kl_var_id") ? v->id : 0; }
int kl_var_is_computed(const kl_var *v) { return live(v, "kl_var_is_computed") && v->buf != NULL; }

int kl_var_is_sole_owner(const kl_var *v)
{
    return live(v, "kl_var_is_sole_owner") && v->buf && v->user_refs == 1 && v->graph_refs == 0 &&
           v->buf->refcount == 1 && v->device->ops->host_visible;
}

const char *kl_var_device(const kl_var *v)
{
    return live(v, "kl_var_device") ? v->device->name : "invalid";
}

int kl_var_device_scatters_planes(const kl_var *v)
{
    return live(v, "kl_var_device_scatters_planes") && v->device->ops->plane_scatter;
}

kl_status kl_var_get_info(const kl_var *v, kl_var_info *out)
{
    if (!out) return kl_error(KL_ERR_VALUE, "kl_var_get_info: no output given");
    memset(out, 0, sizeof *out);
    if (!live(v, "kl_var_get_info")) return kl_error(KL_ERR_VALUE, "kl_var_get_info: not a live var");
    out->id = v->id;
    out->user_refs = v->user_refs;
    out->graph_refs = v->graph_refs;
    out->n_inputs = v->op.kind == KL_OP_ARRAY ? 0 : v->op.n_inputs;
    for (int i = 0; i < out->n_inputs; i++) out->inputs[i] = v->op.inputs[i]->id;
    out->computed = v->buf != NULL;
    out->nbytes = v->buf ? v->buf->nbytes : 0;
    out->buffer = v->buf ? v->buf->id : 0;
    out->name = v->name;
    out->op = kl_var_op_name(v);
    return KL_OK;
}

int64_t kl_context_vars(kl_context *ctx, kl_var **out, int64_t max)
{
    if (!ctx || max < 0 || (max > 0 && !out)) {
        kl_error(KL_ERR_VALUE, "kl_context_vars: no context, or no room for max vars");
        return -1;
    }
    int64_t n = 0;
    for (kl_var *v = ctx->live_first; v; v = v->live_next, n++)
        if (n < max) out[n] = v;
    return n;
}

const char *kl_var_op_name(const kl_var *v)
{
    if (!live(v, "kl_var_op_name")) return "invalid";
    switch (v->op.kind) {
    case KL_OP_UNARY: return kl_unary_name(v->op.p.unary);
    case KL_OP_BINARY: return kl_binary_name(v->op.p.binary);
    default: return kl_op_kind_name(v->op.kind);
    }
}

kl_status kl_var_from_host(kl_context *ctx, kl_dtype dtype, int ndim, const int64_t *shape,
                           const void *data, kl_var **out)
{
    KL_ARG(out, "kl_var_from_host", "out");
    *out = NULL;
    KL_ARG(ctx, "kl_var_from_host", "ctx");
    if (ndim > 0) KL_ARG(shape, "kl_var_from_host", "shape");
    if ((unsigned)dtype >= KL_DTYPE_COUNT) return kl_error(KL_ERR_TYPE, "array: invalid dtype code %d", (int)dtype);
    KL_TRY(kl_check_shape("array", ndim, shape));
    size_t nbytes = (size_t)kl_shape_numel(ndim, shape) * kl_dtype_size(dtype);
    kl_backend *device = ctx->device;
    kl_buffer *buf = kl_buffer_new(ctx, device, nbytes);
    if (!buf) return kl_error(KL_ERR_MEMORY, "array: out of memory allocating %zu bytes on %s", nbytes, device->name);
    kl_status cs = data && nbytes ? device->ops->copy(device, buf->data, data, nbytes, KL_COPY_HOST_TO_DEVICE) : KL_OK;
    if (cs != KL_OK) { kl_buffer_release(buf); return cs; }
    kl_op op = {.kind = KL_OP_ARRAY};
    kl_status s = kl_var_new(ctx, dtype, ndim, shape, &op, out);
    if (s != KL_OK) { kl_buffer_release(buf); return s; }
    (*out)->buf = buf;
    return KL_OK;
}
