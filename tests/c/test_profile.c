/* The profiler: off, a sync records nothing; on, every launch is recorded
 * with its root op, fused ops, time and bytes, and taken in order. */
#include "check.h"
#include <string.h>

static void test_profiler_records_each_launch(void)
{
    kl_context *ctx = NULL;
    if (!CHECK_OK(kl_context_new(&ctx))) return;
    int64_t n = 1000;
    kl_var *x = NULL, *e = NULL, *s = NULL;
    kl_profile_record r[4];
    CHECK_EQ_INT(kl_context_profile_enabled(ctx), 0);
    if (CHECK_OK(kl_full(ctx, KL_FLOAT32, 1, &n, 2.0, &x)) && CHECK_OK(kl_unary(KL_EXP, x, &e)) &&
        CHECK_OK(kl_reduce(e, KL_REDUCE_SUM, 0, NULL, 0, &s))) {
        CHECK_OK(kl_sync(&e, 1));
        CHECK_EQ_INT(kl_context_profile_take(ctx, r, 4), 0);
        kl_context_set_profile(ctx, 1);
        CHECK_EQ_INT(kl_context_profile_enabled(ctx), 1);
        CHECK_OK(kl_sync(&s, 1));
        int got = kl_context_profile_take(ctx, r, 4);
        if (CHECK_EQ_INT(got, 1)) {
            CHECK_EQ_STR(r[0].name, "reduce");
            CHECK(strstr(r[0].ops, "reduce") != NULL);
            CHECK(r[0].ms >= 0);
            CHECK_EQ_INT(r[0].input_bytes, 4000);
            CHECK_EQ_INT(r[0].output_bytes, 4);
        }
        CHECK_EQ_INT(kl_context_profile_take(ctx, r, 4), 0); /* taken */
        kl_context_set_profile(ctx, 0);
    }
    CHECK_EQ_INT(kl_context_profile_take(ctx, NULL, 4), 0);
    CHECK_EQ_INT(kl_context_profile_take(NULL, r, 4), 0);
    check_release(x);
    check_release(e);
    check_release(s);
    CHECK_OK(kl_context_free(ctx));
}

CHECK_MAIN(TEST(test_profiler_records_each_launch))
