/* cuda.h: the CUDA backend's parts (internal to src/backend/cuda/): NVRTC,
 * loaded with dlopen at first use (nvrtc.c); the renderer that prints a
 * kernel description as CUDA C++ (render_cuda.c) and the prelude its
 * kernels start with (prelude.c); the backend object (cuda.c).
 *
 * The kernels' contract with whoever launches them: blocks of KL_BLOCK
 * (256) threads, any number of blocks (every loop is grid-stride); the
 * parameters are the buffers (output first), then the int64 and double
 * arguments, then the workspace: at least KL_CUDA_WS_BYTES of device
 * memory whose counters are zero between launches (a reduction split over
 * several blocks per output leaves them zero again). A scatter's module
 * has kl_kernel_init too, launched first with the same parameters (it
 * fills the output with the fold's identity). */
#ifndef KL_CUDA_H
#define KL_CUDA_H

#include "backend/backend.h"

#define KL_CUDA_BLOCK 256
#define KL_CUDA_UNROLL 4      /* elements a thread takes per loop turn */
#define KL_CUDA_MAX_GRID 4096 /* blocks a launch may use: the workspace is sized for it */
/* per block: a reduction's partial result (8 bytes), its NaN flag and an
 * output's counter (4 each), and each sibling value's partial (8 each) */
#define KL_CUDA_WS_BYTES (KL_CUDA_MAX_GRID * (16 + 8 * 3))

typedef struct kl_nvrtc kl_nvrtc;
struct kl_nvrtc {
    void *lib;
    char path[256];     /* the library loaded */
    int major, minor;   /* its version */
    char why[512];      /* why it could not be loaded */
    int tried;
    int (*version)(int *, int *);
    int (*create)(void **, const char *, const char *, int, const char *const *, const char *const *);
    int (*compile)(void *, int, const char *const *);
    int (*log_size)(void *, size_t *);
    int (*log)(void *, char *);
    int (*ptx_size)(void *, size_t *);
    int (*ptx)(void *, char *);
    int (*cubin_size)(void *, size_t *);
    int (*cubin)(void *, char *);
    int (*destroy)(void **);
    const char *(*error_string)(int);
};

/* Loads NVRTC (KILN_NVRTC names the library, the only one tried; else
 * libnvrtc.so.13, .12, then CUDA's default folder); an error says what was
 * tried. */
kl_status kl_nvrtc_load(kl_nvrtc *n);
/* Compiles source for arch ("compute_90": PTX; "sm_90": a cubin) into a
 * malloc'd image; a failure's message gives NVRTC's log. */
kl_status kl_nvrtc_compile(kl_nvrtc *n, const char *source, const char *name, const char *arch, char **image,
                           size_t *size);
/* Forgets n (the library itself stays loaded: see nvrtc.c). */
void kl_nvrtc_unload(kl_nvrtc *n);

/* What cuBLAS and cuDNN have alike: loaded at first use, one handle, its
 * work on kiln's stream, TF32 allowed or not. */
typedef struct {
    void *lib, *handle;
    int tried, tf32;
    int (*create)(void **);
    int (*destroy)(void *);
    int (*set_stream)(void *, void *);
} kl_cuda_library;

/* Opens the first of names[0..n) that loads, once; off_env set to 0 keeps it
 * closed. Reads KILN_TF32 (1: TF32 allowed) then. Whether it is open. */
int kl_cuda_library_open(kl_cuda_library *l, const char *off_env, const char *const *names, int n);
/* The library's handle, made at first use (create bound) and put on stream. */
int kl_cuda_library_handle(kl_cuda_library *l, void *stream);

/* cuBLAS (cublas.c), loaded at the first product on a device */
typedef struct {
    kl_cuda_library base;
    int (*set_math)(void *, int);
    int (*sgemm)(void *, int, int, int, int, int, const float *, const float *, int, const float *, int,
                 const float *, float *, int);
    int (*dgemm)(void *, int, int, int, int, int, const double *, const double *, int, const double *, int,
                 const double *, double *, int);
} kl_cublas;

/* A row-major product as cuBLAS's column-major call: the first operand is
 * kiln's B, the second its A, and m, n swapped. */
typedef struct {
    int op_first, op_second; /* 0: as stored, 1: transposed */
    int m, n, k, ld_first, ld_second, ld_out;
} kl_cublas_call;
kl_cublas_call kl_cublas_gemm_call(const kl_gemm_shape *g);

/* cuDNN (cudnn.c), loaded at the first convolution; describing needs no device */
typedef struct {
    kl_cuda_library base;
    int (*create_tensor)(void **);
    int (*set_tensor)(void *, int, int, const int *, const int *);
    int (*destroy_tensor)(void *);
    int (*create_filter)(void **);
    int (*set_filter)(void *, int, int, int, const int *);
    int (*destroy_filter)(void *);
    int (*create_conv)(void **);
    int (*set_conv)(void *, int, const int *, const int *, const int *, int, int);
    int (*set_groups)(void *, int);
    int (*set_math)(void *, int);
    int (*destroy_conv)(void *);
    int (*output_dims)(void *, void *, void *, int, int *);
    int (*fwd_algos)(void *, void *, void *, void *, void *, int, int *, void *);
    int (*bwd_data_algos)(void *, void *, void *, void *, void *, int, int *, void *);
    int (*bwd_filter_algos)(void *, void *, void *, void *, void *, int, int *, void *);
    int (*forward)(void *, const void *, void *, const void *, void *, const void *, void *, int, void *, size_t,
                   const void *, void *, void *);
    int (*backward_data)(void *, const void *, void *, const void *, void *, const void *, void *, int, void *,
                         size_t, const void *, void *, void *);
    int (*backward_filter)(void *, const void *, void *, const void *, void *, const void *, void *, int, void *,
                           size_t, const void *, void *, void *);
    const char *(*error_string)(int);
} kl_cudnn;

/* A convolution's cuDNN descriptors: src (x), weights (w), dst (y), the convolution. */
typedef struct {
    void *x, *w, *y, *conv;
    int nd; /* spatial dims as described (1-d convolutions are 2-d ones) */
} kl_cudnn_descs;

int kl_cudnn_load(kl_cudnn *d);
int kl_cudnn_supports_shape(const kl_conv_shape *s, kl_dtype t);
kl_status kl_cudnn_describe(kl_cudnn *d, const kl_conv_shape *s, kl_dtype t, kl_cudnn_descs *out);
void kl_cudnn_describe_free(kl_cudnn *d, kl_cudnn_descs *s);
void kl_cudnn_close(kl_cudnn *d);

/* The driver API (driver.c): handles are void *, device pointers uint64_t,
 * results int (0: success). */
typedef struct {
    void *lib;
    char why[400];
    int (*init)(unsigned);
    int (*error_string)(int, const char **);
    int (*driver_version)(int *);
    int (*device_count)(int *);
    int (*device_get)(int *, int);
    int (*device_attribute)(int *, int, int);
    int (*device_name)(char *, int, int);
    int (*primary_retain)(void **, int);
    int (*primary_release)(int);
    int (*ctx_set_current)(void *);
    int (*stream_create)(void **, unsigned);
    int (*stream_destroy)(void *);
    int (*stream_sync)(void *);
    int (*mem_alloc_async)(uint64_t *, size_t, void *);
    int (*mem_free_async)(uint64_t, void *);
    int (*default_pool)(void **, int);
    int (*pool_set)(void *, int, void *);
    int (*pool_get)(void *, int, void *);
    int (*pool_trim)(void *, size_t);
    int (*mem_info)(size_t *, size_t *);
    int (*htod_async)(uint64_t, const void *, size_t, void *);
    int (*dtoh_async)(void *, uint64_t, size_t, void *);
    int (*dtod_async)(uint64_t, uint64_t, size_t, void *);
    int (*dtoh)(void *, uint64_t, size_t);
    int (*memset_async)(uint64_t, unsigned char, size_t, void *);
    int (*host_register)(void *, size_t, unsigned);
    int (*host_unregister)(void *);
    int (*module_load)(void **, const void *);
    int (*module_unload)(void *);
    int (*module_function)(void **, void *, const char *);
    int (*module_global)(uint64_t *, size_t *, void *, const char *);
    int (*launch)(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void *, void **,
                  void **);
    int (*func_set_attribute)(void *, int, int);
    int (*func_get_attribute)(int *, int, void *);
    int (*host_alloc)(void **, size_t, unsigned);
    int (*host_free)(void *);
    int (*event_create)(void **, unsigned);
    int (*event_destroy)(void *);
    int (*event_record)(void *, void *);
    int (*event_sync)(void *);
} kl_cuda_driver;

/* NCCL (nccl.c), loaded at the first collective on the device: its
 * communicator is made then, once, from an id rank 0 draws and the job
 * shares (kl_collective_call.share). */
typedef struct {
    char internal[128];
} kl_nccl_id;
typedef struct {
    void *lib, *comm;
    int tried, decided, version;
    char path[256], why[400];
    int (*get_version)(int *);
    int (*get_unique_id)(kl_nccl_id *);
    int (*comm_init_rank)(void **, int, kl_nccl_id, int);
    int (*comm_destroy)(void *);
    int (*all_reduce)(const void *, void *, size_t, int, int, void *, void *);
    int (*reduce)(const void *, void *, size_t, int, int, int, void *, void *);
    int (*broadcast)(const void *, void *, size_t, int, int, void *, void *);
    const char *(*error_string)(int);
} kl_nccl;

/* Pinned host memory that copies to the device go through, in turns: a
 * copy returns once its bytes are in a free slot, and the device reads
 * them in the stream's order, after the kernels queued before, while the
 * host goes on; a slot is refilled after the event recorded behind its last
 * copy. Small copies (the driver stages those itself without waiting) and
 * large ones go from pageable memory. */
#define KL_CUDA_STAGING_SLOTS 4
#define KL_CUDA_STAGING_MIN ((size_t)64 << 10)
#define KL_CUDA_STAGING_MAX ((size_t)64 << 20)
typedef struct {
    void *host, *event;
    size_t size;
} kl_cuda_staging;

/* Loads the driver and initialises it; an error says what is missing. */
kl_status kl_cuda_driver_load(kl_cuda_driver *d);
const char *kl_cuda_driver_error(const kl_cuda_driver *d, int rc);

typedef struct {
    kl_backend base;
    kl_backend_ops ops;     /* compile-only's, or with the device's memory and queue */
    kl_nvrtc nvrtc;
    kl_cuda_mode mode;
    char arch[16];          /* what NVRTC compiles for */
    char identity[128];     /* NVRTC's version, the arch, the options: keys the cache */
    /* the device (not compile-only) */
    kl_cuda_driver drv;
    int device, sms, max_grid, record_registered;
    int max_shared; /* dynamic shared memory a block may opt in to */
    void *context, *stream, *pool;
    uint64_t workspace;     /* KL_CUDA_WS_BYTES, counters zero */
    kl_cublas cublas;
    kl_cudnn cudnn;
    kl_cuda_staging staging[KL_CUDA_STAGING_SLOTS];
    int staging_next;
    kl_nccl nccl;
    /* the emulator (emulate.c) */
    char *emu_prelude;
    unsigned char *emu_workspace;
    uint64_t emu_capacity;  /* bytes it may hand out (0: no bound) */
    uint64_t bytes_allocated, bytes_in_use, peak_bytes_in_use;
} kl_cuda_backend;

/* device.c: opening device 0 (an error says what is missing) and the
 * backend's device operations */
kl_status kl_cuda_device_open(kl_cuda_backend *c);
void kl_cuda_device_close(kl_cuda_backend *c);
void *kl_cuda_alloc(kl_backend *b, size_t nbytes);
void kl_cuda_free(kl_backend *b, void *p, size_t nbytes);
kl_status kl_cuda_copy(kl_backend *b, void *dst, const void *src, size_t nbytes, kl_copy_kind kind);
kl_status kl_cuda_fill(kl_backend *b, void *dst, size_t nbytes, uint8_t byte);
void kl_cuda_memory(kl_backend *b, kl_memory_stats *out);
void kl_cuda_trim(kl_backend *b);
kl_status kl_cuda_device_load(kl_cuda_backend *c, const void *image, const char *path, const char *key, void **handle,
                              kl_kernel_fn *fn);
void kl_cuda_device_unload(kl_cuda_backend *c, void *handle);
kl_status kl_cuda_launch(kl_backend *b, kl_kernel_fn fn, const kl_launch_args *a);
kl_status kl_cuda_synchronize(kl_backend *b);
kl_status kl_cuda_launch_named(kl_backend *b, kl_kernel_fn fn, const char *name, const unsigned grid[3],
                               const unsigned block[3], unsigned shared_bytes, void **params);
int kl_cuda_supports(kl_backend *b, const kl_pattern *p);
kl_status kl_cuda_run(kl_backend *b, const kl_pattern *p, void *out, const void *const *in, uint64_t bc);
void kl_cublas_close(kl_cuda_backend *c);
kl_status kl_cudnn_run(kl_cuda_backend *c, const kl_pattern *p, void *out, const void *a, const void *b);

/* nccl.c: the backend's collective op (NCCL on the device's stream; on the
 * emulator only a library KILN_NCCL names, a test's stand-in), and closing
 * the communicator */
kl_status kl_cuda_collective(kl_backend *b, const kl_collective_call *call, int *done);
void kl_nccl_close(kl_nccl *n);

/* emulate.c: the kernels run on the CPU (device "cuda-emulate") */
kl_status kl_cuda_emulation_open(kl_cuda_backend *c);
void kl_cuda_emulation_close(kl_cuda_backend *c);

/* The blocks a launch over `work` elements uses: enough for KL_CUDA_UNROLL
 * elements per thread, at most max_grid (0 work: unknown, max_grid). */
int kl_cuda_grid(int64_t work, int max_grid);

/* Shared memory a block may have with an opt-in, on sm_90 (H100, H200): the
 * emulator's bound, standing in for such a device. */
#define KL_CUDA_SM90_MAX_SHARED 232448
#define KL_CUDA_DEFAULT_SHARED 49152 /* a block's shared memory without an opt-in */

extern const char kl_cuda_prelude[];
extern const char kl_cuda_user_key_line[];

/* render_cuda.c */
kl_status kl_cuda_render(kl_backend *b, const struct kl_kdesc *k, char **source);
kl_status kl_cuda_render_group(kl_backend *b, const struct kl_kdesc *k, char **source);

#endif
