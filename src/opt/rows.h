/* rows.h: what the row patterns (softmax.c, layernorm.c) share. A match
 * walks from its result down to its input through the form's ops and
 * records every var in between (the stop_grads and identity casts no_grad
 * adds among them); the pattern holds only when each recorded var is read
 * by recorded vars and the result alone, so computing the result in one
 * kernel leaves nothing unfed. */
#ifndef KL_ROWS_H
#define KL_ROWS_H

#include "core/graph.h"

#define KL_ROW_MAX_INNER 32 /* vars a match absorbs, at most */

typedef struct {
    kl_var *v[KL_ROW_MAX_INNER];
    int n, full;
} kl_row_set;

/* Records v once; 0 (and full set) when there is no room. */
int kl_row_add(kl_row_set *s, kl_var *v);
/* x with its pass-throughs skipped, each recorded in s. */
kl_var *kl_row_through(kl_row_set *s, kl_var *x);
/* v is pending, inlined so far, and of this kind (binary: with this op). */
int kl_row_is_op(const kl_var *v, kl_op_kind kind);
int kl_row_is_binary(const kl_var *v, kl_binary_op op);
/* v (seen through) is a keepdims reduce of op along dim d alone: the
 * reduce (recorded, with the passes on the way), else NULL. */
kl_var *kl_row_reduction(kl_row_set *s, kl_var *v, kl_reduce_op op, int d);
/* The same, and its input (seen through) is want; want's own pass-throughs
 * are recorded only when it is inside the pattern (an input's belong to it). */
int kl_row_reduce(kl_row_set *s, kl_var *v, kl_reduce_op op, int d, kl_var *want, int want_inside);
/* Every recorded var is read only by recorded vars and y, and nothing
 * outside holds it. */
int kl_row_closed(const kl_row_set *s, const kl_var *y);

#endif
