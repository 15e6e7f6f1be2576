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
#define KL_CUDA_MAX_GRID 4096 /* blocks a launch may use: the workspace is sized for it */
#define KL_CUDA_WS_BYTES (KL_CUDA_MAX_GRID * 16)

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

typedef struct {
    kl_backend base;
    kl_nvrtc nvrtc;
    int compile_only;       /* no device: kernels compile to PTX and never run */
    char arch[16];          /* what NVRTC compiles for */
    char identity[128];     /* NVRTC's version, the arch, the options: keys the cache */
} kl_cuda_backend;

extern const char kl_cuda_prelude[];

/* render_cuda.c */
kl_status kl_cuda_render(kl_backend *b, const struct kl_kdesc *k, char **source);

#endif
