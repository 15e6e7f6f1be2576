/* test_siblings.c: sums over the same loops share one kernel (src/opt/siblings.c)
 * in every loop form the CPU renderer prints, give the values separate
 * kernels give (float64 references), and never share one when one sum
 * needs the other, or when a kernel between them needs the first;
 * element-wise results of one shape share a loop, one reading the other
 * where it reads it element by element, and only those. */
#include "check.h"

static uint64_t launched(kl_context *ctx)
{
    kl_counters c;
    memset(&c, 0, sizeof c);
    kl_context_counters(ctx, &c);
    return c.kernels_launched;
}

/* Values 3 + u, u in [-1, 1): sums of squares that a float sum would round. */
static kl_var *filled(kl_context *ctx, kl_dtype t, int ndim, const int64_t *shape, double **vals, int64_t *n)
{
    *n = 1;
    for (int d = 0; d < ndim; d++) *n *= shape[d];
    *vals = malloc((size_t)*n * sizeof **vals);
    uint64_t st = 7;
    for (int64_t i = 0; i < *n; i++) (*vals)[i] = check_round_to(t, 3 + 2 * check_rand01(&st) - 1);
    return check_var(ctx, t, ndim, shape, *vals);
}

/* The float64 sums of x and of x * x over the dims in mask (keepdims off). */
static void reference_sums(const double *x, int ndim, const int64_t *shape, unsigned mask, double *s1, double *s2,
                           int64_t *n_out)
{
    int64_t n = 1, outn = 1;
    for (int d = 0; d < ndim; d++) {
        n *= shape[d];
        if (!(mask >> d & 1)) outn *= shape[d];
    }
    for (int64_t o = 0; o < outn; o++) s1[o] = s2[o] = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t rest = i, o = 0, scale = 1;
        for (int d = ndim - 1; d >= 0; d--) {
            int64_t c = rest % shape[d];
            rest /= shape[d];
            if (!(mask >> d & 1)) { o += c * scale; scale *= shape[d]; }
        }
        s1[o] += x[i];
        s2[o] += x[i] * x[i];
    }
    *n_out = outn;
}

/* sum(x) and sum(x * x) over dims, synced together: one kernel, both right. */
static void check_pair(kl_dtype t, int ndim, const int64_t *shape, int ndims, const int *dims, const char *form)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    double *vals = NULL;
    int64_t n;
    kl_var *x = filled(ctx, t, ndim, shape, &vals, &n);
    kl_var *sq = x ? check_bin(KL_MUL, x, x) : NULL;
    kl_var *s[2] = {NULL, NULL};
    if (sq) {
        CHECK_OK(kl_reduce(x, KL_REDUCE_SUM, ndims, dims, 0, &s[0]));
        CHECK_OK(kl_reduce(sq, KL_REDUCE_SUM, ndims, dims, 0, &s[1]));
    }
    check_release(sq); /* held, it would be a kernel's result of its own */
    sq = NULL;
    if (s[0] && s[1]) {
        uint64_t before = launched(ctx);
        CHECK_OK(kl_sync(s, 2));
        CHECK_MSG(launched(ctx) - before == 1, "%s: the two sums ran as %llu kernels", form,
                  (unsigned long long)(launched(ctx) - before));
        unsigned mask = 0;
        for (int i = 0; i < ndims; i++) mask |= 1u << dims[i];
        double *w1 = malloc((size_t)n * sizeof *w1), *w2 = malloc((size_t)n * sizeof *w2);
        int64_t outn;
        reference_sums(vals, ndim, shape, mask, w1, w2, &outn);
        double *g1 = check_read(s[0]), *g2 = check_read(s[1]);
        double rtol = t == KL_FLOAT64 ? 1e-12 : 1e-6;
        if (g1) CHECK_ARRAY_CLOSE(g1, w1, outn, rtol, 0, form);
        if (g2) CHECK_ARRAY_CLOSE(g2, w2, outn, rtol, 0, form);
        free(g1);
        free(g2);
        free(w1);
        free(w2);
    }
    free(vals);
    check_release(s[0]);
    check_release(s[1]);
    check_release(sq);
    check_release(x);
    CHECK_OK(kl_context_free(ctx));
}

static void test_rows(void) /* a batch norm's statistics: the innermost dim reduced */
{
    int64_t shape[] = {3, 20, 9, 70};
    int dims[] = {0, 2, 3};
    check_pair(KL_FLOAT32, 4, shape, 3, dims, "rows");
    check_pair(KL_FLOAT64, 4, shape, 3, dims, "rows, float64");
}

static void test_long_rows_in_parallel(void) /* few outputs, a long range split between threads */
{
    int64_t shape[] = {2, 3, 40000};
    int dims[] = {0, 2};
    check_pair(KL_FLOAT32, 3, shape, 2, dims, "long rows");
}

static void test_columns(void) /* a 2-d batch norm's: the innermost dim kept */
{
    int64_t shape[] = {300, 37};
    int dims[] = {0};
    check_pair(KL_FLOAT32, 2, shape, 1, dims, "columns");
    check_pair(KL_FLOAT64, 2, shape, 1, dims, "columns, float64");
}

static void test_flat(void) /* trailing dims reduced, no index arithmetic */
{
    int64_t shape[] = {5, 40, 50};
    int dims[] = {1, 2};
    check_pair(KL_FLOAT32, 3, shape, 2, dims, "flat");
    int64_t whole[] = {100000};
    int all[] = {0};
    check_pair(KL_FLOAT32, 1, whole, 1, all, "flat, one output");
}

static void test_short_window(void) /* reduced extents written into the kernel */
{
    int64_t shape[] = {6, 3, 4, 5};
    int dims[] = {2};
    check_pair(KL_FLOAT32, 4, shape, 1, dims, "short window");
}

/* t = sum(x) * 2 is asked for first, so a kernel computing t comes between
 * sum(x) and sum(x * x) in the graph's order: the pair is one kernel in
 * sum(x)'s place (the later sum needs nothing computed between them). */
static void test_reader_between_moves_the_pair_back(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t shape[] = {4, 3000}, n;
    double *vals = NULL;
    kl_var *x = filled(ctx, KL_FLOAT32, 2, shape, &vals, &n);
    int dims[] = {1};
    kl_var *s1 = NULL, *s2 = NULL, *sq = x ? check_bin(KL_MUL, x, x) : NULL;
    kl_var *two = check_scalar(ctx, KL_FLOAT32, 2), *t = NULL;
    if (x) CHECK_OK(kl_reduce(x, KL_REDUCE_SUM, 1, dims, 0, &s1));
    if (s1) t = check_bin(KL_MUL, s1, two);
    if (sq) CHECK_OK(kl_reduce(sq, KL_REDUCE_SUM, 1, dims, 0, &s2));
    check_release(sq);
    check_release(s1);
    sq = s1 = NULL;
    if (t && s2) {
        kl_var *asked[] = {t, s2};
        uint64_t before = launched(ctx);
        CHECK_OK(kl_sync(asked, 2));
        CHECK_MSG(launched(ctx) - before == 2, "the sums and t ran as %llu kernels, expected 2",
                  (unsigned long long)(launched(ctx) - before));
        double w1[4], w2[4];
        int64_t outn;
        reference_sums(vals, 2, shape, 2u, w1, w2, &outn);
        double *gt = check_read(t), *g2 = check_read(s2);
        for (int r = 0; gt && g2 && r < 4; r++) {
            CHECK_CLOSE(gt[r], 2 * w1[r], 1e-6, 0);
            CHECK_CLOSE(g2[r], w2[r], 1e-6, 0);
        }
        free(gt);
        free(g2);
    }
    free(vals);
    check_release_all(x, s1, s2, sq, two, t);
    CHECK_OK(kl_context_free(ctx));
}

/* s2 = sum(x * t), t = sum(x) * 2, over the same loops as s1 = sum(x):
 * s2 needs s1, so they are never one kernel, with t inlined into s2 or a
 * kernel of its own between them (stop_fuse); each result is right. */
static void check_chained_sums(int t_own_kernel)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t shape[] = {4, 6}, n;
    double *vals = NULL;
    kl_var *x = filled(ctx, KL_FLOAT32, 2, shape, &vals, &n);
    int dims[] = {1};
    kl_var *s1 = NULL, *t = NULL, *p = NULL, *s2 = NULL, *two = check_scalar(ctx, KL_FLOAT32, 2);
    if (x) CHECK_OK(kl_reduce(x, KL_REDUCE_SUM, 1, dims, 1, &s1));
    if (s1) t = check_bin(KL_MUL, s1, two);
    if (t && t_own_kernel) CHECK_OK(kl_var_stop_fuse(t));
    if (t) p = check_bin(KL_MUL, x, t);
    if (p) CHECK_OK(kl_reduce(p, KL_REDUCE_SUM, 1, dims, 1, &s2));
    if (s2) {
        kl_var *asked[] = {s1, s2};
        CHECK_OK(kl_sync(asked, 2));
        double *g1 = check_read(s1), *g2 = check_read(s2);
        for (int r = 0; g1 && g2 && r < 4; r++) {
            double s = 0, want = 0;
            for (int c = 0; c < 6; c++) s += vals[r * 6 + c];
            for (int c = 0; c < 6; c++) want += vals[r * 6 + c] * (2 * (float)s);
            CHECK_CLOSE(g1[r], s, 1e-6, 0);
            CHECK_CLOSE(g2[r], want, 1e-6, 0);
        }
        free(g1);
        free(g2);
    }
    free(vals);
    check_release_all(x, s1, t, p, s2, two);
    CHECK_OK(kl_context_free(ctx));
}

static void test_dependent_sums_stay_apart(void) { check_chained_sums(0); }

static void test_chained_through_a_kernel_stays_apart(void) { check_chained_sums(1); }

/* m = sum(x) asked first, p = sum(x * y), a running value 0.9 * r + 0.1 * p
 * between p and v = sum((x - m)^2): v moves back into p's kernel (the
 * running value reads p), and then m must not join it (v reads m). Every
 * result right, no kernel reads what is not yet computed. */
static void test_a_moved_sibling_keeps_its_reads(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t shape[] = {5000}, n;
    double *xv = NULL, *yv = NULL;
    kl_var *x = filled(ctx, KL_FLOAT32, 1, shape, &xv, &n), *y = filled(ctx, KL_FLOAT32, 1, shape, &yv, &n);
    kl_var *r = check_scalar(ctx, KL_FLOAT32, 2), *c9 = check_scalar(ctx, KL_FLOAT32, 0.9);
    kl_var *c1 = check_scalar(ctx, KL_FLOAT32, 0.1), *inv = check_scalar(ctx, KL_FLOAT32, 1.0 / 5000);
    kl_var *m = NULL, *p = NULL, *v = NULL, *xy = check_bin(KL_MUL, x, y);
    if (x) CHECK_OK(kl_reduce(x, KL_REDUCE_SUM, 0, NULL, 0, &m));
    if (xy) CHECK_OK(kl_reduce(xy, KL_REDUCE_SUM, 0, NULL, 0, &p));
    kl_var *r9 = check_bin(KL_MUL, r, c9), *p1 = p ? check_bin(KL_MUL, p, c1) : NULL;
    kl_var *running = p1 ? check_bin(KL_ADD, r9, p1) : NULL;
    kl_var *mean = m ? check_bin(KL_MUL, m, inv) : NULL, *mb = NULL, *d = NULL, *dd = NULL;
    if (mean) CHECK_OK(kl_broadcast_to(mean, 1, shape, 0, NULL, &mb));
    if (mb) d = check_bin(KL_SUB, x, mb);
    if (d) dd = check_bin(KL_MUL, d, d);
    if (dd) CHECK_OK(kl_reduce(dd, KL_REDUCE_SUM, 0, NULL, 0, &v));
    check_release_all(xy, r9, p1, mean, mb, d, dd);
    if (m && running && v) {
        kl_var *asked[] = {m, running, v};
        CHECK_OK(kl_sync(asked, 3));
        double sm = 0, sp = 0, sv = 0;
        for (int64_t i = 0; i < n; i++) { sm += (float)xv[i]; sp += (float)xv[i] * (float)yv[i]; }
        float fm = (float)(sm / 5000);
        for (int64_t i = 0; i < n; i++) sv += ((float)xv[i] - fm) * ((float)xv[i] - fm);
        double *gm = check_read(m), *gr = check_read(running), *gv = check_read(v);
        if (gm) CHECK_CLOSE(gm[0], sm, 1e-6, 0);
        if (gr) CHECK_CLOSE(gr[0], 1.8 + 0.1 * sp, 1e-6, 0);
        if (gv) CHECK_CLOSE(gv[0], sv, 1e-5, 0);
        free(gm);
        free(gr);
        free(gv);
    }
    free(xv);
    free(yv);
    check_release_all(x, y, r, c9, c1, inv, m, p, v, running);
    CHECK_OK(kl_context_free(ctx));
}

/* An optimiser's step: m2 = m * 0.9 + g, p2 = p - m2 * 0.01 (reading m2
 * element by element) is one kernel with two outputs, both right; and
 * with a third output of another dtype (p2 > 0.5 as int32). */
static void test_map_siblings_share_a_loop(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t shape[] = {300, 7}, n;
    double *pv = NULL, *gv = NULL, *mv = NULL;
    kl_var *p = filled(ctx, KL_FLOAT32, 2, shape, &pv, &n), *g = filled(ctx, KL_FLOAT32, 2, shape, &gv, &n);
    kl_var *m = filled(ctx, KL_FLOAT32, 2, shape, &mv, &n);
    kl_var *c9 = check_scalar(ctx, KL_FLOAT32, 0.9), *c01 = check_scalar(ctx, KL_FLOAT32, 0.01);
    kl_var *half = check_scalar(ctx, KL_FLOAT32, 3.5);
    kl_var *mm = check_bin(KL_MUL, m, c9), *m2 = check_bin(KL_ADD, mm, g), *step = check_bin(KL_MUL, m2, c01);
    kl_var *p2 = check_bin(KL_SUB, p, step), *big = check_bin(KL_GREATER, p2, half), *flag = NULL;
    if (big) CHECK_OK(kl_cast(big, KL_INT32, &flag));
    check_release(mm);
    check_release(step);
    check_release(big);
    if (flag) {
        kl_var *asked[] = {m2, p2, flag};
        uint64_t before = launched(ctx);
        CHECK_OK(kl_sync(asked, 3));
        CHECK_MSG(launched(ctx) - before == 1, "the step ran as %llu kernels", (unsigned long long)(launched(ctx) - before));
        double *gm = check_read(m2), *gp = check_read(p2), *gf = check_read(flag);
        for (int64_t i = 0; gm && gp && gf && i < n; i++) {
            float wm = (float)((float)mv[i] * 0.9f + (float)gv[i]), wp = (float)pv[i] - wm * 0.01f;
            if (!CHECK_CLOSE(gm[i], wm, 1e-6, 0) || !CHECK_CLOSE(gp[i], wp, 1e-6, 0) ||
                !CHECK_EQ_INT((long long)gf[i], gp[i] > 3.5))
                break;
        }
        free(gm);
        free(gp);
        free(gf);
    }
    free(pv);
    free(gv);
    free(mv);
    check_release_all(p, g, m, c9, c01, half, m2, p2, flag);
    CHECK_OK(kl_context_free(ctx));
}

/* Maps that share no input, or where one reads the other at other
 * positions (a transpose), stay apart, and right. */
static void test_map_siblings_only_where_they_should(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t shape[] = {40, 40}, n;
    double *xv = NULL, *yv = NULL;
    kl_var *x = filled(ctx, KL_FLOAT32, 2, shape, &xv, &n), *y = filled(ctx, KL_FLOAT32, 2, shape, &yv, &n);
    kl_var *two = check_scalar(ctx, KL_FLOAT32, 2), *three = check_scalar(ctx, KL_FLOAT32, 3);
    kl_var *a = check_bin(KL_MUL, x, two), *b = check_bin(KL_MUL, y, three), *at = NULL, *c = NULL;
    const char *swap[] = {"i1", "i0"};
    if (a) CHECK_OK(kl_reindex(a, 2, shape, swap, 0, 0, NULL, 0, NULL, &at));
    if (at) c = check_bin(KL_ADD, at, x);
    check_release(at);
    if (c && b) {
        kl_var *asked[] = {a, b, c};
        uint64_t before = launched(ctx);
        CHECK_OK(kl_sync(asked, 3));
        CHECK_MSG(launched(ctx) - before == 3, "ran as %llu kernels, expected 3", (unsigned long long)(launched(ctx) - before));
        double *gb = check_read(b), *gc = check_read(c);
        for (int i = 0; gb && gc && i < 40; i++)
            for (int j = 0; j < 40; j++) {
                if (!CHECK_CLOSE(gb[i * 40 + j], (float)yv[i * 40 + j] * 3.0f, 1e-6, 0)) i = 40;
                else if (!CHECK_CLOSE(gc[i * 40 + j], (float)xv[j * 40 + i] * 2.0f + (float)xv[i * 40 + j], 1e-6, 0)) i = 40;
            }
        free(gb);
        free(gc);
    }
    free(xv);
    free(yv);
    check_release_all(x, y, two, three, a, b, c);
    CHECK_OK(kl_context_free(ctx));
}

/* b = float32(a), a = x as float16 or bfloat16: b reads a as stored,
 * rounded, never the value before rounding (a sibling computed in b's loop
 * would give that). */
static void test_rounded_dtypes_are_read_as_stored(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t shape[] = {4};
    double vals[] = {1.00390625, 1.01171875, 0.1, 123.456};
    kl_dtype rounded[] = {KL_BFLOAT16, KL_FLOAT16};
    for (int t = 0; t < 2; t++) {
        kl_var *x = check_var(ctx, KL_FLOAT32, 1, shape, vals), *a = NULL, *b = NULL;
        if (x) CHECK_OK(kl_cast(x, rounded[t], &a));
        if (a) CHECK_OK(kl_cast(a, KL_FLOAT32, &b));
        if (b) {
            kl_var *asked[] = {a, b};
            CHECK_OK(kl_sync(asked, 2));
            double *got = check_read(b);
            for (int i = 0; got && i < 4; i++)
                CHECK_MSG(got[i] == check_round_to(rounded[t], (float)vals[i]), "%s: %.9g read as %.9g",
                          kl_dtype_name(rounded[t]), vals[i], got[i]);
            free(got);
        }
        check_release(x);
        check_release(a);
        check_release(b);
    }
    CHECK_OK(kl_context_free(ctx));
}

CHECK_MAIN(TEST(test_rows), TEST(test_long_rows_in_parallel), TEST(test_columns), TEST(test_flat),
           TEST(test_short_window), TEST(test_dependent_sums_stay_apart), TEST(test_reader_between_moves_the_pair_back),
           TEST(test_chained_through_a_kernel_stays_apart), TEST(test_map_siblings_share_a_loop),
           TEST(test_map_siblings_only_where_they_should), TEST(test_rounded_dtypes_are_read_as_stored),
           TEST(test_a_moved_sibling_keeps_its_reads))
