/* test_kdesc.c: kernel descriptions (src/codegen/kdesc.c, src/ops/lower.c)
 * and the plan cache that keys on them (src/codegen/plan.c): equal values
 * are one instruction whatever an initialiser left in the padding; shapes
 * and constants are arguments, not structure; dtypes, ops and size-1 dims
 * are structure; equal structures render to equal text; loops the body
 * reads only through the linear index merge, and what they leave unread
 * goes. */
#include "check.h"
#include "backend/backend.h"
#include "codegen/plan.h"
#include "core/context.h"
#include "ops/lower.h"

/* (x * c + 1).exp() over an input of the given shape and dtype. */
static kl_var *expression(kl_context *ctx, kl_dtype t, int ndim, const int64_t *shape, double c, kl_unary_op f)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    double *vals = calloc((size_t)n, sizeof *vals);
    kl_var *x = check_var(ctx, t, ndim, shape, vals);
    free(vals);
    kl_var *scale = check_scalar(ctx, t, c), *one = check_scalar(ctx, t, 1);
    kl_var *a = check_bin(KL_MUL, x, scale);
    kl_var *b = check_bin(KL_ADD, a, one);
    kl_var *y = check_un(f, b);
    kl_var *tmp[] = {x, scale, one, a, b};
    for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++) check_release(tmp[i]);
    if (y) y->materialize = 1;
    return y;
}

/* Describes y's kernel into k (kl_kd_init'ed here). */
static int describe(kl_var *y, kl_kdesc *k)
{
    kl_kd_init(k);
    return y && CHECK_OK(kl_lower_kernel(y, k));
}

static char *render(kl_context *ctx, const kl_kdesc *k)
{
    char *text = NULL;
    kl_backend *cpu = ctx->backends[0];
    CHECK_OK(cpu->ops->render(cpu, k, &text));
    return text;
}

static void test_equal_values_are_one_instruction_whatever_the_padding(void)
{
    kl_kdesc k;
    memset(&k, 0, sizeof k);
    kl_kd_init(&k);
    kl_instr a, b;
    /* two initialisers that differ only where no field is */
    memset(&a, 0xab, sizeof a);
    memset(&b, 0x5c, sizeof b);
    a.kind = b.kind = KL_I_INDEX;
    a.dtype = b.dtype = KL_INT64;
    a.aux = b.aux = 0;
    a.op = b.op = KL_EXB_ADD;
    a.a = b.a = kl_kd_const(&k, 3);
    a.b = b.b = kl_kd_const(&k, 4);
    a.c = b.c = a.d = b.d = a.e = b.e = -1;
    a.value = b.value = 0;
    int32_t ia = kl_kd_add(&k, &a), ib = kl_kd_add(&k, &b);
    CHECK_EQ_INT(ia, ib);
    CHECK_EQ_INT(k.h.n_instrs, 3);
    void *block = malloc(kl_kd_structure_size(&k));
    if (CHECK(block != NULL)) {
        kl_kd_structure_write(&k, block);
        CHECK(kl_kd_structure_is(&k, block));
        k.instrs[ia].value = 1; /* any change is seen */
        CHECK(!kl_kd_structure_is(&k, block));
    }
    free(block);
    kl_kd_free(&k);
}

static void test_shapes_and_constants_are_arguments(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s1[2] = {3, 4}, s2[2] = {5, 7};
    kl_var *y1 = expression(ctx, KL_FLOAT32, 2, s1, 2.0, KL_EXP);
    kl_var *y2 = expression(ctx, KL_FLOAT32, 2, s2, -0.5, KL_EXP);
    kl_kdesc k1, k2;
    memset(&k1, 0, sizeof k1);
    memset(&k2, 0, sizeof k2);
    if (describe(y1, &k1) && describe(y2, &k2)) {
        CHECK(k1.hash == k2.hash);
        CHECK(kl_kd_same(&k1, &k2));
        /* what differs is what a launch passes */
        int shapes_differ = 0;
        for (int i = 0; i < k1.h.n_iargs; i++) shapes_differ |= k1.iargs[i] != k2.iargs[i];
        CHECK(shapes_differ);
        CHECK_EQ_INT(k1.h.n_fargs, k2.h.n_fargs);
        int constants_differ = 0;
        for (int i = 0; i < k1.h.n_fargs; i++) constants_differ |= k1.fargs[i] != k2.fargs[i];
        CHECK(constants_differ);
        char *t1 = render(ctx, &k1), *t2 = render(ctx, &k2);
        if (t1 && t2) CHECK_EQ_STR(t1, t2);
        free(t1);
        free(t2);
    }
    kl_kd_free(&k1);
    kl_kd_free(&k2);
    check_release(y1);
    check_release(y2);
    kl_context_free(ctx);
}

/* Describes the expression for (dtype, shape, op) and reports whether its
 * structure equals the float32 [3, 4] exp one. */
static int same_as_reference(kl_context *ctx, kl_dtype t, int ndim, const int64_t *shape, kl_unary_op f)
{
    int64_t ref_shape[2] = {3, 4};
    kl_var *ref = expression(ctx, KL_FLOAT32, 2, ref_shape, 2.0, KL_EXP);
    kl_var *y = expression(ctx, t, ndim, shape, 2.0, f);
    kl_kdesc a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    int same = -1;
    if (describe(ref, &a) && describe(y, &b)) same = kl_kd_same(&a, &b) && a.hash == b.hash;
    kl_kd_free(&a);
    kl_kd_free(&b);
    check_release(ref);
    check_release(y);
    return same;
}

/* Dtypes and ops are structure; the rank of an element-wise map is not:
 * its loops merge into one over every element, and the extents the merge
 * leaves unread go (one plan serves a matrix and a vector). */
static void test_dtypes_and_ops_are_structure_a_merged_rank_is_not(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s1[1] = {7}, s2[2] = {3, 4}, s3[3] = {2, 3, 4};
    CHECK_EQ_INT(same_as_reference(ctx, KL_FLOAT32, 2, s2, KL_EXP), 1);
    CHECK_EQ_INT(same_as_reference(ctx, KL_FLOAT64, 2, s2, KL_EXP), 0);
    CHECK_EQ_INT(same_as_reference(ctx, KL_FLOAT32, 2, s2, KL_LOG), 0);
    CHECK_EQ_INT(same_as_reference(ctx, KL_FLOAT32, 3, s3, KL_EXP), 1);
    CHECK_EQ_INT(same_as_reference(ctx, KL_FLOAT32, 1, s1, KL_EXP), 1);
    int64_t s4[4] = {2, 3, 4, 5};
    kl_var *y = expression(ctx, KL_FLOAT32, 4, s4, 2.0, KL_EXP);
    kl_kdesc k;
    memset(&k, 0, sizeof k);
    if (describe(y, &k)) { /* one loop of 120, its one extent the only argument left */
        CHECK_EQ_INT(k.h.rank, 1);
        CHECK_EQ_INT(k.h.n_iargs, 1);
        if (k.h.n_iargs == 1) CHECK_EQ_INT(k.iargs[0], 120);
    }
    kl_kd_free(&k);
    check_release(y);
    kl_context_free(ctx);
}

/* A broadcast input with a size-1 dim reads a different element than a
 * full one: that is structure, though the shapes otherwise are arguments. */
static void test_size_one_dims_are_structure(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t full[2] = {3, 4}, row[2] = {1, 4};
    double vals[12] = {0};
    kl_var *x = check_var(ctx, KL_FLOAT32, 2, full, vals);
    kl_var *r1 = check_var(ctx, KL_FLOAT32, 2, full, vals), *r2 = check_var(ctx, KL_FLOAT32, 2, row, vals);
    kl_var *y1 = check_bin(KL_ADD, x, r1), *y2 = check_bin(KL_ADD, x, r2);
    kl_kdesc a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    if (y1 && y2) {
        y1->materialize = y2->materialize = 1;
        if (describe(y1, &a) && describe(y2, &b)) CHECK(!kl_kd_same(&a, &b));
    }
    kl_kd_free(&a);
    kl_kd_free(&b);
    kl_var *all[] = {x, r1, r2, y1, y2};
    for (size_t i = 0; i < 5; i++) check_release(all[i]);
    kl_context_free(ctx);
}

static void test_plan_cache_keys_on_structure_and_device(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s1[1] = {10}, s2[1] = {1000};
    kl_var *y1 = expression(ctx, KL_FLOAT32, 1, s1, 2.0, KL_EXP);
    kl_var *y2 = expression(ctx, KL_FLOAT32, 1, s2, 3.0, KL_EXP);
    kl_var *y3 = expression(ctx, KL_FLOAT32, 1, s2, 3.0, KL_TANH);
    kl_kdesc a, b, c;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    kl_plan_cache pc;
    memset(&pc, 0, sizeof pc);
    const kl_backend *cpu = ctx->backends[0], *other = (const kl_backend *)&pc; /* any other address */
    if (describe(y1, &a) && describe(y2, &b) && describe(y3, &c)) {
        CHECK(kl_plan_find(&pc, cpu, &a) == NULL);
        kl_plan *p = kl_plan_insert(&pc, cpu, &a, "text of a");
        if (CHECK(p != NULL)) {
            CHECK(kl_plan_find(&pc, cpu, &b) == p);
            CHECK(kl_plan_find(&pc, other, &b) == NULL);
            CHECK(kl_plan_find(&pc, cpu, &c) == NULL);
            CHECK(kl_plan_insert(&pc, cpu, &b, "ignored") == p);
            CHECK_EQ_STR(p->source, "text of a");
        }
        pc.disabled = 1;
        CHECK(kl_plan_find(&pc, cpu, &a) == NULL);
    }
    kl_plan_cache_free(&pc);
    kl_kd_free(&a);
    kl_kd_free(&b);
    kl_kd_free(&c);
    check_release(y1);
    check_release(y2);
    check_release(y3);
    kl_context_free(ctx);
}

/* The value of iteration extent d of a described kernel. */
static int64_t extent(const kl_kdesc *k, int d)
{
    const kl_instr *e = &k->instrs[k->h.dims[d]];
    return e->kind == KL_I_CONST ? e->value : k->iargs[e->a];
}

/* A batch norm's shapes, x (2, 3, 4, 5) and a per-channel v (1, 3, 1, 1):
 * x * v (a map reading i1) and its sum over (0, 2, 3) loop over H*W = 20
 * as one dim; a transpose of x's last two dims (reading i2 and i3) keeps
 * them. Each result equals its float64 reference. */
static void test_loops_read_only_through_the_linear_index_merge(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t xs[] = {2, 3, 4, 5}, vs[] = {1, 3, 1, 1}, ts[] = {2, 3, 5, 4};
    double xv[120], vv[3] = {0.5, -2, 3};
    for (int i = 0; i < 120; i++) xv[i] = i * 0.25 - 7;
    kl_var *x = check_var(ctx, KL_FLOAT32, 4, xs, xv), *v = check_var(ctx, KL_FLOAT32, 4, vs, vv);
    kl_var *vb = NULL, *y = NULL, *s = NULL, *t = NULL;
    int dims[] = {0, 2, 3};
    if (v) CHECK_OK(kl_broadcast_to(v, 4, xs, 0, NULL, &vb));
    if (vb) y = check_bin(KL_MUL, x, vb);
    if (y) CHECK_OK(kl_reduce(y, KL_REDUCE_SUM, 3, dims, 0, &s));
    const char *swap[] = {"i0", "i1", "i3", "i2"};
    if (x) CHECK_OK(kl_reindex(x, 4, ts, swap, 0, 0, NULL, 0, NULL, &t));
    kl_kdesc k;
    memset(&k, 0, sizeof k);
    if (y) {
        y->materialize = 1;
        if (describe(y, &k)) {
            CHECK_EQ_INT(k.h.rank, 3);
            if (k.h.rank == 3) CHECK_EQ_INT(extent(&k, 2), 20);
        }
        y->materialize = 0;
    }
    kl_kd_clear(&k); /* each description holds its buffers until cleared */
    if (s && describe(s, &k)) {
        CHECK_EQ_INT(k.h.rank, 3);
        CHECK_EQ_INT(k.h.reduced, 5); /* dims 0 and (2, 3) */
        if (k.h.rank == 3) CHECK_EQ_INT(extent(&k, 2), 20);
    }
    kl_kd_clear(&k);
    if (t && describe(t, &k)) CHECK_EQ_INT(k.h.rank, 4);
    kl_kd_free(&k);
    double *gy = y ? check_read(y) : NULL, *gs = s ? check_read(s) : NULL, *gt = t ? check_read(t) : NULL;
    for (int n = 0; gy && gs && gt && n < 2; n++)
        for (int c = 0; c < 3; c++)
            for (int h = 0; h < 4; h++)
                for (int w = 0; w < 5; w++) {
                    int i = ((n * 3 + c) * 4 + h) * 5 + w;
                    CHECK_CLOSE(gy[i], xv[i] * vv[c], 1e-6, 0);
                    CHECK_CLOSE(gt[((n * 3 + c) * 5 + w) * 4 + h], xv[i], 0, 0);
                }
    for (int c = 0; gs && c < 3; c++) {
        double want = 0;
        for (int n = 0; n < 2; n++)
            for (int j = 0; j < 20; j++) want += xv[(n * 3 + c) * 20 + j] * vv[c];
        CHECK_CLOSE(gs[c], want, 1e-6, 1e-6);
    }
    free(gy);
    free(gs);
    free(gt);
    check_release_all(x, v, vb, y, s, t);
    CHECK_OK(kl_context_free(ctx));
}

CHECK_MAIN(TEST(test_equal_values_are_one_instruction_whatever_the_padding),
           TEST(test_shapes_and_constants_are_arguments), TEST(test_dtypes_and_ops_are_structure_a_merged_rank_is_not),
           TEST(test_size_one_dims_are_structure), TEST(test_plan_cache_keys_on_structure_and_device),
           TEST(test_loops_read_only_through_the_linear_index_merge))
