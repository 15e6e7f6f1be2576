/* layernorm.h: recognising layer normalisation over the last dim, as a
 * kernel of its own that reads each row once while it is in cache:
 *   c = x - mean(x, -1),  y = c * rsqrt(mean(c * c, -1) + eps)  [* w]  [+ b]
 * (the means keep their dim; w and b are float32 vectors along the last
 * dim, broadcast over the rows; eps a scalar; the stop_grads no_grad adds
 * and identity casts are seen through). The meta-op form reads the array
 * three times and writes it once. */
#ifndef KL_LAYERNORM_H
#define KL_LAYERNORM_H

#include "backend/backend.h"
#include "core/graph.h"
#include "opt/rows.h"

/* Whether y is such a layer norm of a float32 var x whose intermediates
 * are read by nothing outside the pattern: fills p (kind, dtype, a = x, the
 * shape with the vectors and eps) and the intermediates (n_inner of them),
 * which the kernel computes along with y. Pure: reads the graph only. */
int kl_layernorm_match(kl_var *y, kl_pattern *p, kl_var **inner, int *n_inner);
/* The kernel computing y, a layer norm p matched, into k (kl_kd_init'ed):
 * KL_KD_LAYERNORM. */
kl_status kl_layernorm_describe(kl_var *y, const kl_pattern *p, struct kl_kdesc *k);

#endif
