/* lower.h: turning the pending vars of one fused kernel into its kernel
 * description (codegen/kdesc.h). The walk starts at the kernel's root and
 * asks each var's family (its *_lower function in src/ops/, dispatched by
 * ops.def) for its value at given coordinates; stored vars become loads. */
#ifndef KL_LOWER_H
#define KL_LOWER_H

#include "codegen/kdesc.h"

/* Coordinates of the element being computed, as instructions (int64).
 * identity: c[k] is the iteration index i<k> over the same shape, so the
 * linear index (KL_I_LINEAR) addresses the element directly. */
typedef struct {
    int n;
    int identity;
    int32_t c[KL_MAX_DIMS];
} kl_coords;

/* Describes the kernel computing root into k (kl_kd_init'ed); its pending
 * inputs are inlined unless marked materialize. */
kl_status kl_lower_kernel(kl_var *root, kl_kdesc *k);

/* The value of v at c (memoised per var and coordinates); -1 after a failure. */
int32_t kl_lower(kl_kdesc *k, kl_var *v, const kl_coords *c);
/* The iteration indexes i0..i<n-1> (identity when for_map). */
kl_coords kl_lower_loop_coords(kl_kdesc *k, int n, int for_map);
/* The linear element offset of c in a contiguous var of v's shape. */
int32_t kl_lower_offset(kl_kdesc *k, kl_var *v, const kl_coords *c);
/* c mapped onto in (NumPy broadcasting, right-aligned) from out. */
kl_coords kl_lower_broadcast_coords(kl_kdesc *k, const kl_coords *c, kl_var *out, kl_var *in);
/* Value t of dtype from as to's compute type (bool: != 0). */
int32_t kl_lower_convert(kl_kdesc *k, int32_t t, kl_dtype from, kl_dtype to);
/* An index expression at coordinates idx (i<k> reads idx->c[k]; xshape and
 * yshape read x's and y's extents; @e<k>(...) loads extras[k], clamped). */
int32_t kl_lower_index_expr(kl_kdesc *k, const kl_expr *e, const kl_coords *idx, kl_var *x, kl_var *y,
                            kl_var *const *extras);
/* v's index expressions at c, bounded by x's shape: the targets, and an
 * instruction that is nonzero when a target is outside x or a condition holds. */
/* Whether index t is outside [0, x's extent d) (an int64 0 or 1). */
int32_t kl_lower_outside(kl_kdesc *k, int32_t t, kl_var *x, int d);
int32_t kl_lower_targets(kl_kdesc *k, kl_var *v, const kl_coords *c, kl_var *x, kl_var *y, kl_coords *targets);

#endif
