/* conv.h: recognising convolutions in the meta-op graph, as conv patterns a
 * backend may run (src/backend/backend.h). Three forms, over an iteration
 * space holding the dims n, [g,] o, out_1..out_nd (the output's) and c,
 * k_1..k_nd (the window's):
 *   forward           reduce(sum over c,k;  reindex(x) * broadcast(w))
 *   backward data     reindex_reduce(add;   broadcast(dy) * broadcast(w))
 *   backward weights  reduce(sum over n,out; broadcast(dy) * reindex(x))
 * where x is read at [n, g*C/G + c, out_j*stride_j + k_j*dilation_j - pad_j]
 * (reads outside x give 0: the padding). The last two are what autograd
 * derives from the first. Anything else is left to the fused kernels. */
#ifndef KL_CONV_H
#define KL_CONV_H

#include "backend/backend.h"
#include "core/graph.h"

/* Whether v (a reduce or reindex_reduce) is one of the three forms, float32,
 * with operands that are stored vars (with assume_roots: operands not yet
 * marked for storing count, for the fusion pass to mark); fills p. Pure:
 * reads the graph only (whether a library runs it is the backend's say). */
int kl_conv_match(kl_var *v, int assume_roots, kl_pattern *p);

#endif
