/* backend.h: what a device implements, and nothing else. A backend owns its
 * memory (allocate, free, copy, fill, statistics), turns kernel source into
 * something launchable (the artifact the on-disk cache stores: a shared
 * object, a cubin), launches kernels on its queue and synchronises it, and
 * says which library patterns (matrix products, convolutions forward and
 * both gradients) it runs, and runs them. Everything else -- the graph,
 * fusion, autograd, the caches, the scheduling of compiles -- is shared.
 *
 * The CPU backend (src/backend/cpu/) is the worked example; docs/design.md,
 * "Adding a backend", walks through it, and tests/c/test_backend.c is the
 * conformance suite a new backend passes. */
#ifndef KL_BACKEND_H
#define KL_BACKEND_H

#include "kiln.h"
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct kl_var;
struct kl_context;
struct kl_kdesc;
typedef struct kl_backend kl_backend;

typedef enum { KL_COPY_HOST_TO_DEVICE, KL_COPY_DEVICE_TO_HOST, KL_COPY_DEVICE_TO_DEVICE } kl_copy_kind;

typedef struct {
    uint64_t bytes_allocated; /* total handed out */
    uint64_t bytes_in_use;    /* held by live buffers */
    uint64_t bytes_cached;    /* freed, kept for reuse */
    uint64_t peak_bytes_in_use;
} kl_memory_stats;

/* The kinds of source a backend compiles: a generated kernel (which the
 * backend's prelude precedes), a user's C or C++ kernel (jt.code), a user's
 * CUDA device code (jt.code's cuda_src kernels, launched by name). */
typedef enum { KL_LANG_KERNEL, KL_LANG_C, KL_LANG_CXX, KL_LANG_CUDA, KL_LANG_COUNT } kl_lang;

/* What a compiled kernel is called with: buffers (buf[0] the output),
 * integer and floating-point arguments. */
typedef void (*kl_kernel_fn)(void *const *buf, const int64_t *iarg, const double *farg);

/* What one launch passes: the arrays a kernel is called with and their
 * lengths, and the size of the kernel's iteration space (a device sizes its
 * grid by it; 0 when unknown, as for jt.code kernels). */
typedef struct {
    void *const *buf;
    const int64_t *iarg;
    const double *farg;
    int n_buf, n_iarg, n_farg;
    int64_t work;
    /* the kernel takes the three arrays themselves (a group form,
     * src/runtime/group.c), not their elements one by one: a device whose
     * kernels read only its own memory copies them there */
    int arrays;
} kl_launch_args;

/* A compiler for one kind of source, as the jit needs it: the text every
 * source is preceded by, and what identifies the compiler, its flags and
 * the machine (it keys the caches, so a change never reuses an artifact). */
typedef struct {
    const char *prelude;
    const char *identity;
    /* a printf format with one %s, the kernel's name: the line every source
     * ends with, so that a loaded artifact can say which kernel it is */
    const char *key_line;
    const char *source_ext;  /* how a source file of it is named: "c", "cc", "cu" */
} kl_toolchain;

/* One compile in flight (the jit starts several, then finishes them). */
typedef struct {
    pid_t pid;       /* a compiler process, or 0 when compile_start did the work */
    int status;      /* set by compile_start when it compiled in-process */
    char log[4200];  /* its output file */
    void *work;      /* a backend's own state of a compile it runs in-process (a thread) */
} kl_compile_job;

/* ---- library patterns ---- */

typedef enum { KL_PATTERN_GEMM, KL_PATTERN_CONV, KL_PATTERN_SOFTMAX, KL_PATTERN_LAYERNORM } kl_pattern_kind;
typedef enum { KL_CONV_FORWARD, KL_CONV_BACKWARD_DATA, KL_CONV_BACKWARD_WEIGHTS } kl_conv_kind;

/* Row-major C[m, n] = op(A)[m, k] op(B)[k, n], looped over batch dims. */
typedef struct {
    int trans_a, trans_b, m, n, k, lda, ldb, ldc;
    int n_batch; /* batch dims, looped around the product */
    int64_t batch_size[KL_MAX_DIMS], batch_a[KL_MAX_DIMS], batch_b[KL_MAX_DIMS], batch_c[KL_MAX_DIMS];
} kl_gemm_shape;

/* What a forward convolution's result passes through, in order, before it
 * is stored (src/opt/epilogue.c finds it): an inference batch norm's
 * per-channel scale and shift, a bias, a residual of the result's shape
 * added, a ReLU. The scales, shifts and residual are operands of the call. */
typedef enum { KL_EPI_SCALE, KL_EPI_SHIFT, KL_EPI_RESIDUAL, KL_EPI_RELU } kl_epilogue_op;
#define KL_MAX_EPILOGUE 8
typedef struct {
    int32_t n, pad_; /* 16 bytes, no padding of the compiler's: shapes are compared with memcmp */
    uint8_t op[KL_MAX_EPILOGUE]; /* kl_epilogue_op */
} kl_epilogue;

/* One convolution, all plain row-major: src (n, ic, in...), weights
 * (oc, ic/groups, k...), dst (n, oc, out...). dilation is kiln's (1: dense).
 * A forward convolution may carry an epilogue (n = 0: none). */
typedef struct {
    int32_t kind, nd, groups, pad_;
    int64_t n, ic, oc;
    int64_t in[3], out[3], k[3], stride[3], dilation[3], pad_lo[3], pad_hi[3];
    kl_epilogue epilogue;
} kl_conv_shape;

/* Softmax (log: log-softmax) along the middle dim of a row-major
 * (outer, axis, inner) array: dim `dim` of the input. */
typedef struct {
    int64_t outer, axis, inner;
    int log, dim;
} kl_softmax_shape;

/* Layer normalisation over the last dim of a row-major (rows, axis) array,
 * y = (x - mean) * rsqrt(var + eps) [* weight] [+ bias], the vectors of
 * length axis (the weight is the pattern's b); eps is the scalar (a full
 * var) the graph adds. */
typedef struct {
    int64_t rows, axis;
    struct kl_var *bias, *eps;
} kl_layernorm_shape;

/* A pattern the replacement passes (src/opt/) found: what is computed, in
 * which dtype, from which two stored operands. For a convolution, a and b
 * are src and weights (forward), diff dst and weights (backward data), src
 * and diff dst (backward weights); the result is dst, diff src, diff weights;
 * a forward convolution's epilogue reads epilogue_operand[i] at its step i
 * (a float32 vector of oc for a scale or shift, an array of dst's shape for
 * a residual, NULL for a ReLU). A softmax reads a alone (b is NULL), a
 * layer norm a, its weight as b (NULL: none) and the bias its shape names.
 * Layouts (src/opt/layout.c): 0 where a convolution's input a, its residual
 * or its result is row-major; else the device's id of the layout that
 * array is kept in (backend ops' layout): the result of one convolution
 * that only further convolutions read stays in the library's own layout. */
typedef struct kl_pattern {
    kl_pattern_kind kind;
    kl_dtype dtype;
    struct kl_var *a, *b;
    struct kl_var *epilogue_operand[KL_MAX_EPILOGUE];
    uint32_t a_layout, residual_layout, out_layout;
    union {
        kl_gemm_shape gemm;
        kl_conv_shape conv;
        kl_softmax_shape softmax;
        kl_layernorm_shape layernorm;
    };
} kl_pattern;

/* A collective across the job's ranks on a device's own memory (the
 * backend op `collective`: NCCL on a GPU). */
typedef struct {
    int kind;          /* a kl_collective_kind: 0 all-reduce, 1 reduce, 2 broadcast */
    kl_reduce_op op;   /* sum, mean, max, min (not for a broadcast) */
    int root;          /* of a reduce or a broadcast */
    kl_dtype dtype;
    int64_t count;     /* elements */
    const void *src;
    void *dst;         /* may be src; a reduce leaves zeros on the other ranks */
    int rank, size;
    /* rank 0's nbytes at bytes, to every rank (the job's MPI): how the
     * ranks agree on a communicator */
    kl_status (*share)(void *job, void *bytes, size_t nbytes);
    /* *value becomes the least of every rank's (the job's MPI): how the
     * ranks agree on whether to use the device's collectives at all */
    kl_status (*agree)(void *job, int32_t *value);
    void *job;
    /* only asking: *done says whether the device would run the call
     * (src and dst unset); every rank asks at the same point */
    int probe;
} kl_collective_call;

/* ---- the interface ---- */

typedef struct kl_backend_ops {
    const char *name;        /* "cpu" */
    const char *artifact;    /* the extension of what the disk cache stores ("so", "cubin") */
    int host_visible;        /* the host reads its memory directly (a CPU's, unified memory) */
    /* a scatter whose leading dims write disjoint planes runs the planes in
     * parallel, each one's writes in order, without atomics: the form a
     * gradient should take where threads are few (a CPU); where they are
     * many (a GPU) a gather by target beats it */
    int plane_scatter;
    /* the renderer prints a description's extra values (kdesc.h: sibling
     * sums and maps, each stored to its own output) */
    int sibling_outputs;

    /* memory: device pointers are opaque to everything but the backend */
    void *(*alloc)(kl_backend *b, size_t nbytes);              /* NULL when out of memory */
    void (*free)(kl_backend *b, void *p, size_t nbytes);      /* nbytes as allocated */
    kl_status (*copy)(kl_backend *b, void *dst, const void *src, size_t nbytes, kl_copy_kind kind);
    kl_status (*fill)(kl_backend *b, void *dst, size_t nbytes, uint8_t byte);
    void (*memory)(kl_backend *b, kl_memory_stats *out);
    void (*trim)(kl_backend *b);                               /* give cached memory back */

    /* optional: what this device's answers to supports and layout depend on
     * besides a pattern's shapes, as a word (the CPU's thread count, by
     * which oneDNN picks implementations): a sync's plan is replayed only
     * under the same word (src/runtime/step_cache.c) */
    uint64_t (*plan_state)(kl_backend *b);

    /* rendering: a kernel description as source of its toolchain's
     * KL_LANG_KERNEL (malloc'd text in *source) */
    kl_status (*render)(kl_backend *b, const struct kl_kdesc *k, char **source);
    /* optional: the group form of a description (src/runtime/group.c has
     * its arguments): one launch computes several launches of it; *source
     * NULL when the description has none */
    kl_status (*render_group)(kl_backend *b, const struct kl_kdesc *k, char **source);

    /* compiling: the jit caches, locks and schedules; the backend says how */
    kl_status (*toolchain)(kl_backend *b, kl_lang lang, kl_toolchain *out);
    /* Starts compiling source file src into artifact out (a temporary name
     * the jit then publishes); finish waits for it. An error names the kept
     * source and gives the compiler's output. */
    kl_status (*compile_start)(kl_backend *b, kl_lang lang, const char *src, const char *out, kl_compile_job *job);
    kl_status (*compile_finish)(kl_backend *b, kl_compile_job *job, const char *src);
    /* Loads an artifact; its entry point is kl_kernel, and kl_kernel_key
     * must name key (so a file that is another kernel's is refused). */
    kl_status (*load)(kl_backend *b, const char *path, const char *key, void **handle, kl_kernel_fn *fn);
    void (*unload)(kl_backend *b, void *handle);

    /* running */
    kl_status (*launch)(kl_backend *b, kl_kernel_fn fn, const kl_launch_args *args);
    kl_status (*synchronize)(kl_backend *b);
    /* optional: runs kernel `name` of a KL_LANG_CUDA artifact (fn as load
     * gave it) on grid x block threads (three dims each) with shared_bytes
     * of dynamic shared memory, params pointing at its arguments in order */
    kl_status (*launch_named)(kl_backend *b, kl_kernel_fn fn, const char *name, const unsigned grid[3],
                              const unsigned block[3], unsigned shared_bytes, void **params);

    /* library patterns: whether p runs here, and running it into out */
    int (*supports)(kl_backend *b, const kl_pattern *p);
    /* in: the operands' memory, a, b, then the epilogue's operands (a
     * convolution's, in its order; NULL for a step without one). b_contents
     * names b's contents (a buffer id, 0: none): a backend may keep what it
     * derives from them (reordered weights) while they recur */
    kl_status (*run)(kl_backend *b, const kl_pattern *p, void *out, const void *const *in, uint64_t b_contents);
    /* optional: the layout a forward convolution pattern reads its input a
     * in (of_result 0) or writes its result in (1), as an id equal for equal
     * layouts (0: row-major, or a layout of another size); run then takes
     * and leaves arrays in it where the pattern's layouts say so */
    uint32_t (*layout)(kl_backend *b, const kl_pattern *p, int of_result);
    /* with layout: puts p's result, left in p's out_layout, back in
     * row-major order in place (a sync that stopped before the result's
     * readers ran leaves it to later syncs, which read arrays) */
    kl_status (*to_row_major)(kl_backend *b, const kl_pattern *p, void *result);

    /* optional: runs a collective on this device's memory; *done is 0 when
     * it cannot (no library, a dtype it has no type for), and the caller
     * goes through host memory and MPI */
    kl_status (*collective)(kl_backend *b, const kl_collective_call *call, int *done);

    /* optional: whether a named library is found and enabled ("blas", "dnnl") */
    int (*has_library)(kl_backend *b, const char *name);

    void (*destroy)(kl_backend *b);
} kl_backend_ops;

struct kl_backend {
    const kl_backend_ops *ops;
    struct kl_context *ctx;
    char name[32];           /* the device's name: "cpu", "cuda:0" */
};

/* Hands b to ctx, which destroys it with itself (after unloading its
 * kernels); b's name must be new to ctx. kl_context_set_device selects it. */
kl_status kl_context_add_backend(struct kl_context *ctx, kl_backend *b);

/* The CPU backend (src/backend/cpu/cpu.c). */
kl_status kl_cpu_backend_new(struct kl_context *ctx, kl_backend **out);

/* The CUDA backend (src/backend/cuda/): on device 0 ("cuda"); compile-only,
 * where kernels render and compile to PTX for compute_90 and never run (the
 * compile check, "cuda:check"); or emulated, where the same kernels run on
 * the CPU to test their logic ("cuda-emulate"). Fails, saying why, when the
 * driver, a device or NVRTC (for the first two) is missing. */
typedef enum { KL_CUDA_DEVICE, KL_CUDA_COMPILE_ONLY, KL_CUDA_EMULATE } kl_cuda_mode;
kl_status kl_cuda_backend_new(struct kl_context *ctx, kl_cuda_mode mode, kl_backend **out);

#endif
