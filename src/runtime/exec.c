/* exec.c: sync. Orders the pending vars that the requested ones need, asks
 * the fusion pass which to materialise, generates and compiles (in one batch)
 * a kernel per materialised var, then launches them in order; each executed
 * var drops its inputs, so intermediates are freed right after their last use. */
#include "backend/backend.h"
#include "core/context.h"
#include "core/dtype.h"
#include "opt/fuse.h"
#include "opt/layernorm.h"
#include "opt/softmax.h"
#include "ops/ops.h"
#include "codegen/plan.h"
#include "ops/lower.h"
#include "runtime/step.h"
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef kl_var_list var_list;
typedef kl_step step;
typedef kl_launch_plan launch_args;

static int push(var_list *l, kl_var *v)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        kl_var **p = realloc(l->v, (size_t)cap * sizeof *p);
        if (!p) return 0;
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = v;
    return 1;
}

#define KEPT_STEP_BYTES (16u << 20)

void kl_sync_scratch_free(kl_sync_scratch *s)
{
    free(s->order.v);
    free(s->stack.v);
    free(s->next.v);
    for (int i = 0; i < 6; i++) free(s->arrays[i].p);
    memset(s, 0, sizeof *s);
}

/* Scratch array `slot` of at least bytes, zeroed when asked; NULL when out of memory. */
static void *scratch(kl_sync_scratch *s, int slot, size_t bytes, int zero)
{
    if (s->arrays[slot].bytes < bytes) {
        size_t want = bytes < 4096 ? 4096 : bytes + bytes / 2;
        void *p = malloc(want);
        if (!p) return NULL;
        free(s->arrays[slot].p);
        s->arrays[slot].p = p;
        s->arrays[slot].bytes = want;
    }
    if (zero) memset(s->arrays[slot].p, 0, bytes);
    return s->arrays[slot].p;
}

/* Post-order DFS without recursion: pending vars, inputs first. */
static kl_status topo_order(kl_sync_scratch *sc, kl_var *const *targets, int n, uint64_t epoch, var_list *order)
{
    var_list stack = sc->stack;
    var_list next = sc->next; /* parallel to stack: cast index of the next input */
    stack.n = next.n = 0;
    kl_status s = KL_OK;
    for (int t = 0; t < n && s == KL_OK; t++) {
        kl_var *root = targets[t];
        if (root->buf || root->epoch == epoch) continue;
        root->epoch = epoch;
        if (!push(&stack, root) || !push(&next, NULL)) s = KL_ERR_MEMORY;
        while (stack.n && s == KL_OK) {
            kl_var *v = stack.v[stack.n - 1];
            intptr_t k = (intptr_t)next.v[next.n - 1];
            if (k < v->op.n_inputs) {
                next.v[next.n - 1] = (kl_var *)(k + 1);
                kl_var *in = v->op.inputs[k];
                if (!in->buf && in->epoch != epoch) {
                    in->epoch = epoch;
                    if (!push(&stack, in) || !push(&next, NULL)) s = KL_ERR_MEMORY;
                }
            } else {
                stack.n--;
                next.n--;
                if (!push(order, v)) s = KL_ERR_MEMORY;
            }
        }
    }
    sc->stack = stack; /* keep the (maybe grown) lists for the next sync */
    sc->next = next;
    return s == KL_OK ? KL_OK : kl_error(KL_ERR_MEMORY, "out of memory ordering the graph");
}

static void launch_args_free(launch_args *a)
{
    for (int i = 0; i < a->n_bufs; i++) kl_var_release(a->bufs[i]);
    a->n_bufs = 0;
}

/* Drops a step's holds: its launch's buffers, its var. */
static void step_release(step *st)
{
    launch_args_free(&st->args);
    kl_var_release(st->v);
    st->v = NULL;
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static kl_status run_step(kl_context *ctx, step *st);

/* The ops a kernel computes, from its header comment (" *   v3: float32 exp"). */
static void kernel_ops(const char *text, char *out, size_t size)
{
    size_t n = 0;
    out[0] = 0;
    for (const char *p = text ? strstr(text, " *   v") : NULL; p && n + 2 < size; p = strstr(p + 1, " *   v")) {
        const char *op = strchr(strchr(p, ':') + 2, ' ') + 1, *end = strchr(op, '\n');
        if (!end) break;
        n += (size_t)snprintf(out + n, size - n, "%s%.*s", n ? " " : "", (int)(end - op), op);
    }
    if (n >= size) snprintf(out + size - 4, 4, "...");
}

static uint64_t bytes_of(const kl_var *v)
{
    return (uint64_t)v->numel * kl_dtype_size(v->dtype);
}

/* The profiler's record of a launch (dropped when out of memory). */
static void profile_record(kl_context *ctx, const char *name, const char *how, const char *ops, double ms,
                           uint64_t in_bytes, uint64_t out_bytes)
{
    if (ctx->profile.n == ctx->profile.cap) {
        int cap = ctx->profile.cap ? 2 * ctx->profile.cap : 256;
        kl_profile_record *r = realloc(ctx->profile.records, (size_t)cap * sizeof *r);
        if (!r) return;
        ctx->profile.records = r;
        ctx->profile.cap = cap;
    }
    kl_profile_record *r = &ctx->profile.records[ctx->profile.n++];
    snprintf(r->name, sizeof r->name, "%s%s", name, how);
    snprintf(r->ops, sizeof r->ops, "%s", ops);
    r->ms = ms;
    r->input_bytes = in_bytes;
    r->output_bytes = out_bytes;
}

int kl_pattern_operands(const kl_pattern *p, kl_var **vars)
{
    int n = 2 + (p->kind == KL_PATTERN_CONV ? p->conv.epilogue.n : 0);
    vars[0] = p->a;
    vars[1] = p->b;
    for (int i = 2; i < n; i++) vars[i] = p->epilogue_operand[i - 2];
    return n;
}

/* What a convolution's call does besides convolving: its epilogue's steps
 * and which arrays stay in the library's layout. */
static void conv_ops(const kl_pattern *p, char *out, size_t size)
{
    static const char *const steps[] = {"scale", "shift", "residual", "relu"};
    size_t n = 0;
    out[0] = 0;
    for (int i = 0; i < p->conv.epilogue.n && n < size; i++)
        n += (size_t)snprintf(out + n, size - n, "%s%s", i ? " " : "epilogue ", steps[p->conv.epilogue.op[i]]);
    const char *kept[3] = {p->a_layout ? "input" : NULL, p->residual_layout ? "residual" : NULL,
                           p->out_layout ? "result" : NULL};
    for (int i = 0; i < 3 && n < size; i++)
        if (kept[i]) n += (size_t)snprintf(out + n, size - n, "%s%s in library layout", n ? "; " : "", kept[i]);
}

/* KILN_DEBUG=2: one line per step with its time (library calls included) and
 * the ops a kernel fuses; the profiler (kl_context_set_profile) records the same. */
static kl_status run_step_timed(kl_context *ctx, step *st)
{
    if ((ctx->debug < 2 && !ctx->profile.on) || st->v->buf) return run_step(ctx, st);
    kl_var *v = st->v;
    const char *name = kl_var_op_name(v); /* before v becomes a computed array */
    uint64_t in_bytes = 0, out_bytes = 0;
    int members = 0; /* of a group this step launches */
    kl_var *operands[2 + KL_MAX_EPILOGUE];
    if (st->pattern)
        for (int i = 0, n = kl_pattern_operands(st->pattern, operands); i < n; i++)
            in_bytes += operands[i] ? bytes_of(operands[i]) : 0;
    else if (st->plan)
        for (const step *m = st->group_first ? st->group_first : st; m; m = st->group_first ? m->group_next : NULL) {
            members++;
            for (int i = 0; i < m->args.n_bufs; i++) {
                if (i <= m->args.n_extra) out_bytes += bytes_of(i ? m->args.bufs[i] : m->v);
                else in_bytes += bytes_of(m->args.bufs[i]);
            }
        }
    else
        for (int i = 0; i < v->op.n_inputs; i++) in_bytes += bytes_of(v->op.inputs[i]);
    if (!st->plan) out_bytes = bytes_of(v);
    double t0 = now_seconds();
    kl_status s = run_step(ctx, st);
    double ms = (now_seconds() - t0) * 1e3;
    /* a step keeps its pattern only for a library call (a softmax is a kernel) */
    int conv = st->pattern && st->pattern->kind == KL_PATTERN_CONV;
    const char *how = conv && st->pattern->conv.epilogue.n ? " (library conv, epilogue)"
                      : conv                               ? " (library conv)"
                      : st->pattern                        ? " (library gemm)"
                      : st->is_collective ? " (library mpi)"
                      : st->is_alias      ? " (alias)"
                                          : "";
    char group[40];
    if (members > 1) snprintf(group, sizeof group, " (group of %d)", members), how = group;
    char ops[160];
    if (conv)
        conv_ops(st->pattern, ops, sizeof ops);
    else
        kernel_ops(st->plan ? st->plan->source : NULL, ops, sizeof ops);
    if (ctx->profile.on && s == KL_OK) profile_record(ctx, name, how, ops, ms, in_bytes, out_bytes);
    if (ctx->debug >= 2)
        fprintf(stderr, "[kiln] launch %s%s -> %s[%lld] %.3f ms%s%s%s\n", name, how, kl_dtype_name(v->dtype),
                (long long)v->numel, ms, *ops ? " [" : "", ops, *ops ? "]" : "");
    return s;
}

/* A library call of v's device computes v from the pattern's operands. */
static kl_status run_pattern(kl_context *ctx, kl_var *v, const kl_pattern *p)
{
    kl_var *vars[2 + KL_MAX_EPILOGUE];
    const void *in[2 + KL_MAX_EPILOGUE];
    int n = kl_pattern_operands(p, vars);
    kl_backend *dev = v->device;
    size_t nbytes = (size_t)v->numel * kl_dtype_size(v->dtype);
    kl_residency_next_step(ctx);
    for (int i = 0; i < n; i++) {
        if (vars[i] && !vars[i]->buf) return kl_error(KL_ERR_RUNTIME, "internal: library operand not computed");
        if (vars[i]) KL_TRY(kl_buffer_resident(vars[i]->buf));
    }
    for (int i = 0; i < n; i++) in[i] = vars[i] ? vars[i]->buf->data : NULL; /* after every operand is back */
    kl_buffer *out = kl_buffer_new(ctx, dev, nbytes);
    if (!out && kl_device_failed(dev)) return KL_ERR_RUNTIME;
    if (!out) return kl_error(KL_ERR_MEMORY, "out of memory: %zu bytes on %s for a library call's result", nbytes,
                              dev->name);
    kl_status s = dev->ops->run(dev, p, out->data, in, p->b ? p->b->buf->id : 0);
    if (s != KL_OK) {
        kl_buffer_release(out);
        return s;
    }
    ctx->counters.library_calls++;
    ctx->counters.kernels_launched++;
    kl_var_set_computed(v, out);
    return KL_OK;
}

/* The results this sync's library calls left in a device's own layout
 * (src/opt/layout.c): only this sync's planned readers read them, so a sync
 * that stops before those ran puts them back in row-major order for the
 * syncs that will read them later. */
typedef struct {
    int n;
    struct { kl_buffer *buf; const kl_pattern *p; } *r;
} kept_results;

static kl_status keep_track(kept_results *k, const step *st, int n_steps)
{
    if (!st->pattern || st->pattern->kind != KL_PATTERN_CONV || !st->pattern->out_layout) return KL_OK;
    kl_buffer *b = st->v->buf;
    if (!k->r && !(k->r = malloc((size_t)n_steps * sizeof *k->r))) {
        /* untracked, it could not go back later: back now, and the sync stops */
        kl_backend *dev = b->backend;
        KL_TRY(dev->ops->to_row_major(dev, st->pattern, b->data));
        return kl_error(KL_ERR_MEMORY, "out of memory tracking kept layouts");
    }
    b->refcount++;
    k->r[k->n].buf = b;
    k->r[k->n++].p = st->pattern;
    return KL_OK;
}

static void kept_results_end(kept_results *k, int stopped)
{
    for (int i = 0; i < k->n; i++) {
        kl_buffer *b = k->r[i].buf;
        kl_backend *dev = b->backend;
        /* still read by someone (a pending reader, an alias): an array again */
        if (stopped && b->refcount > 1 && kl_buffer_resident(b) == KL_OK &&
            dev->ops->to_row_major(dev, k->r[i].p, b->data) != KL_OK)
            fprintf(stderr, "[kiln] error: a stopped sync left a result in %s's layout: %s\n", dev->name,
                    kl_last_error());
        kl_buffer_release(b);
    }
    free(k->r);
}

static kl_status run_step(kl_context *ctx, step *st)
{
    kl_var *v = st->v;
    if (v->buf) return KL_OK; /* a code output its sibling's run computed */
    if (st->is_code) return kl_code_run(ctx, v, st->fn);
    if (st->pattern) return run_pattern(ctx, v, st->pattern);
    if (st->is_collective) return kl_collective_run(ctx, v);
    if (st->is_alias) {
        kl_buffer *b = v->op.inputs[0]->buf;
        if (!b) return kl_error(KL_ERR_RUNTIME, "internal: %s input not computed", kl_op_kind_name(v->op.kind));
        b->refcount++;
        kl_var_set_computed(v, b);
        return KL_OK;
    }
    if (st->group_first) return kl_group_run(ctx, st);
    void *ptrs[KL_KD_MAX_BUFS];
    kl_buffer *out[1 + KL_KD_MAX_EXTRA] = {0};
    kl_backend *dev = v->device;
    kl_residency_next_step(ctx);
    KL_TRY(kl_step_inputs_resident(st));
    kl_step_input_pointers(st, ptrs);
    KL_TRY(kl_step_outputs_new(ctx, st, out, ptrs));
    kl_launch_args la = {ptrs, st->args.iargs, st->args.fargs, st->args.n_bufs, st->args.n_iargs,
                         st->args.n_fargs, st->args.work, 0};
    kl_status s = dev->ops->launch(dev, st->fn, &la);
    ctx->counters.kernels_launched++;
    /* a kernel with index checks may have written the record: on a device
     * that runs asynchronously it must have finished before it is read */
    if (s == KL_OK && st->args.n_checks && !dev->ops->host_visible) s = dev->ops->synchronize(dev);
    if (s == KL_OK) s = kl_check_index_result(ctx);
    if (s != KL_OK) { /* v stays pending: every later sync of it fails the same way */
        kl_step_outputs_release(st, out);
        return s;
    }
    kl_step_outputs_set(st, out);
    return KL_OK;
}

/* Compiles a sync's new sources: generated kernels for the device, jt.code's
 * C and C++ for the host (the CPU backend), which runs them on every device
 * (src/ops/code.c copies a device's data through host memory). */
static kl_status compile_sources(kl_context *ctx, kl_backend *dev, int n, const char **sources, const kl_lang *langs,
                                 kl_kernel_fn *fns)
{
    kl_backend *host = ctx->backends[0];
    int n_code = 0;
    for (int i = 0; i < n; i++) n_code += langs[i] != KL_LANG_KERNEL;
    if (dev == host || n_code == 0) return kl_jit_get_many(ctx, dev, n, sources, langs, fns);
    const char **src = malloc((size_t)n * sizeof *src);
    kl_lang *lang = malloc((size_t)n * sizeof *lang);
    kl_kernel_fn *fn = malloc((size_t)n * sizeof *fn);
    int *at = malloc((size_t)n * sizeof *at);
    kl_status s = src && lang && fn && at ? KL_OK : kl_error(KL_ERR_MEMORY, "out of memory planning compiles");
    for (int pass = 0; pass < 2 && s == KL_OK; pass++) { /* device kernels, then host code */
        int m = 0;
        for (int i = 0; i < n; i++)
            if ((langs[i] != KL_LANG_KERNEL) == pass) { src[m] = sources[i]; lang[m] = langs[i]; at[m++] = i; }
        s = kl_jit_get_many(ctx, pass ? host : dev, m, src, lang, fn);
        for (int k = 0; s == KL_OK && k < m; k++) fns[at[k]] = fn[k];
    }
    free(src);
    free(lang);
    free(fn);
    free(at);
    return s;
}

/* The compile check (kl_context_set_compile_check): the sync's new kernels,
 * rendered for the check backend when planned, compiled there together
 * (in parallel) when the sync's planning succeeded, never run; each
 * rendering is freed either way. */
static kl_status compile_check(kl_context *ctx, step *steps, int n_steps, int compile)
{
    const char **sources = malloc((size_t)(2 * n_steps + 1) * sizeof *sources);
    kl_kernel_fn *fns = malloc((size_t)(2 * n_steps + 1) * sizeof *fns);
    kl_status s = sources && fns ? KL_OK : kl_error(KL_ERR_MEMORY, "out of memory checking kernels");
    int n = 0;
    for (int i = 0; i < n_steps && s == KL_OK; i++) {
        if (steps[i].check_source) sources[n++] = steps[i].check_source;
        if (steps[i].check_group_source) sources[n++] = steps[i].check_group_source;
    }
    if (s == KL_OK && n && compile) s = kl_jit_get_many(ctx, ctx->compile_check, n, sources, NULL, fns);
    for (int i = 0; i < n_steps; i++) {
        free(steps[i].check_source);
        free(steps[i].check_group_source);
        steps[i].check_source = steps[i].check_group_source = NULL;
    }
    free(sources);
    free(fns);
    return s;
}

/* Records the group form of a new plan's structure, when it has one (and
 * the compile check's rendering of it, compiled when the form first is). */
static kl_status add_group_form(kl_context *ctx, kl_backend *dev, const kl_kdesc *kd, kl_plan *p)
{
    char *text = NULL;
    KL_TRY(dev->ops->render_group(dev, kd, &text));
    int ok = !text || kl_plan_set_group(p, text);
    free(text);
    if (!ok) return kl_error(KL_ERR_MEMORY, "out of memory recording a kernel's group form");
    kl_backend *check = ctx->compile_check;
    if (p->group && check && check->ops->render_group) KL_TRY(check->ops->render_group(check, kd, &p->group->check_source));
    return KL_OK;
}

/* KILN_CHECK_PLANS: the group form a plan keeps is the one its structure renders. */
static kl_status check_group_form(kl_backend *dev, const kl_kdesc *kd, const kl_plan *p)
{
    char *text = NULL;
    kl_status s = dev->ops->render_group(dev, kd, &text);
    if (s == KL_OK && (!text || strcmp(text, p->group->source) != 0))
        s = kl_error(KL_ERR_RUNTIME, "internal: the plan cache gave a different group form:\n%s\nvs\n%s",
                     p->group->source, text ? text : "(none)");
    free(text);
    return s;
}

/* A fused kernel: its description, then the plan recorded for that
 * structure, or a fresh render (recorded as a plan, compiled in the sync's
 * batch). */
static kl_status build_step(kl_context *ctx, step *st)
{
    if (!ctx->kdesc && !(ctx->kdesc = calloc(1, sizeof *ctx->kdesc)))
        return kl_error(KL_ERR_MEMORY, "out of memory describing a kernel");
    kl_kdesc *kd = ctx->kdesc;
    kl_backend *dev = st->v->device;
    kl_kd_init(kd);
    /* a softmax or layer norm the pattern passes found is a kernel of its own kind */
    kl_status s = !st->pattern                              ? kl_lower_kernel(st->v, kd)
                  : st->pattern->kind == KL_PATTERN_SOFTMAX ? kl_softmax_describe(st->v, st->pattern, kd)
                                                            : kl_layernorm_describe(st->v, st->pattern, kd);
    char *text = NULL;
    kl_plan *p = s == KL_OK ? kl_plan_find(&ctx->plans, dev, kd) : NULL;
    if (p && p->fn) {
        st->fn = p->fn;
        ctx->counters.cache_hits_memory++;
        /* verify: the renderer must give the plan's text for this structure */
        if (ctx->plans.check && (s = dev->ops->render(dev, kd, &text)) == KL_OK && strcmp(text, p->source) != 0)
            s = kl_error(KL_ERR_RUNTIME, "internal: the plan cache gave a different kernel for %s:\n%s\nvs\n%s",
                         kl_var_op_name(st->v), p->source, text);
        if (s == KL_OK && ctx->plans.check && p->group) s = check_group_form(dev, kd, p);
    } else if (s == KL_OK && !p) {
        s = dev->ops->render(dev, kd, &text);
        if (s == KL_OK) p = kl_plan_insert(&ctx->plans, dev, kd, text);
        if (s == KL_OK && !p) s = kl_error(KL_ERR_MEMORY, "out of memory recording a kernel's plan");
        if (s == KL_OK && !p->group && dev->ops->render_group) s = add_group_form(ctx, dev, kd, p);
        if (s == KL_OK && ctx->compile_check) s = ctx->compile_check->ops->render(ctx->compile_check, kd, &st->check_source);
    }
    free(text);
    if (s == KL_OK) {
        st->plan = p;
        st->compile = !p->fn; /* new, or new earlier in this sync */
        launch_args *a = &st->args;
        a->n_bufs = kd->h.n_bufs;
        for (int i = 0; i < a->n_bufs; i++) { a->bufs[i] = kd->bufs[i]; kl_var_retain(a->bufs[i]); }
        a->n_iargs = kd->h.n_iargs;
        memcpy(a->iargs, kd->iargs, (size_t)a->n_iargs * sizeof *a->iargs);
        a->n_fargs = kd->h.n_fargs;
        memcpy(a->fargs, kd->fargs, (size_t)a->n_fargs * sizeof *a->fargs);
        a->n_checks = kd->h.n_checks;
        a->n_extra = kd->h.n_extra;
        a->work = 1;
        for (int d = 0; d < kd->h.rank; d++) { /* an extent is an argument, or a literal (a short window) */
            const kl_instr *e = &kd->instrs[kd->h.dims[d]];
            a->work *= e->kind == KL_I_CONST ? e->value : kd->iargs[e->a];
        }
        kl_step_record_step(ctx, st, kd);
    }
    kl_kd_clear(kd);
    return s;
}

/* Queues the source of each group form this sync's groups launch that is
 * not compiled yet (after the steps' sources), once; the new count (the
 * arrays have room for a source per two steps more than there are steps:
 * a group has two steps or more). */
static int add_group_sources(step *steps, int n_steps, const char **sources, kl_lang *langs, int n_src)
{
    int first = n_src;
    for (int i = 0; i < n_steps; i++) {
        kl_plan *g = steps[i].group_first ? steps[i].plan->group : NULL;
        if (!g || g->fn) continue;
        int queued = 0; /* by an earlier group of the plan */
        for (int j = first; j < n_src && !queued; j++) queued = sources[j] == g->source;
        if (queued) continue;
        langs[n_src] = KL_LANG_KERNEL;
        sources[n_src++] = g->source;
        steps[i].check_group_source = g->check_source; /* compiled by the check with it, once */
        g->check_source = NULL;
    }
    return n_src;
}

static kl_status sync_one_device(kl_var *const *vars, int n);

/* Vars on several devices sync one device at a time (a graph never spans
 * devices: an op's inputs share one). */
kl_status kl_sync(kl_var *const *vars, int n)
{
    if (n <= 0) return KL_OK;
    KL_ARG(vars, "sync", "vars");
    for (int i = 0; i < n; i++) KL_VAR_ARG(vars[i], "sync", "a var");
    int mixed = 0;
    for (int i = 1; i < n; i++) mixed |= vars[i]->device != vars[0]->device;
    if (!mixed) return sync_one_device(vars, n);
    kl_var **group = malloc((size_t)n * sizeof *group);
    uint8_t *done = calloc((size_t)n, 1);
    kl_status s = group && done ? KL_OK : kl_error(KL_ERR_MEMORY, "out of memory in sync");
    for (int i = 0; i < n && s == KL_OK; i++) {
        if (done[i]) continue;
        int m = 0;
        for (int j = i; j < n; j++)
            if (!done[j] && vars[j]->device == vars[i]->device) { group[m++] = vars[j]; done[j] = 1; }
        s = sync_one_device(group, m);
    }
    free(group);
    free(done);
    return s;
}

static kl_status sync_one_device(kl_var *const *vars, int n)
{
    if (n <= 0) return KL_OK;
    KL_ARG(vars, "sync", "vars");
    for (int i = 0; i < n; i++) {
        KL_VAR_ARG(vars[i], "sync", "a var");
        if (vars[i]->ctx != vars[0]->ctx) return kl_error(KL_ERR_VALUE, "sync: var %d belongs to another context", i);
    }
    kl_context *ctx = vars[0]->ctx;
    /* a process that made thousands of distinct kernels unloads them (and the
     * plans that call them) before it runs out of memory mappings; those it
     * needs again come back from the disk cache */
    if (kl_jit_loaded(&ctx->jit) > ctx->max_loaded_kernels) {
        kl_plan_cache_free(&ctx->plans);
        kl_jit_unload(&ctx->jit);
    }
    kl_plan_cache_bound(&ctx->plans);
    uint64_t epoch = ++ctx->sync_epoch;
    kl_sync_scratch *sc = &ctx->sync;
    var_list order = sc->order;
    order.n = 0;
    kl_status ts = topo_order(sc, vars, n, epoch, &order);
    sc->order = order;
    KL_TRY(ts);
    if (order.n == 0) return KL_OK;
    uint8_t *is_target = scratch(sc, 0, (size_t)order.n, 1);
    kl_pattern *patterns = scratch(sc, 5, (size_t)order.n * sizeof *patterns, 0);
    step *steps = NULL;
    const char **sources = NULL;
    kl_lang *langs = NULL;
    kl_kernel_fn *fns = NULL;
    kl_status s = is_target && patterns ? KL_OK : kl_error(KL_ERR_MEMORY, "out of memory planning a sync");
    int n_steps = 0, n_src = 0, n_stored = 0, steps_owned = 0, replay = 0;
    const kl_step_plan *hit = NULL;
    if (s == KL_OK) {
        for (int i = 0; i < order.n; i++)
            for (int t = 0; t < n; t++) is_target[i] |= order.v[i] == vars[t];
        /* a graph planned before is replayed (checked plans: planned again, and compared) */
        hit = kl_step_cache_sign(ctx, order.v, order.n, is_target, epoch) ? kl_step_cache_find(ctx) : NULL;
        replay = hit && !ctx->plans.check && kl_step_plan_apply(ctx, hit, order.v, order.n, patterns);
        if (!replay) {
            kl_fuse_plan(order.v, order.n, is_target, patterns);
            kl_step_record_begin(ctx);
        }
        for (int i = 0; i < order.n; i++) n_stored += order.v[i]->materialize != 0;
        /* steps are ~15 KB each: a huge sync's are not kept */
        steps_owned = (size_t)n_stored * sizeof *steps > KEPT_STEP_BYTES;
        steps = steps_owned ? malloc((size_t)n_stored * sizeof *steps)
                            : scratch(sc, 1, (size_t)n_stored * sizeof *steps, 0);
        size_t n_sources = (size_t)n_stored + (size_t)n_stored / 2 + 1; /* a step's each, a group's each */
        sources = scratch(sc, 2, n_sources * sizeof *sources, 1);
        langs = scratch(sc, 3, n_sources * sizeof *langs, 1);
        fns = scratch(sc, 4, n_sources * sizeof *fns, 1);
        if (n_stored && !(steps && sources && langs && fns)) s = kl_error(KL_ERR_MEMORY, "out of memory planning a sync");
        if (replay && s == KL_OK && kl_step_plan_count(hit) > n_stored)
            s = kl_error(KL_ERR_RUNTIME, "internal: the step cache's plan has more steps than vars stored");
        if (replay && s == KL_OK) n_steps = kl_step_plan_steps(ctx, hit, steps, 1);
        for (int i = 0; i < order.n && s == KL_OK && !replay; i++) {
            kl_var *v = order.v[i];
            if (!v->materialize || v->sibling_of) continue; /* a sibling: computed in another var's kernel */
            /* planning a huge graph takes seconds too (more when plans are
             * checked): Ctrl-C must not wait for it */
            if (ctx->interrupt && ctx->interrupt(ctx->interrupt_arg)) {
                s = kl_error(KL_ERR_INTERRUPTED, "sync interrupted while planning kernel %d of %d", n_steps, n_stored);
                break;
            }
            step *st = &steps[n_steps++];
            kl_step_init(st, v);
            kl_var_retain(v);
            st->is_alias = kl_op_traits(v->op.kind) & KL_ALIAS;
            st->is_code = v->op.kind == KL_OP_CODE;
            st->is_collective = v->op.kind == KL_OP_COLLECTIVE;
            st->pattern = v->pattern;
            /* a library call; a softmax's or layer norm's pattern is built as a kernel below */
            if (st->pattern && (st->pattern->kind == KL_PATTERN_GEMM || st->pattern->kind == KL_PATTERN_CONV)) {
                kl_step_record_step(ctx, st, NULL);
                continue;
            } else if (st->is_code) {
                kl_code_lang lang;
                sources[n_src] = kl_code_source(v, &lang); /* host code (a CUDA op's launches its kernels) */
                langs[n_src++] = lang == KL_CODE_C ? KL_LANG_C : KL_LANG_CXX;
            } else if (!st->is_alias && !st->is_collective) {
                s = build_step(ctx, st);
                st->pattern = NULL; /* a softmax or layer norm runs as the kernel just built */
                if (s == KL_OK && st->compile) { langs[n_src] = KL_LANG_KERNEL; sources[n_src++] = st->plan->source; }
            } else {
                kl_step_record_step(ctx, st, NULL);
            }
        }
        /* checked plans: a hit planned afresh must equal its record; then
         * the record is applied and its steps run, as they would unchecked
         * (unless the fresh plan compiled something: then the record is
         * replaced, so it differs, which the check has just failed) */
        if (hit && !replay && s == KL_OK && ctx->plans.check) s = kl_step_record_check(ctx, hit, steps);
        if (hit && !replay && s == KL_OK && ctx->plans.check && n_src == 0 &&
            kl_step_plan_apply(ctx, hit, order.v, order.n, patterns)) {
            for (int i = 0; i < n_steps; i++) step_release(&steps[i]);
            n_steps = kl_step_plan_steps(ctx, hit, steps, 0);
            replay = 1;
        }
    }
    int n_step_src = n_src;
    if (s == KL_OK) {
        kl_groups_form(steps, n_steps);
        n_src = add_group_sources(steps, n_steps, sources, langs, n_src);
    }
    if (s == KL_OK) s = compile_sources(ctx, vars[0]->device, n_src, sources, langs, fns);
    if (ctx->compile_check) {
        kl_status cs = compile_check(ctx, steps, n_steps, s == KL_OK); /* frees the renderings in any case */
        if (s == KL_OK) s = cs;
    }
    for (int i = 0, j = 0; s == KL_OK && i < n_steps; i++)
        if (steps[i].is_code || steps[i].compile) {
            steps[i].fn = fns[j++];
            if (steps[i].plan) steps[i].plan->fn = steps[i].fn;
        }
    for (int i = 0, j = n_step_src; s == KL_OK && i < n_steps; i++)
        if (steps[i].group_first && !steps[i].plan->group->fn) {
            steps[i].plan->group->fn = fns[j++];
            ctx->counters.group_forms++;
        }
    /* kept once its kernels compiled (a plan's function is set) */
    if (s == KL_OK && !replay) kl_step_record_end(ctx);
    else kl_step_record_abort(ctx);
    kept_results kept = {0};
    /* a group's members run with its last (holding their inputs till
     * then), aliases of their results once every other step has run */
    int ran = 0; /* steps run, a group's members each */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; s == KL_OK && i < n_steps; i++) {
            if (steps[i].deferred != (pass ? KL_DEFERRED_ALIAS : 0)) continue;
            if (ctx->interrupt && ctx->interrupt(ctx->interrupt_arg))
                s = kl_error(KL_ERR_INTERRUPTED, "sync interrupted after %d of %d kernels", ran, n_steps);
            else
                s = run_step_timed(ctx, &steps[i]);
            for (step *m = steps[i].group_first; m && m != &steps[i]; m = m->group_next) ran++;
            ran++;
            if (s == KL_OK) s = keep_track(&kept, &steps[i], n_steps);
            /* drop this step's holds at once: an intermediate is freed as soon
             * as the last kernel that reads it has run, not at the end of the sync */
            if (!steps[i].group_first) step_release(&steps[i]);
            for (step *m = steps[i].group_first; m; m = m->group_next) step_release(m);
        }
    kept_results_end(&kept, s != KL_OK);
    for (int i = 0; i < n_steps; i++) step_release(&steps[i]);
    if (steps_owned) free(steps);
    return s;
}

kl_status kl_var_data(kl_var *v, const void **out)
{
    KL_ARG(out, "kl_var_data", "out");
    *out = NULL;
    KL_VAR_ARG(v, "kl_var_data", "var");
    if (!v->buf) KL_TRY(kl_sync(&v, 1));
    return (*out = kl_buffer_host(v->buf)) ? KL_OK : KL_ERR_MEMORY;
}

kl_status kl_var_copy_to_host(kl_var *v, void *dst, size_t nbytes)
{
    KL_VAR_ARG(v, "kl_var_copy_to_host", "var");
    size_t need = (size_t)v->numel * kl_dtype_size(v->dtype);
    if (need) KL_ARG(dst, "kl_var_copy_to_host", "dst");
    if (nbytes != need)
        return kl_error(KL_ERR_VALUE, "copy_to_host: destination holds %zu bytes, the var has %zu", nbytes, need);
    if (!v->buf) KL_TRY(kl_sync(&v, 1));
    /* a host copy (kept by kl_buffer_host, or by a move to host memory) holds the contents */
    if (need && v->buf->host) { memcpy(dst, v->buf->host, need); return KL_OK; }
    return need ? v->buf->backend->ops->copy(v->buf->backend, dst, v->buf->data, need, KL_COPY_DEVICE_TO_HOST) : KL_OK;
}

kl_status kl_sync_all(kl_context *ctx)
{
    KL_ARG(ctx, "kl_sync_all", "ctx");
    int n = 0;
    for (kl_var *v = ctx->pending; v; v = v->pending_next) n += v->user_refs > 0;
    if (n == 0) return KL_OK;
    kl_var **held = calloc((size_t)n, sizeof *held);
    if (!held) return kl_error(KL_ERR_MEMORY, "out of memory in sync_all");
    int k = 0;
    for (kl_var *v = ctx->pending; v && k < n; v = v->pending_next)
        if (v->user_refs > 0) { held[k++] = v; kl_var_retain(v); }
    kl_status s = kl_sync(held, k);
    for (int i = 0; i < k; i++) kl_var_release(held[i]);
    free(held);
    return s;
}
