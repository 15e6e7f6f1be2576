/* kiln.h: the public C API of kiln's core: a lazy graph of meta-operators,
 * fused and compiled just in time.
 *
 * A worked example, ((x*2+1).exp()*x).sum() on four floats:
 *
 *   kl_context *ctx;  kl_var *x, *two, *one, *t, *y;
 *   float data[4] = {0, 1, 2, 3};  int64_t n = 4;  float result;
 *   kl_context_new(&ctx);
 *   kl_var_from_host(ctx, KL_FLOAT32, 1, &n, data, &x);
 *   kl_full(ctx, KL_FLOAT32, 0, NULL, 2.0, &two);     rank-0 scalars broadcast
 *   kl_full(ctx, KL_FLOAT32, 0, NULL, 1.0, &one);
 *   kl_binary(KL_MUL, x, two, &t);                    nothing runs yet
 *   ... kl_binary(KL_ADD, ...), kl_unary(KL_EXP, ...), kl_binary(KL_MUL, ..., x, ...)
 *   kl_reduce(t, KL_SUM, 0, NULL, 0, &y);              all axes
 *   kl_var_copy_to_host(y, &result, sizeof result);   fuses, compiles, runs: one kernel
 *   kl_var_release(...) each handle; kl_context_free(ctx);
 *
 * Conventions: every function that can fail returns a kl_status and leaves a
 * message for kl_last_error() (per thread). A function returning a new kl_var
 * hands the caller one reference, dropped with kl_var_release(). Ops take
 * their own references to their inputs, so inputs may be released at once.
 * Nothing computes until a sync (kl_sync, kl_var_data, kl_var_copy_to_host). */
#ifndef KILN_H
#define KILN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the library exports: the functions below, and nothing else (it is
 * built with -fvisibility=hidden). */
#if defined(__GNUC__)
#define KL_API __attribute__((visibility("default")))
#else
#define KL_API
#endif

#define KL_MAX_DIMS 8
/* inputs of one op: a code op's or a custom gradient's (Jittor programs pass
 * a dozen), where's three, reindex's x plus its index vars */
#define KL_MAX_OP_INPUTS 16

typedef enum {
    KL_OK = 0,
    KL_ERR_VALUE,   /* bad shape, axis, expression: Python ValueError */
    KL_ERR_TYPE,    /* bad dtype: TypeError */
    KL_ERR_INDEX,   /* index out of range: IndexError */
    KL_ERR_RUNTIME, /* compile or run failure: RuntimeError */
    KL_ERR_MEMORY,  /* allocation failed: MemoryError */
    KL_ERR_OVERFLOW, /* a value outside its dtype's range: OverflowError */
    KL_ERR_INTERRUPTED /* a sync stopped by its interrupt check: KeyboardInterrupt */
} kl_status;

typedef enum {
    KL_BOOL, KL_INT8, KL_UINT8, KL_INT16, KL_INT32, KL_INT64,
    KL_FLOAT16, KL_FLOAT32, KL_FLOAT64,
    KL_BFLOAT16, /* stored as 16 bits, computed in float32 (round to nearest even on store) */
    KL_DTYPE_COUNT
} kl_dtype;

typedef enum {
#define KL_UNARY(ID, name, traits) KL_##ID,
#include "kiln_ops.def"
#undef KL_UNARY
    KL_UNARY_COUNT
} kl_unary_op;

typedef enum {
#define KL_BINARY(ID, name, traits) KL_##ID,
#include "kiln_ops.def"
#undef KL_BINARY
    KL_BINARY_COUNT
} kl_binary_op;

typedef enum {
#define KL_REDUCE(ID, name, scatter) KL_REDUCE_##ID,
#include "kiln_ops.def"
#undef KL_REDUCE
    KL_REDUCE_COUNT
} kl_reduce_op;

typedef enum { KL_RANDOM_UNIFORM, KL_RANDOM_NORMAL } kl_random_kind;

typedef struct kl_context kl_context;
typedef struct kl_var kl_var;
/* A custom gradient rule (kl_custom_grad). */
typedef kl_status (*kl_grad_fn)(void *user, kl_var *dout, int input, kl_var **grad);

typedef struct {
    uint64_t kernels_compiled;   /* compiler invocations that produced a kernel */
    uint64_t cache_hits_memory;  /* kernel found already loaded in this process */
    uint64_t cache_hits_disk;    /* kernel found in the on-disk cache */
    uint64_t kernels_launched;
    uint64_t library_calls;      /* kernels replaced by a library (BLAS gemm, oneDNN conv) */
    uint64_t bytes_allocated;    /* total bytes handed out by the allocator */
    uint64_t bytes_in_use;       /* bytes held by live buffers now */
    uint64_t bytes_cached;       /* freed bytes kept for reuse */
    uint64_t peak_bytes_in_use;
    uint64_t vars_alive;
    uint64_t vars_held;          /* vars with a handle outside the graph (Python Vars) */
    uint64_t ops_alive;          /* vars holding an op: pending, or kept for backward */
    uint64_t kernels_checked;    /* kernels compiled for the compile check (kl_context_set_compile_check) */
    uint64_t bytes_moved_to_host; /* device memory full: buffers moved to host memory (unified memory) */
    uint64_t launches_grouped;   /* kernels run inside a group's one launch (src/runtime/group.c) */
    uint64_t group_forms;        /* group forms compiled or loaded (in kernels_compiled when compiled) */
    uint64_t syncs_replayed;     /* syncs whose graph's plan was replayed (src/runtime/step_cache.c) */
} kl_counters;

/* One launch the profiler recorded: the root op (with " (library gemm)" and
 * the like for library calls), the ops the kernel fuses, the time, and the
 * bytes its inputs and output hold. */
typedef struct {
    char name[64];
    char ops[160];
    double ms;
    uint64_t input_bytes, output_bytes;
} kl_profile_record;

/* ---- errors and dtypes ---- */
KL_API const char *kl_last_error(void);
KL_API const char *kl_status_name(kl_status s);
KL_API const char *kl_dtype_name(kl_dtype t);
KL_API kl_status kl_dtype_from_name(const char *name, kl_dtype *out);
KL_API size_t kl_dtype_size(kl_dtype t);
KL_API int kl_dtype_is_float(kl_dtype t);
KL_API int kl_dtype_is_int(kl_dtype t); /* signed or unsigned integer, not bool */
/* NumPy's promote_types for two array dtypes. */
KL_API kl_status kl_dtype_promote(kl_dtype a, kl_dtype b, kl_dtype *out);

/* What an element-wise op is (kiln_ops.def): integer inputs compute in
 * float32; it calls libm; it is the identity on integers. */
typedef enum { KL_FLOAT_MATH = 1, KL_LIBM = 2, KL_INT_IDENTITY = 4 } kl_op_trait;
KL_API int kl_unary_traits(kl_unary_op op);   /* 0 for an invalid op */
KL_API int kl_binary_traits(kl_binary_op op);

KL_API const char *kl_unary_name(kl_unary_op op);
KL_API const char *kl_binary_name(kl_binary_op op);
KL_API const char *kl_reduce_name(kl_reduce_op op);
KL_API kl_status kl_unary_from_name(const char *name, kl_unary_op *out);
KL_API kl_status kl_binary_from_name(const char *name, kl_binary_op *out);
/* Accepts reduce names (sum, max, ...) and scatter names (add, maximum, ...). */
KL_API kl_status kl_reduce_from_name(const char *name, kl_reduce_op *out);

/* ---- context ---- */
/* Reads KILN_CACHE_DIR (default ~/.cache/kiln), KILN_DEBUG (1: print each
 * compiled kernel's source and command; 2: also every launch), KILN_CC. */
KL_API kl_status kl_context_new(kl_context **out);
/* Frees ctx (NULL: nothing). A context that still has vars is not freed: the
 * call fails naming how many, and may be repeated once they are released. */
KL_API kl_status kl_context_free(kl_context *ctx);
KL_API kl_status kl_context_set_cache_dir(kl_context *ctx, const char *dir);
KL_API const char *kl_context_cache_dir(const kl_context *ctx);
KL_API void kl_context_set_debug(kl_context *ctx, int level);
KL_API int kl_context_debug(const kl_context *ctx);
KL_API void kl_context_seed(kl_context *ctx, uint64_t seed);
KL_API void kl_context_counters(const kl_context *ctx, kl_counters *out);
/* Returns cached, unused host memory to the system (and the weights oneDNN
 * keeps reordered for repeated convolutions). */
KL_API void kl_context_gc(kl_context *ctx);
/* The profiler: while on, every launch of a sync is timed and recorded
 * (jt.profile_scope); kl_context_profile_take moves up to max records into
 * out and returns how many (the rest stay for the next call). */
KL_API void kl_context_set_profile(kl_context *ctx, int on);
KL_API int kl_context_profile_enabled(const kl_context *ctx);
KL_API int kl_context_profile_take(kl_context *ctx, kl_profile_record *out, int max);
/* Which computed vars keep the graph that made them. Off (the default): a
 * var keeps it only when it depends on a var marked requires_grad, so memory
 * goes as soon as values are computed. On (Jittor's rule, what the Python API
 * sets): every float var made from nothing (arrays, constants, random)
 * requires grad, so every float var not behind a stop_grad keeps its graph
 * while it lives and kl_grad works through values already computed. */
KL_API void kl_context_set_keep_graphs(kl_context *ctx, int on);
KL_API int kl_context_keep_graphs(const kl_context *ctx);
/* check(arg) is called by a sync between its kernels (in the syncing
 * thread); a nonzero answer stops the sync with KL_ERR_INTERRUPTED: the
 * vars computed so far stay computed, the rest pending. NULL removes it. */
KL_API void kl_context_set_interrupt(kl_context *ctx, int (*check)(void *arg), void *arg);
/* 1 when the named library ("blas": OpenBLAS gemm, "dnnl": oneDNN 2.x
 * convolutions) is found and not disabled (KILN_BLAS=0, KILN_DNNL=0). */
KL_API int kl_context_has_library(kl_context *ctx, const char *name);
/* Devices: the context's backends by index (0 is always "cpu"), and the one
 * new vars made from nothing (arrays, constants, random) go to; an op runs
 * where its inputs are (inputs on two devices are refused, naming both). */
KL_API int kl_context_device_count(const kl_context *ctx);
KL_API const char *kl_context_device_name(const kl_context *ctx, int index); /* NULL when out of range */
KL_API kl_status kl_context_set_device(kl_context *ctx, const char *name);
KL_API const char *kl_context_device(const kl_context *ctx);
/* The compile check: from now on every kernel new to the context is also
 * rendered for backend ("cuda") and compiled by its toolchain, without a
 * device and without running there; a kernel that does not compile fails
 * its sync, naming the kept source. NULL or "" stops it. KILN_COMPILE_CHECK
 * sets it when a context is made. */
KL_API kl_status kl_context_set_compile_check(kl_context *ctx, const char *backend);
/* The NVIDIA GPUs kiln could open: the driver's device count, 0 without a
 * driver or a device (nothing is opened). */
KL_API int kl_cuda_device_count(void);
/* Waits until every device has finished the work queued on it (a GPU runs
 * kernels asynchronously; reading a var's data waits by itself). */
KL_API kl_status kl_context_synchronize(kl_context *ctx);

/* ---- vars ---- */
/* Handles: a NULL var, or one already released, is refused with an error
 * (getters answer a neutral value: -1, NULL, KL_DTYPE_COUNT, "invalid"). A
 * handle released twice is recognised while the context still keeps its
 * memory (the last 1024 freed vars); beyond that it is undefined, as free(). */
/* Copies ndim/shape/data; data may be NULL for an uninitialised array. */
KL_API kl_status kl_var_from_host(kl_context *ctx, kl_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, kl_var **out);
KL_API kl_status kl_var_retain(kl_var *v);
/* Drops one handle (NULL: nothing). */
KL_API kl_status kl_var_release(kl_var *v);
KL_API kl_context *kl_var_context(const kl_var *v);
KL_API kl_dtype kl_var_dtype(const kl_var *v);
KL_API int kl_var_ndim(const kl_var *v);
/* The name of the device v's data is (or will be) on: "cpu", ... */
KL_API const char *kl_var_device(const kl_var *v);
/* 1 when v's device runs a scatter whose leading dims write disjoint planes
 * as planes in parallel (the CPU): a gradient written as such a scatter
 * then beats a gather by target; 0 where a gather does better (a GPU). */
KL_API int kl_var_device_scatters_planes(const kl_var *v);
KL_API const int64_t *kl_var_shape(const kl_var *v);
KL_API int64_t kl_var_numel(const kl_var *v);
KL_API uint64_t kl_var_id(const kl_var *v);
KL_API int kl_var_is_computed(const kl_var *v);
/* 1 when v is computed, its handle is the only one, no pending op reads it
 * and no other var shares its buffer: whoever holds the handle alone can
 * see the data, so a caller about to drop it may hand the memory on (write
 * access included) instead of copying it. */
KL_API int kl_var_is_sole_owner(const kl_var *v);
/* A var that requires grad (and every float var computed from it) keeps its
 * producing graph after it is computed, so kl_grad can still reach through it. */
KL_API void kl_var_set_requires_grad(kl_var *v, int on);
KL_API int kl_var_requires_grad(const kl_var *v);
/* A computed var forgets the graph that produced it, freeing what only that
 * graph held (PyTorch frees it after backward); no-op for a pending var. */
KL_API void kl_var_release_graph(kl_var *v);
/* v is stored when it is computed and its consumers read it from memory,
 * even where fusion would inline it (Jittor's stop_fuse: a fusion boundary,
 * e.g. for a costly value read by several kernels). */
KL_API kl_status kl_var_stop_fuse(kl_var *v);
/* Names v in debugging dumps (Jittor's Var.name); vars sharing a handle share it. */
KL_API kl_status kl_var_set_name(kl_var *v, const char *name);
/* Name of the op that produces v ("array" for data, "reshape", "exp", ...). */
KL_API const char *kl_var_op_name(const kl_var *v);
/* A var's place in the graph, for debugging dumps (jt.dump_all_graphs). */
typedef struct {
    uint64_t id;
    int user_refs;   /* handles the program holds */
    int graph_refs;  /* ops (pending, or kept for a gradient) that read it */
    int n_inputs;    /* inputs of the op it still holds: 0 once it keeps no graph */
    uint64_t inputs[KL_MAX_OP_INPUTS]; /* their ids */
    int computed;    /* its value exists (a var fused into its consumers never has one) */
    size_t nbytes;   /* bytes of its value */
    uint64_t buffer; /* its value's buffer (shared by views such as reshapes), 0 before it is computed */
    const char *op;  /* kl_var_op_name */
    const char *name; /* kl_var_set_name's, or NULL */
} kl_var_info;
KL_API kl_status kl_var_get_info(const kl_var *v, kl_var_info *out);
/* Every var of the context that exists, held by the program or by the graph,
 * oldest first: up to max into out (borrowed, valid until the next call into
 * kiln); returns how many there are, -1 on a bad argument. */
KL_API int64_t kl_context_vars(kl_context *ctx, kl_var **out, int64_t max);
/* Syncs v and returns a pointer to its contiguous data, valid while v is held. */
KL_API kl_status kl_var_data(kl_var *v, const void **out);
KL_API kl_status kl_var_copy_to_host(kl_var *v, void *dst, size_t nbytes);
/* Computes every listed var (and what they need) in as few kernels as fusion allows. */
KL_API kl_status kl_sync(kl_var *const *vars, int n);
/* Computes every pending var someone holds (a handle, not only the graph). */
KL_API kl_status kl_sync_all(kl_context *ctx);

/* ---- leaves ---- */
/* value in dtype: an integer dtype takes it truncated, and refuses NaN
 * (KL_ERR_VALUE) or a value outside its range (KL_ERR_OVERFLOW). */
KL_API kl_status kl_full(kl_context *ctx, kl_dtype dtype, int ndim, const int64_t *shape,
                  double value, kl_var **out);
/* The same for an exact integer (all 64 bits kept in int64; a float dtype
 * rounds it as a conversion would); out of an integer dtype's range is
 * KL_ERR_OVERFLOW. */
KL_API kl_status kl_full_int(kl_context *ctx, kl_dtype dtype, int ndim, const int64_t *shape,
                      int64_t value, kl_var **out);
/* uniform: [a, b); normal: mean a, standard deviation b. Counter-based: the
 * values depend only on the context's seed and how many random numbers the
 * context has handed out, not on threads or fusion. */
KL_API kl_status kl_random(kl_context *ctx, kl_dtype dtype, int ndim, const int64_t *shape,
                    kl_random_kind kind, double a, double b, kl_var **out);
/* out[i0, ..., in] = i_dim (Jittor's index op). */
KL_API kl_status kl_index(kl_context *ctx, kl_dtype dtype, int ndim, const int64_t *shape,
                   int dim, kl_var **out);

/* ---- meta-operators ---- */
KL_API kl_status kl_unary(kl_unary_op op, kl_var *x, kl_var **out);
KL_API kl_status kl_cast(kl_var *x, kl_dtype dtype, kl_var **out);
/* a and b broadcast against each other as in NumPy. */
KL_API kl_status kl_binary(kl_binary_op op, kl_var *a, kl_var *b, kl_var **out);
KL_API kl_status kl_where(kl_var *cond, kl_var *a, kl_var *b, kl_var **out);
/* x's dims map to the output dims not listed in dims (Jittor's broadcast with
 * dims); with ndims == 0, x is right-aligned as in NumPy. Size-1 dims expand. */
KL_API kl_status kl_broadcast_to(kl_var *x, int ndim, const int64_t *shape,
                          int ndims, const int *dims, kl_var **out);
/* out[i0..] = x[indexes[0], ..., indexes[x.ndim-1]], or overflow_value where an
 * index falls outside x or any overflow condition is true. Expressions may use
 * i0..i7, integers, + - * / % comparisons && || ! ?:, min(a,b), max(a,b),
 * xshapeK/yshapeK, XDIM/YDIM, and @eK(...) to read extras[K] (integer vars). */
KL_API kl_status kl_reindex(kl_var *x, int ndim, const int64_t *shape,
                     const char *const *indexes, double overflow_value,
                     int n_conditions, const char *const *conditions,
                     int n_extras, kl_var *const *extras, kl_var **out);
/* Scatter: for every index i of y, out[indexes(i)] op= y[i]; targets outside
 * out, or where a condition holds, are skipped. Untouched outputs hold op's
 * identity. Here x names the output and y the input, as in Jittor. */
KL_API kl_status kl_reindex_reduce(kl_var *y, kl_reduce_op op, int ndim, const int64_t *shape,
                            const char *const *indexes,
                            int n_conditions, const char *const *conditions,
                            int n_extras, kl_var *const *extras, kl_var **out);
/* Reduces over the listed dims (negative counts from the end); ndims == 0 means all. */
KL_API kl_status kl_reduce(kl_var *x, kl_reduce_op op, int ndims, const int *dims,
                    int keepdims, kl_var **out);
/* Same elements, new shape (one dim may be -1); zero-copy once x is computed. */
KL_API kl_status kl_reshape(kl_var *x, int ndim, const int64_t *shape, kl_var **out);
/* x (integers) unchanged, except that computing it fails with KL_ERR_INDEX
 * when a value is outside [lo, hi): the error names `what` (say "getitem on
 * dim 0 of shape (3, 4)") and the value. For index vars that reindex reads,
 * where an out-of-range value would otherwise read the overflow value. */
KL_API kl_status kl_check_index(kl_var *x, int64_t lo, int64_t hi, const char *what, kl_var **out);

/* ---- convolution forms ---- */
/* A convolution's geometry, as its forward form: x (n, ic, in...) by weights
 * (oc, ic/groups, kernel...) gives (n, oc, out...), reading x at
 * out_j*stride_j + k_j*dilation_j - pad_lo_j. A transposed convolution is
 * described by the forward convolution whose input gradient it is. */
typedef struct {
    int nd, groups, transposed;
    int64_t n, ic, oc;
    int64_t in[3], out[3], kernel[3], stride[3], dilation[3], pad_lo[3];
} kl_conv_geometry;

typedef enum {
    KL_CONV_DIRECT, /* windows times broadcast weights, summed: a library call where the device has one,
                       else one fused kernel (a transposed one: the scatter form) */
    KL_CONV_IM2COL  /* windows as a matrix times the weights, a gemm (a transposed one: the gather form) */
} kl_conv_form;

/* The form to build a convolution of dtype on v's device in: DIRECT when the
 * device runs this convolution as a library call, IM2COL when it runs
 * matrix products and the convolution is wide (groups == 1 or at least 4
 * output channels per group), else DIRECT. Asks the device, so the graph
 * takes the form that runs best where it will run. */
KL_API kl_status kl_conv_choose(const kl_var *v, kl_dtype dtype, const kl_conv_geometry *g, kl_conv_form *out);

/* ---- custom kernels (jt.code) ---- */
typedef struct {
    kl_dtype dtype;
    int ndim;
    int64_t shape[KL_MAX_DIMS]; /* a negative dim is dynamic: at most -dim, set by the kernel */
} kl_code_output;

/* The language of a user kernel's source: C, C++, or the C++ host code of
 * a CUDA op (jt.code's cuda_src), which runs on the host with the device's
 * pointers and launches the op's own device kernels through the
 * kl_code_cuda_runtime it is given. */
typedef enum { KL_CODE_C, KL_CODE_CXX, KL_CODE_CUDA } kl_code_lang;

/* What CUDA host code is given (after the dims array in buf): launching one
 * of its kernels (device_source: the op's device code, which the device
 * compiles once and caches; grid and block in three dims), filling and
 * copying device memory (kind: 0 host to host, 1 host to device, 2 device
 * to host, 3 device to device, as cudaMemcpyKind), waiting for the device,
 * and a host copy of input k (the op's constants). Each returns 0 or a
 * CUDA-like error code; the first failure is kept in status, later calls
 * do nothing, and the op fails with its message. The fields are written
 * once, here: generated code declares the struct from
 * kl_code_cuda_runtime_decl(). */
#define KL_CODE_CUDA_RUNTIME_FIELDS \
    void *self; \
    int status; \
    int (*launch)(struct kl_code_cuda_runtime *rt, const char *device_source, const char *kernel, \
                  const unsigned *grid, const unsigned *block, unsigned shared_bytes, void **params); \
    int (*fill)(struct kl_code_cuda_runtime *rt, void *dst, int byte, size_t nbytes); \
    int (*copy)(struct kl_code_cuda_runtime *rt, void *dst, const void *src, size_t nbytes, int kind); \
    int (*synchronize)(struct kl_code_cuda_runtime *rt); \
    const void *(*host_input)(struct kl_code_cuda_runtime *rt, int k); \
    const char *(*message)(struct kl_code_cuda_runtime *rt);
typedef struct kl_code_cuda_runtime { KL_CODE_CUDA_RUNTIME_FIELDS } kl_code_cuda_runtime;
KL_API const char *kl_code_cuda_runtime_decl(void);

/* A kernel written by the user. source defines
 *     void kl_kernel(void *const *buf, const int64_t *iarg, const double *farg)
 * (extern "C" unless lang is KL_CODE_C): buf[0..n_outputs-1] are the
 * outputs, then the inputs, then an int64_t array of the outputs' dims
 * (outputs in order), which the kernel overwrites to give dynamic outputs
 * their size, then for KL_CODE_CUDA the kl_code_cuda_runtime; iarg holds the
 * dims of the outputs then of the inputs, so a new shape needs no new
 * compile. C and C++ read and write host memory (on a device, through host
 * copies); CUDA host code gets the device's memory. grad_sources[k] (NULL:
 * none) is a kernel of the same form whose inputs are the inputs, output 0
 * and its gradient, and whose one output is input k's gradient. Outputs
 * with dynamic dims are computed at once. */
KL_API kl_status kl_code(kl_context *ctx, int n_inputs, kl_var *const *inputs,
                  int n_outputs, const kl_code_output *outs, const char *source, kl_code_lang lang,
                  int n_grads, const char *const *grad_sources, kl_var **outputs);

/* Compiles (or finds in the caches) the n kernel sources of kl_code now,
 * several at once, so a compile error surfaces where the kernel is written;
 * the message names the kept source file and has the compiler's output. */
KL_API kl_status kl_code_compile(kl_context *ctx, int n, const char *const *sources, kl_code_lang lang);
/* The same for the device code of CUDA ops (their kernels, which their host
 * code launches by name): compiled for the context's device, and for the
 * compile check's when one is on. */
KL_API kl_status kl_code_compile_device(kl_context *ctx, int n, const char *const *sources);

/* ---- autograd ---- */
/* Gradients of sum(y * dy) (dy NULL means ones) with respect to each xs[k],
 * as lazy vars built from meta-ops; a var y does not depend on gets zeros. */
KL_API kl_status kl_grad(kl_var *y, kl_var *dy, int n, kl_var *const *xs, kl_var **grads);
/* Same value as x; gradients do not flow through it. */
KL_API kl_status kl_stop_grad(kl_var *x, kl_var **out);
/* A custom gradient (Jittor's jt.Function): *out has value's elements, and the
 * gradient dout reaching *out flows to inputs[i] as the var fn(user, dout, i,
 * &grad) makes (inputs[i]'s shape; NULL: none), called while kl_grad runs
 * (it may build and sync vars, not call kl_grad). value's own graph gets no
 * gradient from *out: make it from the inputs behind a stop_grad. At most 9
 * inputs; release(user) (may be NULL) runs when the op is freed, possibly
 * inside a sync. */
KL_API kl_status kl_custom_grad(kl_var *value, int n, kl_var *const *inputs, kl_grad_fn fn, void *user,
                                void (*release)(void *user), kl_var **out);

/* ---- data parallelism: MPI collectives ----
 * A process started by mpirun joins its job with kl_mpi_start: OpenMPI
 * (libmpi.so.40) is loaded with dlopen and initialised; without mpirun (or
 * before kl_mpi_start) the context is a world of one rank, where every
 * collective is the identity. The collectives are lazy ops like any other:
 * they run at sync, in graph order, so every rank must sync the same
 * collectives in the same order (as with MPI itself). */
KL_API kl_status kl_mpi_start(kl_context *ctx);
/* This process's rank, the number of ranks, and its rank and their number
 * on its own machine (0, 1, 0, 1 in a world of one). */
KL_API int kl_mpi_rank(const kl_context *ctx);
KL_API int kl_mpi_world_size(const kl_context *ctx);
KL_API int kl_mpi_local_rank(const kl_context *ctx);
KL_API int kl_mpi_local_size(const kl_context *ctx);
/* op: KL_REDUCE_SUM, KL_REDUCE_MEAN (float dtypes), KL_REDUCE_MAX or
 * KL_REDUCE_MIN (no gradient). all_reduce: every rank gets the result;
 * reduce: the root gets it, the others zeros; broadcast: every rank gets the
 * root's x. Gradients: all_reduce's is the all_reduce of the gradient (sum
 * or mean), reduce's the broadcast from the root, broadcast's the sum
 * reduced to the root. */
KL_API kl_status kl_mpi_all_reduce(kl_var *x, kl_reduce_op op, kl_var **out);
KL_API kl_status kl_mpi_reduce(kl_var *x, kl_reduce_op op, int root, kl_var **out);
KL_API kl_status kl_mpi_broadcast(kl_var *x, int root, kl_var **out);
/* The all_reduce of n vars (1..KL_MPI_MAX_BUCKET, one dtype) in one call: a
 * flat var of their elements one after another (also in a world of one),
 * for optimisers that average many gradients at once. */
#define KL_MPI_MAX_BUCKET 10
KL_API kl_status kl_mpi_all_reduce_many(int n, kl_var *const *xs, kl_reduce_op op, kl_var **out);
/* MPI_Allreduce (sum) of n host elements in place, outside the graph: what
 * the lazy op wraps, for benchmarks and tests to compare against. */
KL_API kl_status kl_mpi_all_reduce_host(kl_context *ctx, void *data, int64_t n, kl_dtype dtype);
KL_API kl_status kl_mpi_barrier(kl_context *ctx);
/* Writes message to stderr and ends every rank of the job (MPI_Abort);
 * returns only in a world of one. */
KL_API void kl_mpi_abort(kl_context *ctx, int code, const char *message);
/* Leaves the job (MPI_Finalize) once every rank calls it; a context freed
 * without it leaves at kl_context_free. */
KL_API kl_status kl_mpi_finish(kl_context *ctx);

#ifdef __cplusplus
}
#endif
#endif
