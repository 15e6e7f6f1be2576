/* epilogue.h: recognising a convolution's element-wise epilogue
 * (backend.h's kl_epilogue) in the meta-op graph: the chain between a
 * forward convolution and the stored var it ends in, made of per-channel
 * scales and shifts (an inference batch norm, a bias), one residual add and
 * ReLUs. A library that runs the chain as post-ops reads the convolution's
 * result while it is in cache, instead of a kernel reading it back. */
#ifndef KL_EPILOGUE_H
#define KL_EPILOGUE_H

#include "backend/backend.h"
#include "core/graph.h"

#define KL_EPILOGUE_MAX_CHAIN 32 /* the vars a chain absorbs, stop_grads included */

/* Whether stored var e (not itself a pattern) is such a chain over a
 * forward convolution that nothing else reads, and no gradient passes
 * through e (only stop_grads read it: later[0..n_later) are the pending vars
 * after e, its consumers among them): fills p from the convolution's pattern
 * with the epilogue added, and chain[0..*n_chain) with the vars the call
 * then computes inside (the convolution among them). Pure: reads the graph
 * only; the caller asks the device and marks what is stored and absorbed. */
int kl_epilogue_match(kl_var *e, kl_var *const *later, int n_later, kl_pattern *p, kl_var **chain, int *n_chain);

#endif
