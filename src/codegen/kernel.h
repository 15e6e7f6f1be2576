/* kernel.h: one fused kernel: its generated C source and what a launch
 * passes to it (buffers, integer and float arguments). */
#ifndef KL_KERNEL_H
#define KL_KERNEL_H

#include "codegen/emit.h"

typedef struct {
    char *source; /* the kernel's own text; the jit prepends the common prelude */
    int n_bufs;
    kl_var *bufs[KL_EMIT_MAX_BUFS]; /* bufs[0] is the output; each retained */
    int n_iargs, n_fargs;
    int64_t iargs[KL_EMIT_MAX_IARGS];
    double fargs[KL_EMIT_MAX_FARGS];
    kl_arg_source isrc[KL_EMIT_MAX_IARGS], fsrc[KL_EMIT_MAX_FARGS]; /* where each came from */
} kl_kernel;

/* Generates the kernel that computes root, whose pending inputs are inlined
 * unless marked materialize. */
kl_status kl_kernel_build(kl_var *root, kl_kernel *k);
void kl_kernel_free(kl_kernel *k);

#endif
