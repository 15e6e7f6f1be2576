/* test_dtype.c: dtype names, sizes, classification and NumPy promotion. */
#include "check.h"

#define B KL_BOOL
#define I1 KL_INT8
#define U1 KL_UINT8
#define I2 KL_INT16
#define I4 KL_INT32
#define I8 KL_INT64
#define F2 KL_FLOAT16
#define F4 KL_FLOAT32
#define F8 KL_FLOAT64

/* numpy.promote_types(row, col), rows and columns in kl_dtype order:
 * bool, int8, uint8, int16, int32, int64, float16, float32, float64. */
static const kl_dtype promote_table[9][9] = {
    /*          b   i1  u1  i2  i4  i8  f2  f4  f8 */
    /* b  */ {B, I1, U1, I2, I4, I8, F2, F4, F8},
    /* i1 */ {I1, I1, I2, I2, I4, I8, F2, F4, F8},
    /* u1 */ {U1, I2, U1, I2, I4, I8, F2, F4, F8},
    /* i2 */ {I2, I2, I2, I2, I4, I8, F4, F4, F8},
    /* i4 */ {I4, I4, I4, I4, I4, I8, F8, F8, F8},
    /* i8 */ {I8, I8, I8, I8, I8, I8, F8, F8, F8},
    /* f2 */ {F2, F2, F2, F4, F8, F8, F2, F4, F8},
    /* f4 */ {F4, F4, F4, F4, F8, F8, F4, F4, F8},
    /* f8 */ {F8, F8, F8, F8, F8, F8, F8, F8, F8},
};

static const char *const names[KL_DTYPE_COUNT] = {"bool",    "int8",    "uint8",   "int16",  "int32",
                                                  "int64",   "float16", "float32", "float64", "bfloat16"};

static void test_promote_table_is_symmetric(void)
{
    /* A sanity check of the table itself. */
    for (int a = 0; a < 9; a++)
        for (int b = 0; b < 9; b++) CHECK(promote_table[a][b] == promote_table[b][a]);
}

static void test_promote_all_pairs(void)
{
    for (int a = 0; a < 9; a++) {
        for (int b = 0; b < 9; b++) {
            kl_dtype out = (kl_dtype)-1;
            if (!CHECK_OK(kl_dtype_promote((kl_dtype)a, (kl_dtype)b, &out))) continue;
            CHECK_MSG(out == promote_table[a][b], "promote(%s, %s) = %d, expected %s", names[a],
                      names[b], (int)out, names[promote_table[a][b]]);
        }
    }
}

static void test_promote_named_cases(void)
{
    kl_dtype out;
    CHECK_OK(kl_dtype_promote(KL_INT8, KL_UINT8, &out));
    CHECK_EQ_INT(out, KL_INT16);
    CHECK_OK(kl_dtype_promote(KL_INT32, KL_FLOAT32, &out));
    CHECK_EQ_INT(out, KL_FLOAT64);
    CHECK_OK(kl_dtype_promote(KL_INT64, KL_FLOAT16, &out));
    CHECK_EQ_INT(out, KL_FLOAT64);
    CHECK_OK(kl_dtype_promote(KL_UINT8, KL_FLOAT16, &out));
    CHECK_EQ_INT(out, KL_FLOAT16);
    CHECK_OK(kl_dtype_promote(KL_INT16, KL_FLOAT16, &out));
    CHECK_EQ_INT(out, KL_FLOAT32);
    /* bfloat16 (not in NumPy): with float16 neither holds the other; small
     * integers fit its range; wider floats and integers win */
    CHECK_OK(kl_dtype_promote(KL_BFLOAT16, KL_FLOAT16, &out));
    CHECK_EQ_INT(out, KL_FLOAT32);
    CHECK_OK(kl_dtype_promote(KL_INT16, KL_BFLOAT16, &out));
    CHECK_EQ_INT(out, KL_BFLOAT16);
    CHECK_OK(kl_dtype_promote(KL_BFLOAT16, KL_FLOAT32, &out));
    CHECK_EQ_INT(out, KL_FLOAT32);
    CHECK_OK(kl_dtype_promote(KL_INT32, KL_BFLOAT16, &out));
    CHECK_EQ_INT(out, KL_FLOAT64);
    for (int t = 0; t < KL_DTYPE_COUNT; t++) {
        CHECK_OK(kl_dtype_promote(KL_BOOL, (kl_dtype)t, &out));
        CHECK_EQ_INT(out, t);
        CHECK_OK(kl_dtype_promote((kl_dtype)t, (kl_dtype)t, &out));
        CHECK_EQ_INT(out, t);
    }
}

static void test_names_round_trip(void)
{
    for (int t = 0; t < KL_DTYPE_COUNT; t++) {
        const char *n = kl_dtype_name((kl_dtype)t);
        CHECK_EQ_STR(n, names[t]);
        kl_dtype back = (kl_dtype)-1;
        if (n && CHECK_OK(kl_dtype_from_name(n, &back))) CHECK_EQ_INT(back, t);
        back = (kl_dtype)-1;
        if (CHECK_OK(kl_dtype_from_name(names[t], &back))) CHECK_EQ_INT(back, t);
    }
}

static void test_unknown_name(void)
{
    kl_dtype out = KL_FLOAT32;
    CHECK_STATUS(kl_dtype_from_name("float128", &out), KL_ERR_TYPE);
    CHECK_STATUS(kl_dtype_from_name("", &out), KL_ERR_TYPE);
    CHECK_STATUS(kl_dtype_from_name("Float32", &out), KL_ERR_TYPE);
    CHECK_STATUS(kl_dtype_from_name("complex64", &out), KL_ERR_TYPE);
    const char *msg = kl_last_error();
    CHECK(msg && strlen(msg) > 0);
}

static void test_sizes(void)
{
    static const size_t sizes[KL_DTYPE_COUNT] = {1, 1, 1, 2, 4, 8, 2, 4, 8, 2};
    for (int t = 0; t < KL_DTYPE_COUNT; t++) CHECK_EQ_INT(kl_dtype_size((kl_dtype)t), sizes[t]);
}

static void test_classification(void)
{
    for (int t = 0; t < KL_DTYPE_COUNT; t++) {
        int is_float = t >= KL_FLOAT16;
        int is_int = t >= KL_INT8 && t <= KL_INT64;
        CHECK_MSG(!!kl_dtype_is_float((kl_dtype)t) == is_float, "is_float(%s)", names[t]);
        CHECK_MSG(!!kl_dtype_is_int((kl_dtype)t) == is_int, "is_int(%s)", names[t]);
    }
}

static void test_status_and_op_names(void)
{
    CHECK(kl_status_name(KL_OK) && kl_status_name(KL_OK)[0]);
    CHECK(kl_status_name(KL_ERR_TYPE) && kl_status_name(KL_ERR_TYPE)[0]);
    for (int op = 0; op < KL_UNARY_COUNT; op++) {
        const char *n = kl_unary_name((kl_unary_op)op);
        kl_unary_op back = (kl_unary_op)-1;
        if (CHECK(n && n[0]) && CHECK_OK(kl_unary_from_name(n, &back))) CHECK_EQ_INT(back, op);
    }
    for (int op = 0; op < KL_BINARY_COUNT; op++) {
        const char *n = kl_binary_name((kl_binary_op)op);
        kl_binary_op back = (kl_binary_op)-1;
        if (CHECK(n && n[0]) && CHECK_OK(kl_binary_from_name(n, &back))) CHECK_EQ_INT(back, op);
    }
    for (int op = 0; op < KL_REDUCE_COUNT; op++) {
        const char *n = kl_reduce_name((kl_reduce_op)op);
        kl_reduce_op back = (kl_reduce_op)-1;
        if (CHECK(n && n[0]) && CHECK_OK(kl_reduce_from_name(n, &back))) CHECK_EQ_INT(back, op);
    }
    CHECK_EQ_STR(kl_unary_name(KL_EXP), "exp");
    CHECK_EQ_STR(kl_binary_name(KL_SUB), "subtract");
    CHECK_EQ_STR(kl_reduce_name(KL_REDUCE_SUM), "sum");
    /* Scatter names from kiln_ops.def map to the same reduce ops. */
    static const struct { const char *name; kl_reduce_op op; } scatter[] = {
        {"add", KL_REDUCE_SUM},         {"multiply", KL_REDUCE_PROD},
        {"maximum", KL_REDUCE_MAX},     {"minimum", KL_REDUCE_MIN},
        {"logical_or", KL_REDUCE_ANY},  {"logical_and", KL_REDUCE_ALL},
    };
    for (size_t i = 0; i < sizeof scatter / sizeof scatter[0]; i++) {
        kl_reduce_op back = (kl_reduce_op)-1;
        if (CHECK_OK(kl_reduce_from_name(scatter[i].name, &back))) CHECK_EQ_INT(back, scatter[i].op);
    }
    kl_unary_op u;
    kl_binary_op b;
    kl_reduce_op r;
    CHECK(kl_unary_from_name("no_such_op", &u) != KL_OK);
    CHECK(kl_binary_from_name("no_such_op", &b) != KL_OK);
    CHECK(kl_reduce_from_name("no_such_op", &r) != KL_OK);
    CHECK(kl_last_error() && kl_last_error()[0]);
}

/* Integer constants keep all 64 bits from kl_full_int to the kernel; values
 * outside a dtype's range, and NaN for an integer dtype, are refused. */
static void test_full_integers_are_exact_and_range_checked(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 2;
    kl_var *v = NULL, *one = NULL, *sum = NULL;
    int64_t got[2];
    if (CHECK_OK(kl_full_int(ctx, KL_INT64, 1, &n, INT64_MAX, &v)) &&
        CHECK_OK(kl_var_copy_to_host(v, got, sizeof got)))
        CHECK(got[0] == INT64_MAX && got[1] == INT64_MAX);
    kl_var_release(v);
    /* 2^53 + 1 is not a double: it must survive a kernel that adds to it */
    if (CHECK_OK(kl_full_int(ctx, KL_INT64, 1, &n, (INT64_C(1) << 53), &v)) &&
        CHECK_OK(kl_full_int(ctx, KL_INT64, 0, NULL, 1, &one)) && CHECK_OK(kl_binary(KL_ADD, v, one, &sum)) &&
        CHECK_OK(kl_var_copy_to_host(sum, got, sizeof got)))
        CHECK_EQ_INT(got[0], (INT64_C(1) << 53) + 1);
    kl_var_release(v);
    kl_var_release(one);
    kl_var_release(sum);
    kl_var *bad = NULL;
    CHECK_STATUS(kl_full_int(ctx, KL_INT32, 1, &n, INT64_C(1) << 40, &bad), KL_ERR_OVERFLOW);
    CHECK(strstr(kl_last_error(), "1099511627776 is out of range for int32") != NULL);
    CHECK_STATUS(kl_full_int(ctx, KL_UINT8, 1, &n, -1, &bad), KL_ERR_OVERFLOW);
    CHECK_STATUS(kl_full_int(ctx, KL_INT8, 1, &n, 128, &bad), KL_ERR_OVERFLOW);
    CHECK_STATUS(kl_full(ctx, KL_INT64, 1, &n, 1e19, &bad), KL_ERR_OVERFLOW);
    CHECK_STATUS(kl_full(ctx, KL_INT32, 1, &n, 3e9, &bad), KL_ERR_OVERFLOW);
    CHECK_STATUS(kl_full(ctx, KL_INT16, 1, &n, NAN, &bad), KL_ERR_VALUE);
    CHECK_STATUS(kl_full(ctx, KL_INT64, 1, &n, -INFINITY, &bad), KL_ERR_OVERFLOW);
    CHECK(bad == NULL);
    /* in range: truncation as C converts, bool takes != 0, floats round */
    int32_t g32[2];
    if (CHECK_OK(kl_full(ctx, KL_INT32, 1, &n, -3.9, &v)) && CHECK_OK(kl_var_copy_to_host(v, g32, sizeof g32)))
        CHECK_EQ_INT(g32[0], -3);
    kl_var_release(v);
    uint8_t gb[2];
    if (CHECK_OK(kl_full_int(ctx, KL_BOOL, 1, &n, 5, &v)) && CHECK_OK(kl_var_copy_to_host(v, gb, sizeof gb)))
        CHECK_EQ_INT(gb[0], 1);
    kl_var_release(v);
    double gd[2];
    if (CHECK_OK(kl_full_int(ctx, KL_FLOAT64, 1, &n, (INT64_C(1) << 53) + 1, &v)) &&
        CHECK_OK(kl_var_copy_to_host(v, gd, sizeof gd)))
        CHECK(gd[0] == 9007199254740992.0);
    kl_var_release(v);
    /* a reindex of integers refuses an overflow value its dtype cannot hold */
    kl_var *x = NULL, *r = NULL;
    const char *idx[1] = {"i0+5"};
    if (CHECK_OK(kl_full_int(ctx, KL_INT8, 1, &n, 7, &x))) {
        CHECK_STATUS(kl_reindex(x, 1, &n, idx, 300, 0, NULL, 0, NULL, &r), KL_ERR_OVERFLOW);
        CHECK_STATUS(kl_reindex(x, 1, &n, idx, NAN, 0, NULL, 0, NULL, &r), KL_ERR_VALUE);
    }
    kl_var_release(x);
    CHECK_OK(kl_context_free(ctx));
}

/* bfloat16 in kernels: stores round to nearest even (ties to the even
 * mantissa), overflow goes to infinity, NaN stays NaN; sums and a scatter
 * compute in float. */
static void test_bfloat16_kernels(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 6;
    double v[6] = {1.00390625, 1.01171875, 3.0e38, 3.4e38, -2.5, NAN};
    kl_var *x = check_var(ctx, KL_FLOAT64, 1, &n, v), *b = NULL, *s = NULL;
    if (x && CHECK_OK(kl_cast(x, KL_BFLOAT16, &b))) {
        double *got = check_read(b);
        double want[6] = {1.0, 1.015625, 3.0040553e38, INFINITY, -2.5, NAN};
        if (got) {
            for (int i = 0; i < 6; i++) {
                if (isnan(want[i])) CHECK(isnan(got[i]));
                else CHECK_MSG(got[i] == want[i] || fabs(got[i] - want[i]) < 1e31, "bf16[%d] = %g, want %g", i,
                               got[i], want[i]);
            }
        }
        free(got);
        kl_var *two = NULL, *head = NULL;
        int64_t two_n = 2;
        if (CHECK_OK(kl_full(ctx, KL_BFLOAT16, 1, &two_n, 0.5, &two)) && (head = check_bin(KL_ADD, two, two)) &&
            CHECK_OK(kl_reduce(head, KL_REDUCE_SUM, 1, (int[]){0}, 0, &s))) {
            double *sv = check_read(s);
            if (sv) CHECK_ARRAY_CLOSE(sv, ((double[]){2.0}), 1, 0, 0, "sum of bfloat16 ones");
            free(sv);
        }
        check_release(two);
        check_release(head);
    }
    check_release(x);
    check_release(b);
    check_release(s);
    CHECK_OK(kl_context_free(ctx));
}

CHECK_MAIN(TEST(test_full_integers_are_exact_and_range_checked), TEST(test_promote_table_is_symmetric), TEST(test_promote_all_pairs),
           TEST(test_promote_named_cases), TEST(test_names_round_trip), TEST(test_unknown_name),
           TEST(test_sizes), TEST(test_classification), TEST(test_status_and_op_names),
           TEST(test_bfloat16_kernels))
