/* test_binary.c: every binary op of kiln_ops.def against C double references
 * (float32, float64, int32), NumPy broadcasting and dtype promotion, integer
 * division by zero, float16 arithmetic and kl_where. */
#include "check.h"

#include <limits.h>

#define N 48

/* ---- references ---- */
static double r_add(double a, double b) { return a + b; }
static double r_sub(double a, double b) { return a - b; }
static double r_mul(double a, double b) { return a * b; }
static double r_div(double a, double b) { return a / b; }
static double r_fmod_py(double a, double b) /* Python: the result takes b's sign */
{
    double r = fmod(a, b);
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}
static double r_floordiv(double a, double b) { return floor(a / b); }
static double r_max(double a, double b) { return a > b ? a : b; }
static double r_min(double a, double b) { return a < b ? a : b; }
static double r_lt(double a, double b) { return a < b; }
static double r_le(double a, double b) { return a <= b; }
static double r_gt(double a, double b) { return a > b; }
static double r_ge(double a, double b) { return a >= b; }
static double r_eq(double a, double b) { return a == b; }
static double r_ne(double a, double b) { return a != b; }
static double r_land(double a, double b) { return (a != 0) && (b != 0); }
static double r_lor(double a, double b) { return (a != 0) || (b != 0); }
static double r_lxor(double a, double b) { return (a != 0) != (b != 0); }

/* Integer references, Python semantics for // and %. */
static double r_ifloordiv(double a, double b)
{
    int64_t x = (int64_t)a, y = (int64_t)b, q = x / y;
    if ((x % y != 0) && ((x < 0) != (y < 0))) q--;
    return (double)q;
}
static double r_imod(double a, double b)
{
    int64_t x = (int64_t)a, y = (int64_t)b, r = x % y;
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return (double)r;
}
static double r_band(double a, double b) { return (double)((int64_t)a & (int64_t)b); }
static double r_bor(double a, double b) { return (double)((int64_t)a | (int64_t)b); }
static double r_bxor(double a, double b) { return (double)((int64_t)a ^ (int64_t)b); }
static double r_shl(double a, double b) { return a * ldexp(1.0, (int)b); }
static double r_shr(double a, double b) { return floor(a / ldexp(1.0, (int)b)); }

/* ---- input sets ---- */
enum { SET_GENERAL, SET_DIV, SET_POW, SET_LOGIC, SET_INT, SET_SHIFT, SET_COUNT };

static void make_set(int set, kl_dtype t, double *a, double *b)
{
    uint64_t st = 1234 + (uint64_t)set;
    static const double divisors[8] = {0.5, -0.5, 0.75, -0.75, 1.5, -1.5, 2, -2};
    static const double idiv[8] = {1, -1, 2, -2, 3, -3, 7, -7};
    static const double logic[3] = {-1.5, 0, 2};
    for (int k = 0; k < N; k++) {
        switch (set) {
        case SET_GENERAL:
            a[k] = -3 + 6 * check_rand01(&st);
            b[k] = -3 + 6 * check_rand01(&st);
            if (fabs(b[k]) < 0.1) b[k] += 0.5;
            if (k % 5 == 0) a[k] = b[k]; /* equal values for the comparisons */
            break;
        case SET_DIV: /* exact quotients stay exact in float32 */
            a[k] = (k - 24) * 0.25;
            b[k] = divisors[k % 8];
            break;
        case SET_POW:
            a[k] = 0.1 + 2.9 * check_rand01(&st);
            b[k] = -2 + 4 * check_rand01(&st);
            if (k >= N - 6) { /* negative bases, integer exponents: (-1)**2 is 1, not nan */
                static const double base[6] = {-1, -1.5, -2, -3, -0.5, -1};
                static const double ex[6] = {2, 2, 3, 3, -2, 0};
                a[k] = base[k - (N - 6)];
                b[k] = ex[k - (N - 6)];
            }
            break;
        case SET_LOGIC:
            a[k] = logic[k % 3];
            b[k] = logic[(k / 3) % 3];
            break;
        case SET_INT:
            a[k] = k - 24;
            b[k] = idiv[k % 8];
            if (k % 11 == 0) a[k] = b[k];
            break;
        case SET_SHIFT:
            a[k] = (k - 24) * 3;
            b[k] = k % 6;
            break;
        }
        a[k] = check_round_to(t, a[k]);
        b[k] = check_round_to(t, b[k]);
    }
}

typedef struct {
    kl_binary_op op;
    int set;
    double (*ref)(double, double);
    int out;   /* -1: the input dtype; else a kl_dtype */
} binary_case;

#define SAME (-1)

static const binary_case float_cases[] = {
    {KL_ADD, SET_GENERAL, r_add, SAME},
    {KL_SUB, SET_GENERAL, r_sub, SAME},
    {KL_MUL, SET_GENERAL, r_mul, SAME},
    {KL_DIV, SET_GENERAL, r_div, SAME},
    {KL_FLOOR_DIVIDE, SET_DIV, r_floordiv, SAME},
    {KL_MOD, SET_DIV, r_fmod_py, SAME},
    {KL_POW, SET_POW, pow, SAME},
    {KL_MAXIMUM, SET_GENERAL, r_max, SAME},
    {KL_MINIMUM, SET_GENERAL, r_min, SAME},
    {KL_LESS, SET_GENERAL, r_lt, KL_BOOL},
    {KL_LESS_EQUAL, SET_GENERAL, r_le, KL_BOOL},
    {KL_GREATER, SET_GENERAL, r_gt, KL_BOOL},
    {KL_GREATER_EQUAL, SET_GENERAL, r_ge, KL_BOOL},
    {KL_EQUAL, SET_GENERAL, r_eq, KL_BOOL},
    {KL_NOT_EQUAL, SET_GENERAL, r_ne, KL_BOOL},
    {KL_LOGICAL_AND, SET_LOGIC, r_land, KL_BOOL},
    {KL_LOGICAL_OR, SET_LOGIC, r_lor, KL_BOOL},
    {KL_LOGICAL_XOR, SET_LOGIC, r_lxor, KL_BOOL},
    {KL_ARCTAN2, SET_GENERAL, atan2, SAME},
};
#define N_FLOAT_CASES ((int)(sizeof float_cases / sizeof float_cases[0]))

static const binary_case int_cases[] = {
    {KL_ADD, SET_INT, r_add, SAME},
    {KL_SUB, SET_INT, r_sub, SAME},
    {KL_MUL, SET_INT, r_mul, SAME},
    {KL_DIV, SET_INT, r_div, KL_FLOAT32},
    {KL_FLOOR_DIVIDE, SET_INT, r_ifloordiv, SAME},
    {KL_MOD, SET_INT, r_imod, SAME},
    {KL_MAXIMUM, SET_INT, r_max, SAME},
    {KL_MINIMUM, SET_INT, r_min, SAME},
    {KL_LESS, SET_INT, r_lt, KL_BOOL},
    {KL_LESS_EQUAL, SET_INT, r_le, KL_BOOL},
    {KL_GREATER, SET_INT, r_gt, KL_BOOL},
    {KL_GREATER_EQUAL, SET_INT, r_ge, KL_BOOL},
    {KL_EQUAL, SET_INT, r_eq, KL_BOOL},
    {KL_NOT_EQUAL, SET_INT, r_ne, KL_BOOL},
    {KL_LOGICAL_AND, SET_LOGIC, r_land, KL_BOOL},
    {KL_LOGICAL_OR, SET_LOGIC, r_lor, KL_BOOL},
    {KL_LOGICAL_XOR, SET_LOGIC, r_lxor, KL_BOOL},
    {KL_BITWISE_AND, SET_INT, r_band, SAME},
    {KL_BITWISE_OR, SET_INT, r_bor, SAME},
    {KL_BITWISE_XOR, SET_INT, r_bxor, SAME},
    {KL_LEFT_SHIFT, SET_SHIFT, r_shl, SAME},
    {KL_RIGHT_SHIFT, SET_SHIFT, r_shr, SAME},
};
#define N_INT_CASES ((int)(sizeof int_cases / sizeof int_cases[0]))

/* Builds every case on dtype t, syncs them together, compares. */
static void run_cases(kl_dtype t, const binary_case *cases, int n_cases, double rtol, double atol)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    kl_var *in_a[SET_COUNT] = {0}, *in_b[SET_COUNT] = {0};
    double va[SET_COUNT][N], vb[SET_COUNT][N];
    int64_t n = N;
    for (int s = 0; s < SET_COUNT; s++) {
        make_set(s, t, va[s], vb[s]);
        in_a[s] = check_var(ctx, t, 1, &n, va[s]);
        in_b[s] = check_var(ctx, t, 1, &n, vb[s]);
    }
    kl_var *outs[32] = {0}, *live[32];
    int n_live = 0;
    for (int c = 0; c < n_cases; c++) {
        const binary_case *bc = &cases[c];
        if (!in_a[bc->set] || !in_b[bc->set]) continue;
        kl_status s = kl_binary(bc->op, in_a[bc->set], in_b[bc->set], &outs[c]);
        if (!CHECK_OK(s)) {
            printf("      op %s on %s\n", kl_binary_name(bc->op), kl_dtype_name(t));
            outs[c] = NULL;
            continue;
        }
        kl_dtype want_t = bc->out == SAME ? t : (kl_dtype)bc->out;
        CHECK_MSG(kl_var_dtype(outs[c]) == want_t, "%s(%s, %s) has dtype %s, expected %s",
                  kl_binary_name(bc->op), kl_dtype_name(t), kl_dtype_name(t),
                  kl_dtype_name(kl_var_dtype(outs[c])), kl_dtype_name(want_t));
        CHECK_SHAPE(outs[c], 1, N);
        live[n_live++] = outs[c];
    }
    /* The inputs may go now: the ops hold them. */
    for (int s = 0; s < SET_COUNT; s++) {
        check_release(in_a[s]);
        check_release(in_b[s]);
    }
    CHECK_OK(kl_sync(live, n_live));
    for (int c = 0; c < n_cases; c++) {
        if (!outs[c]) continue;
        const binary_case *bc = &cases[c];
        double *got = check_read(outs[c]);
        if (got) {
            double want[N];
            kl_dtype out_t = kl_var_dtype(outs[c]);
            for (int k = 0; k < N; k++) {
                want[k] = bc->ref(va[bc->set][k], vb[bc->set][k]);
                if (out_t == KL_FLOAT32 && t != KL_FLOAT32) want[k] = check_round_to(KL_FLOAT32, want[k]);
            }
            char label[64];
            snprintf(label, sizeof label, "%s(%s)", kl_binary_name(bc->op), kl_dtype_name(t));
            int exact = out_t == KL_BOOL || kl_dtype_is_int(out_t) || bc->op == KL_FLOOR_DIVIDE ||
                        bc->op == KL_MOD || bc->op == KL_MAXIMUM || bc->op == KL_MINIMUM;
            CHECK_ARRAY_CLOSE(got, want, N, exact ? 0 : rtol, exact ? 0 : atol, label);
            free(got);
        }
        kl_var_release(outs[c]);
    }
    kl_context_free(ctx);
}

static void test_float32_all_ops(void)
{
    /* Every op but the five bitwise/shift ones (integers only) is covered. */
    CHECK_EQ_INT(N_FLOAT_CASES + 5, KL_BINARY_COUNT);
    run_cases(KL_FLOAT32, float_cases, N_FLOAT_CASES, 2e-6, 1e-6);
}

static void test_float64_all_ops(void) { run_cases(KL_FLOAT64, float_cases, N_FLOAT_CASES, 1e-13, 1e-14); }

static void test_int32_ops(void)
{
    /* Every op but pow and arctan2 is covered on integers. */
    CHECK_EQ_INT(N_INT_CASES + 2, KL_BINARY_COUNT);
    run_cases(KL_INT32, int_cases, N_INT_CASES, 1e-6, 0);
}

static void test_int64_large_values(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 4;
    double a[4] = {3e9, -3e9, 1e15, -7}, b[4] = {7, 7, -3, 2};
    kl_var *x = check_var(ctx, KL_INT64, 1, &n, a), *y = check_var(ctx, KL_INT64, 1, &n, b);
    kl_var *add = check_bin(KL_ADD, x, y), *mul = check_bin(KL_MUL, x, y);
    kl_var *fd = check_bin(KL_FLOOR_DIVIDE, x, y), *md = check_bin(KL_MOD, x, y);
    CHECK_DTYPE(add, KL_INT64);
    CHECK_DTYPE(fd, KL_INT64);
    int64_t got[4];
    if (add && CHECK_OK(kl_var_copy_to_host(add, got, sizeof got)))
        for (int k = 0; k < 4; k++) CHECK_EQ_INT(got[k], (int64_t)a[k] + (int64_t)b[k]);
    if (mul && CHECK_OK(kl_var_copy_to_host(mul, got, sizeof got)))
        for (int k = 0; k < 4; k++) CHECK_EQ_INT(got[k], (int64_t)a[k] * (int64_t)b[k]);
    if (fd && CHECK_OK(kl_var_copy_to_host(fd, got, sizeof got)))
        for (int k = 0; k < 4; k++) CHECK_EQ_INT(got[k], (int64_t)r_ifloordiv(a[k], b[k]));
    if (md && CHECK_OK(kl_var_copy_to_host(md, got, sizeof got)))
        for (int k = 0; k < 4; k++) CHECK_EQ_INT(got[k], (int64_t)r_imod(a[k], b[k]));
    check_release(x);
    check_release(y);
    check_release(add);
    check_release(mul);
    check_release(fd);
    check_release(md);
    kl_context_free(ctx);
}

static void test_bitwise_on_floats_is_type_error(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 2;
    double v[2] = {1, 2};
    kl_var *f = check_var(ctx, KL_FLOAT32, 1, &n, v), *i = check_var(ctx, KL_INT32, 1, &n, v);
    static const kl_binary_op ops[] = {KL_BITWISE_AND, KL_BITWISE_OR, KL_BITWISE_XOR,
                                       KL_LEFT_SHIFT, KL_RIGHT_SHIFT};
    for (int k = 0; k < 5; k++) {
        kl_var *out = NULL;
        CHECK_STATUS(kl_binary(ops[k], f, f, &out), KL_ERR_TYPE);
        CHECK_STATUS(kl_binary(ops[k], i, f, &out), KL_ERR_TYPE);
    }
    check_release(f);
    check_release(i);
    kl_context_free(ctx);
}

/* ---- dtypes of mixed operands ---- */

static void test_result_dtypes(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    static const struct {
        kl_dtype a, b;
        kl_binary_op op;
        kl_dtype out;
    } cases[] = {
        {KL_INT32, KL_INT32, KL_ADD, KL_INT32},
        {KL_INT32, KL_FLOAT32, KL_ADD, KL_FLOAT64},
        {KL_INT8, KL_UINT8, KL_ADD, KL_INT16},
        {KL_UINT8, KL_FLOAT16, KL_ADD, KL_FLOAT16},
        {KL_INT16, KL_FLOAT16, KL_MUL, KL_FLOAT32},
        {KL_INT64, KL_FLOAT16, KL_ADD, KL_FLOAT64},
        {KL_FLOAT16, KL_FLOAT32, KL_ADD, KL_FLOAT32},
        {KL_BOOL, KL_FLOAT32, KL_MUL, KL_FLOAT32},
        {KL_BOOL, KL_INT8, KL_ADD, KL_INT8},
        {KL_FLOAT32, KL_FLOAT64, KL_SUB, KL_FLOAT64},
        {KL_INT32, KL_INT64, KL_MAXIMUM, KL_INT64},
        {KL_INT32, KL_INT32, KL_DIV, KL_FLOAT32},
        {KL_UINT8, KL_UINT8, KL_DIV, KL_FLOAT32},
        {KL_INT64, KL_INT64, KL_DIV, KL_FLOAT32},
        {KL_FLOAT16, KL_FLOAT16, KL_DIV, KL_FLOAT16},
        {KL_FLOAT64, KL_FLOAT64, KL_DIV, KL_FLOAT64},
        {KL_INT32, KL_INT32, KL_FLOOR_DIVIDE, KL_INT32},
        {KL_INT32, KL_INT32, KL_MOD, KL_INT32},
        {KL_FLOAT32, KL_FLOAT32, KL_LESS, KL_BOOL},
        {KL_INT32, KL_FLOAT64, KL_EQUAL, KL_BOOL},
        {KL_FLOAT32, KL_FLOAT32, KL_LOGICAL_AND, KL_BOOL},
        {KL_BOOL, KL_BOOL, KL_LOGICAL_XOR, KL_BOOL},
        {KL_INT32, KL_INT64, KL_BITWISE_AND, KL_INT64},
        {KL_UINT8, KL_UINT8, KL_LEFT_SHIFT, KL_UINT8},
        {KL_BOOL, KL_BOOL, KL_BITWISE_OR, KL_BOOL},
        {KL_FLOAT32, KL_FLOAT32, KL_ARCTAN2, KL_FLOAT32},
        {KL_FLOAT32, KL_FLOAT32, KL_POW, KL_FLOAT32},
    };
    int64_t n = 2;
    double v[2] = {1, 2};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        kl_var *a = check_var(ctx, cases[c].a, 1, &n, v), *b = check_var(ctx, cases[c].b, 1, &n, v);
        kl_var *out = NULL;
        if (a && b && CHECK_OK(kl_binary(cases[c].op, a, b, &out))) {
            CHECK_MSG(kl_var_dtype(out) == cases[c].out, "%s(%s, %s) -> %s, expected %s",
                      kl_binary_name(cases[c].op), kl_dtype_name(cases[c].a),
                      kl_dtype_name(cases[c].b), kl_dtype_name(kl_var_dtype(out)),
                      kl_dtype_name(cases[c].out));
            kl_var_release(out);
        }
        check_release(a);
        check_release(b);
    }
    kl_context_free(ctx);
}

static void test_mixed_dtype_values(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 3;
    kl_var *i = check_var(ctx, KL_INT32, 1, &n, ((double[]){1, 2, 16777217}));
    kl_var *f = check_var(ctx, KL_FLOAT32, 1, &n, ((double[]){0.5, 0.25, 0.125}));
    kl_var *s = check_bin(KL_ADD, i, f);
    CHECK_DTYPE(s, KL_FLOAT64);
    double *got = check_read(s);
    if (got) {
        /* computed in float64: 16777217 survives (it would not in float32) */
        double want[3] = {1.5, 2.25, 16777217.125};
        CHECK_ARRAY_CLOSE(got, want, 3, 0, 0, "int32 + float32");
        free(got);
    }
    int64_t two = 2;
    kl_var *a = check_var(ctx, KL_INT8, 1, &two, ((double[]){100, -100}));
    kl_var *b = check_var(ctx, KL_UINT8, 1, &two, ((double[]){200, 255}));
    kl_var *c = check_bin(KL_ADD, a, b);
    CHECK_DTYPE(c, KL_INT16);
    got = check_read(c);
    if (got) {
        double want[2] = {300, 155};
        CHECK_ARRAY_CLOSE(got, want, 2, 0, 0, "int8 + uint8");
        free(got);
    }
    kl_var *bo = check_var(ctx, KL_BOOL, 1, &two, ((double[]){1, 0}));
    kl_var *fb = check_var(ctx, KL_FLOAT32, 1, &two, ((double[]){2.5, 3.5}));
    kl_var *m = check_bin(KL_MUL, bo, fb);
    got = check_read(m);
    if (got) {
        double want[2] = {2.5, 0};
        CHECK_ARRAY_CLOSE(got, want, 2, 0, 0, "bool * float32");
        free(got);
    }
    kl_var *ii = check_var(ctx, KL_INT32, 1, &n, ((double[]){7, -7, 1}));
    kl_var *jj = check_var(ctx, KL_INT32, 1, &n, ((double[]){2, 2, 3}));
    kl_var *q = check_bin(KL_DIV, ii, jj);
    CHECK_DTYPE(q, KL_FLOAT32);
    got = check_read(q);
    if (got) {
        double want[3] = {3.5, -3.5, (float)(1.0 / 3.0)};
        CHECK_ARRAY_CLOSE(got, want, 3, 1e-7, 0, "int32 / int32");
        free(got);
    }
    kl_var *all[] = {i, f, s, a, b, c, bo, fb, m, ii, jj, q};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

/* ---- broadcasting ---- */

static void test_broadcast_3_1_4_with_5_4(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t sa[3] = {3, 1, 4}, sb[2] = {5, 4};
    double a[12], b[20];
    for (int k = 0; k < 12; k++) a[k] = k * 1.5 - 4;
    for (int k = 0; k < 20; k++) b[k] = k * 0.25 + 100;
    kl_var *x = check_var(ctx, KL_FLOAT32, 3, sa, a), *y = check_var(ctx, KL_FLOAT32, 2, sb, b);
    kl_var *sum = check_bin(KL_ADD, x, y), *diff = check_bin(KL_SUB, y, x);
    CHECK_SHAPE(sum, 3, 3, 5, 4);
    CHECK_SHAPE(diff, 3, 3, 5, 4);
    double *gs = check_read(sum), *gd = check_read(diff);
    if (gs && gd) {
        double ws[60], wd[60];
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 5; j++)
                for (int k = 0; k < 4; k++) {
                    ws[(i * 5 + j) * 4 + k] = a[i * 4 + k] + b[j * 4 + k];
                    wd[(i * 5 + j) * 4 + k] = b[j * 4 + k] - a[i * 4 + k];
                }
        CHECK_ARRAY_CLOSE(gs, ws, 60, 1e-6, 0, "(3,1,4)+(5,4)");
        CHECK_ARRAY_CLOSE(gd, wd, 60, 1e-6, 0, "(5,4)-(3,1,4)");
    }
    free(gs);
    free(gd);
    check_release(x);
    check_release(y);
    check_release(sum);
    check_release(diff);
    kl_context_free(ctx);
}

static void test_broadcast_rank0(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[2] = {3, 4};
    double v[12];
    for (int k = 0; k < 12; k++) v[k] = k;
    kl_var *x = check_var(ctx, KL_FLOAT64, 2, s, v);
    kl_var *c = check_scalar(ctx, KL_FLOAT64, 2.5);
    kl_var *l = check_bin(KL_SUB, x, c), *r = check_bin(KL_SUB, c, x), *cc = check_bin(KL_MUL, c, c);
    CHECK_SHAPE(l, 2, 3, 4);
    CHECK_SHAPE(r, 2, 3, 4);
    CHECK_SHAPE(cc, 0, 0);
    double *gl = check_read(l), *gr = check_read(r), *gc = check_read(cc);
    if (gl && gr) {
        double wl[12], wr[12];
        for (int k = 0; k < 12; k++) {
            wl[k] = k - 2.5;
            wr[k] = 2.5 - k;
        }
        CHECK_ARRAY_CLOSE(gl, wl, 12, 0, 0, "x - scalar");
        CHECK_ARRAY_CLOSE(gr, wr, 12, 0, 0, "scalar - x");
    }
    if (gc) CHECK_CLOSE(gc[0], 6.25, 0, 0);
    free(gl);
    free(gr);
    free(gc);
    check_release(x);
    check_release(c);
    check_release(l);
    check_release(r);
    check_release(cc);
    kl_context_free(ctx);
}

static void test_broadcast_outer_and_large(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    /* (300,1) op (1,400): big enough for parallel loops. */
    enum { R = 300, C = 400 };
    int64_t sa[2] = {R, 1}, sb[2] = {1, C};
    double *a = malloc(R * sizeof *a), *b = malloc(C * sizeof *b);
    for (int i = 0; i < R; i++) a[i] = i;
    for (int j = 0; j < C; j++) b[j] = j * 1000.0;
    kl_var *x = check_var(ctx, KL_INT32, 2, sa, a), *y = check_var(ctx, KL_INT32, 2, sb, b);
    kl_var *z = check_bin(KL_SUB, y, x);
    CHECK_SHAPE(z, 2, R, C);
    double *g = check_read(z);
    if (g) {
        double *w = malloc(R * C * sizeof *w);
        for (int i = 0; i < R; i++)
            for (int j = 0; j < C; j++) w[i * C + j] = b[j] - a[i];
        CHECK_ARRAY_CLOSE(g, w, R * C, 0, 0, "(1,400)-(300,1)");
        free(w);
        free(g);
    }
    /* (4,) with (1,) and the same var on both sides */
    int64_t s4 = 4, s1 = 1;
    kl_var *p = check_var(ctx, KL_FLOAT32, 1, &s4, ((double[]){1, 2, 3, 4}));
    kl_var *q = check_var(ctx, KL_FLOAT32, 1, &s1, ((double[]){10}));
    kl_var *pq = check_bin(KL_MUL, p, q), *pp = check_bin(KL_MUL, p, p);
    CHECK_SHAPE(pq, 1, 4);
    double *g1 = check_read(pq), *g2 = check_read(pp);
    if (g1) CHECK_ARRAY_CLOSE(g1, ((double[]){10, 20, 30, 40}), 4, 0, 0, "(4,)*(1,)");
    if (g2) CHECK_ARRAY_CLOSE(g2, ((double[]){1, 4, 9, 16}), 4, 0, 0, "x*x");
    free(g1);
    free(g2);
    free(a);
    free(b);
    kl_var *all[] = {x, y, z, p, q, pq, pp};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

static void test_broadcast_int_mod(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t sa[2] = {3, 1}, sb[2] = {1, 4};
    double a[3] = {-7, 7, 10}, b[4] = {3, -3, 4, -4};
    kl_var *x = check_var(ctx, KL_INT32, 2, sa, a), *y = check_var(ctx, KL_INT32, 2, sb, b);
    kl_var *m = check_bin(KL_MOD, x, y), *d = check_bin(KL_FLOOR_DIVIDE, x, y);
    CHECK_SHAPE(m, 2, 3, 4);
    double *gm = check_read(m), *gd = check_read(d);
    if (gm && gd) {
        double wm[12], wd[12];
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++) {
                wm[i * 4 + j] = r_imod(a[i], b[j]);
                wd[i * 4 + j] = r_ifloordiv(a[i], b[j]);
            }
        /* e.g. -7 % 3 == 2, 7 % -3 == -2, -7 // 3 == -3 */
        CHECK_ARRAY_CLOSE(gm, wm, 12, 0, 0, "int mod, broadcast");
        CHECK_ARRAY_CLOSE(gd, wd, 12, 0, 0, "int floor_divide, broadcast");
        CHECK_EQ_INT(gm[0], 2);
        CHECK_EQ_INT(gm[5], -2);
        CHECK_EQ_INT(gd[0], -3);
    }
    free(gm);
    free(gd);
    kl_var *all[] = {x, y, m, d};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

/* ---- integer division by zero: any value, but no crash ---- */

static void test_int_division_by_zero_does_not_crash(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    kl_dtype types[3] = {KL_INT32, KL_INT64, KL_UINT8};
    static const kl_binary_op ops[3] = {KL_DIV, KL_FLOOR_DIVIDE, KL_MOD};
    int64_t n = 4;
    for (int t = 0; t < 3; t++) {
        kl_var *a = check_var(ctx, types[t], 1, &n, ((double[]){1, 0, 7, 100}));
        kl_var *z = check_var(ctx, types[t], 1, &n, ((double[]){0, 0, 0, 0}));
        kl_var *zs = check_scalar(ctx, types[t], 0);
        for (int o = 0; o < 3; o++) {
            kl_var *out = NULL, *out2 = NULL;
            if (kl_binary(ops[o], a, z, &out) == KL_OK) {
                kl_sync(&out, 1); /* any status and any value */
                kl_var_release(out);
            }
            if (kl_binary(ops[o], a, zs, &out2) == KL_OK) {
                const void *p;
                kl_var_data(out2, &p);
                kl_var_release(out2);
            }
        }
        check_release(a);
        check_release(z);
        check_release(zs);
    }
    /* The context still works afterwards. */
    kl_var *a = check_var(ctx, KL_INT32, 1, &n, ((double[]){6, 8, -9, 1}));
    kl_var *b = check_var(ctx, KL_INT32, 1, &n, ((double[]){3, 0, 3, 1}));
    kl_var *q = check_bin(KL_FLOOR_DIVIDE, a, b);
    double *g = check_read(q);
    if (g) {
        CHECK_EQ_INT(g[0], 2);
        CHECK_EQ_INT(g[2], -3);
        CHECK_EQ_INT(g[3], 1);
        free(g);
    }
    check_release(a);
    check_release(b);
    check_release(q);
    kl_context_free(ctx);
}

static void test_int_min_divided_by_minus_one_does_not_crash(void)
{
    /* INT_MIN / -1 traps on x86 like division by zero does. */
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 2;
    kl_var *a = check_var(ctx, KL_INT32, 1, &n, ((double[]){INT_MIN, 5}));
    kl_var *b = check_var(ctx, KL_INT32, 1, &n, ((double[]){-1, -1}));
    kl_var *q = NULL, *m = NULL;
    if (kl_binary(KL_FLOOR_DIVIDE, a, b, &q) == KL_OK) {
        kl_sync(&q, 1);
        kl_var_release(q);
    }
    if (kl_binary(KL_MOD, a, b, &m) == KL_OK) {
        kl_sync(&m, 1);
        kl_var_release(m);
    }
    check_release(a);
    check_release(b);
    kl_context_free(ctx);
}

/* ---- float16 arithmetic ---- */

static void test_float16_arithmetic(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 5;
    double a[5] = {1.5, -2.25, 100, 0.125, 3};
    double b[5] = {0.5, 4, -0.75, 8, 3};
    kl_var *x = check_var(ctx, KL_FLOAT16, 1, &n, a), *y = check_var(ctx, KL_FLOAT16, 1, &n, b);
    kl_var *s = check_bin(KL_ADD, x, y), *p = check_bin(KL_MUL, x, y), *d = check_bin(KL_DIV, x, y);
    kl_var *lt = check_bin(KL_LESS, x, y), *e = check_un(KL_EXP, y);
    CHECK_DTYPE(s, KL_FLOAT16);
    CHECK_DTYPE(p, KL_FLOAT16);
    CHECK_DTYPE(d, KL_FLOAT16);
    CHECK_DTYPE(lt, KL_BOOL);
    CHECK_DTYPE(e, KL_FLOAT16);
    double ws[5], wp[5], wd[5], wl[5], we[5];
    for (int k = 0; k < 5; k++) {
        ws[k] = a[k] + b[k];
        wp[k] = a[k] * b[k];
        wd[k] = a[k] / b[k];
        wl[k] = a[k] < b[k];
        we[k] = exp(b[k]);
    }
    double *g;
    if ((g = check_read(s))) { CHECK_ARRAY_CLOSE(g, ws, 5, 1e-3, 0, "f16 add"); free(g); }
    if ((g = check_read(p))) { CHECK_ARRAY_CLOSE(g, wp, 5, 1e-3, 0, "f16 mul"); free(g); }
    if ((g = check_read(d))) { CHECK_ARRAY_CLOSE(g, wd, 5, 1e-3, 0, "f16 div"); free(g); }
    if ((g = check_read(lt))) { CHECK_ARRAY_CLOSE(g, wl, 5, 0, 0, "f16 less"); free(g); }
    if ((g = check_read(e))) { CHECK_ARRAY_CLOSE(g, we, 5, 1e-3, 0, "f16 exp"); free(g); }
    kl_var *all[] = {x, y, s, p, d, lt, e};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

/* ---- where ---- */

static void test_where_broadcast(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t sc[2] = {3, 1}, sa[2] = {1, 4};
    double c[3] = {1, 0, 1}, a[4] = {1, 2, 3, 4};
    kl_var *cond = check_var(ctx, KL_BOOL, 2, sc, c);
    kl_var *x = check_var(ctx, KL_FLOAT32, 2, sa, a);
    kl_var *y = check_scalar(ctx, KL_FLOAT32, -1);
    kl_var *w = NULL;
    if (cond && x && y && CHECK_OK(kl_where(cond, x, y, &w))) {
        CHECK_SHAPE(w, 2, 3, 4);
        CHECK_DTYPE(w, KL_FLOAT32);
        double *g = check_read(w);
        if (g) {
            double want[12];
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 4; j++) want[i * 4 + j] = c[i] ? a[j] : -1;
            CHECK_ARRAY_CLOSE(g, want, 12, 0, 0, "where((3,1), (1,4), ())");
            free(g);
        }
    }
    /* where(x > 2, x, 0) with the condition built in the same graph: relu-like */
    int64_t n = 6;
    double v[6] = {-3, 1, 2, 2.5, 7, -0.5};
    kl_var *z = check_var(ctx, KL_FLOAT64, 1, &n, v);
    kl_var *two = check_scalar(ctx, KL_FLOAT64, 2), *zero = check_scalar(ctx, KL_FLOAT64, 0);
    kl_var *gt = check_bin(KL_GREATER, z, two), *r = NULL;
    if (gt && CHECK_OK(kl_where(gt, z, zero, &r))) {
        CHECK_SHAPE(r, 1, 6);
        double *g = check_read(r);
        if (g) {
            double want[6] = {0, 0, 0, 2.5, 7, 0};
            CHECK_ARRAY_CLOSE(g, want, 6, 0, 0, "where(x>2, x, 0)");
            free(g);
        }
    }
    /* A non-bool condition counts nonzero as true, or is refused as a type error. */
    kl_var *ci = check_var(ctx, KL_INT32, 1, &n, ((double[]){0, 1, 2, 0, -1, 0}));
    kl_var *ri = NULL;
    kl_status s = ci ? kl_where(ci, z, zero, &ri) : KL_OK;
    if (s == KL_OK && ri) {
        double *g = check_read(ri);
        if (g) {
            double want[6] = {0, 1, 2, 0, 7, 0};
            CHECK_ARRAY_CLOSE(g, want, 6, 0, 0, "where(int32 cond)");
            free(g);
        }
        kl_var_release(ri);
    } else {
        CHECK(s == KL_ERR_TYPE);
    }
    kl_var *all[] = {cond, x, y, w, z, two, zero, gt, r, ci};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}


/* Rank 8 with alternating size-1 dims on each side: every index path. */
static void test_rank8_broadcast(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t sa[8] = {2, 1, 3, 1, 2, 1, 2, 1}, sb[8] = {1, 2, 1, 2, 1, 3, 1, 2};
    double a[24], b[24];
    for (int i = 0; i < 24; i++) {
        a[i] = i;
        b[i] = 1000 * i;
    }
    kl_var *x = check_var(ctx, KL_FLOAT64, 8, sa, a), *y = check_var(ctx, KL_FLOAT64, 8, sb, b);
    kl_var *z = check_bin(KL_SUB, y, x);
    CHECK_SHAPE(z, 8, 2, 2, 3, 2, 2, 3, 2, 2);
    double *g = check_read(z);
    if (g) {
        enum { TOTAL = 2 * 2 * 3 * 2 * 2 * 3 * 2 * 2 };
        static const int64_t out[8] = {2, 2, 3, 2, 2, 3, 2, 2};
        double *want = malloc(TOTAL * sizeof *want);
        for (int f = 0; f < TOTAL; f++) {
            int64_t c[8], rem = f;
            for (int d = 7; d >= 0; d--) {
                c[d] = rem % out[d];
                rem /= out[d];
            }
            int64_t ia = 0, ib = 0;
            for (int d = 0; d < 8; d++) {
                ia = ia * sa[d] + (sa[d] == 1 ? 0 : c[d]);
                ib = ib * sb[d] + (sb[d] == 1 ? 0 : c[d]);
            }
            want[f] = b[ib] - a[ia];
        }
        CHECK_ARRAY_CLOSE(g, want, TOTAL, 0, 0, "rank-8 broadcast");
        free(want);
        free(g);
    }
    check_release(x);
    check_release(y);
    check_release(z);
    kl_context_free(ctx);
}

CHECK_MAIN(TEST(test_float32_all_ops), TEST(test_float64_all_ops), TEST(test_int32_ops),
           TEST(test_int64_large_values), TEST(test_bitwise_on_floats_is_type_error),
           TEST(test_result_dtypes), TEST(test_mixed_dtype_values),
           TEST(test_broadcast_3_1_4_with_5_4), TEST(test_broadcast_rank0),
           TEST(test_broadcast_outer_and_large), TEST(test_broadcast_int_mod), TEST(test_rank8_broadcast),
           TEST(test_int_division_by_zero_does_not_crash),
           TEST(test_int_min_divided_by_minus_one_does_not_crash), TEST(test_float16_arithmetic),
           TEST(test_where_broadcast))
