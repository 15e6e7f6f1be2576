/* dtype.c: the ten dtypes, their names and C types, and NumPy's promotion rules. */
#include "core/dtype.h"
#include "core/error.h"
#include <string.h>

static const struct {
    const char *name, *ctype, *compute;
    int bits, is_float, is_signed;
} info[KL_DTYPE_COUNT] = {
    /* a bool is computed as int32: GCC 12 vectorises no loop that mixes
     * 8-bit and 32-bit lanes (a ReLU's gradient, dy * (x > 0), ran 8x
     * slower with uint8_t temps) */
    [KL_BOOL]    = {"bool", "uint8_t", "int32_t", 8, 0, 0},
    [KL_INT8]    = {"int8", "int8_t", "int8_t", 8, 0, 1},
    [KL_UINT8]   = {"uint8", "uint8_t", "uint8_t", 8, 0, 0},
    [KL_INT16]   = {"int16", "int16_t", "int16_t", 16, 0, 1},
    [KL_INT32]   = {"int32", "int32_t", "int32_t", 32, 0, 1},
    [KL_INT64]   = {"int64", "int64_t", "int64_t", 64, 0, 1},
    [KL_FLOAT16] = {"float16", "_Float16", "float", 16, 1, 1},
    [KL_FLOAT32] = {"float32", "float", "float", 32, 1, 1},
    [KL_FLOAT64] = {"float64", "double", "double", 64, 1, 1},
    [KL_BFLOAT16] = {"bfloat16", "uint16_t", "float", 16, 1, 1}, /* kernels convert on load and store */
};

static int valid(kl_dtype t) { return (unsigned)t < KL_DTYPE_COUNT; }

const char *kl_dtype_name(kl_dtype t) { return valid(t) ? info[t].name : "invalid"; }
const char *kl_dtype_ctype(kl_dtype t) { return info[t].ctype; }
const char *kl_dtype_compute_ctype(kl_dtype t) { return info[t].compute; }
size_t kl_dtype_size(kl_dtype t) { return valid(t) ? (size_t)info[t].bits / 8 : 0; }
int kl_dtype_bits(kl_dtype t) { return info[t].bits; }
int kl_dtype_is_float(kl_dtype t) { return valid(t) && info[t].is_float; }
int kl_dtype_is_int(kl_dtype t) { return valid(t) && t != KL_BOOL && !info[t].is_float; }
int kl_dtype_is_signed(kl_dtype t) { return info[t].is_signed; }

kl_status kl_dtype_from_name(const char *name, kl_dtype *out)
{
    static const struct { const char *alias; kl_dtype t; } aliases[] = {
        {"float", KL_FLOAT32}, {"half", KL_FLOAT16}, {"double", KL_FLOAT64}, {"bf16", KL_BFLOAT16},
        {"int", KL_INT32}, {"long", KL_INT64}, {"bool_", KL_BOOL},
    };
    if (!name) return kl_error(KL_ERR_TYPE, "dtype name is NULL");
    KL_ARG(out, "kl_dtype_from_name", "out");
    for (int t = 0; t < KL_DTYPE_COUNT; t++)
        if (strcmp(name, info[t].name) == 0) { *out = (kl_dtype)t; return KL_OK; }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(name, aliases[i].alias) == 0) { *out = aliases[i].t; return KL_OK; }
    return kl_error(KL_ERR_TYPE, "unknown dtype '%s' (expected one of bool, int8, uint8, "
                    "int16, int32, int64, float16, float32, float64, bfloat16)", name);
}

void kl_dtype_int_range(kl_dtype t, int64_t *lo, int64_t *hi)
{
    int bits = valid(t) ? info[t].bits : 64;
    if (t == KL_BOOL) { *lo = 0; *hi = 1; }
    else if (valid(t) && !info[t].is_signed) { *lo = 0; *hi = (INT64_C(1) << bits) - 1; }
    else if (bits == 64) { *lo = INT64_MIN; *hi = INT64_MAX; }
    else { *hi = (INT64_C(1) << (bits - 1)) - 1; *lo = -*hi - 1; }
}

kl_status kl_dtype_int_value(kl_dtype t, int64_t v, const char *what, int64_t *out)
{
    if (t == KL_BOOL) { *out = v != 0; return KL_OK; }
    int64_t lo, hi;
    kl_dtype_int_range(t, &lo, &hi);
    if (v < lo || v > hi)
        return kl_error(KL_ERR_OVERFLOW, "%s: %lld is out of range for %s (%lld to %lld)", what, (long long)v,
                        kl_dtype_name(t), (long long)lo, (long long)hi);
    *out = v;
    return KL_OK;
}

kl_status kl_dtype_int_from_double(kl_dtype t, double v, const char *what, int64_t *out)
{
    if (v != v) return kl_error(KL_ERR_VALUE, "%s: cannot convert NaN to %s", what, kl_dtype_name(t));
    if (t == KL_BOOL) { *out = v != 0; return KL_OK; }
    /* -2^63 and 2^63 are exact doubles: compare before converting (no UB) */
    if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0))
        return kl_error(KL_ERR_OVERFLOW, "%s: %g is out of range for %s", what, v, kl_dtype_name(t));
    return kl_dtype_int_value(t, (int64_t)v, what, out);
}

static kl_dtype int_of(int bits, int is_signed)
{
    if (!is_signed) return KL_UINT8; /* uint8 is the only unsigned type */
    return bits <= 8 ? KL_INT8 : bits <= 16 ? KL_INT16 : bits <= 32 ? KL_INT32 : KL_INT64;
}

static kl_dtype float_of(int bits)
{
    return bits <= 16 ? KL_FLOAT16 : bits <= 32 ? KL_FLOAT32 : KL_FLOAT64;
}

/* The smallest float that holds every value of an integer of `bits` bits. */
static int float_bits_for_int(int bits) { return bits <= 8 ? 16 : bits <= 16 ? 32 : 64; }

kl_status kl_dtype_promote(kl_dtype a, kl_dtype b, kl_dtype *out)
{
    KL_ARG(out, "kl_dtype_promote", "out");
    if (!valid(a) || !valid(b)) return kl_error(KL_ERR_TYPE, "invalid dtype code %d/%d", (int)a, (int)b);
    if (a == b || b == KL_BOOL) { *out = a; return KL_OK; }
    if (a == KL_BOOL) { *out = b; return KL_OK; }
    int fa = info[a].is_float, fb = info[b].is_float;
    int ba = info[a].bits, bb = info[b].bits;
    /* bfloat16 and float16 each hold values the other cannot: both fit float32 */
    if ((a == KL_BFLOAT16 && b == KL_FLOAT16) || (a == KL_FLOAT16 && b == KL_BFLOAT16)) { *out = KL_FLOAT32; return KL_OK; }
    if (fa && fb) { *out = ba >= bb ? a : b; return KL_OK; }
    if (fa || fb) {
        int fbits = fa ? ba : bb, ibits = fa ? bb : ba;
        int need = float_bits_for_int(ibits);
        /* bfloat16 with an integer stays bfloat16 (as in PyTorch): its range holds every integer's */
        if ((a == KL_BFLOAT16 || b == KL_BFLOAT16) && ibits <= 16) { *out = KL_BFLOAT16; return KL_OK; }
        *out = float_of(fbits > need ? fbits : need);
        return KL_OK;
    }
    int sa = info[a].is_signed, sb = info[b].is_signed;
    if (sa == sb) { *out = ba >= bb ? a : b; return KL_OK; }
    int sbits = sa ? ba : bb, ubits = sa ? bb : ba;
    if (sbits > ubits) { *out = sa ? a : b; return KL_OK; }
    *out = int_of(2 * ubits, 1); /* uint8 with int8 needs int16 */
    return KL_OK;
}
