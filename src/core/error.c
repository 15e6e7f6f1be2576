/* error.c: the per-thread message behind kl_last_error(), so a failing call
 * can explain itself to the Python layer without global state. */
#include "core/error.h"
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[2048];
static _Thread_local kl_status last_status;

kl_status kl_error(kl_status status, const char *fmt, ...)
{
    last_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

const char *kl_last_error(void) { return last_error; }

kl_status kl_last_status(void) { return last_status; }

const char *kl_status_name(kl_status s)
{
    switch (s) {
    case KL_OK: return "ok";
    case KL_ERR_VALUE: return "value error";
    case KL_ERR_TYPE: return "type error";
    case KL_ERR_INDEX: return "index error";
    case KL_ERR_RUNTIME: return "runtime error";
    case KL_ERR_MEMORY: return "out of memory";
    case KL_ERR_OVERFLOW: return "overflow error";
    case KL_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown status";
}
