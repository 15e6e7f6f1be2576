/* test_unary.c: every unary op of kiln_ops.def against C double references,
 * on float32 and float64 (and int32 where it makes sense), and kl_cast. */
#include "check.h"

#define N 41

static double r_neg(double x) { return -x; }
static double r_rsqrt(double x) { return 1.0 / sqrt(x); }
static double r_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double r_sign(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0; }
static double r_not(double x) { return x == 0 ? 1.0 : 0.0; }

typedef struct {
    kl_unary_op op;
    double lo, hi;          /* inputs: N points evenly spread over [lo, hi] */
    double (*ref)(double);
    int to_bool;            /* output dtype is bool */
} unary_case;

static const unary_case float_cases[] = {
    {KL_NEG, -3, 3, r_neg, 0},          {KL_ABS, -3, 3, fabs, 0},
    {KL_EXP, -5, 5, exp, 0},            {KL_LOG, 0.05, 10, log, 0},
    {KL_SQRT, 0, 10, sqrt, 0},          {KL_RSQRT, 0.05, 10, r_rsqrt, 0},
    {KL_SIN, -6, 6, sin, 0},            {KL_COS, -6, 6, cos, 0},
    {KL_TAN, -1.4, 1.4, tan, 0},        {KL_ASIN, -0.99, 0.99, asin, 0},
    {KL_ACOS, -0.99, 0.99, acos, 0},    {KL_ATAN, -10, 10, atan, 0},
    {KL_SINH, -4, 4, sinh, 0},          {KL_COSH, -4, 4, cosh, 0},
    {KL_TANH, -4, 4, tanh, 0},          {KL_ASINH, -10, 10, asinh, 0},
    {KL_ACOSH, 1, 10, acosh, 0},        {KL_ATANH, -0.95, 0.95, atanh, 0},
    {KL_SIGMOID, -10, 10, r_sigmoid, 0}, {KL_ERF, -3, 3, erf, 0},
    {KL_LOG2, 0.05, 10, log2, 0},       {KL_EXP2, -5, 5, exp2, 0},
    {KL_LOG1P, -0.9, 5, log1p, 0},      {KL_EXPM1, -3, 3, expm1, 0},
    {KL_FLOOR, -3.7, 3.7, floor, 0},    {KL_CEIL, -3.7, 3.7, ceil, 0},
    {KL_ROUND, -3.7, 3.7, round, 0},    {KL_TRUNC, -3.7, 3.7, trunc, 0},
    {KL_SIGN, -2, 2, r_sign, 0},        {KL_LOGICAL_NOT, -2, 2, r_not, 1},
};
#define N_FLOAT_CASES ((int)(sizeof float_cases / sizeof float_cases[0]))

/* N inputs over [lo, hi], rounded to dtype t, kept away from .5 ties (where
 * round-half-even and round-half-away differ). Includes 0 when lo = -hi. */
static void make_inputs(kl_dtype t, double lo, double hi, double *x)
{
    for (int k = 0; k < N; k++) {
        double v = lo + (hi - lo) * k / (N - 1);
        if (fabs(v - trunc(v)) == 0.5) v += 0.01;
        x[k] = check_round_to(t, v);
    }
}

static void run_float_cases(kl_dtype t, double rtol, double atol)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    kl_var *outs[N_FLOAT_CASES];
    double inputs[N_FLOAT_CASES][N];
    int64_t n = N;
    for (int c = 0; c < N_FLOAT_CASES; c++) {
        outs[c] = NULL;
        make_inputs(t, float_cases[c].lo, float_cases[c].hi, inputs[c]);
        kl_var *x = check_var(ctx, t, 1, &n, inputs[c]);
        if (!x) continue;
        kl_status s = kl_unary(float_cases[c].op, x, &outs[c]);
        kl_var_release(x); /* the op holds its own reference */
        if (!CHECK_OK(s)) {
            printf("      op %s\n", kl_unary_name(float_cases[c].op));
            outs[c] = NULL;
            continue;
        }
        CHECK_DTYPE(outs[c], float_cases[c].to_bool ? KL_BOOL : t);
        CHECK_SHAPE(outs[c], 1, N);
    }
    /* One sync for all, so the core may compile the kernels together. */
    kl_var *live[N_FLOAT_CASES];
    int n_live = 0;
    for (int c = 0; c < N_FLOAT_CASES; c++)
        if (outs[c]) live[n_live++] = outs[c];
    CHECK_OK(kl_sync(live, n_live));
    for (int c = 0; c < N_FLOAT_CASES; c++) {
        if (!outs[c]) continue;
        CHECK(kl_var_is_computed(outs[c]));
        double *got = check_read(outs[c]);
        if (got) {
            double want[N];
            for (int k = 0; k < N; k++) want[k] = float_cases[c].ref(inputs[c][k]);
            char label[64];
            snprintf(label, sizeof label, "%s(%s)", kl_unary_name(float_cases[c].op),
                     kl_dtype_name(t));
            CHECK_ARRAY_CLOSE(got, want, N, rtol, atol, label);
            free(got);
        }
        kl_var_release(outs[c]);
    }
    kl_context_free(ctx);
}

static void test_float32_all_ops(void)
{
    /* Every unary op but bitwise_not (integers only) is in the table. */
    CHECK_EQ_INT(N_FLOAT_CASES + 1, KL_UNARY_COUNT);
    run_float_cases(KL_FLOAT32, 2e-6, 1e-6);
}
static void test_float64_all_ops(void) { run_float_cases(KL_FLOAT64, 1e-12, 1e-14); }

static void test_float_bitwise_not_is_type_error(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 3;
    double v[3] = {1, 2, 3};
    kl_dtype types[2] = {KL_FLOAT32, KL_FLOAT64};
    for (int i = 0; i < 2; i++) {
        kl_var *x = check_var(ctx, types[i], 1, &n, v), *y = NULL;
        CHECK_STATUS(kl_unary(KL_BITWISE_NOT, x, &y), KL_ERR_TYPE);
        check_release(x);
    }
    kl_context_free(ctx);
}

static void test_int32_ops(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    enum { M = 9 };
    double in[M] = {-7, -1, 0, 1, 5, 123456, -98765, 2147483647, -2147483647};
    int64_t n = M;
    kl_var *x = check_var(ctx, KL_INT32, 1, &n, in);
    if (!x) {
        kl_context_free(ctx);
        return;
    }
    static const kl_unary_op ops[] = {KL_NEG, KL_ABS, KL_SIGN, KL_BITWISE_NOT, KL_LOGICAL_NOT};
    enum { NOPS = 5 };
    kl_var *y[NOPS];
    for (int i = 0; i < NOPS; i++) {
        y[i] = check_un(ops[i], x);
        CHECK_DTYPE(y[i], ops[i] == KL_LOGICAL_NOT ? KL_BOOL : KL_INT32);
    }
    for (int i = 0; i < NOPS; i++) {
        double *got = check_read(y[i]);
        if (!got) continue;
        double want[M];
        for (int k = 0; k < M; k++) {
            int32_t a = (int32_t)in[k];
            switch (ops[i]) {
            case KL_NEG: want[k] = -(double)a; break;
            case KL_ABS: want[k] = fabs((double)a); break;
            case KL_SIGN: want[k] = r_sign(a); break;
            case KL_BITWISE_NOT: want[k] = ~a; break;
            default: want[k] = a == 0; break;
            }
        }
        CHECK_ARRAY_CLOSE(got, want, M, 0, 0, kl_unary_name(ops[i]));
        free(got);
    }
    for (int i = 0; i < NOPS; i++) check_release(y[i]);
    kl_var_release(x);
    kl_context_free(ctx);
}

static void test_int_bitwise_not_other_widths(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 4;
    double in[4] = {0, 1, 100, 255};
    kl_var *x = check_var(ctx, KL_UINT8, 1, &n, in);
    kl_var *y = check_un(KL_BITWISE_NOT, x);
    CHECK_DTYPE(y, KL_UINT8);
    double *got = check_read(y);
    if (got) {
        double want[4] = {255, 254, 155, 0};
        CHECK_ARRAY_CLOSE(got, want, 4, 0, 0, "bitwise_not(uint8)");
        free(got);
    }
    double in64[4] = {0, -1, 1e12, -5};
    kl_var *x64 = check_var(ctx, KL_INT64, 1, &n, in64);
    kl_var *y64 = check_un(KL_BITWISE_NOT, x64), *n64 = check_un(KL_NEG, x64);
    CHECK_DTYPE(y64, KL_INT64);
    CHECK_DTYPE(n64, KL_INT64);
    got = check_read(y64);
    if (got) {
        double want[4] = {-1, 0, -1e12 - 1, 4};
        CHECK_ARRAY_CLOSE(got, want, 4, 0, 0, "bitwise_not(int64)");
        free(got);
    }
    got = check_read(n64);
    if (got) {
        double want[4] = {0, 1, -1e12, 5};
        CHECK_ARRAY_CLOSE(got, want, 4, 0, 0, "neg(int64)");
        free(got);
    }
    check_release(x);
    check_release(y);
    check_release(x64);
    check_release(y64);
    check_release(n64);
    kl_context_free(ctx);
}

/* Float functions of integers compute in float32 (as Jittor does). */
static void test_float_funcs_of_int_give_float32(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    static const kl_unary_op float_ops[] = {
        KL_EXP,  KL_LOG,  KL_SQRT,  KL_RSQRT, KL_SIN,   KL_COS,   KL_TAN,   KL_ASIN,
        KL_ACOS, KL_ATAN, KL_SINH,  KL_COSH,  KL_TANH,  KL_ASINH, KL_ACOSH, KL_ATANH,
        KL_SIGMOID, KL_ERF, KL_LOG2, KL_EXP2, KL_LOG1P, KL_EXPM1,
    };
    enum { M = 5 };
    double in[M] = {1, 2, 3, 4, 9};
    int64_t n = M;
    kl_var *x = check_var(ctx, KL_INT32, 1, &n, in);
    for (size_t i = 0; i < sizeof float_ops / sizeof float_ops[0]; i++) {
        kl_var *y = NULL;
        if (!CHECK_OK(kl_unary(float_ops[i], x, &y))) continue;
        CHECK_MSG(kl_var_dtype(y) == KL_FLOAT32, "%s(int32) has dtype %s",
                  kl_unary_name(float_ops[i]), kl_dtype_name(kl_var_dtype(y)));
        kl_var_release(y);
    }
    /* Values of a few. */
    static const kl_unary_op some[] = {KL_EXP, KL_SQRT, KL_LOG, KL_SIN, KL_SIGMOID};
    static double (*const refs[])(double) = {exp, sqrt, log, sin, r_sigmoid};
    for (int i = 0; i < 5; i++) {
        kl_var *y = check_un(some[i], x);
        double *got = check_read(y);
        if (got) {
            double want[M];
            for (int k = 0; k < M; k++) want[k] = refs[i](in[k]);
            CHECK_ARRAY_CLOSE(got, want, M, 2e-6, 1e-6, kl_unary_name(some[i]));
            free(got);
        }
        check_release(y);
    }
    check_release(x);
    kl_context_free(ctx);
}

static void test_shapes_preserved(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t shape[3] = {2, 3, 4};
    double v[24];
    for (int i = 0; i < 24; i++) v[i] = i * 0.1 - 1;
    kl_var *x = check_var(ctx, KL_FLOAT32, 3, shape, v);
    kl_var *y = check_un(KL_EXP, x);
    CHECK_SHAPE(y, 3, 2, 3, 4);
    double *got = check_read(y);
    if (got) {
        double want[24];
        for (int i = 0; i < 24; i++) want[i] = exp(check_round_to(KL_FLOAT32, v[i]));
        CHECK_ARRAY_CLOSE(got, want, 24, 2e-6, 1e-6, "exp (2,3,4)");
        free(got);
    }
    /* rank 0 */
    kl_var *s = check_scalar(ctx, KL_FLOAT64, -2.25);
    kl_var *a = check_un(KL_ABS, s);
    CHECK_SHAPE(a, 0, 0);
    double *ga = check_read(a);
    if (ga) {
        CHECK_CLOSE(ga[0], 2.25, 0, 0);
        free(ga);
    }
    check_release(x);
    check_release(y);
    check_release(s);
    check_release(a);
    kl_context_free(ctx);
}

static void test_empty_array(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t shape[2] = {0, 3};
    kl_var *x = NULL, *y = NULL;
    if (CHECK_OK(kl_var_from_host(ctx, KL_FLOAT32, 2, shape, NULL, &x))) {
        CHECK_EQ_INT(kl_var_numel(x), 0);
        if (CHECK_OK(kl_unary(KL_EXP, x, &y))) {
            CHECK_SHAPE(y, 2, 0, 3);
            CHECK_OK(kl_sync(&y, 1));
            float dummy = 0;
            CHECK_OK(kl_var_copy_to_host(y, &dummy, 0));
            kl_var_release(y);
        }
        kl_var_release(x);
    }
    kl_context_free(ctx);
}

/* ---- kl_cast ---- */

static void check_cast(kl_context *ctx, kl_dtype from, kl_dtype to, int n, const double *in,
                       const double *want, double rtol, int line)
{
    int64_t shape = n;
    kl_var *x = check_var(ctx, from, 1, &shape, in), *y = NULL;
    if (!x) return;
    kl_status s = kl_cast(x, to, &y);
    kl_var_release(x);
    if (s != KL_OK) {
        check_fail_(__FILE__, line, "kl_cast %s -> %s returned %s: \"%s\"", kl_dtype_name(from),
                    kl_dtype_name(to), check_status_name_(s), check_last_error_());
        return;
    }
    if (kl_var_dtype(y) != to)
        check_fail_(__FILE__, line, "kl_cast to %s gave dtype %s", kl_dtype_name(to),
                    kl_dtype_name(kl_var_dtype(y)));
    double *got = check_read(y);
    if (got) {
        char label[64];
        snprintf(label, sizeof label, "cast %s -> %s (line %d)", kl_dtype_name(from),
                 kl_dtype_name(to), line);
        CHECK_ARRAY_CLOSE(got, want, n, rtol, 0, label);
        free(got);
    }
    kl_var_release(y);
}
#define CAST(from, to, n, in, want, rtol) check_cast(ctx, (from), (to), (n), (in), (want), (rtol), __LINE__)

static void test_cast_between_dtypes(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    double f[6] = {2.75, -2.75, 0.0, 100.9, -100.9, 7};
    CAST(KL_FLOAT32, KL_INT32, 6, f, ((double[]){2, -2, 0, 100, -100, 7}), 0);
    CAST(KL_FLOAT64, KL_INT64, 6, f, ((double[]){2, -2, 0, 100, -100, 7}), 0);
    CAST(KL_FLOAT64, KL_INT8, 6, f, ((double[]){2, -2, 0, 100, -100, 7}), 0);
    CAST(KL_FLOAT32, KL_BOOL, 6, f, ((double[]){1, 1, 0, 1, 1, 1}), 0);
    double i[6] = {0, 1, -5, 200, 65536, -2147483647};
    CAST(KL_INT32, KL_FLOAT64, 6, i, i, 0);
    CAST(KL_INT32, KL_INT64, 6, i, i, 0);
    CAST(KL_INT32, KL_BOOL, 6, i, ((double[]){0, 1, 1, 1, 1, 1}), 0);
    double u[4] = {0, 200, 255, 17};
    CAST(KL_UINT8, KL_INT32, 4, u, u, 0);
    CAST(KL_INT32, KL_UINT8, 4, u, u, 0);
    CAST(KL_UINT8, KL_FLOAT32, 4, u, u, 0);
    double b[4] = {0, 1, 1, 0};
    CAST(KL_BOOL, KL_FLOAT32, 4, b, b, 0);
    CAST(KL_BOOL, KL_INT32, 4, b, b, 0);
    double big[3] = {1e10, -3e9, 4294967296.0};
    CAST(KL_INT64, KL_FLOAT64, 3, big, big, 0);
    /* float64 -> float32 rounds to nearest */
    double d[5] = {0.1, 1.0 / 3.0, -2.0e-3, 123456.789, 1e30};
    double dr[5];
    for (int k = 0; k < 5; k++) dr[k] = (float)d[k];
    CAST(KL_FLOAT64, KL_FLOAT32, 5, d, dr, 0);
    CAST(KL_FLOAT32, KL_FLOAT32, 5, dr, dr, 0);
    kl_context_free(ctx);
}

static void test_cast_float16_round_trip(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    /* Exactly representable in float16: the round trip is exact. */
    double exact[8] = {0.0, 1.0, -3.0, 0.5, 1.25, 1024.0, 65504.0, -0.000061035156250};
    CAST(KL_FLOAT32, KL_FLOAT16, 8, exact, exact, 0);
    CAST(KL_FLOAT16, KL_FLOAT32, 8, exact, exact, 0);
    CAST(KL_FLOAT64, KL_FLOAT16, 8, exact, exact, 0);
    CAST(KL_FLOAT16, KL_FLOAT64, 8, exact, exact, 0);
    /* Others round to the nearest float16 (ties to even). */
    double any[6] = {0.1, -1.0 / 3.0, 3.14159, 1000.3, 2049.0, 6.0e-5};
    double want[6];
    for (int k = 0; k < 6; k++) want[k] = check_half_to_float(check_float_to_half((float)any[k]));
    CAST(KL_FLOAT32, KL_FLOAT16, 6, any, want, 0);

    /* float32 -> float16 -> float32 in one graph. */
    int64_t n = 6;
    kl_var *x = check_var(ctx, KL_FLOAT32, 1, &n, any), *h = NULL, *back = NULL;
    if (x && CHECK_OK(kl_cast(x, KL_FLOAT16, &h)) && CHECK_OK(kl_cast(h, KL_FLOAT32, &back))) {
        CHECK_DTYPE(h, KL_FLOAT16);
        CHECK_DTYPE(back, KL_FLOAT32);
        double *got = check_read(back);
        if (got) {
            CHECK_ARRAY_CLOSE(got, want, 6, 0, 0, "f32 -> f16 -> f32");
            free(got);
        }
        /* The float16 data itself, as raw bits. */
        uint16_t bits[6];
        if (CHECK_OK(kl_var_copy_to_host(h, bits, sizeof bits)))
            for (int k = 0; k < 6; k++)
                CHECK_EQ_INT(bits[k], check_float_to_half((float)any[k]));
    }
    check_release(x);
    check_release(h);
    check_release(back);
    kl_context_free(ctx);
}

CHECK_MAIN(TEST(test_float32_all_ops), TEST(test_float64_all_ops),
           TEST(test_float_bitwise_not_is_type_error), TEST(test_int32_ops),
           TEST(test_int_bitwise_not_other_widths), TEST(test_float_funcs_of_int_give_float32),
           TEST(test_shapes_preserved), TEST(test_empty_array), TEST(test_cast_between_dtypes),
           TEST(test_cast_float16_round_trip))
