/* siblings.h: results computed over the same loops folded in one kernel. */
#ifndef KL_SIBLINGS_H
#define KL_SIBLINGS_H

#include "core/graph.h"

/* After fusion: stored sums (or means) whose loops are equal (the same
 * input shape, reduced dims, op and dtypes), and stored element-wise
 * results of one shape, share one kernel when they read a stored var in
 * common and the graph's order allows (siblings.c says when): the var whose
 * kernel runs lists the others in siblings, which point back with
 * sibling_of and get no kernel of their own. A batch norm's sum and sum of
 * squares, its gradient's two sums, an optimiser's new parameter and state. */
void kl_siblings_plan(kl_var **order, int n);

#endif
