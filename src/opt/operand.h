/* operand.h: what the replacement passes (matmul, conv) share: the stored
 * var behind an operand and its element strides in the iteration space. */
#ifndef KL_OPERAND_H
#define KL_OPERAND_H

#include "core/graph.h"

/* A stop_grad, or a cast to the type it already has: the same values. */
int kl_operand_passes(const kl_var *x);
/* a and b have the same shape. */
int kl_operand_same_shape(const kl_var *a, const kl_var *b);
/* x with the stop_grads and identity casts above it skipped (unless stored):
 * no_grad wraps every op's result in a stop_grad, and neither changes what a
 * library reads. */
kl_var *kl_operand_through(kl_var *x);
/* x is computed, marked for storing, or (with assume_roots) could be. */
int kl_operand_stored(const kl_var *x, int assume_roots);
/* x is read as an R-dim array of the given shape (right-aligned, as a
 * broadcast would). Walks broadcasts, stop_grads and identity casts down to a stored var
 * (computed, marked for storing, or, with assume_roots, anything else) and
 * gives, per iteration dim, the element stride into it (0 where x is
 * broadcast along the dim or the dim has size 1). 0 when x is not such a view. */
int kl_operand_view(kl_var *x, int R, const int64_t *shape, int assume_roots, kl_var **src, int64_t *strides);

/* Whether no gradient can pass through v: nothing holds it and every
 * consumer is a stop_grad (no_grad's mark) or an identity cast of which
 * this holds, all among later[0..n_later) (the pending vars after v). */
int kl_operand_gradient_free(const kl_var *v, kl_var *const *later, int n_later);

#endif
