/* The MPI collectives in a world of one rank (no mpirun): each is the
 * identity with the identity gradient, a bucket packs its vars, and bad
 * arguments are refused with a message. The two-rank behaviour is tested
 * under mpirun by tests/python/test_distributed.py. */
#include "check.h"
#include <stdlib.h>
#include <string.h>

static kl_context *world_of_one(void)
{
    unsetenv("OMPI_COMM_WORLD_SIZE");
    kl_context *ctx = NULL;
    if (!CHECK_OK(kl_context_new(&ctx))) return NULL;
    CHECK_OK(kl_mpi_start(ctx));
    CHECK_EQ_INT(kl_mpi_rank(ctx), 0);
    CHECK_EQ_INT(kl_mpi_world_size(ctx), 1);
    CHECK_EQ_INT(kl_mpi_local_rank(ctx), 0);
    CHECK_EQ_INT(kl_mpi_local_size(ctx), 1);
    return ctx;
}

static void check_values(kl_var *v, const double *want, int n)
{
    double *got = check_read(v);
    if (got) CHECK_ARRAY_CLOSE(got, want, n, 0, 0, "collective");
    free(got);
}

static void test_collectives_are_the_identity(void)
{
    kl_context *ctx = world_of_one();
    if (!ctx) return;
    const double vals[] = {1, -2, 3.5, 4, 5, 6};
    int64_t shape[] = {2, 3};
    for (kl_dtype t = KL_INT8; t <= KL_FLOAT64; t++) {
        if (t == KL_FLOAT16) continue;
        kl_var *x = check_var(ctx, t, 2, shape, vals), *y = NULL;
        double want[6];
        for (int i = 0; i < 6; i++) want[i] = check_round_to(t, vals[i]);
        if (CHECK_OK(kl_mpi_all_reduce(x, KL_REDUCE_SUM, &y))) { CHECK_SHAPE(y, 2, 2, 3); check_values(y, want, 6); }
        check_release(y);
        if (CHECK_OK(kl_mpi_reduce(x, KL_REDUCE_MAX, 0, &y))) check_values(y, want, 6);
        check_release(y);
        if (CHECK_OK(kl_mpi_broadcast(x, 0, &y))) check_values(y, want, 6);
        check_release(y);
        check_release(x);
    }
    double host[3] = {1, 2, 3};
    CHECK_OK(kl_mpi_all_reduce_host(ctx, host, 3, KL_FLOAT64));
    CHECK(host[0] == 1 && host[2] == 3);
    CHECK_OK(kl_mpi_barrier(ctx));
    kl_mpi_abort(ctx, 1, NULL); /* returns in a world of one */
    CHECK_OK(kl_context_free(ctx));
}

/* d/dx sum(w * collective(x)) = w for every collective in a world of one. */
static void test_gradients_pass_through(void)
{
    kl_context *ctx = world_of_one();
    if (!ctx) return;
    const double vals[] = {1, 2, 3}, weights[] = {0.5, -1, 2};
    int64_t n = 3;
    kl_var *x = check_var(ctx, KL_FLOAT32, 1, &n, vals), *w = check_var(ctx, KL_FLOAT32, 1, &n, weights);
    for (int kind = 0; kind < 4; kind++) {
        kl_var *y = NULL, *wy = NULL, *loss = NULL, *g = NULL;
        kl_status s = kind == 0   ? kl_mpi_all_reduce(x, KL_REDUCE_SUM, &y)
                      : kind == 1 ? kl_mpi_all_reduce(x, KL_REDUCE_MEAN, &y)
                      : kind == 2 ? kl_mpi_reduce(x, KL_REDUCE_SUM, 0, &y)
                                  : kl_mpi_broadcast(x, 0, &y);
        if (CHECK_OK(s) && CHECK_OK(kl_binary(KL_MUL, y, w, &wy)) &&
            CHECK_OK(kl_reduce(wy, KL_REDUCE_SUM, 0, NULL, 0, &loss)) && CHECK_OK(kl_grad(loss, NULL, 1, &x, &g)))
            check_values(g, weights, 3);
        check_release(y);
        check_release(wy);
        check_release(loss);
        check_release(g);
    }
    check_release(x);
    check_release(w);
    CHECK_OK(kl_context_free(ctx));
}

/* A bucket is the vars' elements one after another; each var's gradient is
 * its part of the bucket's. */
static void test_bucket_packs_and_splits_gradients(void)
{
    kl_context *ctx = world_of_one();
    if (!ctx) return;
    const double a_vals[] = {1, 2, 3, 4}, b_vals[] = {5, 6}, weights[] = {1, 2, 3, 4, 5, 6};
    int64_t a_shape[] = {2, 2}, b_shape[] = {2}, n = 6;
    kl_var *xs[2] = {check_var(ctx, KL_FLOAT64, 2, a_shape, a_vals), check_var(ctx, KL_FLOAT64, 1, b_shape, b_vals)};
    kl_var *w = check_var(ctx, KL_FLOAT64, 1, &n, weights);
    kl_var *flat = NULL, *wy = NULL, *loss = NULL, *g[2] = {NULL, NULL};
    if (CHECK_OK(kl_mpi_all_reduce_many(2, xs, KL_REDUCE_MEAN, &flat))) {
        CHECK_SHAPE(flat, 1, 6);
        const double want[] = {1, 2, 3, 4, 5, 6};
        check_values(flat, want, 6);
    }
    /* a second bucket of the same vars: the first is computed, this one pending */
    check_release(flat);
    if (CHECK_OK(kl_mpi_all_reduce_many(2, xs, KL_REDUCE_SUM, &flat)) && CHECK_OK(kl_binary(KL_MUL, flat, w, &wy)) &&
        CHECK_OK(kl_reduce(wy, KL_REDUCE_SUM, 0, NULL, 0, &loss)) && CHECK_OK(kl_grad(loss, NULL, 2, xs, g))) {
        CHECK_SHAPE(g[0], 2, 2, 2);
        CHECK_SHAPE(g[1], 1, 2);
        check_values(g[0], weights, 4);
        check_values(g[1], weights + 4, 2);
    }
    kl_var *mixed[2] = {xs[0], NULL};
    kl_var *out = NULL;
    CHECK_STATUS(kl_mpi_all_reduce_many(2, mixed, KL_REDUCE_SUM, &out), KL_ERR_VALUE);
    CHECK_STATUS(kl_mpi_all_reduce_many(0, xs, KL_REDUCE_SUM, &out), KL_ERR_VALUE);
    CHECK_STATUS(kl_mpi_all_reduce_many(KL_MPI_MAX_BUCKET + 1, xs, KL_REDUCE_SUM, &out), KL_ERR_VALUE);
    CHECK_STATUS(kl_mpi_all_reduce_many(2, NULL, KL_REDUCE_SUM, &out), KL_ERR_VALUE);
    kl_var *f32 = NULL;
    if (CHECK_OK(kl_cast(xs[1], KL_FLOAT32, &f32))) {
        kl_var *two[2] = {xs[0], f32};
        CHECK_STATUS(kl_mpi_all_reduce_many(2, two, KL_REDUCE_SUM, &out), KL_ERR_TYPE);
        CHECK(strstr(kl_last_error(), "one dtype") != NULL);
    }
    check_release(f32);
    for (int i = 0; i < 2; i++) { check_release(xs[i]); check_release(g[i]); }
    check_release(w);
    check_release(flat);
    check_release(wy);
    check_release(loss);
    CHECK_OK(kl_context_free(ctx));
}

static void test_bad_arguments_are_refused(void)
{
    kl_context *ctx = world_of_one();
    if (!ctx) return;
    const double vals[] = {1, 2};
    int64_t n = 2;
    kl_var *x = check_var(ctx, KL_FLOAT32, 1, &n, vals), *i32 = check_var(ctx, KL_INT32, 1, &n, vals);
    kl_var *h = check_var(ctx, KL_FLOAT16, 1, &n, vals), *b = check_var(ctx, KL_BOOL, 1, &n, vals), *out = NULL;
    CHECK_STATUS(kl_mpi_reduce(x, KL_REDUCE_SUM, 1, &out), KL_ERR_VALUE);
    CHECK(strstr(kl_last_error(), "root 1 is not a rank of this job (1 rank)") != NULL);
    CHECK_STATUS(kl_mpi_broadcast(x, -1, &out), KL_ERR_VALUE);
    CHECK_STATUS(kl_mpi_all_reduce(x, KL_REDUCE_PROD, &out), KL_ERR_VALUE);
    CHECK_STATUS(kl_mpi_all_reduce(x, (kl_reduce_op)99, &out), KL_ERR_VALUE);
    CHECK_STATUS(kl_mpi_all_reduce(i32, KL_REDUCE_MEAN, &out), KL_ERR_TYPE);
    CHECK_STATUS(kl_mpi_all_reduce(h, KL_REDUCE_SUM, &out), KL_ERR_TYPE);
    CHECK(strstr(kl_last_error(), "float16 has no MPI arithmetic") != NULL);
    CHECK_STATUS(kl_mpi_all_reduce(b, KL_REDUCE_SUM, &out), KL_ERR_TYPE);
    CHECK(out == NULL);
    /* broadcast moves bytes: any dtype */
    if (CHECK_OK(kl_mpi_broadcast(h, 0, &out))) check_values(out, vals, 2);
    check_release(out);
    CHECK_STATUS(kl_mpi_all_reduce(NULL, KL_REDUCE_SUM, &out), KL_ERR_VALUE);
    CHECK_STATUS(kl_mpi_all_reduce(x, KL_REDUCE_SUM, NULL), KL_ERR_VALUE);
    CHECK_STATUS(kl_mpi_start(NULL), KL_ERR_VALUE);
    CHECK_STATUS(kl_mpi_barrier(NULL), KL_ERR_VALUE);
    CHECK_STATUS(kl_mpi_finish(NULL), KL_ERR_VALUE);
    CHECK_STATUS(kl_mpi_all_reduce_host(NULL, NULL, 0, KL_FLOAT32), KL_ERR_VALUE);
    CHECK_STATUS(kl_mpi_all_reduce_host(ctx, NULL, 3, KL_FLOAT32), KL_ERR_VALUE);
    CHECK_STATUS(kl_mpi_all_reduce_host(ctx, (void *)vals, -1, KL_FLOAT32), KL_ERR_VALUE);
    CHECK_STATUS(kl_mpi_all_reduce_host(ctx, (void *)vals, 1, KL_FLOAT16), KL_ERR_TYPE);
    CHECK_STATUS(kl_mpi_all_reduce_host(ctx, (void *)vals, 1, (kl_dtype)77), KL_ERR_TYPE);
    CHECK_EQ_INT(kl_mpi_rank(NULL), 0);
    CHECK_EQ_INT(kl_mpi_world_size(NULL), 1);
    kl_mpi_abort(NULL, 1, NULL);
    CHECK_OK(kl_mpi_finish(ctx));
    check_release(x);
    check_release(i32);
    check_release(h);
    check_release(b);
    CHECK_OK(kl_context_free(ctx));
}

CHECK_MAIN(TEST(test_collectives_are_the_identity), TEST(test_gradients_pass_through),
           TEST(test_bucket_packs_and_splits_gradients), TEST(test_bad_arguments_are_refused))
