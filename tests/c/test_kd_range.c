/* test_kd_range.c: the ranges of a description's integer instructions and
 * the comparisons they decide (src/codegen/kd_range.c): bounds checks a
 * reindex never fails fold away, checks it can fail stay, the decision is
 * structure (a launch that needs the check never gets the kernel without
 * it), and arithmetic is never specialised to a shape. */
#include "check.h"
#include "backend/backend.h"
#include "codegen/kdesc.h"
#include "core/context.h"
#include "core/expr.h"
#include "ops/lower.h"

#include <math.h>

static int32_t op2(kl_kdesc *k, int op, int32_t a, int32_t b)
{
    return kl_kd_op(k, KL_I_INDEX, KL_INT64, op, a, b, -1);
}

static int is_const(const kl_kdesc *k, int32_t i, int64_t v)
{
    return i >= 0 && k->instrs[i].kind == KL_I_CONST && k->instrs[i].value == v;
}

static void test_ranges_follow_the_index_arithmetic(void)
{
    kl_kdesc k;
    memset(&k, 0, sizeof k);
    kl_kd_init(&k);
    int64_t space[2] = {4, 3};
    kl_kd_set_space(&k, 2, space);
    int32_t i0 = kl_kd_op(&k, KL_I_LOOP, KL_INT64, 0, 0, -1, -1);
    int32_t i1 = kl_kd_op(&k, KL_I_LOOP, KL_INT64, 0, 1, -1, -1);
    int32_t e = op2(&k, KL_EXB_SUB, op2(&k, KL_EXB_ADD, op2(&k, KL_EXB_MUL, i0, kl_kd_const(&k, 2)), i1),
                    kl_kd_const(&k, 1)); /* 2*i0 + i1 - 1: [-1, 7] */
    CHECK_EQ_INT(kl_kd_range(&k, e).lo, -1);
    CHECK_EQ_INT(kl_kd_range(&k, e).hi, 7);
    int32_t q = op2(&k, KL_EXB_DIV, e, kl_kd_const(&k, 2));   /* truncating: [0, 3] */
    CHECK_EQ_INT(kl_kd_range(&k, q).lo, 0);
    CHECK_EQ_INT(kl_kd_range(&k, q).hi, 3);
    int32_t m = op2(&k, KL_EXB_MOD, i1, kl_kd_const(&k, 5));  /* i1 < 5: i1 itself */
    CHECK_EQ_INT(kl_kd_range(&k, m).lo, 0);
    CHECK_EQ_INT(kl_kd_range(&k, m).hi, 2);
    int32_t n = kl_kd_op(&k, KL_I_NEG, KL_INT64, 0, e, -1, -1);
    CHECK_EQ_INT(kl_kd_range(&k, n).lo, -7);
    CHECK_EQ_INT(kl_kd_range(&k, n).hi, 1);
    int32_t li = kl_kd_op(&k, KL_I_LINEAR, KL_INT64, 0, -1, -1, -1);
    CHECK_EQ_INT(kl_kd_range(&k, li).hi, 11);
    /* overflow gives up rather than wrap */
    int32_t big = op2(&k, KL_EXB_MUL, i0, kl_kd_const(&k, INT64_MAX));
    CHECK_EQ_INT(kl_kd_range(&k, big).lo, INT64_MIN);
    CHECK_EQ_INT(kl_kd_range(&k, big).hi, INT64_MAX);
    kl_kd_free(&k);
}

static void test_decided_comparisons_fold_and_arithmetic_does_not(void)
{
    kl_kdesc k;
    memset(&k, 0, sizeof k);
    kl_kd_init(&k);
    int64_t space[1] = {4};
    kl_kd_set_space(&k, 1, space);
    int32_t i0 = kl_kd_op(&k, KL_I_LOOP, KL_INT64, 0, 0, -1, -1);
    int32_t two = kl_kd_const(&k, 2), zero = kl_kd_const(&k, 0);
    int32_t w = op2(&k, KL_EXB_MUL, i0, two);                      /* [0, 6] */
    CHECK(is_const(&k, op2(&k, KL_EXB_LT, w, zero), 0));
    CHECK(is_const(&k, op2(&k, KL_EXB_GE, w, kl_kd_const(&k, 7)), 0));
    CHECK(is_const(&k, op2(&k, KL_EXB_LE, w, kl_kd_const(&k, 6)), 1));
    int32_t open = op2(&k, KL_EXB_GE, w, kl_kd_const(&k, 6));     /* true at i0 = 3 only */
    CHECK(open >= 0 && k.instrs[open].kind == KL_I_INDEX);
    /* x || 0 is x, x && 1 is x, for x already 0 or 1 */
    CHECK_EQ_INT(op2(&k, KL_EXB_OR, open, zero), open);
    CHECK_EQ_INT(op2(&k, KL_EXB_AND, kl_kd_const(&k, 1), open), open);
    CHECK(is_const(&k, op2(&k, KL_EXB_OR, open, kl_kd_const(&k, 1)), 1));
    CHECK(is_const(&k, kl_kd_op(&k, KL_I_NOT, KL_INT64, 0, two, -1, -1), 0));
    /* a select on a decided condition is its branch */
    int32_t other = kl_kd_const(&k, 9);
    CHECK_EQ_INT(kl_kd_op(&k, KL_I_SELECT, KL_INT64, 0, zero, other, w), w);
    CHECK_EQ_INT(kl_kd_op(&k, KL_I_SELECT, KL_INT64, 0, two, other, w), other);
    /* a clamp of an index already inside is the index; of one that may not be, a clamp */
    CHECK_EQ_INT(kl_kd_op(&k, KL_I_CLAMP, KL_INT64, 0, i0, kl_kd_const(&k, 4), -1), i0);
    int32_t cl = kl_kd_op(&k, KL_I_CLAMP, KL_INT64, 0, w, kl_kd_const(&k, 4), -1);
    CHECK(cl >= 0 && k.instrs[cl].kind == KL_I_CLAMP);
    /* an index over an extent of 1 stays an index (one kernel for batch 1 and 8) */
    int64_t one[1] = {1};
    kl_kd_init(&k);
    kl_kd_set_space(&k, 1, one);
    int32_t j = kl_kd_op(&k, KL_I_LOOP, KL_INT64, 0, 0, -1, -1);
    int32_t jj = op2(&k, KL_EXB_MUL, j, kl_kd_const(&k, 3));
    CHECK(jj >= 0 && k.instrs[jj].kind == KL_I_INDEX);
    /* without an iteration space nothing is decided */
    kl_kd_init(&k);
    int32_t i = kl_kd_op(&k, KL_I_LOOP, KL_INT64, 0, 0, -1, -1);
    int32_t c = op2(&k, KL_EXB_LT, i, kl_kd_const(&k, 0));
    CHECK(c >= 0 && k.instrs[c].kind == KL_I_INDEX);
    kl_kd_free(&k);
}

/* The 2x2 windows of x (n, n) read by a reindex to (n/2, n/2, 2, 2) with
 * overflow -1, padded by pad on each side (then the windows are (n+2pad)/2). */
static kl_var *windows(kl_var *x, int64_t n, int pad)
{
    int64_t o = (n + 2 * pad) / 2, shape[4] = {o, o, 2, 2};
    const char *idx0 = pad ? "i0*2+i2-1" : "i0*2+i2", *idx1 = pad ? "i1*2+i3-1" : "i1*2+i3";
    const char *idx[2] = {idx0, idx1};
    kl_var *w = NULL;
    if (!x || !CHECK_OK(kl_reindex(x, 4, shape, idx, -1, 0, NULL, 0, NULL, &w))) return NULL;
    w->materialize = 1;
    return w;
}

static char *render_of(kl_context *ctx, kl_var *y, kl_kdesc *k)
{
    char *text = NULL;
    kl_kd_init(k);
    if (!CHECK_OK(kl_lower_kernel(y, k))) return NULL;
    kl_backend *cpu = ctx->backends[0];
    CHECK_OK(cpu->ops->render(cpu, k, &text));
    return text;
}

static void test_window_checks_fold_only_where_they_cannot_fail(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t shape[2] = {4, 4};
    double vals[16];
    for (int i = 0; i < 16; i++) vals[i] = i;
    kl_var *x = check_var(ctx, KL_FLOAT32, 2, shape, vals);
    kl_var *inside = windows(x, 4, 0), *padded = windows(x, 4, 1);
    kl_kdesc a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    char *ta = inside ? render_of(ctx, inside, &a) : NULL;
    char *tb = padded ? render_of(ctx, padded, &b) : NULL;
    if (ta && tb) {
        /* the unpadded windows never read outside: no bounds test, no select
         * (the loops' own `<` aside) */
        CHECK_MSG(!strstr(ta, " >= ") && !strstr(ta, " ? "), "%s", ta);
        CHECK_MSG(strstr(tb, " >= ") && strstr(tb, " ? "), "%s", tb);
        CHECK(!kl_kd_same(&a, &b));
    }
    free(ta);
    free(tb);
    /* and both compute what the windows hold */
    if (inside) {
        double *got = check_read(inside), want[16];
        for (int i0 = 0; i0 < 2; i0++)
            for (int i1 = 0; i1 < 2; i1++)
                for (int i2 = 0; i2 < 2; i2++)
                    for (int i3 = 0; i3 < 2; i3++)
                        want[((i0 * 2 + i1) * 2 + i2) * 2 + i3] = vals[(i0 * 2 + i2) * 4 + i1 * 2 + i3];
        if (got) CHECK_ARRAY_CLOSE(got, want, 16, 0, 0, "unpadded windows");
        free(got);
    }
    if (padded) {
        double *got = check_read(padded), want[36];
        for (int i0 = 0; i0 < 3; i0++)
            for (int i1 = 0; i1 < 3; i1++)
                for (int i2 = 0; i2 < 2; i2++)
                    for (int i3 = 0; i3 < 2; i3++) {
                        int r = i0 * 2 + i2 - 1, c = i1 * 2 + i3 - 1;
                        want[((i0 * 3 + i1) * 2 + i2) * 2 + i3] = r < 0 || r >= 4 || c < 0 || c >= 4 ? -1 : vals[r * 4 + c];
                    }
        if (got) CHECK_ARRAY_CLOSE(got, want, 36, 0, 0, "padded windows");
        free(got);
    }
    kl_kd_free(&a);
    kl_kd_free(&b);
    check_release(inside);
    check_release(padded);
    check_release(x);
    kl_context_free(ctx);
}

/* One expression, two launches: "i0+2" over 3 of 5 elements stays inside;
 * over 4 of 5 it reads past the end at i0 = 3. The second launch must not
 * reuse the first's kernel (which has no check). */
static void test_a_check_decided_for_one_shape_is_kept_for_another(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n5 = 5;
    double vals[5] = {10, 11, 12, 13, 14};
    kl_var *x = check_var(ctx, KL_FLOAT64, 1, &n5, vals);
    const char *idx[1] = {"i0+2"};
    for (int64_t len = 3; len <= 4; len++) {
        kl_var *y = NULL;
        if (!x || !CHECK_OK(kl_reindex(x, 1, &len, idx, NAN, 0, NULL, 0, NULL, &y))) continue;
        double *got = check_read(y);
        if (got) {
            for (int64_t i = 0; i < len; i++) {
                double want = i + 2 < 5 ? vals[i + 2] : NAN;
                CHECK_MSG(isnan(want) ? isnan(got[i]) : got[i] == want, "len %lld, element %lld: %g",
                          (long long)len, (long long)i, got[i]);
            }
        }
        free(got);
        check_release(y);
    }
    check_release(x);
    kl_context_free(ctx);
}

CHECK_MAIN(TEST(test_ranges_follow_the_index_arithmetic),
           TEST(test_decided_comparisons_fold_and_arithmetic_does_not),
           TEST(test_window_checks_fold_only_where_they_cannot_fail),
           TEST(test_a_check_decided_for_one_shape_is_kept_for_another))
