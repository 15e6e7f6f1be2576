/* cpu.h: the CPU backend's parts (internal to src/backend/cpu/): host memory
 * from the caching allocator, kernels compiled by the system C compiler and
 * loaded with dlopen, launched synchronously on the calling thread (OpenMP
 * inside), matrix products with oneDNN or OpenBLAS, convolutions with oneDNN. */
#ifndef KL_CPU_H
#define KL_CPU_H

#include "backend/backend.h"
#include "backend/cpu/blas.h"
#include "backend/cpu/dnnl.h"
#include "backend/cpu/host_alloc.h"

typedef struct {
    char compiler[4096];   /* resolved compiler path */
    char identity[512];    /* compiler file identity, CPU flags digest, flags */
    int probed;
} kl_cpu_compiler;

/* The OpenMP thread count (threads.c). */
typedef struct {
    int max;       /* omp_get_max_threads() at start, or KILN_THREADS */
    int pinned;    /* KILN_THREADS is set: the count never changes */
    int current;   /* what kernels get now */
    int pid;       /* of the process that made the backend (a forked child keeps one thread) */
    double wall, busy, self; /* the last sample: monotonic time, machine and own busy CPU seconds */
    double others; /* cores other processes used between the last two samples */
} kl_cpu_threads;

typedef struct {
    kl_backend base;
    kl_host_allocator alloc;
    kl_blas blas;
    kl_dnnl dnnl;
    kl_cpu_compiler compilers[KL_LANG_COUNT];
    kl_cpu_threads threads;
} kl_cpu_backend;

/* threads.c */
void kl_cpu_threads_init(kl_cpu_threads *t);
/* Samples the machine when due and sets the calling thread's OpenMP count;
 * called before every kernel and library call. */
void kl_cpu_threads_apply(kl_cpu_threads *t);
/* The count for at most max threads, current now, when other processes
 * used `others` cores since the last sample. */
int kl_cpu_threads_choose(int max, int current, double others);

/* toolchain.c */
kl_status kl_cpu_toolchain(kl_backend *b, kl_lang lang, kl_toolchain *out);
kl_status kl_cpu_compile_start(kl_backend *b, kl_lang lang, const char *src, const char *out, kl_compile_job *job);
kl_status kl_cpu_compile_finish(kl_backend *b, kl_compile_job *job, const char *src);
kl_status kl_cpu_load(kl_backend *b, const char *path, const char *key, void **handle, kl_kernel_fn *fn);
void kl_cpu_unload(kl_backend *b, void *handle);

/* render_c.c */
kl_status kl_cpu_render(kl_backend *b, const struct kl_kdesc *k, char **source);
kl_status kl_cpu_render_group(kl_backend *b, const struct kl_kdesc *k, char **source);

/* patterns.c */
int kl_cpu_supports(kl_backend *b, const kl_pattern *p);
kl_status kl_cpu_run(kl_backend *b, const kl_pattern *p, void *out, const void *const *in, uint64_t b_contents);
uint32_t kl_cpu_layout(kl_backend *b, const kl_pattern *p, int of_result);
kl_status kl_cpu_to_row_major(kl_backend *b, const kl_pattern *p, void *result);

#endif
