/* jit.c: kernel source -> function, for any backend. Lookup order: the
 * in-memory table, the on-disk cache (<cache>/kernels/<hash>.<artifact>,
 * loaded only when the header beside it vouches for it), then the backend's
 * compiler, run for all misses at once. A per-key lock file keeps concurrent
 * processes from compiling the same kernel (a killed holder releases it; a
 * stuck one is waited for only so long); a cache that cannot be written
 * gives way to a private directory. The backend says how to compile and
 * load (src/backend/backend.h); everything else here is shared. */
#include "jit/jit.h"
#include "core/context.h"
#include "core/error.h"
#include "jit/disk.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 0x100000001b3ULL; }
    return h;
}

/* The backend's compiler for lang, asked once (a changed compiler, flags or
 * machine changes its identity, and with it every key). */
static kl_status toolchain(kl_jit *jit, kl_backend *b, kl_lang lang, kl_jit_lang **out)
{
    for (int i = 0; i < jit->n_langs; i++)
        if (jit->langs[i].backend == b && jit->langs[i].lang == lang) { *out = &jit->langs[i]; return KL_OK; }
    if (jit->n_langs == KL_JIT_MAX_TOOLCHAINS) return kl_error(KL_ERR_RUNTIME, "internal: too many toolchains");
    kl_jit_lang *L = &jit->langs[jit->n_langs];
    KL_TRY(b->ops->toolchain(b, lang, &L->tc));
    L->backend = b;
    L->lang = lang;
    L->base_hash = fnv1a(fnv1a(fnv1a(0xcbf29ce484222325ULL, L->tc.identity), L->tc.prelude), b->ops->name);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    jit->cores = cores > 0 ? (int)cores : 1;
    jit->n_langs++;
    *out = L;
    return KL_OK;
}

static kl_jit_entry *find(kl_jit *jit, uint64_t hash, const char *source)
{
    if (!jit->capacity) return NULL;
    for (size_t i = hash & (jit->capacity - 1);; i = (i + 1) & (jit->capacity - 1)) {
        kl_jit_entry *e = &jit->entries[i];
        if (!e->source) return NULL;
        if (e->hash == hash && strcmp(e->source, source) == 0) return e;
    }
}

static kl_status insert(kl_jit *jit, uint64_t hash, const char *source, kl_kernel_fn fn, void *handle,
                        kl_backend *backend)
{
    if ((jit->count + 1) * 2 > jit->capacity) {
        size_t cap = jit->capacity ? jit->capacity * 2 : 64;
        kl_jit_entry *fresh = calloc(cap, sizeof *fresh);
        if (!fresh) return kl_error(KL_ERR_MEMORY, "out of memory growing the kernel table");
        for (size_t i = 0; i < jit->capacity; i++) {
            kl_jit_entry *e = &jit->entries[i];
            if (!e->source) continue;
            size_t j = e->hash & (cap - 1);
            while (fresh[j].source) j = (j + 1) & (cap - 1);
            fresh[j] = *e;
        }
        free(jit->entries);
        jit->entries = fresh;
        jit->capacity = cap;
    }
    char *copy = strdup(source);
    if (!copy) return kl_error(KL_ERR_MEMORY, "out of memory in the kernel table");
    size_t j = hash & (jit->capacity - 1);
    while (jit->entries[j].source) j = (j + 1) & (jit->capacity - 1);
    jit->entries[j] = (kl_jit_entry){hash, copy, fn, handle, backend};
    jit->count++;
    return KL_OK;
}

void kl_jit_unload(kl_jit *jit)
{
    for (size_t i = 0; i < jit->capacity; i++) {
        kl_jit_entry *e = &jit->entries[i];
        free(e->source);
        if (e->handle) e->backend->ops->unload(e->backend, e->handle);
    }
    free(jit->entries);
    jit->entries = NULL;
    jit->capacity = jit->count = 0;
}

size_t kl_jit_loaded(const kl_jit *jit) { return jit->count; }

size_t kl_jit_max_loaded(void)
{
    const char *s = getenv("KILN_MAX_LOADED_KERNELS");
    long v = s && *s ? atol(s) : 0;
    return v > 0 ? (size_t)v : 4096;
}

void kl_jit_free(kl_jit *jit)
{
    kl_jit_unload(jit);
    if (jit->private_dir) kl_disk_remove_tree(jit->write_dir);
    jit->private_dir = 0;
    jit->prepared_for[0] = 0;
}

/* Sets up <cache>/kernels for this context's cache dir (once per dir): made,
 * swept of what killed processes left, and tried for writing; a cache that
 * cannot be written gives way to a private temporary directory, with one
 * warning. */
static kl_status prepare_dirs(kl_context *ctx)
{
    kl_jit *jit = &ctx->jit;
    if (jit->prepared_for[0] && strcmp(jit->prepared_for, ctx->cache_dir) == 0) return KL_OK;
    if (jit->private_dir) kl_disk_remove_tree(jit->write_dir);
    jit->private_dir = 0;
    snprintf(jit->read_dir, sizeof jit->read_dir, "%s/kernels", ctx->cache_dir);
    snprintf(jit->write_dir, sizeof jit->write_dir, "%s", jit->read_dir);
    const char *t = getenv("KILN_COMPILE_LOCK_TIMEOUT");
    jit->lock_timeout = t && *t ? atof(t) : 60.0;
    kl_status s = kl_disk_mkdirs(jit->read_dir);
    char probe_path[sizeof jit->read_dir + 64];
    snprintf(probe_path, sizeof probe_path, "%s/.write-test-%d", jit->read_dir, (int)getpid());
    int fd = s == KL_OK ? open(probe_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644) : -1;
    if (fd >= 0) {
        close(fd);
        unlink(probe_path);
        kl_disk_sweep(jit->read_dir);
    } else {
        const char *why = s != KL_OK ? kl_last_error() : strerror(errno);
        char reason[512];
        snprintf(reason, sizeof reason, "%s", why);
        const char *tmp = getenv("TMPDIR");
        char dir[sizeof jit->write_dir];
        snprintf(dir, sizeof dir, "%s/kiln-kernels-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir))
            return kl_error(KL_ERR_RUNTIME, "the kernel cache %s cannot be written (%s), nor a private one in %s: %s",
                            jit->read_dir, reason, tmp && *tmp ? tmp : "/tmp", strerror(errno));
        snprintf(jit->write_dir, sizeof jit->write_dir, "%s", dir);
        jit->private_dir = 1;
        fprintf(stderr, "[kiln] warning: the kernel cache %s cannot be written (%s); kernels compiled by "
                        "this process go to %s and are removed at exit\n", jit->read_dir, reason, dir);
    }
    snprintf(jit->prepared_for, sizeof jit->prepared_for, "%s", ctx->cache_dir);
    return KL_OK;
}

typedef struct {
    const char *source;
    kl_jit_lang *tc;
    uint64_t hash;
    char name[40];
    char art[PATH_MAX + 256], meta[PATH_MAX + 256], src[PATH_MAX + 256], tmp_art[PATH_MAX + 256],
        lock[PATH_MAX + 256];
    char why[400];
    int lock_fd, loaded, started;
    kl_compile_job cj;
} job;

static void job_paths(job *j, const char *dir)
{
    pid_t me = getpid();
    const char *ext = j->tc->backend->ops->artifact;
    snprintf(j->art, sizeof j->art, "%s/%s.%s", dir, j->name, ext);
    snprintf(j->meta, sizeof j->meta, "%s/%s.meta", dir, j->name);
    snprintf(j->src, sizeof j->src, "%s/%s.%s", dir, j->name, j->tc->tc.source_ext);
    snprintf(j->tmp_art, sizeof j->tmp_art, "%s/%s.%s.tmp-%d", dir, j->name, ext, (int)me);
    snprintf(j->lock, sizeof j->lock, "%s/%s.lock", dir, j->name);
}

/* Cache hits count the device's kernels; the compile check's are not its. */
static void count_hit(kl_context *ctx, const kl_backend *b, uint64_t *counter)
{
    if (b != ctx->check_backend) (*counter)++;
}

static kl_status load(kl_context *ctx, job *j, const char *path)
{
    kl_backend *b = j->tc->backend;
    void *h = NULL;
    kl_kernel_fn fn = NULL;
    KL_TRY(b->ops->load(b, path, j->name, &h, &fn));
    j->loaded = 1;
    return insert(&ctx->jit, j->hash, j->source, fn, h, b);
}

/* Loads j from the disk cache (the shared directory, then a private one)
 * when a verified artifact is there; else leaves the reason in j->why. */
static int load_from_disk(kl_context *ctx, job *j)
{
    kl_jit *jit = &ctx->jit;
    const char *identity = j->tc->tc.identity;
    const char *dirs[2] = {jit->read_dir, jit->private_dir ? jit->write_dir : NULL};
    for (int d = 0; d < 2 && dirs[d]; d++) {
        char why[sizeof j->why];
        job_paths(j, dirs[d]);
        int ok = kl_artifact_verify(j->art, j->meta, j->name, identity, why, sizeof why);
        if (d == 0 || ok) snprintf(j->why, sizeof j->why, "%s", why);
        if (ok && load(ctx, j, j->art) == KL_OK) return 1;
        if (ok) snprintf(j->why, sizeof j->why, "%s", kl_last_error());
    }
    job_paths(j, jit->write_dir);
    return 0;
}

static kl_status spawn(kl_context *ctx, job *j)
{
    char tail[160];
    snprintf(tail, sizeof tail, j->tc->tc.key_line, j->name);
    KL_TRY(kl_disk_write_atomic(j->src, j->tc->tc.prelude, j->source, tail));
    if (ctx->log_compile) {
        /* the first comment line says what the kernel is */
        const char *eol = strchr(j->source, '\n');
        fprintf(stderr, "[kiln] compile %s: %s (in %s; %.*s)\n", j->name, j->why, ctx->jit.read_dir,
                eol ? (int)(eol - j->source) : 40, j->source);
    }
    if (ctx->debug >= 1) fprintf(stderr, "[kiln] compiling kernel %s:\n%s\n", j->name, j->source);
    kl_backend *b = j->tc->backend;
    KL_TRY(b->ops->compile_start(b, j->tc->lang, j->src, j->tmp_art, &j->cj));
    j->started = 1;
    return KL_OK;
}

static kl_status finish(kl_context *ctx, job *j)
{
    kl_backend *b = j->tc->backend;
    j->started = 0;
    kl_status s = b->ops->compile_finish(b, &j->cj, j->src);
    if (s != KL_OK) {
        unlink(j->tmp_art);
        return s;
    }
    KL_TRY(kl_artifact_publish(j->tmp_art, j->art, j->meta, j->name, j->tc->tc.identity));
    if (b == ctx->check_backend) ctx->counters.kernels_checked++;
    else ctx->counters.kernels_compiled++;
    return load(ctx, j, j->art);
}

/* Compiles jobs[0..n-1] that are neither loaded nor skipped (skip[k] != 0),
 * as many at once as there are cores; each job's lock (if held) is dropped
 * when it is done. */
static kl_status compile_all(kl_context *ctx, job *jobs, int n, const uint8_t *skip)
{
    int width = ctx->jit.cores, next = 0, started = 0, done = 0;
    kl_status s = KL_OK;
    job **run = malloc((size_t)(n > 0 ? n : 1) * sizeof *run);
    if (!run) return kl_error(KL_ERR_MEMORY, "out of memory planning kernel compiles");
    while (s == KL_OK && (next < n || done < started)) {
        while (next < n && started - done < width && s == KL_OK) {
            job *j = &jobs[next++];
            if (j->loaded || (skip && skip[next - 1])) continue;
            s = spawn(ctx, j);
            if (s == KL_OK) run[started++] = j;
        }
        if (done < started) {
            job *j = run[done++];
            kl_status f = finish(ctx, j);
            kl_disk_unlock(j->lock_fd);
            j->lock_fd = -1;
            if (s == KL_OK) s = f;
        }
    }
    while (done < started) { /* reap what was started before a failure */
        job *j = run[done++];
        j->tc->backend->ops->compile_finish(j->tc->backend, &j->cj, j->src);
        unlink(j->tmp_art);
    }
    free(run);
    return s;
}

/* Takes each job's lock without waiting; a job whose lock another process
 * holds is marked to wait (1 in waiting[k]). */
static void lock_jobs(kl_context *ctx, job *jobs, int n, uint8_t *waiting)
{
    for (int k = 0; k < n; k++) {
        int waited = 0;
        jobs[k].lock_fd = kl_disk_lock(jobs[k].lock, 0, &waited);
        waiting[k] = jobs[k].lock_fd < 0 && waited;
        /* it may have been published between the lookup and the lock */
        if (jobs[k].lock_fd >= 0 && load_from_disk(ctx, &jobs[k])) {
            count_hit(ctx, jobs[k].tc->backend, &ctx->counters.cache_hits_disk);
            kl_disk_unlock(jobs[k].lock_fd);
            jobs[k].lock_fd = -1;
        }
    }
}

/* Waits for the kernels another process is compiling, then loads them; past
 * one timeout for them all (a stuck process) they are compiled here. */
static void wait_for_others(kl_context *ctx, job *jobs, int n, const uint8_t *waiting)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int k = 0; k < n; k++) {
        job *j = &jobs[k];
        if (!waiting[k] || j->loaded) continue;
        if (ctx->log_compile) fprintf(stderr, "[kiln] waiting for another process compiling %s\n", j->name);
        clock_gettime(CLOCK_MONOTONIC, &t);
        double left = ctx->jit.lock_timeout - ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) * 1e-9);
        int waited;
        j->lock_fd = kl_disk_lock(j->lock, left > 0 ? left : 0, &waited);
        if (load_from_disk(ctx, j)) {
            count_hit(ctx, j->tc->backend, &ctx->counters.cache_hits_disk);
            kl_disk_unlock(j->lock_fd);
            j->lock_fd = -1;
        } else if (j->lock_fd < 0) {
            snprintf(j->why, sizeof j->why, "another process held its lock for over %g s", ctx->jit.lock_timeout);
        }
    }
}

kl_status kl_jit_get_many(kl_context *ctx, kl_backend *backend, int n, const char *const *sources,
                          const kl_lang *langs, kl_kernel_fn *fns)
{
    if (n <= 0) return KL_OK; /* every kernel came from the plan cache */
    job *jobs = calloc((size_t)n, sizeof *jobs);
    uint8_t *waiting = calloc((size_t)n, 1);
    if (!jobs || !waiting) {
        free(jobs);
        free(waiting);
        return kl_error(KL_ERR_MEMORY, "out of memory planning kernel compiles");
    }
    int n_jobs = 0;
    kl_status s = KL_OK;
    for (int i = 0; i < n && s == KL_OK; i++) {
        kl_lang lang = langs ? langs[i] : KL_LANG_KERNEL;
        kl_jit_lang *L;
        s = toolchain(&ctx->jit, backend, lang, &L);
        if (s != KL_OK) break;
        uint64_t h1 = fnv1a(L->base_hash, sources[i]);
        kl_jit_entry *e = find(&ctx->jit, h1, sources[i]);
        if (e) { fns[i] = e->fn; count_hit(ctx, backend, &ctx->counters.cache_hits_memory); continue; }
        int dup = 0;
        for (int k = 0; k < n_jobs; k++) dup |= jobs[k].hash == h1 && strcmp(jobs[k].source, sources[i]) == 0;
        if (dup) continue;
        if (n_jobs == 0) s = prepare_dirs(ctx);
        if (s != KL_OK) break;
        job *j = &jobs[n_jobs];
        memset(j, 0, sizeof *j); /* the slot may hold a job just loaded from disk */
        j->source = sources[i];
        j->tc = L;
        j->hash = h1;
        j->lock_fd = -1;
        uint64_t h2 = fnv1a(fnv1a(fnv1a(fnv1a(0x84222325cbf29ce4ULL, sources[i]), L->tc.identity), L->tc.prelude),
                            backend->ops->name);
        snprintf(j->name, sizeof j->name, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
        if (load_from_disk(ctx, j)) {
            count_hit(ctx, j->tc->backend, &ctx->counters.cache_hits_disk);
            continue;
        }
        n_jobs++;
    }
    if (s == KL_OK && n_jobs) {
        lock_jobs(ctx, jobs, n_jobs, waiting);
        s = compile_all(ctx, jobs, n_jobs, waiting); /* ours first, then what others were compiling */
        if (s == KL_OK) {
            wait_for_others(ctx, jobs, n_jobs, waiting);
            s = compile_all(ctx, jobs, n_jobs, NULL);
        }
        for (int k = 0; k < n_jobs; k++) kl_disk_unlock(jobs[k].lock_fd);
    }
    if (s == KL_OK) {
        for (int i = 0; i < n; i++) {
            kl_jit_lang *L;
            s = toolchain(&ctx->jit, backend, langs ? langs[i] : KL_LANG_KERNEL, &L);
            if (s != KL_OK) break;
            uint64_t h1 = fnv1a(L->base_hash, sources[i]);
            kl_jit_entry *e = find(&ctx->jit, h1, sources[i]);
            if (!e) { s = kl_error(KL_ERR_RUNTIME, "internal: kernel missing after compile"); break; }
            fns[i] = e->fn;
        }
    }
    free(jobs);
    free(waiting);
    return s;
}
