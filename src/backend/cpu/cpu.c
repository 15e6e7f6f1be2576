/* cpu.c: the CPU backend: host memory from the caching allocator, a
 * synchronous queue (a launch returns when the kernel has run), and the
 * parts in toolchain.c (compile and load) and patterns.c (libraries). */
#include "backend/cpu/cpu.h"
#include "core/error.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *cpu_alloc(kl_backend *b, size_t nbytes) { return kl_host_alloc(&((kl_cpu_backend *)b)->alloc, nbytes); }

static void cpu_free(kl_backend *b, void *p, size_t nbytes) { kl_host_free(&((kl_cpu_backend *)b)->alloc, p, nbytes); }

#define PARALLEL_COPY_BYTES (1 << 20) /* below this one thread copies at memory speed */
#define COPY_CHUNK (256 << 10)

static kl_status cpu_copy(kl_backend *b, void *dst, const void *src, size_t nbytes, kl_copy_kind kind)
{
    (void)kind; /* host and device are one memory */
    char *d = dst;
    const char *s = src;
    /* a large copy between distinct buffers uses every core's bandwidth */
    if (nbytes < PARALLEL_COPY_BYTES || (d < s + nbytes && s < d + nbytes)) {
        if (nbytes) memmove(dst, src, nbytes);
        return KL_OK;
    }
    kl_cpu_threads_apply(&((kl_cpu_backend *)b)->threads);
    long chunks = (long)((nbytes + COPY_CHUNK - 1) / COPY_CHUNK);
#pragma omp parallel for schedule(static)
    for (long i = 0; i < chunks; i++) {
        size_t off = (size_t)i * COPY_CHUNK, n = nbytes - off < COPY_CHUNK ? nbytes - off : COPY_CHUNK;
        memcpy(d + off, s + off, n);
    }
    return KL_OK;
}

static kl_status cpu_fill(kl_backend *b, void *dst, size_t nbytes, uint8_t byte)
{
    (void)b;
    if (nbytes) memset(dst, byte, nbytes);
    return KL_OK;
}

static void cpu_memory(kl_backend *b, kl_memory_stats *out)
{
    const kl_host_allocator *a = &((kl_cpu_backend *)b)->alloc;
    out->bytes_allocated = a->bytes_allocated;
    out->bytes_in_use = a->bytes_in_use;
    out->bytes_cached = a->bytes_cached;
    out->peak_bytes_in_use = a->peak_bytes_in_use;
}

static void cpu_trim(kl_backend *b)
{
    kl_cpu_backend *c = (kl_cpu_backend *)b;
    kl_dnnl_trim(&c->dnnl); /* kept weights go back to the allocator's lists, then out */
    kl_host_trim(&c->alloc);
}

static kl_status cpu_launch(kl_backend *b, kl_kernel_fn fn, const kl_launch_args *a)
{
    kl_cpu_threads_apply(&((kl_cpu_backend *)b)->threads);
    fn(a->buf, a->iarg, a->farg);
    return KL_OK;
}

static uint64_t cpu_plan_state(kl_backend *b)
{
    kl_cpu_threads_apply(&((kl_cpu_backend *)b)->threads);
    return (uint64_t)omp_get_max_threads();
}

static kl_status cpu_synchronize(kl_backend *b)
{
    (void)b; /* launches are synchronous */
    return KL_OK;
}

static int cpu_has_library(kl_backend *b, const char *name)
{
    kl_cpu_backend *c = (kl_cpu_backend *)b;
    if (strcmp(name, "blas") == 0) return kl_blas_available(&c->blas);
    if (strcmp(name, "dnnl") == 0) return kl_dnnl_available(&c->dnnl);
    return 0;
}

static void cpu_destroy(kl_backend *b)
{
    kl_cpu_backend *c = (kl_cpu_backend *)b;
    kl_dnnl_free(&c->dnnl);
    kl_host_trim(&c->alloc);
    free(c);
}

static const kl_backend_ops cpu_ops = {
    .name = "cpu",
    .artifact = "so",
    .host_visible = 1,
    .plane_scatter = 1,
    .sibling_outputs = 1,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy = cpu_copy,
    .fill = cpu_fill,
    .memory = cpu_memory,
    .trim = cpu_trim,
    .render = kl_cpu_render,
    .render_group = kl_cpu_render_group,
    .plan_state = cpu_plan_state,
    .toolchain = kl_cpu_toolchain,
    .compile_start = kl_cpu_compile_start,
    .compile_finish = kl_cpu_compile_finish,
    .load = kl_cpu_load,
    .unload = kl_cpu_unload,
    .launch = cpu_launch,
    .synchronize = cpu_synchronize,
    .supports = kl_cpu_supports,
    .run = kl_cpu_run,
    .layout = kl_cpu_layout,
    .to_row_major = kl_cpu_to_row_major,
    .has_library = cpu_has_library,
    .destroy = cpu_destroy,
};

kl_status kl_cpu_backend_new(struct kl_context *ctx, kl_backend **out)
{
    kl_cpu_backend *c = calloc(1, sizeof *c);
    if (!c) return kl_error(KL_ERR_MEMORY, "out of memory creating the CPU backend");
    c->base.ops = &cpu_ops;
    c->base.ctx = ctx;
    snprintf(c->base.name, sizeof c->base.name, "cpu");
    kl_blas_init(&c->blas);
    kl_dnnl_init(&c->dnnl, &c->alloc);
    kl_cpu_threads_init(&c->threads);
    *out = &c->base;
    return KL_OK;
}

