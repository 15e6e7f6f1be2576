/* check.c: check_index, the op that makes a bad index an error instead of a
 * silent zero. Its value is its input's; a kernel that computes it also
 * compares each value with [lo, hi) and, for the first one outside, records
 * the value and the op's description in the context, so the sync that ran
 * the kernel fails with an IndexError naming the op. It fuses like any
 * element-wise op; lo, hi and the description travel as kernel arguments. */
#include "ops/ops.h"
#include "core/context.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kl_status kl_check_index(kl_var *x, int64_t lo, int64_t hi, const char *what, kl_var **out)
{
    KL_ARG(out, "kl_check_index", "out");
    *out = NULL;
    KL_VAR_ARG(x, "check_index", "input");
    KL_ARG(what, "check_index", "what");
    if (!kl_dtype_is_int(x->dtype) && x->dtype != KL_BOOL)
        return kl_error(KL_ERR_TYPE, "check_index: indices must be integers, got %s", kl_dtype_name(x->dtype));
    if (lo > hi) return kl_error(KL_ERR_VALUE, "check_index: empty range [%lld, %lld)", (long long)lo, (long long)hi);
    kl_op o = {.kind = KL_OP_CHECK_INDEX, .n_inputs = 1, .inputs = {x}};
    o.p.check.lo = lo;
    o.p.check.hi = hi;
    if (!(o.p.check.what = strdup(what))) return kl_error(KL_ERR_MEMORY, "check_index: out of memory");
    kl_status s = kl_var_new(x->ctx, x->dtype, x->ndim, x->shape, &o, out);
    if (s != KL_OK) free(o.p.check.what);
    return s;
}

int32_t kl_check_lower(kl_kdesc *k, kl_var *v, const kl_coords *c)
{
    int32_t t = kl_lower(k, v->op.inputs[0], c);
    int32_t ops[5] = {kl_lower_convert(k, t, v->dtype, KL_INT64), kl_kd_iarg(k, v, KL_ARG_CHECK_LO, 0),
                      kl_kd_iarg(k, v, KL_ARG_CHECK_HI, 0), kl_kd_iarg(k, v, KL_ARG_CHECK_WHAT, 0),
                      kl_kd_iarg(k, v, KL_ARG_CHECK_RECORD, 0)};
    for (int j = 0; j < 5; j++) if (ops[j] < 0) return -1;
    kl_instr in = {KL_I_CHECK, KL_INT64, 0, 0, 0, ops[0], ops[1], ops[2], ops[3], ops[4], 0};
    int32_t check = kl_kd_add(k, &in);
    if (check < 0) return -1;
    int known = 0;
    for (int i = 0; i < k->h.n_checks; i++) known |= k->checks[i] == check;
    if (!known) {
        if (k->h.n_checks == (int)(sizeof k->checks / sizeof k->checks[0]))
            return kl_kd_fail(k, kl_error(KL_ERR_RUNTIME, "kernel too large: more than 64 index checks"));
        k->checks[k->h.n_checks++] = check;
    }
    return t;
}

kl_status kl_check_index_result(kl_context *ctx)
{
    int64_t *rec = ctx->index_error;
    if (!rec[0]) return KL_OK;
    const char *what = (const char *)(intptr_t)rec[4];
    kl_status s = kl_error(KL_ERR_INDEX, "%s: index %lld is out of range [%lld, %lld)", what ? what : "index",
                           (long long)rec[1], (long long)rec[2], (long long)rec[3]);
    memset(rec, 0, 5 * sizeof *rec);
    return s;
}
