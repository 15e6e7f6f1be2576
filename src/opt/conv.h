/* conv.h: recognising convolutions in the meta-op graph and running them
 * with oneDNN. Three forms, over an iteration space holding the dims
 * n, [g,] o, out_1..out_nd (the output's) and c, k_1..k_nd (the window's):
 *   forward           reduce(sum over c,k;  reindex(x) * broadcast(w))
 *   backward data     reindex_reduce(add;   broadcast(dy) * broadcast(w))
 *   backward weights  reduce(sum over n,out; broadcast(dy) * reindex(x))
 * where x is read at [n, g*C/G + c, out_j*stride_j + k_j*dilation_j - pad_j]
 * (reads outside x give 0: the padding). The last two are what autograd
 * derives from the first. Anything else is left to the fused kernels. */
#ifndef KL_CONV_H
#define KL_CONV_H

#include "backend/cpu/dnnl.h"
#include "core/graph.h"

typedef struct {
    kl_conv_shape shape;
    kl_var *a, *b;       /* the stored operands, as kl_dnnl_conv_run takes them */
    kl_dnnl_conv *conv;  /* the primitive (only when matched at run time) */
} kl_conv_plan;

/* Whether v (a reduce or reindex_reduce) is one of the three forms, float32,
 * with operands that are stored vars (with assume_roots: operands not yet
 * marked for storing count, for the fusion pass to mark). Without
 * assume_roots it also makes the oneDNN primitive, and says no if oneDNN
 * cannot run the shape. */
int kl_conv_match(kl_var *v, int assume_roots, kl_conv_plan *plan);
kl_status kl_conv_run(struct kl_context *ctx, kl_var *v, const kl_conv_plan *plan);

#endif
