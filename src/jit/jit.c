/* jit.c: kernel source -> function. Lookup order: the in-memory table, the
 * on-disk cache (<cache>/kernels/<hash>.so, loaded only when the header
 * beside it vouches for it), then the system C compiler, run for all misses
 * at once. A per-key lock file keeps concurrent processes from compiling the
 * same kernel (a killed holder releases it; a stuck one is waited for only so
 * long); a cache that cannot be written gives way to a private directory. */
#include "jit/jit.h"
#include "core/context.h"
#include "core/error.h"
#include "codegen/prelude.h"
#include "jit/disk.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Flags per language; the list ends with NULL. */
static const char *const c_flags[] = {
    "-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-fno-math-errno", "-std=gnu11", "-w", NULL,
};
static const char *const cxx_flags[] = {
    "-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-fno-math-errno", "-std=gnu++17", NULL,
};
static const char *const *flags_of(kl_lang lang) { return lang == KL_LANG_CXX ? cxx_flags : c_flags; }
static const char *extension_of(kl_lang lang) { return lang == KL_LANG_CXX ? "cc" : "c"; }
static const char *prelude_of(kl_lang lang) { return lang == KL_LANG_KERNEL ? kl_kernel_prelude : ""; }

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 0x100000001b3ULL; }
    return h;
}

/* Finds the compiler on PATH and records what identifies it, so a changed
 * compiler, CPU or flag set never reuses an old binary. */
static kl_status probe(kl_jit *jit, kl_lang lang)
{
    kl_jit_lang *L = &jit->lang[lang];
    if (L->probed) return KL_OK;
    int cxx = lang == KL_LANG_CXX;
    const char *cc = getenv(cxx ? "KILN_CXX" : "KILN_CC");
    if (!cc || !*cc) cc = cxx ? "c++" : "cc";
    char found[4096] = "";
    if (strchr(cc, '/')) {
        snprintf(found, sizeof found, "%s", cc);
    } else {
        const char *path = getenv("PATH");
        if (!path) path = "/usr/bin:/bin";
        while (*path && !*found) {
            const char *end = strchr(path, ':');
            size_t len = end ? (size_t)(end - path) : strlen(path);
            char cand[4096];
            snprintf(cand, sizeof cand, "%.*s/%s", (int)len, path, cc);
            if (access(cand, X_OK) == 0) snprintf(found, sizeof found, "%s", cand);
            path += len + (end ? 1 : 0);
        }
    }
    struct stat st;
    if (!*found || stat(found, &st) != 0)
        return kl_error(KL_ERR_RUNTIME, cxx ? "no C++ compiler: '%s' was not found on PATH (install g++, set KILN_CXX, or use lang='c')"
                                            : "no C compiler: '%s' was not found on PATH (install gcc, or set KILN_CC)", cc);
    char real[4096];
    if (!realpath(found, real)) snprintf(real, sizeof real, "%s", found);
    struct stat rst;
    if (stat(real, &rst) != 0) rst = st;
    uint64_t cpu = 0xcbf29ce484222325ULL;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[8192];
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "flags", 5) == 0 || strncmp(line, "model name", 10) == 0) {
                cpu = fnv1a(cpu, line);
                if (line[0] == 'f') break;
            }
        fclose(f);
    }
    snprintf(L->compiler, sizeof L->compiler, "%s", found);
    int n = snprintf(L->identity, sizeof L->identity, "%d|%s|%lld|%lld|%016llx|", (int)lang, real,
                     (long long)rst.st_size, (long long)rst.st_mtime, (unsigned long long)cpu);
    for (const char *const *fl = flags_of(lang); *fl && n > 0 && (size_t)n < sizeof L->identity; fl++)
        n += snprintf(L->identity + n, sizeof L->identity - (size_t)n, "%s ", *fl);
    L->base_hash = fnv1a(fnv1a(0xcbf29ce484222325ULL, L->identity), prelude_of(lang));
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    jit->cores = cores > 0 ? (int)cores : 1;
    L->probed = 1;
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

static kl_status insert(kl_jit *jit, uint64_t hash, const char *source, kl_kernel_fn fn, void *handle)
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
    jit->entries[j] = (kl_jit_entry){hash, copy, fn, handle};
    jit->count++;
    return KL_OK;
}

void kl_jit_unload(kl_jit *jit)
{
    for (size_t i = 0; i < jit->capacity; i++) {
        free(jit->entries[i].source);
        if (jit->entries[i].handle) dlclose(jit->entries[i].handle);
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
    kl_lang lang;
    uint64_t hash;
    char name[40];
    char so[PATH_MAX + 256], meta[PATH_MAX + 256], c[PATH_MAX + 256], tmp_so[PATH_MAX + 256],
        log[PATH_MAX + 256], lock[PATH_MAX + 256];
    char why[400];
    int lock_fd, loaded;
    pid_t pid;
} job;

static void job_paths(job *j, const char *dir)
{
    pid_t me = getpid();
    snprintf(j->so, sizeof j->so, "%s/%s.so", dir, j->name);
    snprintf(j->meta, sizeof j->meta, "%s/%s.meta", dir, j->name);
    snprintf(j->c, sizeof j->c, "%s/%s.%s", dir, j->name, extension_of(j->lang));
    snprintf(j->tmp_so, sizeof j->tmp_so, "%s/%s.so.tmp-%d", dir, j->name, (int)me);
    snprintf(j->log, sizeof j->log, "%s/%s.log.tmp-%d", dir, j->name, (int)me);
    snprintf(j->lock, sizeof j->lock, "%s/%s.lock", dir, j->name);
}

/* The line every kernel file ends with: its name, checked after dlopen, so a
 * verified file that is some other kernel's is still refused. */
static void key_line(const job *j, char *out, size_t size)
{
    snprintf(out, size, "\n%sconst char kl_kernel_key[] = \"%s\";\n",
             j->lang == KL_LANG_CXX ? "extern \"C\" " : "", j->name);
}

static kl_status load(kl_context *ctx, job *j, const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) return kl_error(KL_ERR_RUNTIME, "cannot load kernel %s: %s", path, dlerror());
    kl_kernel_fn fn = (kl_kernel_fn)(uintptr_t)dlsym(h, "kl_kernel");
    const char *key = (const char *)dlsym(h, "kl_kernel_key");
    if (!fn || !key || strcmp(key, j->name) != 0) {
        dlclose(h);
        return kl_error(KL_ERR_RUNTIME, "kernel %s is not kernel %s (%s)", path, j->name,
                        fn ? "another kernel's file" : "no kl_kernel symbol");
    }
    j->loaded = 1;
    return insert(&ctx->jit, j->hash, j->source, fn, h);
}

/* Loads j from the disk cache (the shared directory, then a private one)
 * when a verified artifact is there; else leaves the reason in j->why. */
static int load_from_disk(kl_context *ctx, job *j)
{
    kl_jit *jit = &ctx->jit;
    const char *identity = jit->lang[j->lang].identity;
    const char *dirs[2] = {jit->read_dir, jit->private_dir ? jit->write_dir : NULL};
    for (int d = 0; d < 2 && dirs[d]; d++) {
        char why[sizeof j->why];
        job_paths(j, dirs[d]);
        int ok = kl_artifact_verify(j->so, j->meta, j->name, identity, why, sizeof why);
        if (d == 0 || ok) snprintf(j->why, sizeof j->why, "%s", why);
        if (ok && load(ctx, j, j->so) == KL_OK) return 1;
        if (ok) snprintf(j->why, sizeof j->why, "%s", kl_last_error());
    }
    job_paths(j, jit->write_dir);
    return 0;
}

static kl_status spawn(kl_context *ctx, job *j)
{
    char tail[128];
    key_line(j, tail, sizeof tail);
    KL_TRY(kl_disk_write_atomic(j->c, prelude_of(j->lang), j->source, tail));
    const char *argv[32];
    int n = 0;
    argv[n++] = ctx->jit.lang[j->lang].compiler;
    for (const char *const *fl = flags_of(j->lang); *fl; fl++) argv[n++] = *fl;
    argv[n++] = "-o"; argv[n++] = j->tmp_so; argv[n++] = j->c;
    if (j->lang != KL_LANG_CXX) argv[n++] = "-lmvec";
    argv[n++] = "-lm";
    argv[n] = NULL;
    if (ctx->log_compile) {
        /* the first comment line says what the kernel is */
        const char *eol = strchr(j->source, '\n');
        fprintf(stderr, "[kiln] compile %s: %s (in %s; %.*s)\n", j->name, j->why, ctx->jit.read_dir,
                eol ? (int)(eol - j->source) : 40, j->source);
    }
    if (ctx->debug >= 1) {
        fprintf(stderr, "[kiln] compiling kernel %s:\n%s\n[kiln] command:", j->name, j->source);
        for (int i = 0; i < n; i++) fprintf(stderr, " %s", argv[i]);
        fprintf(stderr, "\n");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, j->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawn(&j->pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return kl_error(KL_ERR_RUNTIME, "cannot run the compiler %s: %s", argv[0], strerror(rc));
    return KL_OK;
}

static kl_status finish(kl_context *ctx, job *j)
{
    int st;
    while (waitpid(j->pid, &st, 0) < 0) {
        if (errno != EINTR) return kl_error(KL_ERR_RUNTIME, "waiting for the compiler: %s", strerror(errno));
    }
    j->pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char msg[3000] = "";
        FILE *f = fopen(j->log, "r");
        if (f) { size_t n = fread(msg, 1, sizeof msg - 1, f); msg[n] = 0; fclose(f); }
        unlink(j->log);
        unlink(j->tmp_so);
        return kl_error(KL_ERR_RUNTIME, "kernel compile failed (%s %d); source kept at %s; compiler output:\n%s",
                        WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                        j->c, msg);
    }
    unlink(j->log);
    KL_TRY(kl_artifact_publish(j->tmp_so, j->so, j->meta, j->name, ctx->jit.lang[j->lang].identity));
    ctx->counters.kernels_compiled++;
    return load(ctx, j, j->so);
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
        int st;
        waitpid(j->pid, &st, 0);
        unlink(j->tmp_so);
        unlink(j->log);
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
            ctx->counters.cache_hits_disk++;
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
            ctx->counters.cache_hits_disk++;
            kl_disk_unlock(j->lock_fd);
            j->lock_fd = -1;
        } else if (j->lock_fd < 0) {
            snprintf(j->why, sizeof j->why, "another process held its lock for over %g s", ctx->jit.lock_timeout);
        }
    }
}

kl_status kl_jit_get_many(kl_context *ctx, int n, const char *const *sources, const kl_lang *langs, kl_kernel_fn *fns)
{
    if (n <= 0) return KL_OK; /* every kernel came from the plan cache */
    for (int i = 0; i < n; i++) KL_TRY(probe(&ctx->jit, langs ? langs[i] : KL_LANG_KERNEL));
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
        kl_jit_lang *L = &ctx->jit.lang[lang];
        uint64_t h1 = fnv1a(L->base_hash, sources[i]);
        kl_jit_entry *e = find(&ctx->jit, h1, sources[i]);
        if (e) { fns[i] = e->fn; ctx->counters.cache_hits_memory++; continue; }
        int dup = 0;
        for (int k = 0; k < n_jobs; k++) dup |= jobs[k].hash == h1 && strcmp(jobs[k].source, sources[i]) == 0;
        if (dup) continue;
        if (n_jobs == 0) s = prepare_dirs(ctx);
        if (s != KL_OK) break;
        job *j = &jobs[n_jobs];
        memset(j, 0, sizeof *j); /* the slot may hold a job just loaded from disk */
        j->source = sources[i];
        j->lang = lang;
        j->hash = h1;
        j->lock_fd = -1;
        uint64_t h2 = fnv1a(fnv1a(fnv1a(0x84222325cbf29ce4ULL, sources[i]), L->identity), prelude_of(lang));
        snprintf(j->name, sizeof j->name, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
        if (load_from_disk(ctx, j)) {
            ctx->counters.cache_hits_disk++;
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
            uint64_t h1 = fnv1a(ctx->jit.lang[langs ? langs[i] : KL_LANG_KERNEL].base_hash, sources[i]);
            kl_jit_entry *e = find(&ctx->jit, h1, sources[i]);
            if (!e) { s = kl_error(KL_ERR_RUNTIME, "internal: kernel missing after compile"); break; }
            fns[i] = e->fn;
        }
    }
    free(jobs);
    free(waiting);
    return s;
}
