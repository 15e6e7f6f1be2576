/* test_step_cache.c: a sync whose graph repeats an earlier one's replays its
 * plan (src/runtime/step_cache.c): the values follow the new inputs,
 * scalars, seeds and index bounds (arguments read afresh), the results
 * equal float64 references; a graph that differs in a shape, in which var
 * an op reads, or in a scalar that decides a pattern (0 in a maximum) is
 * planned afresh; checked plans (KILN_CHECK_PLANS) compare every hit with a
 * fresh plan before replaying it; a thread count pinned, as a replay needs
 * one. */
#include "check.h"
#include "core/context.h"

static uint64_t replayed(kl_context *ctx)
{
    kl_counters c;
    memset(&c, 0, sizeof c);
    kl_context_counters(ctx, &c);
    return c.syncs_replayed;
}

/* A context with its thread count pinned (a busy machine would change it,
 * and a replay needs the count it was planned with). */
static kl_context *pinned_context(void)
{
    int set_here = !getenv("KILN_THREADS") && setenv("KILN_THREADS", "2", 0) == 0;
    kl_context *ctx = check_context();
    if (set_here) unsetenv("KILN_THREADS");
    return ctx;
}

/* s = sum((x * c + 1).exp()) and y = (x * c + 1).exp() + u, u uniform in
 * [0, 1): new x, c and u each round. */
static void round_of(kl_context *ctx, int64_t n, double c, int round, int expect_replay)
{
    double *xv = malloc((size_t)n * sizeof *xv);
    uint64_t st = 100 + (uint64_t)round;
    for (int64_t i = 0; i < n; i++) xv[i] = check_round_to(KL_FLOAT32, check_rand01(&st) - 0.5);
    kl_var *x = check_var(ctx, KL_FLOAT32, 1, &n, xv), *cv = check_scalar(ctx, KL_FLOAT32, c);
    kl_var *one = check_scalar(ctx, KL_FLOAT32, 1), *u = NULL, *s = NULL;
    CHECK_OK(kl_random(ctx, KL_FLOAT32, 1, &n, KL_RANDOM_UNIFORM, 0, 1, &u));
    kl_var *a = x && cv ? check_bin(KL_MUL, x, cv) : NULL, *b = a && one ? check_bin(KL_ADD, a, one) : NULL;
    kl_var *e = NULL, *y = NULL;
    if (b) CHECK_OK(kl_unary(KL_EXP, b, &e));
    if (e && u) y = check_bin(KL_ADD, e, u);
    if (e) CHECK_OK(kl_reduce(e, KL_REDUCE_SUM, 0, NULL, 0, &s));
    if (y && s) {
        uint64_t before = replayed(ctx);
        kl_var *both[2] = {s, y};
        CHECK_OK(kl_sync(both, 2));
        CHECK_MSG(replayed(ctx) - before == (uint64_t)expect_replay, "round %d: %llu replays, expected %d", round,
                  (unsigned long long)(replayed(ctx) - before), expect_replay);
        double *gs = check_read(s), *gy = check_read(y), want = 0;
        for (int64_t i = 0; i < n; i++) want += exp(check_round_to(KL_FLOAT32, xv[i] * c) + 1);
        if (gs) CHECK_CLOSE(gs[0], want, 1e-5, 1e-5);
        for (int64_t i = 0; gy && i < n; i++) {
            double r = gy[i] - exp(check_round_to(KL_FLOAT32, xv[i] * c) + 1);
            CHECK_MSG(r >= -1e-5 && r < 1 + 1e-5, "round %d: y[%lld] - exp = %g, not a uniform draw", round,
                      (long long)i, r);
        }
        free(gs);
        free(gy);
    }
    check_release_all(x, cv, one, u, a, b, e, y, s);
    free(xv);
}

static void test_a_repeated_graph_is_replayed_with_new_values(void)
{
    kl_context *ctx = pinned_context();
    if (!ctx) return;
    for (int round = 0; round < 4; round++) round_of(ctx, 5000, 0.5 + round, round, round > 0);
    round_of(ctx, 5001, 2.0, 4, 0); /* another shape: planned */
    round_of(ctx, 5001, 3.0, 5, 1);
    CHECK_OK(kl_context_free(ctx));
}

/* Two rounds of a random draw: the replay reads the new seed. */
static void test_a_replayed_random_op_draws_anew(void)
{
    kl_context *ctx = pinned_context();
    if (!ctx) return;
    int64_t n = 64;
    double *draws[2] = {NULL, NULL};
    for (int round = 0; round < 2; round++) {
        kl_var *u = NULL;
        CHECK_OK(kl_random(ctx, KL_FLOAT32, 1, &n, KL_RANDOM_UNIFORM, 0, 1, &u));
        kl_var *two = check_scalar(ctx, KL_FLOAT32, 2), *y = u && two ? check_bin(KL_MUL, u, two) : NULL;
        if (y) CHECK_OK(kl_sync(&y, 1));
        draws[round] = y ? check_read(y) : NULL;
        check_release_all(u, two, y);
    }
    CHECK_EQ_INT(replayed(ctx), 1);
    int same = 0;
    for (int64_t i = 0; draws[0] && draws[1] && i < n; i++) same += draws[0][i] == draws[1][i];
    CHECK_MSG(same < 4, "%d of 64 draws repeated", same);
    free(draws[0]);
    free(draws[1]);
    CHECK_OK(kl_context_free(ctx));
}

/* x * x and x * y have the same ops and shapes: not the same graph. */
static void test_which_var_an_op_reads_is_structure(void)
{
    kl_context *ctx = pinned_context();
    if (!ctx) return;
    int64_t n = 10;
    double xv[10], yv[10];
    for (int i = 0; i < 10; i++) xv[i] = i - 3, yv[i] = 2 * i + 1;
    kl_var *x = check_var(ctx, KL_FLOAT32, 1, &n, xv), *y = check_var(ctx, KL_FLOAT32, 1, &n, yv);
    kl_var *sq = x ? check_bin(KL_MUL, x, x) : NULL, *xy = x && y ? check_bin(KL_MUL, x, y) : NULL;
    if (sq && xy) {
        CHECK_OK(kl_sync(&sq, 1));
        CHECK_OK(kl_sync(&xy, 1));
        CHECK_EQ_INT(replayed(ctx), 0);
        double *g = check_read(xy);
        for (int i = 0; g && i < 10; i++) CHECK_CLOSE(g[i], xv[i] * yv[i], 0, 0);
        free(g);
    }
    check_release_all(x, y, sq, xy);
    CHECK_OK(kl_context_free(ctx));
}

/* A bound check replayed: its bounds are read afresh, and a value outside
 * them still fails the sync. */
static void test_a_replayed_index_check_still_fails(void)
{
    kl_context *ctx = pinned_context();
    if (!ctx) return;
    int64_t n = 4;
    for (int round = 0; round < 3; round++) {
        double iv[4] = {0, 1, 2, round == 2 ? 7 : 3};
        kl_var *i = check_var(ctx, KL_INT32, 1, &n, iv), *c = NULL, *one = check_scalar(ctx, KL_INT32, 1), *y = NULL;
        if (i) CHECK_OK(kl_check_index(i, 0, 4, "a test's index", &c));
        if (c && one) y = check_bin(KL_ADD, c, one);
        if (y && round < 2) {
            CHECK_OK(kl_sync(&y, 1));
            double *g = check_read(y);
            for (int k = 0; g && k < 4; k++) CHECK_CLOSE(g[k], iv[k] + 1, 0, 0);
            free(g);
        } else if (y) {
            CHECK_STATUS(kl_sync(&y, 1), KL_ERR_INDEX);
            CHECK(strstr(kl_last_error(), "a test's index") != NULL);
        }
        check_release_all(i, c, one, y);
    }
    CHECK_EQ_INT(replayed(ctx), 2);
    CHECK_OK(kl_context_free(ctx));
}

/* With checked plans, every hit is planned again and compared, then its
 * record runs: a training style graph (a matrix product, a maximum with 0,
 * sums) passes the check. */
static void test_checked_hits_equal_fresh_plans(void)
{
    kl_context *ctx = pinned_context();
    if (!ctx) return;
    ctx->plans.check = 1;
    int64_t as[2] = {8, 16}, bs[2] = {16, 4};
    double av[128], bv[64];
    for (int i = 0; i < 128; i++) av[i] = (i % 7) - 3;
    for (int i = 0; i < 64; i++) bv[i] = (i % 5) - 2;
    for (int round = 0; round < 3; round++) {
        kl_var *a = check_var(ctx, KL_FLOAT32, 2, as, av), *b = check_var(ctx, KL_FLOAT32, 2, bs, bv);
        kl_var *a3 = NULL, *b3 = NULL, *p = NULL, *m = NULL, *s = NULL, *zero = check_scalar(ctx, KL_FLOAT32, 0);
        int64_t a3s[3] = {8, 16, 1}, b3s[3] = {1, 16, 4};
        if (a) CHECK_OK(kl_reshape(a, 3, a3s, &a3));
        if (b) CHECK_OK(kl_reshape(b, 3, b3s, &b3));
        kl_var *prod = a3 && b3 ? check_bin(KL_MUL, a3, b3) : NULL;
        int dim1 = 1;
        if (prod) CHECK_OK(kl_reduce(prod, KL_REDUCE_SUM, 1, &dim1, 0, &p)); /* a matrix product */
        if (p && zero) m = check_bin(KL_MAXIMUM, p, zero);
        if (m) CHECK_OK(kl_reduce(m, KL_REDUCE_SUM, 0, NULL, 0, &s));
        if (s) CHECK_OK(kl_sync(&s, 1));
        double want = 0;
        for (int r = 0; r < 8; r++)
            for (int c = 0; c < 4; c++) {
                double dot = 0;
                for (int k = 0; k < 16; k++) dot += av[r * 16 + k] * bv[k * 4 + c];
                want += dot > 0 ? dot : 0;
            }
        double *g = s ? check_read(s) : NULL;
        if (g) CHECK_CLOSE(g[0], want, 1e-6, 1e-6);
        free(g);
        check_release_all(a, b, a3, b3, prod, p, zero, m, s);
    }
    CHECK_EQ_INT(replayed(ctx), 2); /* checked: planned, compared, then replayed */
    CHECK_OK(kl_context_free(ctx));
}

CHECK_MAIN(TEST(test_a_repeated_graph_is_replayed_with_new_values), TEST(test_a_replayed_random_op_draws_anew),
           TEST(test_which_var_an_op_reads_is_structure), TEST(test_a_replayed_index_check_still_fails),
           TEST(test_checked_hits_equal_fresh_plans))
