/* test_backend.c: the conformance suite of the backend interface
 * (src/backend/backend.h). Each test drives a backend directly -- memory,
 * copies and fills; a kernel description rendered, compiled, launched and
 * synchronised; library patterns -- and then through the graph (vars on the
 * device, kl_sync, reads through the public API), and runs once per backend:
 *
 *   cpu      the CPU backend (src/backend/cpu/)
 *   guarded  a backend defined here whose memory the host cannot touch: it
 *            is mapped PROT_NONE except inside the backend's own calls, so
 *            any code outside the backend that reads or writes device memory
 *            directly crashes the test. It compiles with the CPU's toolchain
 *            and runs no library pattern (the generated fallback runs).
 *
 * A new backend adds itself to BACKENDS below and passes the same tests. */
#include "check.h"
#include "backend/backend.h"
#include "core/context.h"
#include "jit/jit.h"
#include "ops/lower.h"

#include <math.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- the guarded backend ---- */

typedef struct region {
    struct region *next;
    void *p;
    size_t len;
} region;

typedef struct {
    kl_backend base;
    kl_backend *cpu; /* whose toolchain and renderer it borrows */
    region *regions;
    kl_memory_stats stats;
} guarded;

static guarded *as_guarded(kl_backend *b) { return (guarded *)b; }

static void set_access(guarded *g, int prot)
{
    for (region *r = g->regions; r; r = r->next)
        if (mprotect(r->p, r->len, prot) != 0) abort();
}

static void open_memory(guarded *g) { set_access(g, PROT_READ | PROT_WRITE); }
static void close_memory(guarded *g) { set_access(g, PROT_NONE); }

static size_t page_round(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return ((n ? n : 1) + page - 1) / page * page;
}

static void *g_alloc(kl_backend *b, size_t nbytes)
{
    guarded *g = as_guarded(b);
    region *r = malloc(sizeof *r);
    if (!r) return NULL;
    r->len = page_round(nbytes);
    r->p = mmap(NULL, r->len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r->p == MAP_FAILED) { free(r); return NULL; }
    r->next = g->regions;
    g->regions = r;
    g->stats.bytes_allocated += nbytes;
    g->stats.bytes_in_use += nbytes;
    if (g->stats.bytes_in_use > g->stats.peak_bytes_in_use) g->stats.peak_bytes_in_use = g->stats.bytes_in_use;
    return r->p;
}

static void g_free(kl_backend *b, void *p, size_t nbytes)
{
    guarded *g = as_guarded(b);
    for (region **at = &g->regions; *at; at = &(*at)->next)
        if ((*at)->p == p) {
            region *r = *at;
            *at = r->next;
            munmap(r->p, r->len);
            free(r);
            g->stats.bytes_in_use -= nbytes;
            return;
        }
    abort(); /* freeing what this backend never allocated */
}

static kl_status g_copy(kl_backend *b, void *dst, const void *src, size_t nbytes, kl_copy_kind kind)
{
    (void)kind;
    open_memory(as_guarded(b));
    if (nbytes) memmove(dst, src, nbytes);
    close_memory(as_guarded(b));
    return KL_OK;
}

static kl_status g_fill(kl_backend *b, void *dst, size_t nbytes, uint8_t byte)
{
    open_memory(as_guarded(b));
    if (nbytes) memset(dst, byte, nbytes);
    close_memory(as_guarded(b));
    return KL_OK;
}

static void g_memory(kl_backend *b, kl_memory_stats *out) { *out = as_guarded(b)->stats; }
static void g_trim(kl_backend *b) { (void)b; }

static kl_status g_render(kl_backend *b, const struct kl_kdesc *k, char **source)
{
    kl_backend *cpu = as_guarded(b)->cpu;
    return cpu->ops->render(cpu, k, source);
}

static kl_status g_toolchain(kl_backend *b, kl_lang lang, kl_toolchain *out)
{
    kl_backend *cpu = as_guarded(b)->cpu;
    return cpu->ops->toolchain(cpu, lang, out);
}

static kl_status g_compile_start(kl_backend *b, kl_lang lang, const char *src, const char *out, kl_compile_job *job)
{
    kl_backend *cpu = as_guarded(b)->cpu;
    return cpu->ops->compile_start(cpu, lang, src, out, job);
}

static kl_status g_compile_finish(kl_backend *b, kl_compile_job *job, const char *src)
{
    kl_backend *cpu = as_guarded(b)->cpu;
    return cpu->ops->compile_finish(cpu, job, src);
}

static kl_status g_load(kl_backend *b, const char *path, const char *key, void **handle, kl_kernel_fn *fn)
{
    kl_backend *cpu = as_guarded(b)->cpu;
    return cpu->ops->load(cpu, path, key, handle, fn);
}

static void g_unload(kl_backend *b, void *handle)
{
    kl_backend *cpu = as_guarded(b)->cpu;
    cpu->ops->unload(cpu, handle);
}

static kl_status g_launch(kl_backend *b, kl_kernel_fn fn, const kl_launch_args *a)
{
    open_memory(as_guarded(b));
    fn(a->buf, a->iarg, a->farg);
    close_memory(as_guarded(b));
    return KL_OK;
}

static kl_status g_synchronize(kl_backend *b) { (void)b; return KL_OK; }
static int g_supports(kl_backend *b, const kl_pattern *p) { (void)b; (void)p; return 0; }

static kl_status g_run(kl_backend *b, const kl_pattern *p, void *out, const void *const *in, uint64_t c)
{
    (void)b; (void)p; (void)out; (void)in; (void)c;
    return kl_error(KL_ERR_RUNTIME, "guarded: runs no library pattern");
}

static void g_destroy(kl_backend *b)
{
    guarded *g = as_guarded(b);
    while (g->regions) {
        region *r = g->regions;
        g->regions = r->next;
        munmap(r->p, r->len);
        free(r);
    }
    free(g);
}

static const kl_backend_ops guarded_ops = {
    .name = "guarded", .artifact = "so", .host_visible = 0,
    .alloc = g_alloc, .free = g_free, .copy = g_copy, .fill = g_fill, .memory = g_memory, .trim = g_trim,
    .render = g_render, .toolchain = g_toolchain, .compile_start = g_compile_start,
    .compile_finish = g_compile_finish, .load = g_load, .unload = g_unload,
    .launch = g_launch, .synchronize = g_synchronize, .supports = g_supports, .run = g_run,
    .has_library = NULL, .destroy = g_destroy,
};

static kl_backend *guarded_new(kl_context *ctx)
{
    guarded *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->base.ops = &guarded_ops;
    g->cpu = ctx->backends[0];
    snprintf(g->base.name, sizeof g->base.name, "guarded");
    return &g->base;
}

/* ---- running the suite on each backend ---- */

/* "cuda-emulate" runs the CUDA backend's kernels on the CPU; "cuda" runs where a GPU is
 * (scripts/gpu_check.sh) and is skipped, saying why, elsewhere. */
static const char *const BACKENDS[] = {"cpu", "guarded", "cuda-emulate", "cuda"};
#define N_BACKENDS (int)(sizeof BACKENDS / sizeof *BACKENDS)

static int available(const char *device)
{
    if (strcmp(device, "cuda") != 0) return 1;
    kl_context *ctx = NULL;
    if (kl_context_new(&ctx) != KL_OK) return 0;
    int ok = kl_context_set_device(ctx, device) == KL_OK;
    if (!ok) printf("    skipped on %s: %s\n", device, kl_last_error());
    kl_context_free(ctx);
    return ok;
}

/* A context whose device is the named backend (added when not built in). */
static kl_context *context_on(const char *device)
{
    kl_context *ctx = check_context();
    if (!ctx) return NULL;
    if (strcmp(device, "guarded") == 0) {
        kl_backend *g = guarded_new(ctx);
        if (!CHECK(g != NULL) || !CHECK_OK(kl_context_add_backend(ctx, g))) {
            if (g) g->ops->destroy(g);
            kl_context_free(ctx);
            return NULL;
        }
    }
    if (!CHECK_OK(kl_context_set_device(ctx, device))) {
        kl_context_free(ctx);
        return NULL;
    }
    return ctx;
}

static kl_backend *device_of(kl_context *ctx) { return ctx->device; }

static void fill_inputs(double *x, int n, uint64_t seed)
{
    for (int i = 0; i < n; i++) x[i] = check_round_to(KL_FLOAT32, check_rand01(&seed) * 2 - 1);
}

/* Memory: allocate, copy host to device, device to device, fill, copy back;
 * the statistics follow. */
static void memory_on(const char *device)
{
    kl_context *ctx = context_on(device);
    if (!ctx) return;
    kl_backend *b = device_of(ctx);
    kl_memory_stats before, during, after;
    b->ops->memory(b, &before);
    /* the last is copied in parallel chunks on the CPU, with a ragged end */
    size_t sizes[] = {1, 4096, 100003, (3u << 20) + 12345};
    for (int t = 0; t < 4; t++) {
        size_t n = sizes[t];
        unsigned char *host = malloc(n), *back = malloc(n);
        for (size_t i = 0; i < n; i++) host[i] = (unsigned char)(i * 7 + t);
        void *d1 = b->ops->alloc(b, n), *d2 = b->ops->alloc(b, n), *d3 = b->ops->alloc(b, n);
        if (CHECK(d1 && d2 && d3)) {
            b->ops->memory(b, &during);
            CHECK_MSG(during.bytes_in_use >= before.bytes_in_use + 3 * n, "%s: %llu bytes in use after 3 x %zu",
                      device, (unsigned long long)during.bytes_in_use, n);
            CHECK_OK(b->ops->copy(b, d1, host, n, KL_COPY_HOST_TO_DEVICE));
            CHECK_OK(b->ops->copy(b, d2, d1, n, KL_COPY_DEVICE_TO_DEVICE));
            CHECK_OK(b->ops->copy(b, back, d2, n, KL_COPY_DEVICE_TO_HOST));
            CHECK_MSG(memcmp(back, host, n) == 0, "%s: %zu bytes changed on the way through two copies", device, n);
            CHECK_OK(b->ops->fill(b, d3, n, 0x5a));
            CHECK_OK(b->ops->copy(b, back, d3, n, KL_COPY_DEVICE_TO_HOST));
            int filled = 1;
            for (size_t i = 0; i < n; i++) filled &= back[i] == 0x5a;
            CHECK_MSG(filled, "%s: fill of %zu bytes", device, n);
        }
        if (d1) b->ops->free(b, d1, n);
        if (d2) b->ops->free(b, d2, n);
        if (d3) b->ops->free(b, d3, n);
        free(host);
        free(back);
    }
    b->ops->memory(b, &after);
    CHECK_EQ_INT(after.bytes_in_use, before.bytes_in_use);
    CHECK(after.peak_bytes_in_use >= before.bytes_in_use + 3 * 100003);
    kl_context_free(ctx);
}

static void test_memory(void)
{
    for (int i = 0; i < N_BACKENDS; i++)
        if (available(BACKENDS[i])) memory_on(BACKENDS[i]);
}

/* The three kernel shapes on x (3 x 5): a map, a reduce, a scatter. */
enum { MAP, REDUCE, SCATTER, N_KERNELS };
static const char *const KERNEL_NAMES[] = {"map", "reduce", "scatter"};

static kl_var *expression(kl_var *x, int which)
{
    kl_var *half = check_scalar(kl_var_context(x), KL_FLOAT32, 0.5);
    kl_var *scaled = check_bin(KL_MUL, x, half);
    kl_var *e = check_un(KL_EXP, scaled);
    kl_var *y = NULL;
    if (which == MAP) {
        y = check_bin(KL_SUB, e, x);
    } else if (which == REDUCE) {
        int dim = 1;
        kl_var *sq = check_bin(KL_MUL, x, e);
        if (sq) CHECK_OK(kl_reduce(sq, KL_REDUCE_SUM, 1, &dim, 0, &y));
        check_release(sq);
    } else {
        /* out[(i0 + i1) % 4] += e[i0, i1] */
        int64_t shape[1] = {4};
        const char *idx[1] = {"(i0 + i1) % 4"};
        if (e) CHECK_OK(kl_reindex_reduce(e, KL_REDUCE_SUM, 1, shape, idx, 0, NULL, 0, NULL, &y));
    }
    check_release(half);
    check_release(scaled);
    check_release(e);
    return y;
}

/* What expression(x, which) computes, in double. */
static int reference(const double *x, int which, double *out)
{
    if (which == MAP) {
        for (int i = 0; i < 15; i++) out[i] = exp(x[i] * 0.5) - x[i];
        return 15;
    }
    if (which == REDUCE) {
        for (int r = 0; r < 3; r++) {
            out[r] = 0;
            for (int c = 0; c < 5; c++) out[r] += x[r * 5 + c] * exp(x[r * 5 + c] * 0.5);
        }
        return 3;
    }
    for (int t = 0; t < 4; t++) out[t] = 0;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 5; c++) out[(r + c) % 4] += exp(x[r * 5 + c] * 0.5);
    return 4;
}

/* A description lowered from the graph, rendered by the backend, compiled by
 * the jit for it, launched and synchronised by hand: what kl_sync does,
 * one call at a time. */
static void kernels_on(const char *device)
{
    kl_context *ctx = context_on(device);
    if (!ctx) return;
    kl_backend *b = device_of(ctx);
    double xs[15], want[15];
    fill_inputs(xs, 15, 5);
    int64_t shape[2] = {3, 5};
    kl_var *x = check_var(ctx, KL_FLOAT32, 2, shape, xs);
    if (x) CHECK_EQ_STR(kl_var_device(x), device);
    kl_kdesc *kd = calloc(1, sizeof *kd);
    for (int which = 0; x && kd && which < N_KERNELS; which++) {
        kl_var *y = expression(x, which);
        if (!y) continue;
        y->materialize = 1;
        kl_kd_init(kd);
        char *source = NULL;
        kl_kernel_fn fn = NULL;
        kl_lang lang = KL_LANG_KERNEL;
        if (CHECK_OK(kl_lower_kernel(y, kd)) && CHECK_OK(b->ops->render(b, kd, &source)) &&
            CHECK_OK(kl_jit_get_many(ctx, b, 1, (const char *const *)&source, &lang, &fn))) {
            size_t nbytes = (size_t)kl_var_numel(y) * sizeof(float);
            void *out = b->ops->alloc(b, nbytes);
            void *bufs[KL_KD_MAX_BUFS] = {out};
            for (int i = 1; i < kd->h.n_bufs; i++) bufs[i] = kd->bufs[i]->buf->data;
            kl_launch_args la = {bufs, kd->iargs, kd->fargs, kd->h.n_bufs, kd->h.n_iargs, kd->h.n_fargs,
                                 kl_var_numel(y), 0};
            if (CHECK(out != NULL) && CHECK_OK(b->ops->launch(b, fn, &la)) &&
                CHECK_OK(b->ops->synchronize(b))) {
                float got[15];
                int n = reference(xs, which, want);
                CHECK_EQ_INT(kl_var_numel(y), n);
                CHECK_OK(b->ops->copy(b, got, out, nbytes, KL_COPY_DEVICE_TO_HOST));
                double gd[15];
                for (int i = 0; i < n; i++) gd[i] = got[i];
                CHECK_ARRAY_CLOSE(gd, want, n, 1e-5, 1e-6, KERNEL_NAMES[which]);
            }
            if (out) b->ops->free(b, out, nbytes);
        }
        free(source);
        kl_kd_clear(kd);
        check_release(y);
    }
    if (kd) kl_kd_free(kd);
    free(kd);
    check_release(x);
    kl_context_free(ctx);
}

static void test_kernels_by_hand(void)
{
    for (int i = 0; i < N_BACKENDS; i++)
        if (available(BACKENDS[i])) kernels_on(BACKENDS[i]);
}

/* The same expressions through kl_sync; read by copy and by kl_var_data. */
static void graph_on(const char *device)
{
    kl_context *ctx = context_on(device);
    if (!ctx) return;
    double xs[15], want[15];
    fill_inputs(xs, 15, 9);
    int64_t shape[2] = {3, 5};
    kl_var *x = check_var(ctx, KL_FLOAT32, 2, shape, xs);
    for (int which = 0; x && which < N_KERNELS; which++) {
        kl_var *y = expression(x, which);
        if (!y) continue;
        CHECK_EQ_STR(kl_var_device(y), device);
        int n = reference(xs, which, want);
        float got[15];
        if (CHECK_OK(kl_var_copy_to_host(y, got, (size_t)n * sizeof(float)))) {
            double gd[15];
            for (int i = 0; i < n; i++) gd[i] = got[i];
            CHECK_ARRAY_CLOSE(gd, want, n, 1e-5, 1e-6, KERNEL_NAMES[which]);
        }
        const void *data = NULL;
        if (CHECK_OK(kl_var_data(y, &data)))
            CHECK_MSG(memcmp(data, got, (size_t)n * sizeof(float)) == 0, "%s: kl_var_data reads other values",
                      device);
        check_release(y);
    }
    check_release(x);
    kl_context_free(ctx);
}

static void test_graph_on_the_device(void)
{
    for (int i = 0; i < N_BACKENDS; i++)
        if (available(BACKENDS[i])) graph_on(BACKENDS[i]);
}

/* A matrix product: the backend's library when it runs the pattern (checked
 * against a direct call), the generated fallback when not; the same values. */
static void gemm_on(const char *device)
{
    kl_context *ctx = context_on(device);
    if (!ctx) return;
    kl_backend *b = device_of(ctx);
    enum { M = 3, K = 4, N = 5 };
    double a[M * K], bm[K * N], want[M * N];
    fill_inputs(a, M * K, 1);
    fill_inputs(bm, K * N, 2);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            want[i * N + j] = 0;
            for (int k = 0; k < K; k++) want[i * N + j] += a[i * K + k] * bm[k * N + j];
        }
    kl_pattern p;
    memset(&p, 0, sizeof p);
    p.kind = KL_PATTERN_GEMM;
    p.dtype = KL_FLOAT32;
    p.gemm = (kl_gemm_shape){.m = M, .n = N, .k = K, .lda = K, .ldb = N, .ldc = N};
    if (b->ops->supports(b, &p)) {
        float fa[M * K], fb[K * N], fc[M * N];
        for (int i = 0; i < M * K; i++) fa[i] = (float)a[i];
        for (int i = 0; i < K * N; i++) fb[i] = (float)bm[i];
        void *da = b->ops->alloc(b, sizeof fa), *db = b->ops->alloc(b, sizeof fb), *dc = b->ops->alloc(b, sizeof fc);
        if (CHECK(da && db && dc) && CHECK_OK(b->ops->copy(b, da, fa, sizeof fa, KL_COPY_HOST_TO_DEVICE)) &&
            CHECK_OK(b->ops->copy(b, db, fb, sizeof fb, KL_COPY_HOST_TO_DEVICE)) &&
            CHECK_OK(b->ops->run(b, &p, dc, (const void *[]){da, db}, 0)) && CHECK_OK(b->ops->synchronize(b)) &&
            CHECK_OK(b->ops->copy(b, fc, dc, sizeof fc, KL_COPY_DEVICE_TO_HOST))) {
            double got[M * N];
            for (int i = 0; i < M * N; i++) got[i] = fc[i];
            CHECK_ARRAY_CLOSE(got, want, M * N, 1e-5, 1e-6, "gemm pattern");
        }
        if (da) b->ops->free(b, da, sizeof fa);
        if (db) b->ops->free(b, db, sizeof fb);
        if (dc) b->ops->free(b, dc, sizeof fc);
    }
    /* through the graph: sum over k of A[i, k] * B[k, j] */
    int64_t sa[2] = {M, K}, sb[2] = {K, N}, s3[3] = {M, K, N};
    int new_a = 2, new_b = 0, dim = 1;
    kl_var *A = check_var(ctx, KL_FLOAT32, 2, sa, a), *B = check_var(ctx, KL_FLOAT32, 2, sb, bm);
    kl_var *Ab = NULL, *Bb = NULL, *P = NULL, *C = NULL;
    if (A && B && CHECK_OK(kl_broadcast_to(A, 3, s3, 1, &new_a, &Ab)) &&
        CHECK_OK(kl_broadcast_to(B, 3, s3, 1, &new_b, &Bb)) && CHECK_OK(kl_binary(KL_MUL, Ab, Bb, &P)) &&
        CHECK_OK(kl_reduce(P, KL_REDUCE_SUM, 1, &dim, 0, &C))) {
        check_release(Ab);
        check_release(Bb);
        check_release(P);
        Ab = Bb = P = NULL;
        double *got = check_read(C);
        if (got) CHECK_ARRAY_CLOSE(got, want, M * N, 1e-5, 1e-6, "matmul graph");
        free(got);
    }
    kl_var *all[] = {A, B, Ab, Bb, P, C};
    for (int i = 0; i < 6; i++) check_release(all[i]);
    kl_context_free(ctx);
}

static void test_gemm(void)
{
    for (int i = 0; i < N_BACKENDS; i++)
        if (available(BACKENDS[i])) gemm_on(BACKENDS[i]);
}

/* An op whose inputs sit on two devices is refused, naming both. */
static void test_mixed_devices_are_refused(void)
{
    kl_context *ctx = context_on("guarded");
    if (!ctx) return;
    double v[4] = {1, 2, 3, 4};
    int64_t shape[1] = {4};
    kl_var *on_guarded = check_var(ctx, KL_FLOAT32, 1, shape, v);
    CHECK_OK(kl_context_set_device(ctx, "cpu"));
    kl_var *on_cpu = check_var(ctx, KL_FLOAT32, 1, shape, v);
    kl_var *sum = NULL;
    if (on_guarded && on_cpu) {
        CHECK_EQ_STR(kl_var_device(on_guarded), "guarded");
        CHECK_EQ_STR(kl_var_device(on_cpu), "cpu");
        /* the form a gradient's scatter takes is the device's say */
        CHECK_EQ_INT(kl_var_device_scatters_planes(on_cpu), 1);
        CHECK_EQ_INT(kl_var_device_scatters_planes(on_guarded), 0);
        CHECK_EQ_INT(kl_var_device_scatters_planes(NULL), 0);
        CHECK_STATUS(kl_binary(KL_ADD, on_cpu, on_guarded, &sum), KL_ERR_VALUE);
        const char *msg = kl_last_error();
        CHECK_MSG(strstr(msg, "cpu") && strstr(msg, "guarded"), "the error names both devices: %s", msg);
    }
    CHECK_STATUS(kl_context_set_device(ctx, "tpu"), KL_ERR_VALUE);
    CHECK_MSG(strstr(kl_last_error(), "cpu, guarded") != NULL, "the error lists the devices: %s", kl_last_error());
    CHECK_EQ_INT(kl_context_device_count(ctx), 2);
    CHECK_EQ_STR(kl_context_device_name(ctx, 1), "guarded");
    CHECK(kl_context_device_name(ctx, 2) == NULL);
    CHECK_EQ_STR(kl_context_device(ctx), "cpu");
    check_release(on_guarded);
    check_release(on_cpu);
    check_release(sum);
    kl_context_free(ctx);
}

/* Syncing vars of both devices at once runs each device's part. */
static void test_one_sync_over_two_devices(void)
{
    kl_context *ctx = context_on("guarded");
    if (!ctx) return;
    double v[4] = {1, 2, 3, 4};
    int64_t shape[1] = {4};
    kl_var *g = check_var(ctx, KL_FLOAT32, 1, shape, v);
    CHECK_OK(kl_context_set_device(ctx, "cpu"));
    kl_var *c = check_var(ctx, KL_FLOAT32, 1, shape, v);
    kl_var *g2 = check_bin(KL_MUL, g, g), *c2 = check_bin(KL_ADD, c, c);
    if (g2 && c2) {
        kl_var *both[2] = {g2, c2};
        if (CHECK_OK(kl_sync(both, 2))) {
            double *a = check_read(g2), *b = check_read(c2);
            double wa[4] = {1, 4, 9, 16}, wb[4] = {2, 4, 6, 8};
            if (a && b) {
                CHECK_ARRAY_CLOSE(a, wa, 4, 0, 0, "guarded part");
                CHECK_ARRAY_CLOSE(b, wb, 4, 0, 0, "cpu part");
            }
            free(a);
            free(b);
        }
    }
    kl_var *all[] = {g, c, g2, c2};
    for (int i = 0; i < 4; i++) check_release(all[i]);
    kl_context_free(ctx);
}

CHECK_MAIN(TEST(test_memory), TEST(test_kernels_by_hand), TEST(test_graph_on_the_device), TEST(test_gemm),
           TEST(test_mixed_devices_are_refused), TEST(test_one_sync_over_two_devices))
