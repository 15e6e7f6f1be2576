/* dtype.h: what the core and the code generator need to know about dtypes. */
#ifndef KL_DTYPE_H
#define KL_DTYPE_H

#include "kiln.h"

/* C type used to store elements in generated code ("float", "_Float16", ...). */
const char *kl_dtype_ctype(kl_dtype t);
/* C type used to compute with them (float16 computes in float). */
const char *kl_dtype_compute_ctype(kl_dtype t);
int kl_dtype_is_signed(kl_dtype t);
int kl_dtype_bits(kl_dtype t);
/* The values an integer dtype (or bool: 0 and 1) holds. */
void kl_dtype_int_range(kl_dtype t, int64_t *lo, int64_t *hi);
/* v as a value of integer dtype t (what: the op, for the message): bool
 * takes v != 0; others must hold v (KL_ERR_OVERFLOW otherwise). */
kl_status kl_dtype_int_value(kl_dtype t, int64_t v, const char *what, int64_t *out);
/* The same for a double, truncated toward zero as C converts; NaN is a
 * KL_ERR_VALUE and a value outside the range KL_ERR_OVERFLOW. */
kl_status kl_dtype_int_from_double(kl_dtype t, double v, const char *what, int64_t *out);

#endif
