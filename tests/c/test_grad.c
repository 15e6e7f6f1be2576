/* test_grad.c: kl_grad of every differentiable meta-op against central finite
 * differences of C double references (float64 throughout), broadcasting
 * gradients, second derivatives, dy, unrelated vars and stop_grad. */
#include "check.h"

#define N 21

/* Central difference of f at x. */
static double fd1(double (*f)(double), double x)
{
    double h = 1e-6 * (fabs(x) > 1 ? fabs(x) : 1);
    return (f(x + h) - f(x - h)) / (2 * h);
}

static double r_neg(double x) { return -x; }
static double r_rsqrt(double x) { return 1.0 / sqrt(x); }
static double r_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double r_zero(double x) { (void)x; return 0; }

typedef struct {
    kl_unary_op op;
    double lo, hi;
    double (*ref)(double);
    int flat; /* piecewise constant: gradient 0 */
} unary_case;

/* Ranges avoid kinks and the ends of domains. */
static const unary_case unary_cases[] = {
    {KL_NEG, -3, 3, r_neg, 0},         {KL_ABS, 0.1, 3, fabs, 0},
    {KL_EXP, -3, 3, exp, 0},           {KL_LOG, 0.1, 10, log, 0},
    {KL_SQRT, 0.1, 10, sqrt, 0},       {KL_RSQRT, 0.1, 10, r_rsqrt, 0},
    {KL_SIN, -6, 6, sin, 0},           {KL_COS, -6, 6, cos, 0},
    {KL_TAN, -1.3, 1.3, tan, 0},       {KL_ASIN, -0.9, 0.9, asin, 0},
    {KL_ACOS, -0.9, 0.9, acos, 0},     {KL_ATAN, -5, 5, atan, 0},
    {KL_SINH, -3, 3, sinh, 0},         {KL_COSH, -3, 3, cosh, 0},
    {KL_TANH, -3, 3, tanh, 0},         {KL_ASINH, -5, 5, asinh, 0},
    {KL_ACOSH, 1.1, 10, acosh, 0},     {KL_ATANH, -0.9, 0.9, atanh, 0},
    {KL_SIGMOID, -6, 6, r_sigmoid, 0}, {KL_ERF, -2.5, 2.5, erf, 0},
    {KL_LOG2, 0.1, 10, log2, 0},       {KL_EXP2, -3, 3, exp2, 0},
    {KL_LOG1P, -0.8, 5, log1p, 0},     {KL_EXPM1, -3, 3, expm1, 0},
    {KL_FLOOR, -3.3, 3.3, r_zero, 1},  {KL_CEIL, -3.3, 3.3, r_zero, 1},
    {KL_ROUND, -3.3, 3.3, r_zero, 1},  {KL_TRUNC, -3.3, 3.3, r_zero, 1},
    {KL_SIGN, 0.1, 3, r_zero, 1},
};
#define N_UNARY ((int)(sizeof unary_cases / sizeof unary_cases[0]))

/* grad of sum(y) with respect to x, or NULL with a failed check. */
static kl_var *grad1(kl_var *y, kl_var *x)
{
    kl_var *g = NULL;
    if (!y || !x) return NULL;
    if (!CHECK_OK(kl_grad(y, NULL, 1, &x, &g))) return NULL;
    return g;
}

static void test_unary_grads(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = N;
    kl_var *gs[N_UNARY] = {0};
    double xs[N_UNARY][N];
    for (int c = 0; c < N_UNARY; c++) {
        for (int k = 0; k < N; k++) {
            double v = unary_cases[c].lo + (unary_cases[c].hi - unary_cases[c].lo) * k / (N - 1);
            if (fabs(v - round(v)) < 0.05) v += 0.1; /* away from jumps of floor & co */
            xs[c][k] = v;
        }
        kl_var *x = check_var(ctx, KL_FLOAT64, 1, &n, xs[c]);
        kl_var *y = check_un(unary_cases[c].op, x);
        gs[c] = grad1(y, x);
        if (gs[c]) {
            CHECK_SHAPE(gs[c], 1, N);
            CHECK_DTYPE(gs[c], KL_FLOAT64);
        }
        check_release(x);
        check_release(y);
    }
    kl_var *live[N_UNARY];
    int n_live = 0;
    for (int c = 0; c < N_UNARY; c++)
        if (gs[c]) live[n_live++] = gs[c];
    CHECK_OK(kl_sync(live, n_live));
    for (int c = 0; c < N_UNARY; c++) {
        if (!gs[c]) continue;
        double *got = check_read(gs[c]);
        if (got) {
            double want[N];
            for (int k = 0; k < N; k++) want[k] = unary_cases[c].flat ? 0 : fd1(unary_cases[c].ref, xs[c][k]);
            char label[64];
            snprintf(label, sizeof label, "d %s / dx", kl_unary_name(unary_cases[c].op));
            CHECK_ARRAY_CLOSE(got, want, N, 1e-6, 1e-7, label);
            free(got);
        }
        kl_var_release(gs[c]);
    }
    kl_context_free(ctx);
}

static double b_add(double a, double b) { return a + b; }
static double b_sub(double a, double b) { return a - b; }
static double b_mul(double a, double b) { return a * b; }
static double b_div(double a, double b) { return a / b; }
static double b_max(double a, double b) { return a > b ? a : b; }
static double b_min(double a, double b) { return a < b ? a : b; }

typedef struct {
    kl_binary_op op;
    double (*ref)(double, double);
    int positive_a; /* pow needs a > 0 */
} binary_case;

static const binary_case binary_cases[] = {
    {KL_ADD, b_add, 0}, {KL_SUB, b_sub, 0},     {KL_MUL, b_mul, 0},     {KL_DIV, b_div, 0},
    {KL_POW, pow, 1},   {KL_MAXIMUM, b_max, 0}, {KL_MINIMUM, b_min, 0}, {KL_ARCTAN2, atan2, 0},
};
#define N_BINARY ((int)(sizeof binary_cases / sizeof binary_cases[0]))

static void test_binary_grads(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = N;
    double a[N], b[N], ap[N];
    uint64_t st = 77;
    for (int k = 0; k < N; k++) {
        a[k] = 4 * check_rand01(&st) - 2;
        b[k] = 4 * check_rand01(&st) - 2;
        if (fabs(b[k]) < 0.2) b[k] += 0.5;
        if (fabs(a[k] - b[k]) < 0.05) a[k] += 0.3; /* no ties for max/min */
        ap[k] = 0.2 + 2 * check_rand01(&st);
    }
    for (int c = 0; c < N_BINARY; c++) {
        const binary_case *bc = &binary_cases[c];
        const double *av = bc->positive_a ? ap : a;
        kl_var *x = check_var(ctx, KL_FLOAT64, 1, &n, av), *y = check_var(ctx, KL_FLOAT64, 1, &n, b);
        kl_var *z = check_bin(bc->op, x, y), *g[2] = {NULL, NULL};
        kl_var *in[2] = {x, y};
        if (z && CHECK_OK(kl_grad(z, NULL, 2, in, g))) {
            double *ga = check_read(g[0]), *gb = check_read(g[1]);
            if (ga && gb) {
                double wa[N], wb[N];
                for (int k = 0; k < N; k++) {
                    double h = 1e-6;
                    wa[k] = (bc->ref(av[k] + h, b[k]) - bc->ref(av[k] - h, b[k])) / (2 * h);
                    wb[k] = (bc->ref(av[k], b[k] + h) - bc->ref(av[k], b[k] - h)) / (2 * h);
                }
                char label[64];
                snprintf(label, sizeof label, "d %s / da", kl_binary_name(bc->op));
                CHECK_ARRAY_CLOSE(ga, wa, N, 1e-6, 1e-7, label);
                snprintf(label, sizeof label, "d %s / db", kl_binary_name(bc->op));
                CHECK_ARRAY_CLOSE(gb, wb, N, 1e-6, 1e-7, label);
            }
            free(ga);
            free(gb);
        }
        kl_var *all[] = {x, y, z, g[0], g[1]};
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    }
    kl_context_free(ctx);
}

/* a (3,1) * b (1,4): the gradients sum over the broadcast dims. */
static void test_broadcast_binary_grads(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t sa[2] = {3, 1}, sb[2] = {1, 4};
    double a[3] = {1, 2, 3}, b[4] = {0.5, -1, 2, 4};
    kl_var *x = check_var(ctx, KL_FLOAT64, 2, sa, a), *y = check_var(ctx, KL_FLOAT64, 2, sb, b);
    kl_var *z = check_bin(KL_MUL, x, y), *g[2] = {NULL, NULL}, *in[2] = {x, y};
    if (z && CHECK_OK(kl_grad(z, NULL, 2, in, g))) {
        CHECK_SHAPE(g[0], 2, 3, 1);
        CHECK_SHAPE(g[1], 2, 1, 4);
        double *ga = check_read(g[0]), *gb = check_read(g[1]);
        if (ga) CHECK_ARRAY_CLOSE(ga, ((double[]){5.5, 5.5, 5.5}), 3, 1e-14, 0, "d/da of a*b broadcast");
        if (gb) CHECK_ARRAY_CLOSE(gb, ((double[]){6, 6, 6, 6}), 4, 1e-14, 0, "d/db of a*b broadcast");
        free(ga);
        free(gb);
    }
    /* with a rank-0 operand */
    kl_var *s = check_scalar(ctx, KL_FLOAT64, 3), *w = check_bin(KL_SUB, x, s), *gs = NULL;
    kl_var *ins = s;
    if (w && CHECK_OK(kl_grad(w, NULL, 1, &ins, &gs))) {
        CHECK_SHAPE(gs, 0, 0);
        double *g0 = check_read(gs);
        if (g0) CHECK_CLOSE(g0[0], -3, 0, 0);
        free(g0);
    }
    kl_var *all[] = {x, y, z, g[0], g[1], s, w, gs};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

static void test_reduce_grads(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[2] = {3, 4};
    double v[12] = {1.5, -2, 3, 0.5, 2, 4, -1, 3, 0.25, 1, 2, -3};
    kl_var *x = check_var(ctx, KL_FLOAT64, 2, s, v);
    int dim = 1;
    static const kl_reduce_op ops[4] = {KL_REDUCE_SUM, KL_REDUCE_MEAN, KL_REDUCE_MAX, KL_REDUCE_PROD};
    for (int o = 0; o < 4 && x; o++) {
        kl_var *y = NULL, *g = NULL;
        if (!CHECK_OK(kl_reduce(x, ops[o], 1, &dim, 0, &y))) continue;
        g = grad1(y, x);
        double *got = check_read(g);
        if (got) {
            double want[12];
            for (int i = 0; i < 3; i++) {
                double mx = -INFINITY, prod = 1;
                for (int j = 0; j < 4; j++) {
                    mx = fmax(mx, v[i * 4 + j]);
                    prod *= v[i * 4 + j];
                }
                for (int j = 0; j < 4; j++) {
                    double x0 = v[i * 4 + j];
                    switch (ops[o]) {
                    case KL_REDUCE_SUM: want[i * 4 + j] = 1; break;
                    case KL_REDUCE_MEAN: want[i * 4 + j] = 0.25; break;
                    case KL_REDUCE_MAX: want[i * 4 + j] = x0 == mx; break;
                    default: want[i * 4 + j] = prod / x0; break;
                    }
                }
            }
            char label[64];
            snprintf(label, sizeof label, "grad of %s over dim 1", kl_reduce_name(ops[o]));
            CHECK_ARRAY_CLOSE(got, want, 12, 1e-12, 1e-14, label);
            free(got);
        }
        check_release(y);
        check_release(g);
    }
    check_release(x);
    kl_context_free(ctx);
}

static void test_reindex_family_grads(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t s[2] = {2, 3}, t[2] = {3, 2}, p[2] = {4, 5}, b3[3] = {4, 2, 3};
    double v[6] = {1, 2, 3, 4, 5, 6};
    kl_var *x = check_var(ctx, KL_FLOAT64, 2, s, v);
    /* weights make each output position distinct */
    double wv[20];
    for (int i = 0; i < 20; i++) wv[i] = i + 1;
    /* transpose: d/dx sum(w * x^T) = w^T */
    const char *tr[2] = {"i1", "i0"};
    kl_var *xt = NULL, *wt = check_var(ctx, KL_FLOAT64, 2, t, wv), *yt = NULL, *gt = NULL;
    if (x && CHECK_OK(kl_reindex(x, 2, t, tr, 0, 0, NULL, 0, NULL, &xt)) && (yt = check_bin(KL_MUL, xt, wt)) &&
        (gt = grad1(yt, x))) {
        CHECK_SHAPE(gt, 2, 2, 3);
        double *g = check_read(gt);
        if (g) {
            double want[6];
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 3; j++) want[i * 3 + j] = wv[j * 2 + i];
            CHECK_ARRAY_CLOSE(g, want, 6, 0, 0, "grad through transpose");
            free(g);
        }
    }
    /* pad by one: the border reads nothing */
    const char *pad[2] = {"i0-1", "i1-1"};
    kl_var *xp = NULL, *wp = check_var(ctx, KL_FLOAT64, 2, p, wv), *yp = NULL, *gp = NULL;
    if (x && CHECK_OK(kl_reindex(x, 2, p, pad, 0, 0, NULL, 0, NULL, &xp)) && (yp = check_bin(KL_MUL, xp, wp)) &&
        (gp = grad1(yp, x))) {
        double *g = check_read(gp);
        if (g) {
            double want[6];
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 3; j++) want[i * 3 + j] = wv[(i + 1) * 5 + (j + 1)];
            CHECK_ARRAY_CLOSE(g, want, 6, 0, 0, "grad through pad");
            free(g);
        }
    }
    /* broadcast_to (4,2,3): the gradient sums over the new dim */
    double w24[24];
    for (int i = 0; i < 24; i++) w24[i] = i;
    kl_var *xb = NULL, *wb = check_var(ctx, KL_FLOAT64, 3, b3, w24), *yb = NULL, *gb = NULL;
    if (x && CHECK_OK(kl_broadcast_to(x, 3, b3, 0, NULL, &xb)) && (yb = check_bin(KL_MUL, xb, wb)) &&
        (gb = grad1(yb, x))) {
        CHECK_SHAPE(gb, 2, 2, 3);
        double *g = check_read(gb);
        if (g) {
            double want[6];
            for (int k = 0; k < 6; k++) want[k] = w24[k] + w24[6 + k] + w24[12 + k] + w24[18 + k];
            CHECK_ARRAY_CLOSE(g, want, 6, 0, 0, "grad through broadcast_to");
            free(g);
        }
    }
    /* gather by an extra: repeated indexes accumulate */
    int64_t n5 = 5;
    kl_var *idx = check_var(ctx, KL_INT32, 1, &n5, ((double[]){2, 0, 2, 5, 2}));
    const char *e[1] = {"@e0(i0)"};
    int64_t s6 = 6;
    kl_var *xf = NULL, *xg = NULL, *wg = check_var(ctx, KL_FLOAT64, 1, &n5, wv), *yg = NULL, *gg = NULL;
    if (x && CHECK_OK(kl_reshape(x, 1, &s6, &xf)) &&
        CHECK_OK(kl_reindex(xf, 1, &n5, e, 0, 0, NULL, 1, &idx, &xg)) && (yg = check_bin(KL_MUL, xg, wg)) &&
        (gg = grad1(yg, x))) {
        CHECK_SHAPE(gg, 2, 2, 3);
        double *g = check_read(gg);
        if (g) {
            double want[6] = {2, 0, 1 + 3 + 5, 0, 0, 4};
            CHECK_ARRAY_CLOSE(g, want, 6, 0, 0, "grad through gather (reshape + reindex)");
            free(g);
        }
    }
    /* scatter-add: the gradient gathers */
    int64_t bins = 3;
    const char *sc[1] = {"@e0(i0)"};
    kl_var *idx6 = check_var(ctx, KL_INT32, 1, &s6, ((double[]){1, 1, 0, 2, 7, 0}));
    kl_var *wbin = check_var(ctx, KL_FLOAT64, 1, &bins, ((double[]){10, 20, 30}));
    kl_var *hs = NULL, *yh = NULL, *gh = NULL;
    if (xf && CHECK_OK(kl_reindex_reduce(xf, KL_REDUCE_SUM, 1, &bins, sc, 0, NULL, 1, &idx6, &hs)) &&
        (yh = check_bin(KL_MUL, hs, wbin)) && (gh = grad1(yh, xf))) {
        double *g = check_read(gh);
        if (g) {
            double want[6] = {20, 20, 10, 30, 0, 10}; /* index 7 is skipped: no gradient */
            CHECK_ARRAY_CLOSE(g, want, 6, 0, 0, "grad through scatter-add");
            free(g);
        }
    }
    kl_var *all[] = {x, xt, wt, yt, gt, xp, wp, yp, gp, xb, wb, yb, gb, idx, xf, xg, wg, yg, gg, idx6, wbin, hs, yh, gh};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

static void test_where_and_cast_grads(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 4;
    double c[4] = {1, 0, 0, 1};
    kl_var *cond = check_var(ctx, KL_BOOL, 1, &n, c);
    kl_var *a = check_var(ctx, KL_FLOAT64, 1, &n, ((double[]){1, 2, 3, 4}));
    kl_var *b = check_var(ctx, KL_FLOAT64, 1, &n, ((double[]){5, 6, 7, 8}));
    kl_var *w = NULL, *g[2] = {NULL, NULL}, *in[2] = {a, b};
    if (cond && a && b && CHECK_OK(kl_where(cond, a, b, &w)) && CHECK_OK(kl_grad(w, NULL, 2, in, g))) {
        double *ga = check_read(g[0]), *gb = check_read(g[1]);
        if (ga) CHECK_ARRAY_CLOSE(ga, c, 4, 0, 0, "d where / da");
        if (gb) CHECK_ARRAY_CLOSE(gb, ((double[]){0, 1, 1, 0}), 4, 0, 0, "d where / db");
        free(ga);
        free(gb);
    }
    /* through a cast to float32 and back */
    kl_var *f = NULL, *sq = NULL, *gc = NULL;
    if (a && CHECK_OK(kl_cast(a, KL_FLOAT32, &f)) && (sq = check_bin(KL_MUL, f, f)) && (gc = grad1(sq, a))) {
        CHECK_DTYPE(gc, KL_FLOAT64);
        double *g0 = check_read(gc);
        if (g0) CHECK_ARRAY_CLOSE(g0, ((double[]){2, 4, 6, 8}), 4, 1e-6, 0, "d (float32(a))^2 / da");
        free(g0);
    }
    kl_var *all[] = {cond, a, b, w, g[0], g[1], f, sq, gc};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

static void test_dy_unrelated_and_stop_grad(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 3;
    double v[3] = {0.5, 1, 2};
    kl_var *x = check_var(ctx, KL_FLOAT64, 1, &n, v), *u = check_var(ctx, KL_FLOAT64, 1, &n, v);
    kl_var *dy = check_var(ctx, KL_FLOAT64, 1, &n, ((double[]){1, -2, 10}));
    kl_var *y = check_un(KL_EXP, x), *g[2] = {NULL, NULL}, *in[2] = {x, u};
    /* grad of sum(y * dy): exp(x) * dy; u is unrelated: zeros of u's shape */
    if (y && dy && CHECK_OK(kl_grad(y, dy, 2, in, g))) {
        double *gx = check_read(g[0]), *gu = check_read(g[1]);
        CHECK_SHAPE(g[1], 1, 3);
        if (gx) CHECK_ARRAY_CLOSE(gx, ((double[]){exp(0.5), -2 * exp(1), 10 * exp(2)}), 3, 1e-14, 0, "grad with dy");
        if (gu) CHECK_ARRAY_CLOSE(gu, ((double[]){0, 0, 0}), 3, 0, 0, "grad of an unrelated var");
        free(gx);
        free(gu);
    }
    /* stop_grad: same value, no gradient through it */
    kl_var *sx = NULL, *z = NULL, *gz = NULL;
    if (x && CHECK_OK(kl_stop_grad(x, &sx)) && (z = check_bin(KL_MUL, sx, x)) && (gz = grad1(z, x))) {
        double *sv = check_read(sx), *g0 = check_read(gz);
        if (sv) CHECK_ARRAY_CLOSE(sv, v, 3, 0, 0, "stop_grad value");
        if (g0) CHECK_ARRAY_CLOSE(g0, v, 3, 0, 0, "d (stop_grad(x) * x) / dx");
        free(sv);
        free(g0);
    }
    kl_var *all[] = {x, u, dy, y, g[0], g[1], sx, z, gz};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

/* Which computed vars keep their graph: by default only those depending on a
 * var marked requires_grad (grad through anything else computed first is an
 * error, not zeros); with keep_graphs (Jittor's rule, the Python API's) every
 * float var, so grad works through values already computed. */
static void test_grad_through_computed_values(void)
{
    for (int keep = 0; keep <= 1; keep++) {
        kl_context *ctx = check_context();
        if (!ctx) return;
        kl_context_set_keep_graphs(ctx, keep);
        CHECK_EQ_INT(kl_context_keep_graphs(ctx), keep);
        int64_t n = 3;
        kl_var *x = check_var(ctx, KL_FLOAT64, 1, &n, ((double[]){0.5, 1, 2}));
        kl_var *h = check_un(KL_EXP, x), *y = check_bin(KL_MUL, h, h), *g = NULL;
        double *hv = check_read(h), *yv = check_read(y); /* both computed */
        CHECK_EQ_INT(kl_var_requires_grad(x), keep);
        if (y && x) {
            kl_status s = kl_grad(y, NULL, 1, &x, &g);
            if (keep) {
                double *gv = CHECK_OK(s) ? check_read(g) : NULL;
                if (gv) CHECK_ARRAY_CLOSE(gv, ((double[]){2 * exp(1.0), 2 * exp(2.0), 2 * exp(4.0)}), 3, 1e-14, 0,
                                          "d exp(x)^2 / dx after both were computed");
                free(gv);
            } else {
                CHECK_EQ_INT(s, KL_ERR_VALUE);
                CHECK(strstr(kl_last_error(), "requires_grad") != NULL);
            }
        }
        free(hv);
        free(yv);
        kl_var *all[] = {x, h, y, g};
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
        CHECK_OK(kl_context_free(ctx));
    }
}

/* kl_custom_grad: the caller's rule replaces the value's own graph. The rule
 * here gives input i the gradient dout * (i + 2) and syncs what it makes
 * (as a rule reading values does) while kl_grad runs; input 1 gets none. */
typedef struct { int calls, released; } rule_log;

static kl_status scaled_rule(void *user, kl_var *dout, int input, kl_var **grad)
{
    rule_log *log = user;
    log->calls++;
    *grad = NULL;
    if (input == 1) return KL_OK;
    kl_var *k = NULL;
    kl_status s = kl_full(kl_var_context(dout), KL_FLOAT64, 0, NULL, input + 2.0, &k);
    if (s == KL_OK) s = kl_binary(KL_MUL, dout, k, grad);
    kl_var_release(k);
    if (s == KL_OK) s = kl_sync(grad, 1);
    return s;
}

static void release_rule(void *user) { ((rule_log *)user)->released++; }

static void test_custom_grad(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    kl_context_set_keep_graphs(ctx, 1); /* y is read before its gradient is asked */
    rule_log log = {0, 0};
    int64_t n = 3;
    kl_var *x = check_var(ctx, KL_FLOAT64, 1, &n, ((double[]){1, 2, 3}));
    kl_var *u = check_var(ctx, KL_FLOAT64, 1, &n, ((double[]){4, 5, 6}));
    kl_var *h = check_bin(KL_MUL, x, u), *sh = NULL, *y = NULL, *z = NULL;
    kl_var *ins[3] = {x, u, h}, *g[3] = {NULL, NULL, NULL};
    if (h && CHECK_OK(kl_stop_grad(h, &sh)) &&
        CHECK_OK(kl_custom_grad(sh, 3, ins, scaled_rule, &log, release_rule, &y)) && (z = check_bin(KL_MUL, y, y))) {
        double *yv = check_read(y);
        if (yv) CHECK_ARRAY_CLOSE(yv, ((double[]){4, 10, 18}), 3, 0, 0, "custom_grad passes its value through");
        free(yv);
        /* d sum(y*y) = 2y; the rule gives x 2y*2, u nothing, h = x*u 2y*4,
         * and h's share flows on through h's own graph to x and u */
        if (CHECK_OK(kl_grad(z, NULL, 3, ins, g))) {
            double *g0 = check_read(g[0]), *g1 = check_read(g[1]), *g2 = check_read(g[2]);
            if (g0) CHECK_ARRAY_CLOSE(g0, ((double[]){16 + 128, 40 + 400, 72 + 864}), 3, 1e-14, 0,
                                      "rule's share for x, plus h's through h = x*u");
            if (g1) CHECK_ARRAY_CLOSE(g1, ((double[]){32, 160, 432}), 3, 1e-14, 0, "u: only h's share (rule gave NULL)");
            if (g2) CHECK_ARRAY_CLOSE(g2, ((double[]){32, 80, 144}), 3, 1e-14, 0, "rule's share for input 2");
            free(g0); free(g1); free(g2);
        }
        CHECK_EQ_INT(log.calls, 3);
    }
    /* refused: too many inputs; the rule's data is released even then */
    kl_var *many[KL_MAX_OP_INPUTS] = {0};
    for (int i = 0; i < KL_MAX_OP_INPUTS; i++) many[i] = x;
    kl_var *bad = NULL;
    rule_log bad_log = {0, 0};
    CHECK_EQ_INT(kl_custom_grad(x, KL_MAX_OP_INPUTS, many, scaled_rule, &bad_log, release_rule, &bad),
                 KL_ERR_VALUE);
    CHECK(strstr(kl_last_error(), "at most") != NULL);
    kl_var *all[] = {x, u, h, sh, y, z, g[0], g[1], g[2]};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    CHECK_EQ_INT(log.released, 1); /* the op went with the last var holding it */
    CHECK_OK(kl_context_free(ctx));
}

/* Gradients are meta-op graphs themselves, so they differentiate again. */
static void test_second_derivative(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 5;
    double v[5] = {-2, -0.5, 0.3, 1, 2.5};
    kl_var *x = check_var(ctx, KL_FLOAT64, 1, &n, v);
    kl_var *y = check_un(KL_SIN, x), *x2 = check_bin(KL_MUL, x, x), *y2 = NULL;
    kl_var *g = grad1(y, x), *gg = grad1(g, x);
    double *got = check_read(gg);
    if (got) {
        double want[5];
        for (int k = 0; k < 5; k++) want[k] = -sin(v[k]);
        CHECK_ARRAY_CLOSE(got, want, 5, 1e-13, 1e-15, "d2 sin / dx2");
        free(got);
    }
    /* x^3: first 3x^2, second 6x */
    y2 = check_bin(KL_MUL, x2, x);
    kl_var *h = grad1(y2, x), *hh = grad1(h, x);
    got = check_read(hh);
    if (got) {
        double want[5];
        for (int k = 0; k < 5; k++) want[k] = 6 * v[k];
        CHECK_ARRAY_CLOSE(got, want, 5, 1e-13, 1e-15, "d2 x^3 / dx2");
        free(got);
    }
    kl_var *all[] = {x, y, x2, y2, g, gg, h, hh};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

/* A small MLP-like expression checked against finite differences of itself,
 * evaluated by kiln at x +- h. */
static double eval_loss(kl_context *ctx, const double *wv, const double *xv)
{
    int64_t sw[2] = {3, 4}, sx[2] = {2, 3}, s3[3] = {2, 3, 4};
    kl_var *w = check_var(ctx, KL_FLOAT64, 2, sw, wv), *x = check_var(ctx, KL_FLOAT64, 2, sx, xv);
    kl_var *wb = NULL, *xb = NULL, *p = NULL, *h = NULL, *t = NULL, *l = NULL;
    int d0 = 0, d2 = 2, d1 = 1;
    double out = NAN;
    if (w && x && CHECK_OK(kl_broadcast_to(w, 3, s3, 1, &d0, &wb)) &&
        CHECK_OK(kl_broadcast_to(x, 3, s3, 1, &d2, &xb)) && (p = check_bin(KL_MUL, xb, wb)) &&
        CHECK_OK(kl_reduce(p, KL_REDUCE_SUM, 1, &d1, 0, &h)) && (t = check_un(KL_TANH, h)) &&
        CHECK_OK(kl_reduce(t, KL_REDUCE_SUM, 0, NULL, 0, &l)))
        CHECK_OK(kl_var_copy_to_host(l, &out, sizeof out));
    kl_var *all[] = {w, x, wb, xb, p, h, t, l};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    return out;
}

static void test_matmul_tanh_grad_vs_finite_differences(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    double wv[12], xv[6];
    uint64_t st = 8;
    for (int i = 0; i < 12; i++) wv[i] = check_rand01(&st) - 0.5;
    for (int i = 0; i < 6; i++) xv[i] = 2 * check_rand01(&st) - 1;
    int64_t sw[2] = {3, 4}, sx[2] = {2, 3}, s3[3] = {2, 3, 4};
    kl_var *w = check_var(ctx, KL_FLOAT64, 2, sw, wv), *x = check_var(ctx, KL_FLOAT64, 2, sx, xv);
    kl_var *wb = NULL, *xb = NULL, *p = NULL, *h = NULL, *t = NULL, *gw = NULL;
    int d0 = 0, d2 = 2, d1 = 1;
    if (w && x && CHECK_OK(kl_broadcast_to(w, 3, s3, 1, &d0, &wb)) &&
        CHECK_OK(kl_broadcast_to(x, 3, s3, 1, &d2, &xb)) && (p = check_bin(KL_MUL, xb, wb)) &&
        CHECK_OK(kl_reduce(p, KL_REDUCE_SUM, 1, &d1, 0, &h)) && (t = check_un(KL_TANH, h)) &&
        (gw = grad1(t, w))) {
        CHECK_SHAPE(gw, 2, 3, 4);
        double *g = check_read(gw);
        if (g) {
            double want[12];
            for (int i = 0; i < 12; i++) {
                double wp[12], wm[12], e = 1e-6;
                memcpy(wp, wv, sizeof wp);
                memcpy(wm, wv, sizeof wm);
                wp[i] += e;
                wm[i] -= e;
                want[i] = (eval_loss(ctx, wp, xv) - eval_loss(ctx, wm, xv)) / (2 * e);
            }
            CHECK_ARRAY_CLOSE(g, want, 12, 1e-6, 1e-8, "d sum(tanh(x @ w)) / dw");
            free(g);
        }
    }
    kl_var *all[] = {w, x, wb, xb, p, h, t, gw};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) check_release(all[k]);
    kl_context_free(ctx);
}

CHECK_MAIN(TEST(test_unary_grads), TEST(test_binary_grads), TEST(test_broadcast_binary_grads),
           TEST(test_reduce_grads), TEST(test_reindex_family_grads), TEST(test_where_and_cast_grads),
           TEST(test_dy_unrelated_and_stop_grad), TEST(test_grad_through_computed_values), TEST(test_custom_grad),
           TEST(test_second_derivative),
           TEST(test_matmul_tanh_grad_vs_finite_differences))
