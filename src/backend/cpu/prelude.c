/* prelude.c: the text every kernel starts with: vectorisable declarations of
 * the C library's math functions (glibc's libmvec supplies the SIMD forms)
 * and the small integer and random-number helpers kernels call. */
#include "backend/cpu/prelude.h"
#include "codegen/prelude_common.h"

const char kl_kernel_prelude[] =
    "#include <stdint.h>\n"
    "#include <math.h>\n"
    "#define KL_VEC _Pragma(\"omp declare simd notinbranch\")\n"
    "KL_VEC float expf(float); KL_VEC double exp(double);\n"
    "KL_VEC float logf(float); KL_VEC double log(double);\n"
    "KL_VEC float sinf(float); KL_VEC double sin(double);\n"
    "KL_VEC float cosf(float); KL_VEC double cos(double);\n"
    "KL_VEC float tanf(float); KL_VEC double tan(double);\n"
    "KL_VEC float asinf(float); KL_VEC double asin(double);\n"
    "KL_VEC float acosf(float); KL_VEC double acos(double);\n"
    "KL_VEC float atanf(float); KL_VEC double atan(double);\n"
    "KL_VEC float sinhf(float); KL_VEC double sinh(double);\n"
    "KL_VEC float coshf(float); KL_VEC double cosh(double);\n"
    "KL_VEC float tanhf(float); KL_VEC double tanh(double);\n"
    "KL_VEC float asinhf(float); KL_VEC double asinh(double);\n"
    "KL_VEC float acoshf(float); KL_VEC double acosh(double);\n"
    "KL_VEC float atanhf(float); KL_VEC double atanh(double);\n"
    "KL_VEC float erff(float); KL_VEC double erf(double);\n"
    "KL_VEC float log2f(float); KL_VEC double log2(double);\n"
    "KL_VEC float exp2f(float); KL_VEC double exp2(double);\n"
    "KL_VEC float log1pf(float); KL_VEC double log1p(double);\n"
    "KL_VEC float expm1f(float); KL_VEC double expm1(double);\n"
    "KL_VEC float powf(float, float); KL_VEC double pow(double, double);\n"
    "KL_VEC float atan2f(float, float); KL_VEC double atan2(double, double);\n"
    "#define KL_FN static inline\n"
    /* exp(c) = 2^n p(r) for c already clamped to float's range: n the
     * nearest integer to c / ln2, r = c - n ln2 in [-ln2/2, ln2/2] with ln2 in
     * two parts, p of degree 6 (within 2.5e-7 of exp); *n for the caller's
     * scaling by 2^n */
    "KL_FN float kl_exp_reduced(float c, float *n) {\n"
    "    *n = __builtin_rintf(c * 1.44269504088896341f);\n"
    "    float r = __builtin_fmaf(*n, -0.693145751953125f, c);\n"
    "    r = __builtin_fmaf(*n, -1.428606765330187045e-06f, r);\n"
    "    float p = __builtin_fmaf(1.3981999507e-3f, r, 8.3334519073e-3f);\n"
    "    p = __builtin_fmaf(p, r, 4.1665795894e-2f);\n"
    "    p = __builtin_fmaf(p, r, 1.6666665459e-1f);\n"
    "    p = __builtin_fmaf(p, r, 5.0000001201e-1f);\n"
    "    return __builtin_fmaf(p, r * r, r) + 1.0f;\n"
    "}\n"
    /* exp(x) for x <= 0 (a softmax's x - max): 0 below -87.33, where exp
     * leaves float's normal range and a softmax term is nothing beside the
     * max's 1; NaN stays NaN. One scale, no upper clamp: ~1.5x libmvec's
     * expf in the softmax */
    "KL_FN float kl_exp_nonpos(float x) {\n"
    "    float n; const float p = kl_exp_reduced(x < -87.33f ? -87.33f : x, &n);\n"
    "    const int32_t e = ((int32_t)n + 127) << 23; float s; __builtin_memcpy(&s, &e, 4);\n"
    "    return x < -87.33f ? 0.0f : p * s;\n"
    "}\n"
    /* exp(x) for every float kernel (expf below names it) over float's whole
     * range, the scale 2^n applied in two halves so that results down in the
     * denormals and up to overflow come out as libm's (to 2.5e-7; 0 below
     * -104, inf above 89, NaN stays NaN). Faster than libmvec's expf, which
     * bounded exp-heavy chains (sum(exp(2x+1)*x) over 4M floats: 1.0 ms on a
     * thread, compute, not memory; 0.9 ms with this) */
    "KL_FN float kl_expf(float x) {\n"
    "    float n; const float p = kl_exp_reduced(x >= -104.0f ? (x <= 89.0f ? x : 89.0f) : -104.0f, &n);\n"
    "    const int32_t ni = (int32_t)n, h = ni >> 1;\n"
    "    const uint32_t e1 = (uint32_t)(h + 127) << 23, e2 = (uint32_t)(ni - h + 127) << 23;\n"
    "    float s1, s2; __builtin_memcpy(&s1, &e1, 4); __builtin_memcpy(&s2, &e2, 4);\n"
    "    return x != x ? x : p * s1 * s2;\n"
    "}\n"
    "#define expf(x) kl_expf(x)\n"
    "static void kl_index_fail(int64_t *rec, int64_t v, int64_t lo, int64_t hi, int64_t what) {\n"
    "    if (__atomic_exchange_n(&rec[0], 1, __ATOMIC_RELAXED) == 0) { rec[1] = v; rec[2] = lo; rec[3] = hi; rec[4] = what; }\n"
    "}\n"
    KL_PRELUDE_COMMON;
