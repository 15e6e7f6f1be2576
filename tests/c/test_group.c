/* test_group.c: fused kernels of one structure whose results nothing else
 * in the sync reads run as one launch (src/runtime/group.c): values equal
 * to float64 references for members of many sizes, ranks and constants,
 * split over the threads across members; a result a later kernel reads
 * never waits for its group, an alias of one waits with it; members with
 * sibling outputs keep them. */
#include "check.h"

static uint64_t launched(kl_context *ctx)
{
    kl_counters c;
    memset(&c, 0, sizeof c);
    kl_context_counters(ctx, &c);
    return c.kernels_launched;
}

/* An input of n elements (as rank `ndim`: rows of 8 when 2), values in [-2, 2). */
static kl_var *input(kl_context *ctx, int64_t n, int ndim, double **vals, uint64_t seed)
{
    *vals = malloc((size_t)n * sizeof **vals);
    for (int64_t i = 0; i < n; i++) (*vals)[i] = check_round_to(KL_FLOAT32, 4 * check_rand01(&seed) - 2);
    int64_t shape[2] = {ndim == 2 ? n / 8 : n, 8};
    return check_var(ctx, KL_FLOAT32, ndim, shape, *vals);
}

/* x * c + 1 */
static kl_var *affine(kl_var *x, double c)
{
    kl_context *ctx = kl_var_context(x);
    kl_var *cv = check_scalar(ctx, KL_FLOAT32, c), *one = check_scalar(ctx, KL_FLOAT32, 1);
    kl_var *a = cv ? check_bin(KL_MUL, x, cv) : NULL, *y = a && one ? check_bin(KL_ADD, a, one) : NULL;
    check_release_all(cv, one, a);
    return y;
}

static void check_affine(kl_var *y, const double *x, int64_t n, double c, const char *label)
{
    double *got = check_read(y), *want = malloc((size_t)n * sizeof *want);
    for (int64_t i = 0; i < n; i++) want[i] = check_round_to(KL_FLOAT32, x[i] * c + 1);
    if (got) CHECK_ARRAY_CLOSE(got, want, n, 1e-6, 1e-6, label);
    free(got);
    free(want);
}

#define MEMBERS 7

/* Members of 1 to 40000 elements (over the threads' threshold together),
 * vectors and matrices, each with its own constant: one launch. */
static void test_maps_of_one_structure_are_one_launch(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    const int64_t sizes[MEMBERS] = {1, 17, 40000, 3, 4096, 8, 25000};
    kl_var *x[MEMBERS], *y[MEMBERS];
    double *vals[MEMBERS];
    for (int m = 0; m < MEMBERS; m++) {
        x[m] = input(ctx, sizes[m], sizes[m] % 8 == 0 ? 2 : 1, &vals[m], 11 + (uint64_t)m);
        y[m] = x[m] ? affine(x[m], 0.5 + m) : NULL;
    }
    int ok = 1;
    for (int m = 0; m < MEMBERS; m++) ok &= y[m] != NULL;
    if (ok) {
        uint64_t before = launched(ctx);
        CHECK_OK(kl_sync(y, MEMBERS));
        CHECK_EQ_INT(launched(ctx) - before, 1);
        for (int m = 0; m < MEMBERS; m++) {
            char label[32];
            snprintf(label, sizeof label, "member %d", m);
            check_affine(y[m], vals[m], sizes[m], 0.5 + m, label);
        }
    }
    for (int m = 0; m < MEMBERS; m++) {
        check_release_all(x[m], y[m]);
        free(vals[m]);
    }
    CHECK_OK(kl_context_free(ctx));
}

/* y1 is read by z (its sum: no sibling of it), which runs before y2: y1
 * cannot wait for y2. */
static void test_a_result_a_later_kernel_reads_runs_in_its_place(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    double *v1, *v2;
    kl_var *x1 = input(ctx, 100, 1, &v1, 3), *x2 = input(ctx, 300, 1, &v2, 4);
    kl_var *y1 = x1 ? affine(x1, 2) : NULL, *y2 = x2 ? affine(x2, 3) : NULL;
    kl_var *z = NULL;
    int dim0 = 0;
    if (y1) {
        CHECK_OK(kl_var_stop_fuse(y1)); /* z reads it from memory */
        CHECK_OK(kl_reduce(y1, KL_REDUCE_SUM, 1, &dim0, 0, &z));
    }
    if (z && y2) {
        kl_var *order[3] = {y1, z, y2};
        CHECK_OK(kl_sync(order, 3));
        check_affine(y1, v1, 100, 2, "y1");
        check_affine(y2, v2, 300, 3, "y2");
        double *gz = check_read(z), want = 0;
        for (int i = 0; i < 100; i++) want += check_round_to(KL_FLOAT32, v1[i] * 2 + 1);
        if (gz) CHECK_CLOSE(gz[0], want, 1e-5, 1e-5);
        free(gz);
    }
    check_release_all(x1, x2, y1, y2, z);
    free(v1);
    free(v2);
    CHECK_OK(kl_context_free(ctx));
}

/* An alias of a waiting result (a reshape) runs after the group: right values. */
static void test_an_alias_of_a_waiting_result_waits_with_it(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    double *v1, *v2;
    kl_var *x1 = input(ctx, 64, 1, &v1, 5), *x2 = input(ctx, 40, 1, &v2, 6);
    kl_var *y1 = x1 ? affine(x1, -1) : NULL, *y2 = x2 ? affine(x2, 4) : NULL, *r = NULL;
    int64_t rows[2] = {8, 8};
    if (y1) CHECK_OK(kl_reshape(y1, 2, rows, &r));
    if (r && y2) {
        kl_var *order[3] = {y1, r, y2};
        uint64_t before = launched(ctx);
        CHECK_OK(kl_sync(order, 3));
        CHECK_EQ_INT(launched(ctx) - before, 1);
        check_affine(r, v1, 64, -1, "reshaped y1");
        check_affine(y2, v2, 40, 4, "y2");
    }
    check_release_all(x1, x2, y1, y2, r);
    free(v1);
    free(v2);
    CHECK_OK(kl_context_free(ctx));
}

/* Each member computes two results (u = x * 2 + 1 and v = u * x, siblings
 * of one loop): the group stores both of every member. */
static void test_members_keep_their_sibling_outputs(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    const int64_t sizes[3] = {5, 33000, 12};
    kl_var *x[3], *u[3], *v[3];
    double *vals[3];
    for (int m = 0; m < 3; m++) {
        x[m] = input(ctx, sizes[m], 1, &vals[m], 20 + (uint64_t)m);
        u[m] = x[m] ? affine(x[m], 2) : NULL;
        v[m] = u[m] ? check_bin(KL_MUL, u[m], x[m]) : NULL;
    }
    kl_var *all[6] = {u[0], v[0], u[1], v[1], u[2], v[2]};
    int ok = 1;
    for (int i = 0; i < 6; i++) ok &= all[i] != NULL;
    if (ok) {
        uint64_t before = launched(ctx);
        CHECK_OK(kl_sync(all, 6));
        CHECK_EQ_INT(launched(ctx) - before, 1);
        for (int m = 0; m < 3; m++) {
            check_affine(u[m], vals[m], sizes[m], 2, "u");
            double *g = check_read(v[m]);
            for (int64_t i = 0; g && i < sizes[m]; i++)
                CHECK_CLOSE(g[i], check_round_to(KL_FLOAT32, vals[m][i] * 2 + 1) * vals[m][i], 1e-6, 1e-6);
            free(g);
        }
    }
    for (int m = 0; m < 3; m++) {
        check_release_all(x[m], u[m], v[m]);
        free(vals[m]);
    }
    CHECK_OK(kl_context_free(ctx));
}

CHECK_MAIN(TEST(test_maps_of_one_structure_are_one_launch), TEST(test_a_result_a_later_kernel_reads_runs_in_its_place),
           TEST(test_an_alias_of_a_waiting_result_waits_with_it), TEST(test_members_keep_their_sibling_outputs))
