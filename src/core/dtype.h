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

#endif
