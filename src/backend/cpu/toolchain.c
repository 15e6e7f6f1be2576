/* toolchain.c: the CPU backend's compiler: the system C (or C++) compiler
 * found on PATH (KILN_CC, KILN_CXX), run as a child process per kernel, and
 * dlopen to load the shared object it writes. */
#include "backend/cpu/cpu.h"
#include "backend/cpu/prelude.h"
#include "backend/compile_process.h"
#include "core/error.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Flags per language; the list ends with NULL. */
static const char *const c_flags[] = {
    "-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-fno-math-errno", "-std=gnu11", "-w", NULL,
};
static const char *const cxx_flags[] = {
    "-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-fno-math-errno", "-std=gnu++17", NULL,
};
static const char *const *flags_of(kl_lang lang) { return lang == KL_LANG_CXX ? cxx_flags : c_flags; }

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 0x100000001b3ULL; }
    return h;
}

/* Finds the compiler on PATH and records what identifies it, so a changed
 * compiler, CPU or flag set never reuses an old binary. */
static kl_status probe(kl_cpu_compiler *L, kl_lang lang)
{
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
    L->probed = 1;
    return KL_OK;
}

kl_status kl_cpu_toolchain(kl_backend *b, kl_lang lang, kl_toolchain *out)
{
    if (lang == KL_LANG_CUDA)
        return kl_error(KL_ERR_RUNTIME, "%s: CUDA device code runs on a CUDA device only (jt.flags.use_cuda = 1)",
                        b->name);
    kl_cpu_compiler *L = &((kl_cpu_backend *)b)->compilers[lang];
    KL_TRY(probe(L, lang));
    out->identity = L->identity;
    out->prelude = lang == KL_LANG_KERNEL ? kl_kernel_prelude : "";
    out->source_ext = lang == KL_LANG_CXX ? "cc" : "c";
    out->key_line = lang == KL_LANG_CXX ? "\nextern \"C\" const char kl_kernel_key[] = \"%s\";\n"
                                        : "\nconst char kl_kernel_key[] = \"%s\";\n";
    return KL_OK;
}

kl_status kl_cpu_compile_start(kl_backend *b, kl_lang lang, const char *src, const char *out, kl_compile_job *job)
{
    kl_cpu_compiler *L = &((kl_cpu_backend *)b)->compilers[lang];
    KL_TRY(probe(L, lang));
    const char *argv[32];
    int n = 0;
    argv[n++] = L->compiler;
    for (const char *const *fl = flags_of(lang); *fl; fl++) argv[n++] = *fl;
    argv[n++] = "-o"; argv[n++] = out; argv[n++] = src;
    if (lang != KL_LANG_CXX) argv[n++] = "-lmvec";
    argv[n++] = "-lm";
    argv[n] = NULL;
    return kl_compile_process_start(b, argv, out, NULL, job);
}

kl_status kl_cpu_compile_finish(kl_backend *b, kl_compile_job *job, const char *src)
{
    (void)b;
    return kl_compile_process_finish(job, src, "kernel compile");
}

kl_status kl_cpu_load(kl_backend *b, const char *path, const char *key, void **handle, kl_kernel_fn *fn)
{
    (void)b;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) return kl_error(KL_ERR_RUNTIME, "cannot load kernel %s: %s", path, dlerror());
    kl_kernel_fn f = (kl_kernel_fn)(uintptr_t)dlsym(h, "kl_kernel");
    const char *k = (const char *)dlsym(h, "kl_kernel_key");
    if (!f || !k || strcmp(k, key) != 0) {
        dlclose(h);
        return kl_error(KL_ERR_RUNTIME, "kernel %s is not kernel %s (%s)", path, key,
                        f ? "another kernel's file" : "no kl_kernel symbol");
    }
    *handle = h;
    *fn = f;
    return KL_OK;
}

void kl_cpu_unload(kl_backend *b, void *handle)
{
    (void)b;
    if (handle) dlclose(handle);
}
