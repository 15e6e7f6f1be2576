/* prelude_common.h: the helpers every backend's kernels call, written once
 * in the C subset that C11 and CUDA C++ share: bfloat16 conversions, integer
 * division, modulo, power and shifts with NumPy's results (no trap on 0 or
 * -1), and Philox4x32-10 random numbers, so that a seed draws the same
 * numbers on every backend. A prelude defines KL_FN (how a helper is
 * declared: `static inline` in C, a forced-inline device function in CUDA)
 * and the fixed-width integer types before it. */
#ifndef KL_PRELUDE_COMMON_H
#define KL_PRELUDE_COMMON_H

#define KL_PRELUDE_COMMON \
    /* bfloat16: the top half of a float32; stores round to nearest even, NaN stays NaN */ \
    "KL_FN float kl_bf16_load(uint16_t h) { union { uint32_t u; float f; } v; v.u = (uint32_t)h << 16; return v.f; }\n" \
    "KL_FN uint16_t kl_bf16_store(float f) {\n" \
    "    union { uint32_t u; float f; } v; v.f = f;\n" \
    "    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40u);\n" \
    "    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);\n" \
    "}\n" \
    "KL_FN int64_t kl_min_i64(int64_t a, int64_t b) { return a < b ? a : b; }\n" \
    "KL_FN int64_t kl_max_i64(int64_t a, int64_t b) { return a > b ? a : b; }\n" \
    "KL_FN int64_t kl_clamp_i64(int64_t a, int64_t n) { return a < 0 ? 0 : a >= n ? (n > 0 ? n - 1 : 0) : a; }\n" \
    "KL_FN int64_t kl_neg_wrap(int64_t a) { return (int64_t)(0 - (uint64_t)a); }\n" \
    "KL_FN int64_t kl_idiv(int64_t a, int64_t b) { return b == 0 ? 0 : b == -1 ? kl_neg_wrap(a) : a / b; }\n" \
    "KL_FN int64_t kl_imod(int64_t a, int64_t b) { return (b == 0 || b == -1) ? 0 : a % b; }\n" \
    "KL_FN int64_t kl_floordiv(int64_t a, int64_t b) {\n" \
    "    if (b == 0) return 0;\n" \
    "    if (b == -1) return kl_neg_wrap(a);\n" \
    "    int64_t q = a / b;\n" \
    "    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;\n" \
    "}\n" \
    "KL_FN int64_t kl_mod(int64_t a, int64_t b) {\n" \
    "    if (b == 0 || b == -1) return 0;\n" \
    "    int64_t r = a % b;\n" \
    "    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;\n" \
    "}\n" \
    "KL_FN float kl_fmodf(float a, float b) { float r = fmodf(a, b); return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r; }\n" \
    "KL_FN double kl_fmod(double a, double b) { double r = fmod(a, b); return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r; }\n" \
    "KL_FN int64_t kl_ipow(int64_t a, int64_t b) {\n" \
    "    if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;\n" \
    "    uint64_t r = 1, x = (uint64_t)a;\n" \
    "    while (b) { if (b & 1) r *= x; x *= x; b >>= 1; }\n" \
    "    return (int64_t)r;\n" \
    "}\n" \
    "KL_FN int64_t kl_shl(int64_t a, int64_t b) { return (b < 0 || b >= 64) ? 0 : (int64_t)((uint64_t)a << b); }\n" \
    "KL_FN int64_t kl_shr(int64_t a, int64_t b) { return (b < 0 || b >= 64) ? (a < 0 ? -1 : 0) : a >> b; }\n" \
    /* Philox4x32-10 (Salmon et al., SC'11): counter = element, key = seed */ \
    "KL_FN void kl_philox(uint32_t c[4], uint64_t seed) {\n" \
    "    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);\n" \
    "    for (int r = 0; r < 10; r++) {\n" \
    "        uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];\n" \
    "        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;\n" \
    "        c[1] = (uint32_t)p1; c[3] = (uint32_t)p0; c[0] = n0; c[2] = n2;\n" \
    "        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;\n" \
    "    }\n" \
    "}\n" \
    "KL_FN float kl_uniform_f32(double a, double b, uint64_t seed, uint64_t i) {\n" \
    "    uint32_t c[4] = {(uint32_t)i, (uint32_t)(i >> 32), 0, 0};\n" \
    "    kl_philox(c, seed);\n" \
    "    float u = (float)(c[0] >> 8) * (1.0f / 16777216.0f);\n" \
    "    float r = (float)a + ((float)b - (float)a) * u;\n" \
    "    return r < (float)b ? r : (float)a;\n" \
    "}\n" \
    "KL_FN double kl_uniform_f64(double a, double b, uint64_t seed, uint64_t i) {\n" \
    "    uint32_t c[4] = {(uint32_t)i, (uint32_t)(i >> 32), 0, 0};\n" \
    "    kl_philox(c, seed);\n" \
    "    double u = ((double)(c[0] >> 5) * 67108864.0 + (double)(c[1] >> 6)) * (1.0 / 9007199254740992.0);\n" \
    "    double r = a + (b - a) * u;\n" \
    "    return r < b ? r : a;\n" \
    "}\n" \
    "KL_FN float kl_normal_f32(uint64_t seed, uint64_t i) {\n" \
    "    uint32_t c[4] = {(uint32_t)i, (uint32_t)(i >> 32), 0, 0};\n" \
    "    kl_philox(c, seed);\n" \
    "    float u1 = ((float)(c[0] >> 8) + 1.0f) * (1.0f / 16777216.0f), u2 = (float)(c[1] >> 8) * (1.0f / 16777216.0f);\n" \
    "    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);\n" \
    "}\n" \
    "KL_FN double kl_normal_f64(uint64_t seed, uint64_t i) {\n" \
    "    uint32_t c[4] = {(uint32_t)i, (uint32_t)(i >> 32), 0, 0};\n" \
    "    kl_philox(c, seed);\n" \
    "    double u1 = ((double)(c[0] >> 5) * 67108864.0 + (double)(c[1] >> 6) + 1.0) * (1.0 / 9007199254740992.0);\n" \
    "    double u2 = ((double)(c[2] >> 5) * 67108864.0 + (double)(c[3] >> 6)) * (1.0 / 9007199254740992.0);\n" \
    "    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);\n" \
    "}\n"

#endif
