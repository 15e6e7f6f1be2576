/* error.h: the per-thread error message behind kl_last_error(). */
#ifndef KL_ERROR_H
#define KL_ERROR_H

#include "kiln.h"

/* Records the message and returns status, so callers can `return kl_error(...)`. */
kl_status kl_error(kl_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The status of the last kl_error on this thread (a device's failed
 * allocation says with it whether the device was full or failed). */
kl_status kl_last_status(void);

/* At the C API boundary: a NULL pointer argument is an error naming the
 * function and the argument, never a crash. */
#define KL_ARG(p, fn, what) \
    do { if (!(p)) return kl_error(KL_ERR_VALUE, "%s: %s is NULL", (fn), (what)); } while (0)

/* Propagates a failing status from a call. */
#define KL_TRY(call) do { kl_status kl_try_s_ = (call); if (kl_try_s_ != KL_OK) return kl_try_s_; } while (0)

#endif
