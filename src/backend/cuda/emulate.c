/* emulate.c: the CUDA backend's kernels run on the CPU, to test the CUDA
 * renderer's logic where there is no GPU (device "cuda-emulate"). The same
 * source NVRTC compiles is compiled by the system C++ compiler after a
 * header that gives CUDA's names host meanings: a launch runs the grid's
 * blocks one after another, each block as an OpenMP team of 256 threads
 * (__syncthreads is the team's barrier, __shared__ variables are static,
 * which is per block when blocks run one at a time), warp shuffles exchange
 * through a per-warp array between two barriers of the warp's threads,
 * and atomics are the compiler's. Memory is host memory, which the runtime
 * reaches only through copies, as a GPU's. Slow (a team per block);
 * faithful to the kernels' indexing, reductions, block splits and atomics,
 * not to timing, memory ordering subtleties or resource limits.
 * KILN_EMULATE_MEMORY (bytes) makes its memory that small, to test what
 * happens when a device is full. */
#include "backend/compile_process.h"
#include "backend/cuda/cuda.h"
#include "core/error.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EMULATED_MAX_GRID 8 /* blocks per launch: enough to split reductions, few enough to be quick */

static const char emulation_header[] =
    "#define KL_EMULATE 1\n"
    "#include <math.h>\n#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n#include <omp.h>\n"
    "#include <pthread.h>\n"
    "#include <utility>\n#include <type_traits>\n"
    "#define __global__\n#define __device__\n#define __forceinline__ inline\n#define __launch_bounds__(n)\n"
    "#define __restrict__ __restrict\n#define __shared__ static\n"
    "struct kl_emu_dim { unsigned x, y, z; };\n"
    "static thread_local kl_emu_dim threadIdx, blockIdx;\n"
    "static kl_emu_dim gridDim, blockDim;\n"
    "static int kl_emu_team, kl_emu_threads; /* a team OpenMP made smaller; threads in the running block */\n"
    "static int kl_emu_partial_shuffle; /* a shuffle in a warp the block leaves partial: undefined on a GPU */\n"
    "static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }\n"
    "static inline void __syncthreads(void) { _Pragma(\"omp barrier\") }\n"
    "static inline void __threadfence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }\n"
    "static uint64_t kl_emu_lanes[1024];\n"
    "static pthread_barrier_t kl_emu_warps[32];\n"
    "__attribute__((constructor)) static void kl_emu_init(void) {\n"
    "    omp_set_dynamic(0);\n"
    "    for (int w = 0; w < 32; w++) pthread_barrier_init(&kl_emu_warps[w], NULL, 32);\n"
    "}\n"
    /* a warp: 32 consecutive threads of the block in x, then y, then z order (the last may be partial) */
    "template <class T> static inline T __shfl_down_sync(unsigned, T v, int s) {\n"
    "    const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);\n"
    "    const unsigned end = t / 32 * 32 + 32 < (unsigned)kl_emu_threads ? t / 32 * 32 + 32 : (unsigned)kl_emu_threads;\n"
    "    if (end - t / 32 * 32 < 32) kl_emu_partial_shuffle = 1;\n"
    "    memcpy(&kl_emu_lanes[t], &v, sizeof v);\n"
    "    pthread_barrier_wait(&kl_emu_warps[t / 32]);\n"
    "    T got = v;\n"
    "    if (t + (unsigned)s < end) memcpy(&got, &kl_emu_lanes[t + s], sizeof got);\n"
    "    pthread_barrier_wait(&kl_emu_warps[t / 32]);\n"
    "    return got;\n"
    "}\n"
    "template <class T> static inline T atomicCAS(T *p, T expected, T desired) {\n"
    "    __atomic_compare_exchange(p, &expected, &desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);\n"
    "    return expected;\n"
    "}\n"
    "template <class T> static inline T atomicExch(T *p, T v) {\n"
    "    T old; __atomic_exchange(p, &v, &old, __ATOMIC_SEQ_CST); return old;\n"
    "}\n"
    "template <class T> static inline T atomicAdd(T *p, T v) {\n"
    "    T old, nv; __atomic_load(p, &old, __ATOMIC_SEQ_CST);\n"
    "    do { nv = old + v; } while (!__atomic_compare_exchange(p, &old, &nv, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));\n"
    "    return old;\n"
    "}\n"
    /* the grid's blocks in turn, each a team of KL_BLOCK threads; a smaller team is refused */
    "#define KL_EMULATE_LAUNCH(grid, fn, args) \\\n"
    "    for (unsigned kl_b = 0; kl_b < (unsigned)(grid); kl_b++) { \\\n"
    "        gridDim = {(unsigned)(grid), 1, 1}; blockDim = {KL_BLOCK, 1, 1}; \\\n"
    "        kl_emu_team = 0; kl_emu_threads = KL_BLOCK; \\\n"
    "        _Pragma(\"omp parallel num_threads(KL_BLOCK)\") \\\n"
    "        { if (omp_get_num_threads() == KL_BLOCK) { \\\n"
    "              blockIdx = {kl_b, 0, 0}; threadIdx = {(unsigned)omp_get_thread_num(), 0, 0}; fn args; \\\n"
    "          } else if (omp_get_thread_num() == 0) kl_emu_team = omp_get_num_threads(); } \\\n"
    "        if (kl_emu_team) return kl_emu_team; \\\n"
    "    }\n"
    /* a user's kernel (jt.code's cuda_src): every block of its grid in turn, each a
     * team of the block's threads, its arguments read from params by the kernel's
     * own parameter types */
    "template <class... P, size_t... I>\n"
    "static void kl_emu_call(void (*f)(P...), void **p, std::index_sequence<I...>) {\n"
    "    f(*(std::remove_reference_t<P> *)p[I]...);\n"
    "}\n"
    "static unsigned char *kl_emu_dynamic_shared; /* extern __shared__ arrays, one block at a time */\n"
    "template <class... P>\n"
    "static int kl_emu_user_launch(void (*f)(P...), void **p, const unsigned *grid, const unsigned *block,\n"
    "                              unsigned shared) {\n"
    "    const int team = (int)(block[0] * block[1] * block[2]);\n"
    "    unsigned char *dynamic = (unsigned char *)aligned_alloc(64, (shared + 63) / 64 * 64 + 64);\n"
    "    if (!dynamic) return -2;\n"
    "    kl_emu_dynamic_shared = dynamic;\n"
    "    gridDim = {grid[0], grid[1], grid[2]}; blockDim = {block[0], block[1], block[2]};\n"
    "    kl_emu_threads = team;\n"
    "    pthread_barrier_t *partial = team % 32 ? &kl_emu_warps[team / 32] : NULL; /* its warp's barrier counts it */\n"
    "    if (partial) { pthread_barrier_destroy(partial); pthread_barrier_init(partial, NULL, team % 32); }\n"
    "    kl_emu_team = 0; kl_emu_partial_shuffle = 0;\n"
    "    const unsigned long long blocks = (unsigned long long)grid[0] * grid[1] * grid[2];\n"
    "    for (unsigned long long b = 0; b < blocks && !kl_emu_team; b++) {\n"
    "        const unsigned x = (unsigned)(b % grid[0]), y = (unsigned)(b / grid[0] % grid[1]),\n"
    "                       z = (unsigned)(b / ((unsigned long long)grid[0] * grid[1]));\n"
    "        _Pragma(\"omp parallel num_threads(team)\")\n"
    "        { if (omp_get_num_threads() == team) {\n"
    "              const unsigned t = (unsigned)omp_get_thread_num();\n"
    "              blockIdx = {x, y, z};\n"
    "              threadIdx = {t % block[0], t / block[0] % block[1], t / (block[0] * block[1])};\n"
    "              kl_emu_call(f, p, std::index_sequence_for<P...>{});\n"
    "          } else if (omp_get_thread_num() == 0) kl_emu_team = omp_get_num_threads(); }\n"
    "    }\n"
    "    if (partial) { pthread_barrier_destroy(partial); pthread_barrier_init(partial, NULL, 32); }\n"
    "    free(dynamic);\n"
    "    return kl_emu_team ? kl_emu_team : kl_emu_partial_shuffle ? -3 : 0;\n"
    "}\n";

typedef int (*emulated_fn)(void *const *buf, const int64_t *iarg, const double *farg, unsigned char *ws, int grid);
/* a user's device code: its kernel `name` run (0), no such kernel (-1), no
 * memory for its dynamic shared memory (-2), a warp shuffle in the partial
 * warp of a block that is not a multiple of 32 threads (-3: lanes that do not
 * exist, undefined on a GPU), or the size of a team OpenMP made smaller than
 * the block */
typedef int (*emulated_user_fn)(const char *name, void **params, const unsigned *grid, const unsigned *block,
                                unsigned shared_bytes);

static kl_cuda_backend *emulator(kl_backend *b) { return (kl_cuda_backend *)b; }

static void *emu_alloc(kl_backend *b, size_t nbytes)
{
    kl_cuda_backend *c = emulator(b);
    size_t n = (nbytes + 63) / 64 * 64;
    if (c->emu_capacity && c->bytes_in_use + (n ? n : 64) > c->emu_capacity) { /* the "device" is full */
        kl_error(KL_ERR_MEMORY, "%s: out of memory: %zu bytes asked, %llu of %llu in use", b->name, nbytes,
                 (unsigned long long)c->bytes_in_use, (unsigned long long)c->emu_capacity);
        return NULL;
    }
    void *p = aligned_alloc(64, n ? n : 64);
    if (!p) return NULL;
    c->bytes_allocated += n;
    c->bytes_in_use += n;
    if (c->bytes_in_use > c->peak_bytes_in_use) c->peak_bytes_in_use = c->bytes_in_use;
    return p;
}

static void emu_free(kl_backend *b, void *p, size_t nbytes)
{
    if (!p) return;
    emulator(b)->bytes_in_use -= (nbytes + 63) / 64 * 64;
    free(p);
}

static kl_status emu_copy(kl_backend *b, void *dst, const void *src, size_t nbytes, kl_copy_kind kind)
{
    (void)b; (void)kind;
    if (nbytes) memmove(dst, src, nbytes);
    return KL_OK;
}

static kl_status emu_fill(kl_backend *b, void *dst, size_t nbytes, uint8_t byte)
{
    (void)b;
    if (nbytes) memset(dst, byte, nbytes);
    return KL_OK;
}

static void emu_memory(kl_backend *b, kl_memory_stats *out)
{
    kl_cuda_backend *c = emulator(b);
    memset(out, 0, sizeof *out);
    out->bytes_allocated = c->bytes_allocated;
    out->bytes_in_use = c->bytes_in_use;
    out->peak_bytes_in_use = c->peak_bytes_in_use;
}

static void emu_trim(kl_backend *b) { (void)b; }

static kl_status emu_toolchain(kl_backend *b, kl_lang lang, kl_toolchain *out)
{
    kl_cuda_backend *c = emulator(b);
    if (lang != KL_LANG_KERNEL && lang != KL_LANG_CUDA)
        return kl_error(KL_ERR_RUNTIME, "%s: C and C++ source runs on the host (jt.code's cpu_src)", b->name);
    out->identity = "cuda-emulate|c++ -x c++ -std=c++17 -O1 -fopenmp";
    out->prelude = c->emu_prelude;
    out->source_ext = "cc";
    out->key_line = "\nextern \"C\" const char kl_kernel_key[] = \"%s\";\n";
    return KL_OK;
}

static const char *compiler(void)
{
    const char *cxx = getenv("KILN_CXX");
    return cxx && *cxx ? cxx : "g++";
}

static kl_status emu_compile_start(kl_backend *b, kl_lang lang, const char *src, const char *out, kl_compile_job *job)
{
    (void)lang;
    const char *argv[] = {compiler(), "-x", "c++", "-std=c++17", "-O1", "-fopenmp", "-shared", "-fPIC", "-w",
                          "-o", out, src, NULL};
    return kl_compile_process_start(b, argv, out, " (set KILN_CXX)", job);
}

static kl_status emu_compile_finish(kl_backend *b, kl_compile_job *job, const char *src)
{
    (void)b;
    return kl_compile_process_finish(job, src, "cuda-emulate: emulated CUDA kernel compile");
}

static kl_status emu_load(kl_backend *b, const char *path, const char *key, void **handle, kl_kernel_fn *fn)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) return kl_error(KL_ERR_RUNTIME, "%s: cannot load %s: %s", b->name, path, dlerror());
    void *entry = dlsym(h, "kl_emulate");
    if (!entry) entry = dlsym(h, "kl_emulate_user"); /* a user's device code */
    const char *k = dlsym(h, "kl_kernel_key");
    if (!entry || !k || strcmp(k, key) != 0) {
        dlclose(h);
        return kl_error(KL_ERR_RUNTIME, "%s: %s is not kernel %s", b->name, path, key);
    }
    *handle = h;
    *fn = (kl_kernel_fn)(uintptr_t)entry; /* an emulated_fn: launch turns it back */
    return KL_OK;
}

static void emu_unload(kl_backend *b, void *handle)
{
    (void)b;
    if (handle) dlclose(handle);
}

static kl_status emu_launch(kl_backend *b, kl_kernel_fn fn, const kl_launch_args *a)
{
    kl_cuda_backend *c = emulator(b);
    emulated_fn run = (emulated_fn)(uintptr_t)fn;
    int team = run(a->buf, a->iarg, a->farg, c->emu_workspace, kl_cuda_grid(a->work, EMULATED_MAX_GRID));
    if (team)
        return kl_error(KL_ERR_RUNTIME, "%s: OpenMP gave a block %d threads, not %d (OMP_THREAD_LIMIT?)", b->name, team,
                        KL_CUDA_BLOCK);
    return KL_OK;
}

static kl_status emu_launch_named(kl_backend *b, kl_kernel_fn fn, const char *name, const unsigned grid[3],
                                  const unsigned block[3], unsigned shared_bytes, void **params)
{
    if (shared_bytes > KL_CUDA_SM90_MAX_SHARED) /* as the device it stands in for would refuse */
        return kl_error(KL_ERR_VALUE, "%s: %s asks for %u bytes of dynamic shared memory; a block of an sm_90 "
                        "device may have at most %d", b->name, name, shared_bytes, KL_CUDA_SM90_MAX_SHARED);
    int team = ((emulated_user_fn)(uintptr_t)fn)(name, params, grid, block, shared_bytes);
    if (team == -1) return kl_error(KL_ERR_VALUE, "%s: the op's device code has no kernel named %s", b->name, name);
    if (team == -2)
        return kl_error(KL_ERR_MEMORY, "%s: no memory for %s's %u bytes of shared memory", b->name, name, shared_bytes);
    if (team == -3)
        return kl_error(KL_ERR_VALUE, "%s: %s shuffles values in the last warp of a %u-thread block, which has only "
                        "%u threads: on a GPU the missing lanes' values are undefined (make blocks a multiple of 32 "
                        "threads)", b->name, name, block[0] * block[1] * block[2], block[0] * block[1] * block[2] % 32);
    if (team)
        return kl_error(KL_ERR_RUNTIME, "%s: OpenMP gave a block %d threads, not %u (OMP_THREAD_LIMIT?)", b->name,
                        team, block[0] * block[1] * block[2]);
    return KL_OK;
}

/* No library, as on a device without one: only what is a kernel of its own
 * (a softmax, a layer norm) runs as a pattern. */
static int emu_supports(kl_backend *b, const kl_pattern *p)
{
    (void)b;
    return p->kind == KL_PATTERN_SOFTMAX || p->kind == KL_PATTERN_LAYERNORM;
}

kl_status kl_cuda_emulation_open(kl_cuda_backend *c)
{
    size_t n = strlen(emulation_header) + strlen(kl_cuda_prelude) + 1;
    c->emu_prelude = malloc(n);
    c->emu_workspace = calloc(1, KL_CUDA_WS_BYTES);
    if (!c->emu_prelude || !c->emu_workspace) return kl_error(KL_ERR_MEMORY, "out of memory opening the emulator");
    snprintf(c->emu_prelude, n, "%s%s", emulation_header, kl_cuda_prelude);
    const char *cap = getenv("KILN_EMULATE_MEMORY"); /* bytes: a small device, to test unified memory */
    c->emu_capacity = cap ? strtoull(cap, NULL, 10) : 0;
    kl_backend_ops *o = &c->ops;
    o->name = "cuda-emulate";
    o->artifact = "so";
    o->host_visible = 0; /* as a GPU: the runtime reads its memory through copies */
    o->alloc = emu_alloc;
    o->free = emu_free;
    o->copy = emu_copy;
    o->fill = emu_fill;
    o->memory = emu_memory;
    o->trim = emu_trim;
    o->toolchain = emu_toolchain;
    o->compile_start = emu_compile_start;
    o->compile_finish = emu_compile_finish;
    o->load = emu_load;
    o->unload = emu_unload;
    o->launch = emu_launch; /* synchronize (nothing queued) and run stay compile-only's */
    o->launch_named = emu_launch_named;
    o->collective = kl_cuda_collective;
    o->supports = emu_supports;
    return KL_OK;
}

void kl_cuda_emulation_close(kl_cuda_backend *c)
{
    kl_nccl_close(&c->nccl);
    free(c->emu_prelude);
    free(c->emu_workspace);
}
