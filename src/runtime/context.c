/* context.c: creating a context from the environment (its backends, caches
 * and settings), its settings and counters. */
#include "core/context.h"
#include "backend/backend.h"
#include "core/error.h"
#include "runtime/step.h"
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libgomp cannot start a parallel region in a child forked after the
 * parent ran one (its thread pool does not exist there; the child hangs), so
 * a forked child -- a DataLoader worker -- computes on one thread, as
 * PyTorch does. */
static void single_threaded_child(void) { omp_set_num_threads(1); }
static void register_fork_handler(void) { pthread_atfork(NULL, NULL, single_threaded_child); }
static pthread_once_t fork_handler_once = PTHREAD_ONCE_INIT;

kl_status kl_context_new(kl_context **out)
{
    pthread_once(&fork_handler_once, register_fork_handler);
    KL_ARG(out, "kl_context_new", "out");
    *out = NULL;
    kl_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return kl_error(KL_ERR_MEMORY, "out of memory creating a context");
    const char *dir = getenv("KILN_CACHE_DIR");
    const char *home = getenv("HOME");
    if (dir && *dir) snprintf(ctx->cache_dir, sizeof ctx->cache_dir, "%s", dir);
    else snprintf(ctx->cache_dir, sizeof ctx->cache_dir, "%s/.cache/kiln", home && *home ? home : "/tmp");
    const char *debug = getenv("KILN_DEBUG");
    ctx->debug = debug ? atoi(debug) : 0;
    const char *log = getenv("KILN_LOG");
    ctx->log_compile = log && strstr(log, "compile") != NULL;
    ctx->seed = 0;
    kl_status s = kl_cpu_backend_new(ctx, &ctx->backends[0]);
    if (s != KL_OK) { free(ctx); return s; }
    ctx->n_backends = 1;
    ctx->device = ctx->backends[0];
    ctx->max_loaded_kernels = kl_jit_max_loaded();
    const char *check = getenv("KILN_CHECK_PLANS");
    ctx->plans.check = check && *check && strcmp(check, "0") != 0;
    const char *plans = getenv("KILN_PLANS");
    ctx->plans.disabled = plans && strcmp(plans, "0") == 0;
    const char *unified = getenv("KILN_UNIFIED_MEMORY");
    ctx->unified_memory = !(unified && strcmp(unified, "0") == 0);
    ctx->residency_step = 1; /* a buffer's pin 0 is no step's */
    const char *compile_check = getenv("KILN_COMPILE_CHECK");
    if (compile_check && *compile_check && (s = kl_context_set_compile_check(ctx, compile_check)) != KL_OK) {
        kl_context_free(ctx);
        return s;
    }
    *out = ctx;
    return KL_OK;
}

kl_status kl_context_free(kl_context *ctx)
{
    if (!ctx) return KL_OK;
    if (ctx->vars_alive > 0)
        return kl_error(KL_ERR_VALUE, "kl_context_free: the context still has %llu vars; release every var "
                        "handle first (the context is not freed)", (unsigned long long)ctx->vars_alive);
    kl_graveyard_free(ctx);
    kl_status left = kl_mpi_finish(ctx);
    free(ctx->profile.records);
    kl_step_cache_free(ctx->step_cache);
    kl_plan_cache_free(&ctx->plans);
    kl_sync_scratch_free(&ctx->sync);
    if (ctx->kdesc) kl_kd_free(ctx->kdesc);
    free(ctx->kdesc);
    kl_jit_free(&ctx->jit); /* unloads kernels before their backends go */
    for (int i = ctx->n_backends - 1; i >= 0; i--) ctx->backends[i]->ops->destroy(ctx->backends[i]);
    if (ctx->check_backend) ctx->check_backend->ops->destroy(ctx->check_backend);
    free(ctx);
    return left;
}

kl_status kl_context_set_cache_dir(kl_context *ctx, const char *dir)
{
    KL_ARG(ctx, "kl_context_set_cache_dir", "ctx");
    if (!dir || !*dir) return kl_error(KL_ERR_VALUE, "cache directory must be a non-empty path");
    if (strlen(dir) >= sizeof ctx->cache_dir - 64) return kl_error(KL_ERR_VALUE, "cache directory path too long");
    snprintf(ctx->cache_dir, sizeof ctx->cache_dir, "%s", dir);
    return KL_OK;
}

/* The settings' getters and setters ignore a NULL context (a getter answers
 * NULL or 0), leaving the reason in kl_last_error(). */
static int have(const void *p, const char *fn, const char *what)
{
    if (!p) kl_error(KL_ERR_VALUE, "%s: %s is NULL", fn, what);
    return p != NULL;
}

const char *kl_context_cache_dir(const kl_context *ctx)
{
    return have(ctx, "kl_context_cache_dir", "ctx") ? ctx->cache_dir : NULL;
}

void kl_context_set_debug(kl_context *ctx, int level)
{
    if (have(ctx, "kl_context_set_debug", "ctx")) ctx->debug = level;
}

int kl_context_debug(const kl_context *ctx) { return have(ctx, "kl_context_debug", "ctx") ? ctx->debug : 0; }

void kl_context_seed(kl_context *ctx, uint64_t seed)
{
    if (!have(ctx, "kl_context_seed", "ctx")) return;
    ctx->seed = seed;
    ctx->rng_offset = 0;
}

void kl_context_counters(const kl_context *ctx, kl_counters *out)
{
    if (!have(out, "kl_context_counters", "out")) return;
    memset(out, 0, sizeof *out);
    if (!have(ctx, "kl_context_counters", "ctx")) return;
    *out = ctx->counters;
    out->bytes_allocated = out->bytes_in_use = out->bytes_cached = out->peak_bytes_in_use = 0;
    for (int i = 0; i < ctx->n_backends; i++) {
        kl_memory_stats m;
        ctx->backends[i]->ops->memory(ctx->backends[i], &m);
        out->bytes_allocated += m.bytes_allocated;
        out->bytes_in_use += m.bytes_in_use;
        out->bytes_cached += m.bytes_cached;
        out->peak_bytes_in_use += m.peak_bytes_in_use;
    }
    out->vars_alive = ctx->vars_alive;
    out->vars_held = ctx->vars_held;
    out->ops_alive = ctx->ops_alive;
}

void kl_context_gc(kl_context *ctx)
{
    if (!have(ctx, "kl_context_gc", "ctx")) return;
    for (int i = 0; i < ctx->n_backends; i++) ctx->backends[i]->ops->trim(ctx->backends[i]);
}

void kl_context_set_interrupt(kl_context *ctx, int (*check)(void *arg), void *arg)
{
    if (!have(ctx, "kl_context_set_interrupt", "ctx")) return;
    ctx->interrupt = check;
    ctx->interrupt_arg = arg;
}

int kl_context_has_library(kl_context *ctx, const char *name)
{
    if (!have(ctx, "kl_context_has_library", "ctx") || !have(name, "kl_context_has_library", "name")) return 0;
    kl_backend *b = ctx->device;
    return b->ops->has_library ? b->ops->has_library(b, name) : 0;
}

int kl_context_device_count(const kl_context *ctx)
{
    return have(ctx, "kl_context_device_count", "ctx") ? ctx->n_backends : 0;
}

const char *kl_context_device_name(const kl_context *ctx, int index)
{
    if (!have(ctx, "kl_context_device_name", "ctx")) return NULL;
    if (index < 0 || index >= ctx->n_backends) {
        kl_error(KL_ERR_VALUE, "kl_context_device_name: no device %d (the context has %d)", index, ctx->n_backends);
        return NULL;
    }
    return ctx->backends[index]->name;
}

const char *kl_context_device(const kl_context *ctx)
{
    return have(ctx, "kl_context_device", "ctx") ? ctx->device->name : NULL;
}

kl_status kl_context_synchronize(kl_context *ctx)
{
    KL_ARG(ctx, "kl_context_synchronize", "ctx");
    for (int i = 0; i < ctx->n_backends; i++) KL_TRY(ctx->backends[i]->ops->synchronize(ctx->backends[i]));
    return KL_OK;
}

kl_status kl_context_set_compile_check(kl_context *ctx, const char *backend)
{
    KL_ARG(ctx, "kl_context_set_compile_check", "ctx");
    if (!backend || !*backend) {
        ctx->compile_check = NULL;
        return KL_OK;
    }
    if (strcmp(backend, "cuda") != 0)
        return kl_error(KL_ERR_VALUE, "compile check: no backend \"%s\" to check against (known: cuda)", backend);
    if (!ctx->check_backend) KL_TRY(kl_cuda_backend_new(ctx, KL_CUDA_COMPILE_ONLY, &ctx->check_backend));
    ctx->compile_check = ctx->check_backend;
    return KL_OK;
}

kl_status kl_context_set_device(kl_context *ctx, const char *name)
{
    KL_ARG(ctx, "kl_context_set_device", "ctx");
    KL_ARG(name, "kl_context_set_device", "name");
    if (strcmp(name, "cuda:0") == 0) name = "cuda"; /* the one GPU a process opens */
    for (int i = 0; i < ctx->n_backends; i++)
        if (strcmp(ctx->backends[i]->name, name) == 0) {
            ctx->device = ctx->backends[i];
            return KL_OK;
        }
    int emulate = strcmp(name, "cuda-emulate") == 0;
    if (emulate || strcmp(name, "cuda") == 0) { /* opened at first use */
        kl_backend *b = NULL;
        KL_TRY(kl_cuda_backend_new(ctx, emulate ? KL_CUDA_EMULATE : KL_CUDA_DEVICE, &b)); /* or says what is missing */
        kl_status s = kl_context_add_backend(ctx, b);
        if (s != KL_OK) { b->ops->destroy(b); return s; }
        ctx->device = b;
        return KL_OK;
    }
    char known[KL_MAX_BACKENDS * 34] = "";
    for (int i = 0; i < ctx->n_backends; i++) {
        if (i) strcat(known, ", ");
        strcat(known, ctx->backends[i]->name); /* names are under 32 bytes */
    }
    return kl_error(KL_ERR_VALUE, "no device named \"%s\" (this context has: %s)", name, known);
}

kl_status kl_context_add_backend(kl_context *ctx, kl_backend *b)
{
    KL_ARG(ctx, "kl_context_add_backend", "ctx");
    KL_ARG(b, "kl_context_add_backend", "backend");
    if (ctx->n_backends == KL_MAX_BACKENDS)
        return kl_error(KL_ERR_VALUE, "kl_context_add_backend: a context holds at most %d backends", KL_MAX_BACKENDS);
    for (int i = 0; i < ctx->n_backends; i++)
        if (ctx->backends[i] == b || strcmp(ctx->backends[i]->name, b->name) == 0)
            return kl_error(KL_ERR_VALUE, "kl_context_add_backend: a device named \"%s\" is already there", b->name);
    b->ctx = ctx;
    ctx->backends[ctx->n_backends++] = b;
    return KL_OK;
}

void kl_context_set_profile(kl_context *ctx, int on)
{
    if (!have(ctx, "kl_context_set_profile", "ctx")) return;
    ctx->profile.on = on != 0;
}

void kl_context_set_keep_graphs(kl_context *ctx, int on)
{
    if (!have(ctx, "kl_context_set_keep_graphs", "ctx")) return;
    ctx->keep_graphs = on != 0;
}

int kl_context_keep_graphs(const kl_context *ctx)
{
    return have(ctx, "kl_context_keep_graphs", "ctx") ? ctx->keep_graphs : 0;
}

int kl_context_profile_enabled(const kl_context *ctx)
{
    return have(ctx, "kl_context_profile_enabled", "ctx") ? ctx->profile.on : 0;
}

int kl_context_profile_take(kl_context *ctx, kl_profile_record *out, int max)
{
    if (!have(ctx, "kl_context_profile_take", "ctx") || max <= 0) return 0;
    if (!have(out, "kl_context_profile_take", "out")) return 0;
    int n = ctx->profile.n < max ? ctx->profile.n : max;
    if (n == 0) return 0; /* no records yet: there may be no array to copy from */
    memcpy(out, ctx->profile.records, (size_t)n * sizeof *out);
    memmove(ctx->profile.records, ctx->profile.records + n, (size_t)(ctx->profile.n - n) * sizeof *out);
    ctx->profile.n -= n;
    return n;
}
