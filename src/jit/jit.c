/* jit.c: kernel source -> function. Lookup order: the in-memory table, the
 * on-disk cache (<cache>/kernels/<hash>.so), then the system C compiler, run
 * for all misses at once. Files are written to a temporary name and renamed,
 * so concurrent processes never see half a file and no lock can be left behind. */
#include "jit/jit.h"
#include "core/context.h"
#include "core/error.h"
#include "codegen/prelude.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

void kl_jit_free(kl_jit *jit)
{
    for (size_t i = 0; i < jit->capacity; i++) free(jit->entries[i].source);
    /* handles stay open: a kernel may still be referenced by a caller's copy */
    free(jit->entries);
    jit->entries = NULL;
    jit->capacity = jit->count = 0;
}

static kl_status mkdirs(const char *dir)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                return kl_error(KL_ERR_RUNTIME, "cannot create the kernel cache directory %s: %s", path, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    return KL_OK;
}

static kl_status write_atomic(const char *path, const char *head, const char *text)
{
    char tmp[PATH_MAX + 512];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return kl_error(KL_ERR_RUNTIME, "cannot write %s: %s", tmp, strerror(errno));
    size_t nh = strlen(head), n = strlen(text);
    int ok = fwrite(head, 1, nh, f) == nh && fwrite(text, 1, n, f) == n;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return kl_error(KL_ERR_RUNTIME, "cannot write %s: %s", path, strerror(errno));
    }
    return KL_OK;
}

typedef struct {
    const char *source;
    kl_lang lang;
    uint64_t hash;
    char name[40];
    char so[PATH_MAX + 256], c[PATH_MAX + 256], tmp_so[PATH_MAX + 256], log[PATH_MAX + 256];
    pid_t pid;
    int status;
    kl_kernel_fn fn;
} job;

static kl_status load(kl_context *ctx, job *j, const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) return kl_error(KL_ERR_RUNTIME, "cannot load kernel %s: %s", path, dlerror());
    kl_kernel_fn fn = (kl_kernel_fn)(uintptr_t)dlsym(h, "kl_kernel");
    if (!fn) return kl_error(KL_ERR_RUNTIME, "kernel %s has no kl_kernel symbol", path);
    j->fn = fn;
    return insert(&ctx->jit, j->hash, j->source, fn, h);
}

static kl_status spawn(kl_context *ctx, job *j)
{
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
        fprintf(stderr, "[kiln] compile %s: not in this process's table nor in %s (%.*s)\n", j->name,
                ctx->cache_dir, eol ? (int)(eol - j->source) : 40, j->source);
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
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char msg[3000] = "";
        FILE *f = fopen(j->log, "r");
        if (f) { size_t n = fread(msg, 1, sizeof msg - 1, f); msg[n] = 0; fclose(f); }
        unlink(j->tmp_so);
        return kl_error(KL_ERR_RUNTIME, "kernel compile failed (%s %d); source kept at %s; compiler output:\n%s",
                        WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                        j->c, msg);
    }
    unlink(j->log);
    if (rename(j->tmp_so, j->so) != 0) {
        unlink(j->tmp_so);
        return kl_error(KL_ERR_RUNTIME, "cannot move the kernel into the cache %s: %s", j->so, strerror(errno));
    }
    ctx->counters.kernels_compiled++;
    return load(ctx, j, j->so);
}

kl_status kl_jit_get_many(kl_context *ctx, int n, const char *const *sources, const kl_lang *langs, kl_kernel_fn *fns)
{
    if (n <= 0) return KL_OK; /* every kernel came from the plan cache */
    for (int i = 0; i < n; i++) KL_TRY(probe(&ctx->jit, langs ? langs[i] : KL_LANG_KERNEL));
    job *jobs = calloc((size_t)n, sizeof *jobs);
    if (!jobs) return kl_error(KL_ERR_MEMORY, "out of memory planning kernel compiles");
    int n_jobs = 0;
    kl_status s = KL_OK;
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/kernels", ctx->cache_dir);
    int dir_made = 0;
    for (int i = 0; i < n && s == KL_OK; i++) {
        kl_lang lang = langs ? langs[i] : KL_LANG_KERNEL;
        kl_jit_lang *L = &ctx->jit.lang[lang];
        uint64_t h1 = fnv1a(L->base_hash, sources[i]);
        kl_jit_entry *e = find(&ctx->jit, h1, sources[i]);
        if (e) { fns[i] = e->fn; ctx->counters.cache_hits_memory++; continue; }
        int dup = 0;
        for (int k = 0; k < n_jobs; k++) dup |= jobs[k].hash == h1 && strcmp(jobs[k].source, sources[i]) == 0;
        if (dup) continue;
        if (!dir_made) { s = mkdirs(dir); dir_made = 1; if (s != KL_OK) break; }
        job *j = &jobs[n_jobs];
        j->source = sources[i];
        j->lang = lang;
        j->hash = h1;
        uint64_t h2 = fnv1a(fnv1a(fnv1a(0x84222325cbf29ce4ULL, sources[i]), L->identity), prelude_of(lang));
        snprintf(j->name, sizeof j->name, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
        snprintf(j->so, sizeof j->so, "%s/%s.so", dir, j->name);
        snprintf(j->c, sizeof j->c, "%s/%s.%s", dir, j->name, extension_of(lang));
        snprintf(j->tmp_so, sizeof j->tmp_so, "%s/%s.so.tmp-%d", dir, j->name, (int)getpid());
        snprintf(j->log, sizeof j->log, "%s/%s.log.tmp-%d", dir, j->name, (int)getpid());
        if (access(j->so, R_OK) == 0 && load(ctx, j, j->so) == KL_OK) {
            ctx->counters.cache_hits_disk++;
            continue;
        }
        n_jobs++;
    }
    /* compile the misses, as many at once as there are cores */
    int width = ctx->jit.cores, next = 0, done = 0;
    while (s == KL_OK && done < n_jobs) {
        while (next < n_jobs && next - done < width && s == KL_OK) {
            s = write_atomic(jobs[next].c, prelude_of(jobs[next].lang), jobs[next].source);
            if (s == KL_OK) s = spawn(ctx, &jobs[next]);
            if (s == KL_OK) next++;
        }
        if (done < next) {
            kl_status f = finish(ctx, &jobs[done++]);
            if (s == KL_OK) s = f;
        }
    }
    while (done < next) { /* reap what was started before a failure */
        int st;
        waitpid(jobs[done].pid, &st, 0);
        unlink(jobs[done].tmp_so);
        done++;
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
    return s;
}
