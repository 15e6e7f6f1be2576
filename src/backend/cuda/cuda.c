/* cuda.c: the CUDA backend's two forms. On a device (device.c) NVRTC
 * compiles each kernel to a cubin for the device's architecture, which the
 * disk cache keeps and the driver loads. Without one (compile-only) NVRTC
 * turns each kernel into PTX for compute_90, which the disk cache keeps and
 * the loader checks (the kernel's entry point and its key), so that every
 * kernel kiln makes is known to compile for an NVIDIA GPU on a machine that
 * has none; that form allocates nothing and runs nothing. */
#include "backend/cuda/cuda.h"
#include "core/error.h"
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMPILE_ONLY_ARCH "compute_90" /* Hopper (H100, H200): the oldest arch the kernels are tuned for */

static void *no_alloc(kl_backend *b, size_t nbytes)
{
    (void)nbytes;
    kl_error(KL_ERR_RUNTIME, "%s: the CUDA backend is compile-only here (no device): it holds no memory", b->name);
    return NULL;
}

static void no_free(kl_backend *b, void *p, size_t nbytes) { (void)b; (void)p; (void)nbytes; }

static kl_status no_device(kl_backend *b, const char *what)
{
    return kl_error(KL_ERR_RUNTIME, "%s: cannot %s: the CUDA backend is compile-only here (no device)", b->name, what);
}

static kl_status no_copy(kl_backend *b, void *dst, const void *src, size_t nbytes, kl_copy_kind kind)
{
    (void)dst; (void)src; (void)nbytes; (void)kind;
    return no_device(b, "copy");
}

static kl_status no_fill(kl_backend *b, void *dst, size_t nbytes, uint8_t byte)
{
    (void)dst; (void)nbytes; (void)byte;
    return no_device(b, "fill memory");
}

static void no_memory(kl_backend *b, kl_memory_stats *out) { (void)b; memset(out, 0, sizeof *out); }

static void no_trim(kl_backend *b) { (void)b; }

static kl_status no_launch(kl_backend *b, kl_kernel_fn fn, const kl_launch_args *a)
{
    (void)fn; (void)a;
    return no_device(b, "launch a kernel");
}

static kl_status no_sync(kl_backend *b) { (void)b; return KL_OK; }

static int no_pattern(kl_backend *b, const kl_pattern *p) { (void)b; (void)p; return 0; }

static kl_status no_run(kl_backend *b, const kl_pattern *p, void *out, const void *const *in, uint64_t bc)
{
    (void)p; (void)out; (void)in; (void)bc;
    return no_device(b, "run a library call");
}

/* ---- compiling ---- */

static kl_status cuda_toolchain(kl_backend *b, kl_lang lang, kl_toolchain *out)
{
    kl_cuda_backend *c = (kl_cuda_backend *)b;
    if (lang != KL_LANG_KERNEL && lang != KL_LANG_CUDA)
        return kl_error(KL_ERR_RUNTIME, "%s: C and C++ source runs on the host (jt.code's cpu_src)", b->name);
    KL_TRY(kl_nvrtc_load(&c->nvrtc));
    snprintf(c->identity, sizeof c->identity, "nvrtc %d.%d|%s|--std=c++17", c->nvrtc.major, c->nvrtc.minor,
             c->arch);
    out->identity = c->identity;
    out->prelude = kl_cuda_prelude;
    out->source_ext = "cu";
    out->key_line = lang == KL_LANG_KERNEL ? "\nextern \"C\" __device__ const char kl_kernel_key[] = \"%s\";\n"
                                           : kl_cuda_user_key_line;
    return KL_OK;
}

static char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *data = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)n + 1))) {
            *size = fread(data, 1, (size_t)n, f);
            data[*size] = 0;
        }
    }
    fclose(f);
    return data;
}

/* One NVRTC compile on a thread of its own (NVRTC compiles several
 * programs at once safely), so the jit's parallel compiles run in parallel
 * here too. Its message is kept: kl_error's is per thread. */
typedef struct {
    pthread_t thread;
    kl_nvrtc *nvrtc;
    char arch[16];
    char src[4200], out[4200];
    int failed;
    char message[4200];
} compile_work;

static void *compile_thread(void *arg)
{
    compile_work *w = arg;
    size_t n = 0;
    char *text = read_file(w->src, &n), *image = NULL;
    size_t size = 0;
    kl_status s = text ? kl_nvrtc_compile(w->nvrtc, text, w->src, w->arch, &image, &size)
                       : kl_error(KL_ERR_RUNTIME, "cannot read kernel source %s", w->src);
    free(text);
    if (s == KL_OK) {
        if (strncmp(w->arch, "compute_", 8) == 0 && size && image[size - 1] == 0) size--; /* PTX is text: no NUL */
        FILE *f = fopen(w->out, "wb");
        int ok = f && fwrite(image, 1, size, f) == size;
        if (f && fclose(f) != 0) ok = 0;
        if (!ok) s = kl_error(KL_ERR_RUNTIME, "cannot write compiled kernel %s", w->out);
    }
    free(image);
    if (s != KL_OK) {
        w->failed = 1;
        snprintf(w->message, sizeof w->message, "%s", kl_last_error());
    }
    return NULL;
}

static kl_status cuda_compile_start(kl_backend *b, kl_lang lang, const char *src, const char *out, kl_compile_job *job)
{
    (void)lang;
    kl_cuda_backend *c = (kl_cuda_backend *)b;
    KL_TRY(kl_nvrtc_load(&c->nvrtc)); /* here: loading is not for several threads at once */
    compile_work *w = calloc(1, sizeof *w);
    if (!w) return kl_error(KL_ERR_MEMORY, "out of memory starting a CUDA compile");
    w->nvrtc = &c->nvrtc;
    snprintf(w->arch, sizeof w->arch, "%s", c->arch);
    snprintf(w->src, sizeof w->src, "%s", src);
    snprintf(w->out, sizeof w->out, "%s", out);
    job->pid = 0;
    int rc = pthread_create(&w->thread, NULL, compile_thread, w);
    if (rc != 0) {
        free(w);
        return kl_error(KL_ERR_RUNTIME, "cannot start a CUDA compile: %s", strerror(rc));
    }
    job->work = w;
    return KL_OK;
}

static kl_status cuda_compile_finish(kl_backend *b, kl_compile_job *job, const char *src)
{
    (void)b;
    compile_work *w = job->work;
    if (!w) return kl_error(KL_ERR_RUNTIME, "internal: no CUDA compile was started for %s", src);
    pthread_join(w->thread, NULL);
    job->work = NULL;
    kl_status s = w->failed ? kl_error(KL_ERR_RUNTIME, "CUDA kernel compile failed; source kept at %s; compiler output:\n%s", src,
                                       w->message)
                            : KL_OK;
    free(w);
    return s;
}

/* What a compile-only load returns: never called (nothing launches). */
static void unlaunchable(void *const *buf, const int64_t *iarg, const double *farg)
{
    (void)buf; (void)iarg; (void)farg;
}

/* The key a PTX image defines: `.global .align 1 .b8 kl_kernel_key[N] = {107, 108, ...};`
 * (the closing zero byte may be left out: the array's size implies it) */
static int ptx_key_is(const char *ptx, const char *key)
{
    const char *at = strstr(ptx, "kl_kernel_key[");
    const char *open = at ? strchr(at, '{') : NULL;
    if (!open) return 0;
    const char *p = open + 1;
    for (size_t i = 0;; i++) {
        char *end;
        long byte = strtol(p, &end, 10);
        if (end == p) return *p == '}' && key[i] == 0;
        if (byte == 0) return key[i] == 0;
        if ((unsigned char)key[i] != byte) return 0;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
}

static kl_status cuda_load(kl_backend *b, const char *path, const char *key, void **handle, kl_kernel_fn *fn)
{
    kl_cuda_backend *c = (kl_cuda_backend *)b;
    size_t n = 0;
    char *image = read_file(path, &n);
    if (!image) return kl_error(KL_ERR_RUNTIME, "cannot read CUDA kernel %s", path);
    kl_status s = KL_OK;
    if (c->mode == KL_CUDA_DEVICE) {
        s = kl_cuda_device_load(c, image, path, key, handle, fn);
    } else {
        int entry = strstr(image, ".entry kl_kernel(") != NULL, keyed = ptx_key_is(image, key);
        if (!entry || !keyed)
            s = kl_error(KL_ERR_RUNTIME, "%s: %s is not kernel %s (%s)", b->name, path, key,
                         entry ? "another kernel's file" : "no kl_kernel entry");
        *handle = NULL;
        *fn = unlaunchable;
    }
    free(image);
    return s;
}

static void cuda_unload(kl_backend *b, void *handle)
{
    kl_cuda_backend *c = (kl_cuda_backend *)b;
    if (c->mode == KL_CUDA_DEVICE) kl_cuda_device_unload(c, handle);
}

static int cuda_has_library(kl_backend *b, const char *name)
{
    kl_cuda_backend *c = (kl_cuda_backend *)b;
    return strcmp(name, "nvrtc") == 0 && kl_nvrtc_load(&c->nvrtc) == KL_OK;
}

static void cuda_destroy(kl_backend *b)
{
    kl_cuda_backend *c = (kl_cuda_backend *)b;
    if (c->mode == KL_CUDA_DEVICE) kl_cuda_device_close(c);
    if (c->mode == KL_CUDA_EMULATE) kl_cuda_emulation_close(c);
    kl_nvrtc_unload(&c->nvrtc);
    free(c);
}

static const kl_backend_ops compile_only_ops = {
    .name = "cuda",
    .artifact = "ptx",
    .host_visible = 0,
    .sibling_outputs = 1,
    .alloc = no_alloc,
    .free = no_free,
    .copy = no_copy,
    .fill = no_fill,
    .memory = no_memory,
    .trim = no_trim,
    .render = kl_cuda_render,
    .render_group = kl_cuda_render_group,
    .toolchain = cuda_toolchain,
    .compile_start = cuda_compile_start,
    .compile_finish = cuda_compile_finish,
    .load = cuda_load,
    .unload = cuda_unload,
    .launch = no_launch,
    .synchronize = no_sync,
    .supports = no_pattern,
    .run = no_run,
    .has_library = cuda_has_library,
    .destroy = cuda_destroy,
};

kl_status kl_cuda_backend_new(struct kl_context *ctx, kl_cuda_mode mode, kl_backend **out)
{
    *out = NULL;
    kl_cuda_backend *c = calloc(1, sizeof *c);
    if (!c) return kl_error(KL_ERR_MEMORY, "out of memory creating the CUDA backend");
    c->ops = compile_only_ops; /* on a device: the same compiler, the device's memory and queue */
    if (mode == KL_CUDA_DEVICE) {
        c->ops.name = "cuda";
        c->ops.artifact = "cubin";
        c->ops.alloc = kl_cuda_alloc;
        c->ops.free = kl_cuda_free;
        c->ops.copy = kl_cuda_copy;
        c->ops.fill = kl_cuda_fill;
        c->ops.memory = kl_cuda_memory;
        c->ops.trim = kl_cuda_trim;
        c->ops.launch = kl_cuda_launch;
        c->ops.launch_named = kl_cuda_launch_named;
        c->ops.collective = kl_cuda_collective;
        c->ops.synchronize = kl_cuda_synchronize;
        c->ops.supports = kl_cuda_supports;
        c->ops.run = kl_cuda_run;
    }
    c->base.ops = &c->ops;
    c->base.ctx = ctx;
    c->mode = mode;
    static const char *const names[] = {[KL_CUDA_DEVICE] = "cuda", [KL_CUDA_COMPILE_ONLY] = "cuda:check",
                                        [KL_CUDA_EMULATE] = "cuda-emulate"};
    snprintf(c->base.name, sizeof c->base.name, "%s", names[mode]);
    snprintf(c->arch, sizeof c->arch, COMPILE_ONLY_ARCH);
    kl_status s = KL_OK;
    if (mode == KL_CUDA_DEVICE) s = kl_cuda_device_open(c); /* sets the device's arch */
    if (mode == KL_CUDA_EMULATE) s = kl_cuda_emulation_open(c);
    else if (s == KL_OK) s = kl_nvrtc_load(&c->nvrtc);
    if (s != KL_OK) {
        cuda_destroy(&c->base);
        return s;
    }
    *out = &c->base;
    return KL_OK;
}
