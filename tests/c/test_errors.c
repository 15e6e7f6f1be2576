/* test_errors.c: bad calls fail at build time with the right status and a
 * message, leave no var to release, and leave the context usable. */
#include "check.h"

#include <pthread.h>

static uint64_t vars_alive(kl_context *ctx)
{
    kl_counters c;
    memset(&c, 0, sizeof c);
    kl_context_counters(ctx, &c);
    return c.vars_alive;
}

/* Every failing call below must: return the status, leave a non-empty
 * message, leave *out alone or NULL (nothing to release), create no var. */
#define EXPECT_ERROR(ctx, status, call, out)                                                     \
    do {                                                                                         \
        uint64_t alive_ = vars_alive(ctx);                                                       \
        (out) = NULL;                                                                            \
        if (CHECK_STATUS(call, status)) {                                                        \
            CHECK_MSG((out) == NULL, "%s set its out pointer on error", #call);                 \
            CHECK_MSG(vars_alive(ctx) == alive_, "%s left %lld vars alive", #call,              \
                      (long long)(vars_alive(ctx) - alive_));                                    \
        } else if ((out) != NULL) {                                                              \
            kl_var_release(out);                                                                 \
        }                                                                                        \
    } while (0)

static void test_malformed_index_expression(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[2] = {3, 4};
    kl_var *x = NULL, *out = NULL;
    CHECK_OK(kl_full(ctx, KL_FLOAT32, 2, s, 1, &x));
    static const char *bad[] = {"i0+", "(i0", "foo", "", "i0)", "i0;", "@e0(i0"};
    for (size_t k = 0; x && k < sizeof bad / sizeof bad[0]; k++) {
        const char *idx[2] = {bad[k], "i1"};
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reindex(x, 2, s, idx, 0, 0, NULL, 0, NULL, &out), out);
        const char *idx2[2] = {"i0", bad[k]};
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reindex(x, 2, s, idx2, 0, 0, NULL, 0, NULL, &out), out);
        /* in a condition, and in reindex_reduce */
        const char *ok[2] = {"i0", "i1"}, *cond[1] = {bad[k]};
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reindex(x, 2, s, ok, 0, 1, cond, 0, NULL, &out), out);
        EXPECT_ERROR(ctx, KL_ERR_VALUE,
                     kl_reindex_reduce(x, KL_REDUCE_SUM, 2, s, idx, 0, NULL, 0, NULL, &out), out);
    }
    /* the message names the expression */
    const char *idx[2] = {"i0+", "i1"};
    if (x && kl_reindex(x, 2, s, idx, 0, 0, NULL, 0, NULL, &out) != KL_OK)
        CHECK_MSG(strstr(kl_last_error(), "i0+") != NULL, "message: \"%s\"", kl_last_error());
    check_release(x);
    kl_context_free(ctx);
}

static void test_index_out_of_rank(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[2] = {3, 4};
    kl_var *x = NULL, *out = NULL;
    CHECK_OK(kl_full(ctx, KL_FLOAT32, 2, s, 1, &x));
    if (x) {
        /* i2 in a reindex whose output has rank 2 */
        const char *idx[2] = {"i2", "i1"};
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reindex(x, 2, s, idx, 0, 0, NULL, 0, NULL, &out), out);
        const char *idx9[2] = {"i9", "i1"};
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reindex(x, 2, s, idx9, 0, 0, NULL, 0, NULL, &out), out);
        /* xshape2 of a rank-2 x */
        const char *xs[2] = {"xshape2-i0", "i1"};
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reindex(x, 2, s, xs, 0, 0, NULL, 0, NULL, &out), out);
        /* @e1 with one extra; @e0 with the wrong number of arguments */
        int64_t n = 3;
        kl_var *e = NULL;
        CHECK_OK(kl_full(ctx, KL_INT32, 1, &n, 0, &e));
        const char *ex1[2] = {"@e1(i0)", "i1"};
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reindex(x, 2, s, ex1, 0, 0, NULL, 1, &e, &out), out);
        const char *ex2[2] = {"@e0(i0,i1)", "i1"};
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reindex(x, 2, s, ex2, 0, 0, NULL, 1, &e, &out), out);
        /* in reindex_reduce the indexes read y's indexes: y has rank 2 */
        int64_t o = 3;
        const char *r[1] = {"i2"};
        EXPECT_ERROR(ctx, KL_ERR_VALUE,
                     kl_reindex_reduce(x, KL_REDUCE_SUM, 1, &o, r, 0, NULL, 0, NULL, &out), out);
        check_release(e);
    }
    check_release(x);
    kl_context_free(ctx);
}

static void test_extras_must_be_integers(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 3;
    kl_var *x = NULL, *f = NULL, *out = NULL;
    CHECK_OK(kl_full(ctx, KL_FLOAT32, 1, &n, 1, &x));
    CHECK_OK(kl_full(ctx, KL_FLOAT32, 1, &n, 0, &f));
    const char *idx[1] = {"@e0(i0)"};
    if (x && f) EXPECT_ERROR(ctx, KL_ERR_TYPE, kl_reindex(x, 1, &n, idx, 0, 0, NULL, 1, &f, &out), out);
    check_release(x);
    check_release(f);
    kl_context_free(ctx);
}

static void test_reindex_wrong_index_count(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[3] = {2, 3, 4};
    kl_var *x = NULL, *out = NULL;
    CHECK_OK(kl_full(ctx, KL_FLOAT32, 3, s, 1, &x));
    if (x) {
        /* kl_reindex takes exactly x.ndim indexes; passing 2 names for a rank-3 x
         * means the third pointer is NULL. */
        const char *two[3] = {"i0", "i1", NULL};
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reindex(x, 3, s, two, 0, 0, NULL, 0, NULL, &out), out);
        /* reindex_reduce: one index per output dim */
        int64_t o[2] = {2, 3};
        const char *one[2] = {"i0", NULL};
        EXPECT_ERROR(ctx, KL_ERR_VALUE,
                     kl_reindex_reduce(x, KL_REDUCE_SUM, 2, o, one, 0, NULL, 0, NULL, &out), out);
        /* mean has no scatter form */
        const char *ok[2] = {"i0", "i1"};
        kl_status st = kl_reindex_reduce(x, KL_REDUCE_MEAN, 2, o, ok, 0, NULL, 0, NULL, &out);
        CHECK_MSG(st == KL_ERR_VALUE || st == KL_ERR_TYPE, "reindex_reduce with mean returned %s",
                  check_status_name_(st));
        if (st == KL_OK) check_release(out);
    }
    check_release(x);
    kl_context_free(ctx);
}

static void test_broadcast_mismatch(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s3 = 3, s4 = 4, s23[2] = {2, 3}, s32[2] = {3, 2};
    kl_var *a = NULL, *b = NULL, *c = NULL, *d = NULL, *out = NULL;
    CHECK_OK(kl_full(ctx, KL_FLOAT32, 1, &s3, 1, &a));
    CHECK_OK(kl_full(ctx, KL_FLOAT32, 1, &s4, 1, &b));
    CHECK_OK(kl_full(ctx, KL_FLOAT32, 2, s23, 1, &c));
    CHECK_OK(kl_full(ctx, KL_FLOAT32, 2, s32, 1, &d));
    if (a && b && c && d) {
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_binary(KL_ADD, a, b, &out), out);
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_binary(KL_MUL, c, d, &out), out);
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_where(c, a, b, &out), out);
        /* message mentions both shapes */
        if (kl_binary(KL_ADD, a, b, &out) != KL_OK) {
            const char *m = kl_last_error();
            CHECK_MSG(strstr(m, "3") && strstr(m, "4"), "message: \"%s\"", m);
        }
        /* broadcast_to a shape x does not fit */
        int64_t t[2] = {2, 4};
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_broadcast_to(a, 2, t, 0, NULL, &out), out);
        int dim0 = 0;
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_broadcast_to(a, 2, t, 1, &dim0, &out), out);
        /* dims listing more new dims than the output can have */
        int dims2[2] = {0, 1};
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_broadcast_to(a, 2, s23, 2, dims2, &out), out);
    }
    check_release(a);
    check_release(b);
    check_release(c);
    check_release(d);
    kl_context_free(ctx);
}

static void test_reduce_dim_out_of_range(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[2] = {3, 4};
    kl_var *x = NULL, *out = NULL;
    CHECK_OK(kl_full(ctx, KL_FLOAT32, 2, s, 1, &x));
    if (x) {
        static const int bad[] = {2, -3, 100, -100};
        for (int k = 0; k < 4; k++) {
            uint64_t alive = vars_alive(ctx);
            out = NULL;
            kl_status st = kl_reduce(x, KL_REDUCE_SUM, 1, &bad[k], 0, &out);
            /* NumPy's AxisError is both a ValueError and an IndexError */
            CHECK_MSG(st == KL_ERR_VALUE || st == KL_ERR_INDEX, "reduce dim %d returned %s", bad[k],
                      check_status_name_(st));
            if (st != KL_OK) {
                CHECK(kl_last_error()[0]);
                CHECK(out == NULL);
                CHECK_EQ_INT(vars_alive(ctx), alive);
            } else {
                check_release(out);
            }
        }
        /* the same dim twice */
        int dup[2] = {1, -1};
        kl_status st = kl_reduce(x, KL_REDUCE_SUM, 2, dup, 0, &out);
        CHECK_MSG(st == KL_ERR_VALUE, "reduce dims {1, -1} returned %s", check_status_name_(st));
        if (st == KL_OK) check_release(out);
    }
    check_release(x);
    kl_context_free(ctx);
}

static void test_reshape_wrong_numel(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[2] = {3, 4};
    kl_var *x = NULL, *out = NULL;
    CHECK_OK(kl_full(ctx, KL_FLOAT32, 2, s, 1, &x));
    if (x) {
        int64_t t1[2] = {5, 2}, t2[2] = {5, -1}, t3[2] = {-1, -1}, t4[1] = {13}, t5[2] = {-2, 6};
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reshape(x, 2, t1, &out), out);
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reshape(x, 2, t2, &out), out);
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reshape(x, 2, t3, &out), out);
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reshape(x, 1, t4, &out), out);
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reshape(x, 2, t5, &out), out);
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reshape(x, 0, NULL, &out), out);
    }
    check_release(x);
    kl_context_free(ctx);
}

static void test_rank_above_8(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    float v = 1;
    kl_var *out = NULL, *x = NULL;
    EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_var_from_host(ctx, KL_FLOAT32, 9, s, &v, &out), out);
    EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_full(ctx, KL_FLOAT32, 9, s, 1, &out), out);
    EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_index(ctx, KL_INT32, 9, s, 0, &out), out);
    EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_full(ctx, KL_FLOAT32, -1, s, 1, &out), out);
    /* rank 8 is fine */
    if (CHECK_OK(kl_full(ctx, KL_FLOAT32, 8, s, 1, &x))) {
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reshape(x, 9, s, &out), out);
        const char *idx[9] = {"i0", "i0", "i0", "i0", "i0", "i0", "i0", "i0", "i0"};
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reindex(x, 9, s, idx, 0, 0, NULL, 0, NULL, &out), out);
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_broadcast_to(x, 9, s, 0, NULL, &out), out);
        /* kl_index dim out of range */
        int64_t s2[2] = {2, 2};
        kl_status st = kl_index(ctx, KL_INT32, 2, s2, 2, &out);
        CHECK_MSG(st == KL_ERR_VALUE || st == KL_ERR_INDEX, "kl_index dim 2 of rank 2 returned %s",
                  check_status_name_(st));
        if (st == KL_OK) check_release(out);
        kl_var_release(x);
    }
    kl_context_free(ctx);
}

static void test_negative_shape(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[2] = {3, -2};
    kl_var *out = NULL;
    EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_var_from_host(ctx, KL_FLOAT32, 2, s, NULL, &out), out);
    EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_full(ctx, KL_FLOAT32, 2, s, 0, &out), out);
    EXPECT_ERROR(ctx, KL_ERR_VALUE,
                 kl_random(ctx, KL_FLOAT32, 2, s, KL_RANDOM_UNIFORM, 0, 1, &out), out);
    EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_index(ctx, KL_INT32, 2, s, 0, &out), out);
    int64_t n = 6;
    kl_var *x = NULL;
    if (CHECK_OK(kl_full(ctx, KL_FLOAT32, 1, &n, 0, &x))) {
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_broadcast_to(x, 2, s, 0, NULL, &out), out);
        const char *idx[1] = {"i0"};
        EXPECT_ERROR(ctx, KL_ERR_VALUE, kl_reindex(x, 2, s, idx, 0, 0, NULL, 0, NULL, &out), out);
        kl_var_release(x);
    }
    kl_context_free(ctx);
}

static void test_dtype_errors(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    kl_dtype t;
    CHECK_STATUS(kl_dtype_from_name("float8", &t), KL_ERR_TYPE);
    CHECK_STATUS(kl_dtype_from_name("", &t), KL_ERR_TYPE);
    int64_t n = 3;
    kl_var *f = NULL, *d = NULL, *out = NULL;
    CHECK_OK(kl_full(ctx, KL_FLOAT32, 1, &n, 1, &f));
    CHECK_OK(kl_full(ctx, KL_FLOAT64, 1, &n, 1, &d));
    if (f && d) {
        EXPECT_ERROR(ctx, KL_ERR_TYPE, kl_binary(KL_BITWISE_AND, f, f, &out), out);
        EXPECT_ERROR(ctx, KL_ERR_TYPE, kl_binary(KL_BITWISE_OR, d, d, &out), out);
        EXPECT_ERROR(ctx, KL_ERR_TYPE, kl_binary(KL_BITWISE_XOR, f, d, &out), out);
        EXPECT_ERROR(ctx, KL_ERR_TYPE, kl_binary(KL_LEFT_SHIFT, f, f, &out), out);
        EXPECT_ERROR(ctx, KL_ERR_TYPE, kl_binary(KL_RIGHT_SHIFT, d, d, &out), out);
        EXPECT_ERROR(ctx, KL_ERR_TYPE, kl_unary(KL_BITWISE_NOT, f, &out), out);
        /* the message names the op and the dtype */
        if (kl_binary(KL_BITWISE_AND, f, f, &out) != KL_OK) {
            const char *m = kl_last_error();
            CHECK_MSG(strstr(m, "bitwise_and") && strstr(m, "float32"), "message: \"%s\"", m);
        }
        /* invalid dtype and op values */
        EXPECT_ERROR(ctx, KL_ERR_TYPE, kl_cast(f, (kl_dtype)99, &out), out);
        EXPECT_ERROR(ctx, KL_ERR_TYPE, kl_full(ctx, (kl_dtype)KL_DTYPE_COUNT, 1, &n, 0, &out), out);
        kl_status st = kl_unary((kl_unary_op)KL_UNARY_COUNT, f, &out);
        CHECK_MSG(st == KL_ERR_VALUE || st == KL_ERR_TYPE, "unary op out of range returned %s",
                  check_status_name_(st));
        if (st == KL_OK) check_release(out);
        st = kl_binary((kl_binary_op)-1, f, f, &out);
        CHECK_MSG(st == KL_ERR_VALUE || st == KL_ERR_TYPE, "binary op -1 returned %s",
                  check_status_name_(st));
        if (st == KL_OK) check_release(out);
    }
    check_release(f);
    check_release(d);
    kl_context_free(ctx);
}

static void test_copy_to_host_wrong_size(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 4;
    kl_var *x = NULL;
    if (CHECK_OK(kl_full(ctx, KL_FLOAT32, 1, &n, 1, &x))) {
        float buf[8];
        /* a buffer size that does not match the var is refused, never overrun */
        memset(buf, 0x7f, sizeof buf);
        kl_status st = kl_var_copy_to_host(x, buf, 3 * sizeof(float));
        CHECK_MSG(st != KL_OK, "copy_to_host with 3 floats' room for 4 floats returned KL_OK");
        if (st != KL_OK) CHECK(kl_last_error()[0]);
        unsigned char *bytes = (unsigned char *)buf;
        for (size_t k = 3 * sizeof(float); k < sizeof buf; k++) CHECK(bytes[k] == 0x7f);
        CHECK_OK(kl_var_copy_to_host(x, buf, 4 * sizeof(float)));
        kl_var_release(x);
    }
    kl_context_free(ctx);
}

static void test_context_usable_after_errors(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s3 = 3, s4 = 4;
    kl_var *a = NULL, *b = NULL, *out = NULL;
    CHECK_OK(kl_full(ctx, KL_FLOAT32, 1, &s3, 2, &a));
    CHECK_OK(kl_full(ctx, KL_FLOAT32, 1, &s4, 3, &b));
    if (a && b) {
        for (int k = 0; k < 10; k++) {
            out = NULL;
            if (kl_binary(KL_ADD, a, b, &out) == KL_OK) check_release(out);
        }
        kl_var *c = check_bin(KL_MUL, a, a);
        double *g = check_read(c);
        if (g) CHECK_ARRAY_CLOSE(g, ((double[]){4, 4, 4}), 3, 0, 0, "after errors");
        free(g);
        check_release(c);
    }
    /* a successful call after a failed one: the old message may stay, but the call returns OK */
    check_release(a);
    check_release(b);
    kl_counters cnt;
    kl_context_counters(ctx, &cnt);
    CHECK_EQ_INT(cnt.vars_alive, 0);
    kl_context_free(ctx);
}

static void *other_thread(void *arg)
{
    kl_dtype u;
    *(int *)arg = kl_dtype_from_name("not_a_dtype_other", &u) == KL_ERR_TYPE &&
                  strstr(kl_last_error(), "not_a_dtype_other") != NULL;
    return NULL;
}

static void test_error_message_is_per_thread(void)
{
    /* kl_last_error is thread-local: another thread's failure does not change ours. */
    kl_dtype t;
    CHECK_STATUS(kl_dtype_from_name("not_a_dtype_main", &t), KL_ERR_TYPE);
    char before[256];
    snprintf(before, sizeof before, "%s", kl_last_error());
    int other_ok = 0;
    pthread_t th;
    if (CHECK(pthread_create(&th, NULL, other_thread, &other_ok) == 0)) {
        pthread_join(th, NULL);
        CHECK(other_ok);
    }
    CHECK_EQ_STR(kl_last_error(), before);
}

/* A user kernel setting a dynamic size past its bound fails when it runs,
 * inside kl_code: the outputs go, and with them the op they shared (ASan:
 * no use after free, no leak). */
static void test_code_dynamic_size_past_its_bound(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    kl_code_output co[2] = {{KL_FLOAT32, 1, {-3}}, {KL_FLOAT32, 1, {-3}}};
    const char *src = "#include <stdint.h>\n"
                      "void kl_kernel(void *const *b, const int64_t *i, const double *f)\n"
                      "{ (void)i; (void)f; int64_t *dims = (int64_t *)b[2]; dims[0] = 7; dims[1] = 1; }\n";
    kl_var *made[2] = {NULL, NULL};
    uint64_t alive = vars_alive(ctx);
    kl_status s = kl_code(ctx, 0, NULL, 2, co, src, 0, 0, NULL, made);
    CHECK_MSG(s == KL_ERR_RUNTIME, "status %d", (int)s);
    CHECK(strstr(kl_last_error(), "outside 0..3") != NULL);
    CHECK(made[0] == NULL && made[1] == NULL);
    CHECK_EQ_INT(vars_alive(ctx), alive);
    CHECK_OK(kl_context_free(ctx));
}

CHECK_MAIN(TEST(test_code_dynamic_size_past_its_bound),
           TEST(test_malformed_index_expression), TEST(test_index_out_of_rank),
           TEST(test_extras_must_be_integers), TEST(test_reindex_wrong_index_count),
           TEST(test_broadcast_mismatch), TEST(test_reduce_dim_out_of_range),
           TEST(test_reshape_wrong_numel), TEST(test_rank_above_8), TEST(test_negative_shape),
           TEST(test_dtype_errors), TEST(test_copy_to_host_wrong_size),
           TEST(test_context_usable_after_errors), TEST(test_error_message_is_per_thread))
