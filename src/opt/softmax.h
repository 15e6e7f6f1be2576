/* softmax.h: recognising a softmax or log-softmax along one dim, as the
 * pattern a backend may run in one pass per row (src/backend/backend.h):
 *   softmax      e = exp(x - max(x, d)),  y = e / sum(e, d)
 *   log-softmax  a = x - max(x, d),       y = a - log(sum(exp(a), d))
 * (the reductions keep their dim, the differences broadcast it back; the
 * stop_grads no_grad adds and identity casts are seen through). */
#ifndef KL_SOFTMAX_H
#define KL_SOFTMAX_H

#include "backend/backend.h"
#include "core/graph.h"
#include "opt/rows.h"


/* Whether y is a softmax or log-softmax of a float32 var x whose
 * intermediates are read by nothing outside the pattern (no other pending
 * consumer, no handle): fills p (kind, dtype, a = x, the shape) and the
 * intermediates (n_inner of them), which the library call computes along
 * with y, so nothing else needs to. Pure: reads the graph only. */
int kl_softmax_match(kl_var *y, kl_pattern *p, kl_var **inner, int *n_inner);
/* The kernel computing y, a softmax p matched, into k (kl_kd_init'ed):
 * one pass per row while it is in cache (KL_KD_SOFTMAX). */
kl_status kl_softmax_describe(kl_var *y, const kl_pattern *p, struct kl_kdesc *k);

#endif
