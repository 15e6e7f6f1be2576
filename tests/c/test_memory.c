/* test_memory.c: vars and buffers are freed deterministically; repeated work
 * keeps memory flat; kl_context_gc empties the allocator's cache. */
#include "check.h"
#include "core/context.h"
#include "backend/cpu/host_alloc.h"

static kl_counters counters(kl_context *ctx)
{
    kl_counters c;
    memset(&c, 0, sizeof c);
    kl_context_counters(ctx, &c);
    return c;
}

static void print_mem(const char *what, kl_counters c)
{
    printf("      %s: vars %llu, in use %llu, cached %llu, peak %llu, allocated %llu\n", what,
           (unsigned long long)c.vars_alive, (unsigned long long)c.bytes_in_use,
           (unsigned long long)c.bytes_cached, (unsigned long long)c.peak_bytes_in_use,
           (unsigned long long)c.bytes_allocated);
}

/* sum(exp(x*2) + x) over n floats, all handles released; returns the sum. */
static double compute_once(kl_context *ctx, int64_t n, float scale)
{
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = scale * (float)(i % 100) * 0.01f;
    kl_var *x = NULL, *two = NULL, *a = NULL, *b = NULL, *c = NULL, *s = NULL;
    double out = NAN;
    if (CHECK_OK(kl_var_from_host(ctx, KL_FLOAT32, 1, &n, v, &x)) && (two = check_scalar(ctx, KL_FLOAT32, 2)) &&
        (a = check_bin(KL_MUL, x, two)) && (b = check_un(KL_EXP, a)) && (c = check_bin(KL_ADD, b, x)) &&
        CHECK_OK(kl_reduce(c, KL_REDUCE_SUM, 0, NULL, 0, &s))) {
        float r;
        if (CHECK_OK(kl_var_copy_to_host(s, &r, sizeof r))) out = r;
    }
    kl_var *all[] = {x, two, a, b, c, s};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    free(v);
    return out;
}

static void test_release_returns_to_baseline(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    kl_counters base = counters(ctx);
    CHECK_EQ_INT(base.vars_alive, 0);
    CHECK_EQ_INT(base.bytes_in_use, 0);
    double s = compute_once(ctx, 10000, 1.0f);
    CHECK(!isnan(s));
    kl_counters after = counters(ctx);
    CHECK_EQ_INT(after.vars_alive, base.vars_alive);
    CHECK_EQ_INT(after.bytes_in_use, base.bytes_in_use);
    CHECK(after.peak_bytes_in_use >= 10000 * sizeof(float));
    CHECK(after.bytes_allocated >= 10000 * sizeof(float));
    /* a var that was never synced */
    int64_t n = 1000;
    kl_var *x = NULL, *y = NULL;
    if (CHECK_OK(kl_full(ctx, KL_FLOAT64, 1, &n, 1, &x)) && CHECK_OK(kl_unary(KL_EXP, x, &y))) {
        CHECK_EQ_INT(counters(ctx).vars_alive, base.vars_alive + 2);
        kl_var_release(x);
        kl_var_release(y);
    }
    after = counters(ctx);
    CHECK_EQ_INT(after.vars_alive, base.vars_alive);
    CHECK_EQ_INT(after.bytes_in_use, base.bytes_in_use);
    if (check_failures_) {
        print_mem("base", base);
        print_mem("after", after);
    }
    kl_context_free(ctx);
}

static void test_computed_var_drops_its_inputs(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    kl_counters base = counters(ctx);
    int64_t n = 1 << 16;
    float *v = calloc((size_t)n, sizeof *v);
    kl_var *x = NULL, *y = NULL;
    if (CHECK_OK(kl_var_from_host(ctx, KL_FLOAT32, 1, &n, v, &x)) && CHECK_OK(kl_unary(KL_EXP, x, &y))) {
        kl_counters held = counters(ctx);
        CHECK_EQ_INT(held.vars_alive, base.vars_alive + 2);
        CHECK_EQ_INT(held.vars_held, base.vars_held + 2);
        CHECK_EQ_INT(held.ops_alive, base.ops_alive + 1); /* y's exp; x is an array */
        CHECK(held.bytes_in_use >= base.bytes_in_use + n * sizeof(float));
        kl_var_release(x); /* y's op still holds x */
        CHECK_EQ_INT(counters(ctx).vars_alive, base.vars_alive + 2);
        CHECK_EQ_INT(counters(ctx).vars_held, base.vars_held + 1);
        CHECK_OK(kl_sync(&y, 1));
        /* y is a leaf now: x and its buffer are gone */
        kl_counters c = counters(ctx);
        CHECK_EQ_INT(c.vars_alive, base.vars_alive + 1);
        CHECK_EQ_INT(c.ops_alive, base.ops_alive);
        CHECK_MSG(c.bytes_in_use <= base.bytes_in_use + (uint64_t)(n * sizeof(float) * 1.25),
                  "in use %llu after x is gone, expected about %llu", (unsigned long long)c.bytes_in_use,
                  (unsigned long long)(base.bytes_in_use + n * sizeof(float)));
        CHECK_EQ_STR(kl_var_op_name(y), "array");
        double *g = check_read(y);
        if (g) {
            CHECK_CLOSE(g[0], 1.0, 0, 0);
            CHECK_CLOSE(g[n - 1], 1.0, 0, 0);
            free(g);
        }
        kl_var_release(y);
    }
    kl_counters end = counters(ctx);
    CHECK_EQ_INT(end.vars_alive, base.vars_alive);
    CHECK_EQ_INT(end.vars_held, base.vars_held);
    CHECK_EQ_INT(end.bytes_in_use, base.bytes_in_use);
    free(v);
    kl_context_free(ctx);
}

static void test_retain_release(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 100;
    kl_var *x = NULL;
    if (CHECK_OK(kl_full(ctx, KL_INT32, 1, &n, 3, &x))) {
        kl_var_retain(x);
        kl_var_release(x);
        CHECK_EQ_INT(counters(ctx).vars_alive, 1);
        int32_t g[100];
        CHECK_OK(kl_var_copy_to_host(x, g, sizeof g));
        CHECK_EQ_INT(g[99], 3);
        CHECK(kl_var_context(x) == ctx);
        kl_var_release(x);
    }
    CHECK_EQ_INT(counters(ctx).vars_alive, 0);
    CHECK_EQ_INT(counters(ctx).bytes_in_use, 0);
    kl_context_free(ctx);
}

/* x_{k+1} = x_k/2 + mean(x_k)/2: every step is its own kernel (the mean needs
 * x_k stored); x_k is freed once step k+1 has read it, not at the sync's end. */
static kl_var *mean_chain(kl_context *ctx, int64_t n, int steps)
{
    kl_var *x = NULL, *half = check_scalar(ctx, KL_FLOAT32, 0.5);
    if (!CHECK_OK(kl_full(ctx, KL_FLOAT32, 1, &n, 1.0, &x))) return NULL;
    for (int k = 0; k < steps && x; k++) {
        kl_var *m = NULL, *a = NULL, *b = NULL, *next = NULL;
        if (CHECK_OK(kl_reduce(x, KL_REDUCE_MEAN, 0, NULL, 0, &m)) && CHECK_OK(kl_binary(KL_MUL, x, half, &a)) &&
            CHECK_OK(kl_binary(KL_MUL, m, half, &b)))
            CHECK_OK(kl_binary(KL_ADD, a, b, &next));
        kl_var_release(m);
        kl_var_release(a);
        kl_var_release(b);
        kl_var_release(x);
        x = next;
    }
    kl_var_release(half);
    return x;
}

static void test_intermediates_freed_during_a_sync(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 1 << 20;
    size_t nbytes = (size_t)n * sizeof(float);
    kl_counters base = counters(ctx);
    kl_var *y = mean_chain(ctx, n, 40);
    if (y && CHECK_OK(kl_sync(&y, 1))) {
        kl_counters c = counters(ctx);
        CHECK_MSG(c.kernels_launched - base.kernels_launched >= 40, "%llu kernels",
                  (unsigned long long)(c.kernels_launched - base.kernels_launched));
        CHECK_MSG(c.peak_bytes_in_use <= base.bytes_in_use + 4 * nbytes, "peak %llu bytes for 40 steps on %zu-byte arrays",
                  (unsigned long long)c.peak_bytes_in_use, nbytes);
    }
    kl_var_release(y);
    CHECK_OK(kl_context_free(ctx));
}

static int stop_after(void *arg)
{
    int *left = arg;
    return --*left < 0;
}

static int count_checks(void *arg)
{
    ++*(int *)arg;
    return 0;
}

/* Stops a fresh chain's sync at the given interrupt check and expects the
 * message to say where; the next sync finishes the rest with the same
 * result. */
static void check_interrupt_at(kl_context *ctx, int steps, int at, const char *where)
{
    kl_var *y = mean_chain(ctx, 1000, steps);
    int left = at;
    kl_context_set_interrupt(ctx, stop_after, &left);
    float got[1000];
    CHECK_STATUS(kl_var_copy_to_host(y, got, sizeof got), KL_ERR_INTERRUPTED);
    CHECK_MSG(strstr(kl_last_error(), where) != NULL, "%s (wanted \"%s\")", kl_last_error(), where);
    CHECK(!kl_var_is_computed(y));
    kl_context_set_interrupt(ctx, NULL, NULL);
    if (CHECK_OK(kl_var_copy_to_host(y, got, sizeof got))) CHECK(got[0] == 1.0f && got[999] == 1.0f);
    kl_var_release(y);
}

/* An interrupt check stops a sync while it plans (a huge graph takes
 * seconds to plan) and between kernels; what ran stays computed. A graph
 * planned before is replayed (src/runtime/step_cache.c): no check while
 * planning, one per kernel run (under one thread count, which the replay
 * needs: pinned, as a busy machine would change it). */
static void test_interrupted_sync_resumes(void)
{
    int set_here = !getenv("KILN_THREADS") && setenv("KILN_THREADS", "2", 0) == 0;
    kl_context *ctx = check_context();
    if (set_here) unsetenv("KILN_THREADS");
    if (!ctx) return;
    ctx->plans.check = 0; /* KILN_CHECK_PLANS plans hits again, with their checks */
    /* one check per kernel planned, then one per kernel run */
    int checks = 0;
    kl_var *twin = mean_chain(ctx, 1000, 30);
    kl_context_set_interrupt(ctx, count_checks, &checks);
    CHECK_OK(kl_sync(&twin, 1));
    kl_context_set_interrupt(ctx, NULL, NULL);
    kl_var_release(twin);
    CHECK_MSG(checks >= 2 * 30 && checks % 2 == 0, "%d checks", checks);
    check_interrupt_at(ctx, 31, 5, "while planning kernel 5 of");
    char between[64];
    snprintf(between, sizeof between, "interrupted after 5 of %d kernels", checks / 2);
    check_interrupt_at(ctx, 30, 5, between); /* the twin's graph: replayed */
    CHECK_OK(kl_context_free(ctx));
}

/* Blocks of changing sizes: what is held stays under the bound (twice the
 * peak in use, at least KL_ALLOC_MIN_CACHE), and a steady loop of one size
 * still reuses its blocks. */
static void test_cached_memory_is_bounded(void)
{
    kl_host_allocator a;
    memset(&a, 0, sizeof a);
    size_t mib = (size_t)1 << 20;
    for (int round = 0; round < 40; round++) {
        size_t n = (size_t)(5 + round) * mib; /* a new size class every round */
        void *p = kl_host_alloc(&a, n), *q = kl_host_alloc(&a, n / 2);
        CHECK(p && q);
        kl_host_free(&a, p, n);
        kl_host_free(&a, q, n / 2);
        uint64_t bound = 2 * a.peak_bytes_in_use > KL_ALLOC_MIN_CACHE ? 2 * a.peak_bytes_in_use : KL_ALLOC_MIN_CACHE;
        CHECK_MSG(a.bytes_in_use + a.bytes_cached <= bound, "round %d: %llu bytes held, bound %llu", round,
                  (unsigned long long)(a.bytes_in_use + a.bytes_cached), (unsigned long long)bound);
    }
    void *first = kl_host_alloc(&a, 3 * mib);
    kl_host_free(&a, first, 3 * mib);
    void *again = kl_host_alloc(&a, 3 * mib);
    CHECK(again == first); /* the steady case reuses */
    kl_host_free(&a, again, 3 * mib);
    kl_host_trim(&a);
    CHECK_EQ_INT(a.bytes_cached, 0);
}

/* A step that uses its size classes at different moments (one large block,
 * then three of another size at once) holds more than its peak in use
 * between steps; the second step gets the first step's blocks back, none
 * from the system. */
static void test_repeated_step_reuses_its_blocks(void)
{
    kl_host_allocator a;
    memset(&a, 0, sizeof a);
    size_t big = (size_t)200 << 20, part = (size_t)90 << 20;
    void *first[4] = {0}, *again[4] = {0};
    for (int step = 0; step < 2; step++) {
        void **got = step ? again : first;
        got[0] = kl_host_alloc(&a, big);
        kl_host_free(&a, got[0], big);
        for (int i = 1; i < 4; i++) got[i] = kl_host_alloc(&a, part);
        for (int i = 1; i < 4; i++) kl_host_free(&a, got[i], part);
    }
    CHECK(first[0] && again[0] == first[0]);
    for (int i = 1; i < 4; i++) {
        int found = 0;
        for (int j = 1; j < 4; j++) found |= again[i] == first[j];
        CHECK_MSG(found, "block %d of the second step is new", i);
    }
    kl_host_trim(&a);
}

/* Large blocks start on a huge page (and are advised to use them); small
 * ones keep the plain alignment. */
static void test_large_blocks_start_on_a_huge_page(void)
{
    kl_host_allocator a;
    memset(&a, 0, sizeof a);
    void *big = kl_host_alloc(&a, KL_ALLOC_HUGE_FROM), *small = kl_host_alloc(&a, 1000);
    CHECK(big && small);
    CHECK_MSG((uintptr_t)big % KL_ALLOC_HUGE_PAGE == 0, "a %zu-byte block at %p", (size_t)KL_ALLOC_HUGE_FROM, big);
    CHECK((uintptr_t)small % KL_ALLOC_ALIGN == 0);
    memset(big, 1, KL_ALLOC_HUGE_FROM); /* usable to its end */
    kl_host_free(&a, big, KL_ALLOC_HUGE_FROM);
    kl_host_free(&a, small, 1000);
    kl_host_trim(&a);
}

static void test_intermediates_freed_in_a_long_chain(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 1 << 20;
    size_t nbytes = (size_t)n * sizeof(float);
    float *v = malloc(nbytes);
    for (int64_t i = 0; i < n; i++) v[i] = (float)(i % 10) * 0.1f;
    kl_counters base = counters(ctx);
    kl_var *x = NULL, *cur = NULL;
    if (CHECK_OK(kl_var_from_host(ctx, KL_FLOAT32, 1, &n, v, &x))) {
        kl_var_retain(x);
        cur = x;
        kl_var *half = check_scalar(ctx, KL_FLOAT32, 0.5);
        for (int k = 0; k < 12 && cur; k++) {
            kl_var *next = (k % 3 == 0) ? check_un(KL_SIN, cur)
                          : (k % 3 == 1) ? check_bin(KL_ADD, cur, x) : check_bin(KL_MUL, cur, half);
            kl_var_release(cur);
            cur = next;
        }
        check_release(half);
        if (cur) {
            CHECK_OK(kl_sync(&cur, 1));
            kl_counters c = counters(ctx);
            /* x and the result; the twelve intermediates are gone */
            CHECK_MSG(c.bytes_in_use <= base.bytes_in_use + (uint64_t)(2.25 * nbytes),
                      "in use %llu after the chain, expected about %llu",
                      (unsigned long long)(c.bytes_in_use - base.bytes_in_use),
                      (unsigned long long)(2 * nbytes));
            CHECK_EQ_INT(c.vars_alive, base.vars_alive + 2);
            /* peak: fusion (or freeing after last use) keeps it to a few buffers */
            CHECK_MSG(c.peak_bytes_in_use <= base.bytes_in_use + 4 * nbytes,
                      "peak %llu for a chain on %zu-byte arrays",
                      (unsigned long long)c.peak_bytes_in_use, nbytes);
            kl_var_release(cur);
        }
        kl_var_release(x);
    }
    kl_counters end = counters(ctx);
    CHECK_EQ_INT(end.vars_alive, base.vars_alive);
    CHECK_EQ_INT(end.bytes_in_use, base.bytes_in_use);
    free(v);
    kl_context_free(ctx);
}

static void test_repeated_work_stays_flat(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    double first = compute_once(ctx, 50000, 1.0f);
    kl_counters after_one = counters(ctx);
    compute_once(ctx, 50000, 1.0f);
    kl_counters after_two = counters(ctx);
    int flat = 1;
    for (int it = 0; it < 100; it++) {
        double s = compute_once(ctx, 50000, 1.0f);
        if (s != first) {
            CHECK_MSG(s == first, "iteration %d: %.9g, first %.9g", it, s, first);
            break;
        }
        kl_counters c = counters(ctx);
        if (c.bytes_in_use != after_one.bytes_in_use || c.vars_alive != after_one.vars_alive) {
            flat = 0;
            CHECK_MSG(0, "iteration %d: in use %llu (first %llu), vars %llu (first %llu)", it,
                      (unsigned long long)c.bytes_in_use, (unsigned long long)after_one.bytes_in_use,
                      (unsigned long long)c.vars_alive, (unsigned long long)after_one.vars_alive);
            break;
        }
    }
    kl_counters end = counters(ctx);
    CHECK(flat);
    CHECK_EQ_INT(end.peak_bytes_in_use, after_two.peak_bytes_in_use);
    CHECK_MSG(end.bytes_cached <= after_two.bytes_cached,
              "cached grew from %llu to %llu over 100 iterations",
              (unsigned long long)after_two.bytes_cached, (unsigned long long)end.bytes_cached);
    /* the kernels were reused */
    CHECK_EQ_INT(end.kernels_compiled, after_one.kernels_compiled);
    /* holding one input across iterations too */
    int64_t n = 50000;
    kl_var *x = NULL;
    if (CHECK_OK(kl_full(ctx, KL_FLOAT32, 1, &n, 0.5, &x)) && CHECK_OK(kl_sync(&x, 1))) {
        kl_counters held = counters(ctx);
        for (int it = 0; it < 100; it++) {
            kl_var *y = check_un(KL_EXP, x), *s = NULL;
            if (y && CHECK_OK(kl_reduce(y, KL_REDUCE_SUM, 0, NULL, 0, &s))) {
                float r;
                CHECK_OK(kl_var_copy_to_host(s, &r, sizeof r));
            }
            check_release(y);
            check_release(s);
            kl_counters c = counters(ctx);
            if (c.bytes_in_use != held.bytes_in_use || c.vars_alive != held.vars_alive) {
                CHECK_MSG(0, "held-input iteration %d: in use %llu vs %llu, vars %llu vs %llu", it,
                          (unsigned long long)c.bytes_in_use, (unsigned long long)held.bytes_in_use,
                          (unsigned long long)c.vars_alive, (unsigned long long)held.vars_alive);
                break;
            }
        }
        kl_var_release(x);
    }
    if (check_failures_) {
        print_mem("after one", after_one);
        print_mem("after two", after_two);
        print_mem("end", end);
    }
    kl_context_free(ctx);
}

static void test_gc_empties_cache(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    for (int k = 0; k < 3; k++) compute_once(ctx, 100000 * (k + 1), 1.0f);
    kl_counters before = counters(ctx);
    CHECK_EQ_INT(before.bytes_in_use, 0);
    CHECK_MSG(before.bytes_cached > 0, "nothing cached after freeing buffers (a caching allocator keeps them)");
    kl_context_gc(ctx);
    kl_counters after = counters(ctx);
    CHECK_EQ_INT(after.bytes_cached, 0);
    CHECK_EQ_INT(after.bytes_in_use, 0);
    /* still usable afterwards, and gc with live vars keeps them intact */
    int64_t n = 1000;
    kl_var *x = NULL;
    if (CHECK_OK(kl_full(ctx, KL_FLOAT64, 1, &n, 2.5, &x)) && CHECK_OK(kl_sync(&x, 1))) {
        compute_once(ctx, 4000, 1.0f);
        kl_context_gc(ctx);
        CHECK_EQ_INT(counters(ctx).bytes_cached, 0);
        CHECK(counters(ctx).bytes_in_use >= 1000 * sizeof(double));
        double *g = check_read(x);
        if (g) {
            CHECK_CLOSE(g[0], 2.5, 0, 0);
            CHECK_CLOSE(g[999], 2.5, 0, 0);
            free(g);
        }
        kl_var_release(x);
    }
    CHECK(!isnan(compute_once(ctx, 1000, 1.0f)));
    kl_context_gc(ctx);
    CHECK_EQ_INT(counters(ctx).bytes_cached, 0);
    CHECK_EQ_INT(counters(ctx).bytes_in_use, 0);
    kl_context_free(ctx);
}

/* kl_sync_all computes the pending vars a handle holds, not the ones only
 * the graph holds (those fuse into their consumers), and a freed pending var
 * leaves the list. */
static void test_sync_all_computes_held_pending_vars(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 3;
    double vals[3] = {1, 2, 3};
    kl_var *x = check_var(ctx, KL_FLOAT32, 1, &n, vals);
    kl_var *mid = NULL, *held = NULL, *dropped = NULL;
    if (x && CHECK_OK(kl_unary(KL_EXP, x, &mid)) && CHECK_OK(kl_binary(KL_ADD, mid, x, &held)) &&
        CHECK_OK(kl_unary(KL_NEG, x, &dropped))) {
        kl_var_release(mid);      /* only the graph holds it now */
        kl_var_release(dropped);  /* freed while pending */
        kl_counters before, after;
        kl_context_counters(ctx, &before);
        CHECK_OK(kl_sync_all(ctx));
        kl_context_counters(ctx, &after);
        CHECK(kl_var_is_computed(held));
        CHECK_EQ_INT(after.kernels_launched - before.kernels_launched, 1);
        double *got = check_read(held);
        if (got) for (int i = 0; i < 3; i++) CHECK_CLOSE(got[i], exp(vals[i]) + vals[i], 1e-6, 1e-6);
        free(got);
        CHECK_OK(kl_sync_all(ctx)); /* nothing pending: a no-op */
    }
    check_release(held);
    check_release(x);
    kl_context_free(ctx);
}

CHECK_MAIN(TEST(test_sync_all_computes_held_pending_vars), TEST(test_release_returns_to_baseline), TEST(test_computed_var_drops_its_inputs),
           TEST(test_retain_release), TEST(test_intermediates_freed_in_a_long_chain),
           TEST(test_intermediates_freed_during_a_sync), TEST(test_interrupted_sync_resumes),
           TEST(test_cached_memory_is_bounded), TEST(test_repeated_step_reuses_its_blocks), TEST(test_large_blocks_start_on_a_huge_page),
           TEST(test_repeated_work_stays_flat), TEST(test_gc_empties_cache))
