/* siblings.h: reductions over the same input space folded in one kernel. */
#ifndef KL_SIBLINGS_H
#define KL_SIBLINGS_H

#include "core/graph.h"

/* After fusion: each stored sum or mean whose loops equal a later one's
 * (the same input shape, reduced dims, op and dtypes) rides in the later
 * one's kernel when nothing between them reads it, or the later one in the
 * earlier one's when it needs nothing computed between them: the var whose
 * kernel runs lists the other in siblings, which points back with
 * sibling_of and gets no kernel of its own. Their inputs are read once for
 * both (a batch norm's sum and sum of squares, its gradient's two sums). */
void kl_siblings_plan(kl_var **order, int n);

#endif
