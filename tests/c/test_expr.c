/* test_expr.c: the internal index-expression parser (src/core/expr.h). */
#include "check.h"
#include "core/expr.h"

/* What an expression may read while the test evaluates it. */
typedef struct {
    int64_t idx[KL_MAX_DIMS];
    int64_t xshape[KL_MAX_DIMS];
    int64_t yshape[KL_MAX_DIMS];
    int xdim, ydim;
} env_t;

/* @eK(a, b, ...) reads as 1000*(K+1) + a*100 + b*10 + c (a made-up extra). */
static int64_t fake_extra(int k, int n, const int64_t *args)
{
    int64_t v = 1000 * (k + 1), w = 100;
    for (int i = 0; i < n; i++, w /= 10) v += args[i] * w;
    return v;
}

/* Evaluates e in env; *ok becomes 0 on an unknown node. C integer semantics. */
static int64_t eval(const kl_expr *e, const env_t *env, int *ok)
{
    if (!e) {
        *ok = 0;
        return 0;
    }
    int64_t a, b;
    switch (e->kind) {
    case KL_EX_INT: return e->value;
    case KL_EX_INDEX: return (e->value >= 0 && e->value < KL_MAX_DIMS) ? env->idx[e->value] : (*ok = 0);
    case KL_EX_XSHAPE: return (e->value >= 0 && e->value < KL_MAX_DIMS) ? env->xshape[e->value] : (*ok = 0);
    case KL_EX_YSHAPE: return (e->value >= 0 && e->value < KL_MAX_DIMS) ? env->yshape[e->value] : (*ok = 0);
    case KL_EX_XDIM: return env->xdim;
    case KL_EX_YDIM: return env->ydim;
    case KL_EX_EXTRA: {
        int64_t args[KL_MAX_DIMS];
        for (int i = 0; i < e->n_args && i < KL_MAX_DIMS; i++) args[i] = eval(e->args[i], env, ok);
        return fake_extra((int)e->value, e->n_args, args);
    }
    case KL_EX_NEG: return -eval(e->args[0], env, ok);
    case KL_EX_NOT: return !eval(e->args[0], env, ok);
    case KL_EX_MIN:
        a = eval(e->args[0], env, ok);
        b = eval(e->args[1], env, ok);
        return a < b ? a : b;
    case KL_EX_MAX:
        a = eval(e->args[0], env, ok);
        b = eval(e->args[1], env, ok);
        return a > b ? a : b;
    case KL_EX_SELECT:
        return eval(e->args[0], env, ok) ? eval(e->args[1], env, ok) : eval(e->args[2], env, ok);
    case KL_EX_BINARY:
        a = eval(e->args[0], env, ok);
        b = eval(e->args[1], env, ok);
        switch ((kl_expr_binop)e->op) {
        case KL_EXB_ADD: return a + b;
        case KL_EXB_SUB: return a - b;
        case KL_EXB_MUL: return a * b;
        case KL_EXB_DIV: return b ? a / b : (*ok = 0);
        case KL_EXB_MOD: return b ? a % b : (*ok = 0);
        case KL_EXB_LT: return a < b;
        case KL_EXB_LE: return a <= b;
        case KL_EXB_GT: return a > b;
        case KL_EXB_GE: return a >= b;
        case KL_EXB_EQ: return a == b;
        case KL_EXB_NE: return a != b;
        case KL_EXB_AND: return a && b;
        case KL_EXB_OR: return a || b;
        }
        *ok = 0;
        return 0;
    }
    *ok = 0;
    return 0;
}

static env_t default_env(void)
{
    env_t env;
    memset(&env, 0, sizeof env);
    env.idx[0] = 3;
    env.idx[1] = 4;
    env.idx[2] = 5;
    env.idx[3] = 1;
    env.xshape[0] = 10;
    env.xshape[1] = 20;
    env.yshape[0] = 7;
    env.xdim = 2;
    env.ydim = 1;
    return env;
}

/* Parses src, checks its value in env, then round-trips it through
 * kl_expr_print: the printed text parses to an expression of the same value
 * and prints the same again. */
static void check_expr(const char *src, const env_t *env, int64_t want, int line)
{
    kl_expr *e = NULL;
    kl_status s = kl_expr_parse(src, &e);
    if (s != KL_OK || !e) {
        check_fail_(__FILE__, line, "kl_expr_parse(\"%s\") returned %s: \"%s\"", src,
                    check_status_name_(s), check_last_error_());
        return;
    }
    int ok = 1;
    int64_t got = eval(e, env, &ok);
    if (!ok || got != want)
        check_fail_(__FILE__, line, "\"%s\" evaluates to %lld (ok=%d), expected %lld", src,
                    (long long)got, ok, (long long)want);

    char p1[512], p2[512];
    memset(p1, 0, sizeof p1);
    kl_expr_print(e, p1, sizeof p1);
    if (!p1[0]) check_fail_(__FILE__, line, "kl_expr_print(\"%s\") printed nothing", src);
    kl_expr *e2 = NULL;
    s = kl_expr_parse(p1, &e2);
    if (s != KL_OK || !e2) {
        check_fail_(__FILE__, line, "printed \"%s\" (from \"%s\") does not parse: %s \"%s\"", p1, src,
                    check_status_name_(s), check_last_error_());
    } else {
        ok = 1;
        got = eval(e2, env, &ok);
        if (!ok || got != want)
            check_fail_(__FILE__, line, "printed \"%s\" (from \"%s\") evaluates to %lld, expected %lld",
                        p1, src, (long long)got, (long long)want);
        memset(p2, 0, sizeof p2);
        kl_expr_print(e2, p2, sizeof p2);
        if (strcmp(p1, p2) != 0)
            check_fail_(__FILE__, line, "print is not a fixed point: \"%s\" -> \"%s\" -> \"%s\"", src,
                        p1, p2);
        kl_expr_free(e2);
    }

    kl_expr *c = kl_expr_clone(e);
    if (!c) {
        check_fail_(__FILE__, line, "kl_expr_clone(\"%s\") returned NULL", src);
    } else {
        kl_expr_free(e); /* the clone must not share nodes with the original */
        e = NULL;
        memset(p2, 0, sizeof p2);
        kl_expr_print(c, p2, sizeof p2);
        if (strcmp(p1, p2) != 0)
            check_fail_(__FILE__, line, "clone prints \"%s\", original \"%s\"", p2, p1);
        ok = 1;
        got = eval(c, env, &ok);
        if (!ok || got != want)
            check_fail_(__FILE__, line, "clone of \"%s\" evaluates to %lld", src, (long long)got);
        kl_expr_free(c);
    }
    if (e) kl_expr_free(e);
}
#define EXPR_IS(src, want) check_expr((src), &env, (want), __LINE__)

static void test_valid_expressions(void)
{
    env_t env = default_env(); /* i0=3 i1=4 i2=5 i3=1 xshape0=10 xshape1=20 yshape0=7 */
    EXPR_IS("i0", 3);
    EXPR_IS("42", 42);
    EXPR_IS("i0*2+i1-1", 9);
    EXPR_IS("(i0+1)%3", 1);
    EXPR_IS("min(i0,i1)", 3);
    EXPR_IS("max(i0,i1)", 4);
    EXPR_IS("-i0", -3);
    EXPR_IS("i0<3&&i1>=0", 0);
    EXPR_IS("i0<=3&&i1>=0", 1);
    EXPR_IS("xshape0-1-i0", 6);
    EXPR_IS("xshape1/i1", 5);
    EXPR_IS("yshape0+i0", 10);
    EXPR_IS("@e0(i0,i1)", fake_extra(0, 2, (int64_t[]){3, 4}));
    EXPR_IS("@e1(i2)", fake_extra(1, 1, (int64_t[]){5}));
    EXPR_IS("@e0(i0+1,min(i1,2))", fake_extra(0, 2, (int64_t[]){4, 2}));
    EXPR_IS("i2*2+@e0(i0)-1", 10 + fake_extra(0, 1, (int64_t[]){3}) - 1);
}

static void test_precedence_and_associativity(void)
{
    env_t env = default_env();
    EXPR_IS("1+2*3", 7);
    EXPR_IS("(1+2)*3", 9);
    EXPR_IS("10-3-2", 5);
    EXPR_IS("48/4/2", 6);
    EXPR_IS("17%5*2", 4);
    EXPR_IS("2*-i0", -6);
    EXPR_IS("-i0*2+1", -5);
    EXPR_IS("--i0", 3);
    EXPR_IS("!i0", 0);
    EXPR_IS("!(i0-3)", 1);
    EXPR_IS("i0==3||i1==0", 1);
    EXPR_IS("i0!=3||i1<4", 0);
    EXPR_IS("i0+1<i1+1", 1);
    EXPR_IS("i0<i1==1", 1);
    EXPR_IS("1||0&&0", 1);
    EXPR_IS("i0>2&&i1>3&&i2>4", 1);
    EXPR_IS("i0>=4||i1>4||i2>5", 0);
    EXPR_IS("((((i3))))", 1);
    EXPR_IS("i7", 0);
}

static void test_spaces_allowed(void)
{
    env_t env = default_env();
    EXPR_IS(" i0 + 2 * i1 ", 11);
    EXPR_IS("min( i0 , i1 )", 3);
    EXPR_IS("@e0( i0 )", fake_extra(0, 1, (int64_t[]){3}));
}

static void test_shape_names(void)
{
    env_t env = default_env();
    EXPR_IS("XDIM", 2);
    EXPR_IS("YDIM", 1);
    EXPR_IS("xshape0*xshape1", 200);
}

static void test_ternary_optional(void)
{
    env_t env = default_env();
    kl_expr *e = NULL;
    if (kl_expr_parse("i0?1:2", &e) != KL_OK) {
        printf("    note: ?: not supported by the parser (optional)\n");
        return;
    }
    kl_expr_free(e);
    EXPR_IS("i0?1:2", 1);
    EXPR_IS("i0-3?1:2", 2);
    EXPR_IS("i0<i1?i0:i1", 3);
}

/* Parsing src must fail with KL_ERR_VALUE and a message, and leave no tree. */
static void check_parse_fails(const char *src, int line)
{
    kl_expr *e = NULL;
    kl_status s = kl_expr_parse(src, &e);
    if (s != KL_ERR_VALUE) {
        check_fail_(__FILE__, line, "kl_expr_parse(\"%s\") returned %s, expected KL_ERR_VALUE", src,
                    check_status_name_(s));
        if (s == KL_OK) kl_expr_free(e);
        return;
    }
    const char *msg = kl_last_error();
    if (!msg || !msg[0]) check_fail_(__FILE__, line, "no message for \"%s\"", src);
}
#define PARSE_FAILS(src) check_parse_fails((src), __LINE__)

static void test_malformed_expressions(void)
{
    PARSE_FAILS("i0+");
    PARSE_FAILS("(i0");
    PARSE_FAILS("i0)");
    PARSE_FAILS("foo");
    PARSE_FAILS("");
    PARSE_FAILS("   ");
    PARSE_FAILS("i0 i1");
    PARSE_FAILS("1+)");
    PARSE_FAILS("*i0");
    PARSE_FAILS("min(i0)");
    PARSE_FAILS("min(i0,i1,i2)");
    PARSE_FAILS("@e0(");
    PARSE_FAILS("@e0(i0,)");
    PARSE_FAILS("@x0(i0)");
    PARSE_FAILS("i");
    PARSE_FAILS("i0;system(0)");
    PARSE_FAILS("i0$");
    PARSE_FAILS("1.5");
}

/* Parse then validate src; the combined result must be KL_ERR_VALUE with a
 * message (either step may be the one that rejects it). */
static void check_invalid(const char *src, int n_index, int xdim, int ydim, int n_extras,
                          const int *extra_ndims, int line)
{
    kl_expr *e = NULL;
    kl_status s = kl_expr_parse(src, &e);
    if (s == KL_OK) {
        s = kl_expr_validate(e, src, n_index, xdim, ydim, n_extras, extra_ndims);
        kl_expr_free(e);
    }
    if (s != KL_ERR_VALUE) {
        check_fail_(__FILE__, line, "\"%s\" (n_index %d, xdim %d, ydim %d, n_extras %d) gave %s, expected KL_ERR_VALUE",
                    src, n_index, xdim, ydim, n_extras, check_status_name_(s));
        return;
    }
    const char *msg = kl_last_error();
    if (!msg || !msg[0]) check_fail_(__FILE__, line, "no message for \"%s\"", src);
}

static void check_valid(const char *src, int n_index, int xdim, int ydim, int n_extras,
                        const int *extra_ndims, int line)
{
    kl_expr *e = NULL;
    kl_status s = kl_expr_parse(src, &e);
    if (s == KL_OK) {
        s = kl_expr_validate(e, src, n_index, xdim, ydim, n_extras, extra_ndims);
        kl_expr_free(e);
    }
    if (s != KL_OK)
        check_fail_(__FILE__, line, "\"%s\" should validate, got %s: \"%s\"", src,
                    check_status_name_(s), check_last_error_());
}

static void test_validation(void)
{
    const int one[1] = {1}, two[2] = {2, 1};
    check_valid("i0+i1", 2, 2, 0, 0, NULL, __LINE__);
    check_valid("xshape1-1-i0", 2, 2, 0, 0, NULL, __LINE__);
    check_valid("@e0(i0)", 1, 1, 0, 1, one, __LINE__);
    check_valid("@e0(i0,i1)+@e1(i1)", 2, 1, 0, 2, two, __LINE__);
    check_valid("yshape0", 1, 1, 1, 0, NULL, __LINE__);

    check_invalid("i9", 2, 2, 0, 0, NULL, __LINE__);
    check_invalid("i2", 2, 2, 0, 0, NULL, __LINE__);
    check_invalid("i0+i3", 3, 2, 0, 0, NULL, __LINE__);
    check_invalid("xshape2", 2, 2, 0, 0, NULL, __LINE__);
    check_invalid("yshape0", 2, 2, 0, 0, NULL, __LINE__);
    check_invalid("@e3(i0)", 1, 1, 0, 1, one, __LINE__);
    check_invalid("@e1(i0)", 1, 1, 0, 1, one, __LINE__);
    check_invalid("@e0(i0,i1)", 2, 1, 0, 1, one, __LINE__);
    check_invalid("@e0(i0)", 1, 1, 0, 1, (const int[]){2}, __LINE__);
    check_invalid("@e0(i0)", 1, 1, 0, 0, NULL, __LINE__);
}

static void test_binop_text(void)
{
    CHECK_EQ_STR(kl_expr_binop_text(KL_EXB_ADD), "+");
    CHECK_EQ_STR(kl_expr_binop_text(KL_EXB_MUL), "*");
    CHECK_EQ_STR(kl_expr_binop_text(KL_EXB_MOD), "%");
    CHECK_EQ_STR(kl_expr_binop_text(KL_EXB_LE), "<=");
    CHECK_EQ_STR(kl_expr_binop_text(KL_EXB_NE), "!=");
    CHECK_EQ_STR(kl_expr_binop_text(KL_EXB_AND), "&&");
    CHECK_EQ_STR(kl_expr_binop_text(KL_EXB_OR), "||");
}

static void test_print_small_buffer(void)
{
    /* Printing into a short buffer truncates but stays NUL-terminated. */
    kl_expr *e = NULL;
    if (!CHECK_OK(kl_expr_parse("i0*2+i1-1+xshape0*min(i1,i2)", &e))) return;
    char buf[8];
    memset(buf, 'x', sizeof buf);
    kl_expr_print(e, buf, 6);
    CHECK(memchr(buf, '\0', 6) != NULL);
    CHECK(buf[6] == 'x' && buf[7] == 'x');
    kl_expr_free(e);
}

/* A message mentioning `what` for src, and no crash however long src is. */
static void check_refused(const char *src, const char *what, int line)
{
    kl_expr *e = NULL;
    kl_status s = kl_expr_parse(src, &e);
    if (s != KL_ERR_VALUE || e) {
        check_fail_(__FILE__, line, "a %zu-character expression gave %s, expected KL_ERR_VALUE", strlen(src),
                    check_status_name_(s));
        kl_expr_free(e);
        return;
    }
    if (!strstr(kl_last_error(), what))
        check_fail_(__FILE__, line, "message \"%.200s\" does not say \"%s\"", kl_last_error(), what);
}

/* n copies of piece joined by sep, wrapped in open/close n times when given. */
static char *repeat(const char *piece, const char *sep, int n)
{
    size_t lp = strlen(piece), ls = strlen(sep);
    char *s = malloc((size_t)n * (lp + ls) + 1), *p = s;
    for (int i = 0; i < n; i++) {
        if (i) { memcpy(p, sep, ls); p += ls; }
        memcpy(p, piece, lp);
        p += lp;
    }
    *p = 0;
    return s;
}

/* (A+B) with A and B the same of one level less, down to i0: 2^levels terms. */
static char *balanced_sum(int levels)
{
    if (levels == 0) return strdup("i0");
    char *half = balanced_sum(levels - 1);
    size_t n = strlen(half);
    char *s = malloc(2 * n + 4);
    snprintf(s, 2 * n + 4, "(%s+%s)", half, half);
    free(half);
    return s;
}

static void test_size_and_height_are_bounded(void)
{
    env_t env = default_env();
    char *flat = repeat("i0", "+", 40000); /* once overflowed the walkers' stack */
    check_refused(flat, "nested too deeply", __LINE__);
    free(flat);
    /* a balanced sum of 8192 terms is short but has too many nodes */
    char *balanced = balanced_sum(13);
    check_refused(balanced, "too long", __LINE__);
    free(balanced);
    balanced = balanced_sum(10); /* 1024 terms parse */
    kl_expr *e = NULL;
    CHECK_OK(kl_expr_parse(balanced, &e));
    kl_expr_free(e);
    free(balanced);
    balanced = balanced_sum(6);
    EXPR_IS(balanced, 64 * 3);
    free(balanced);
    /* a flat chain within the node bound is still too tall for the walkers */
    char *chain = repeat("i0", "+", 1000);
    check_refused(chain, "nested too deeply", __LINE__);
    free(chain);
    char *nots = repeat("!", "", 100000);
    check_refused(nots, "nested too deeply", __LINE__);
    free(nots);
    /* the bounds leave room for every expression Jittor's ops write */
    char *ok = repeat("i0", "+", 100);
    EXPR_IS(ok, 300);
    free(ok);
    EXPR_IS("min(max(i0-1,0),xshape0-1)*xshape1+min(max(i1+1,0),xshape1-1)", 2 * 20 + 5);
}

static void test_constant_folding_checks_overflow(void)
{
    env_t env = default_env();
    check_refused("9223372036854775807+1", "overflow", __LINE__);
    check_refused("i0+(4611686018427387904*2)", "overflow", __LINE__);
    check_refused("i0*(-(-9223372036854775807-1))", "overflow", __LINE__);
    check_refused("(-9223372036854775807-1)/-1", "overflow", __LINE__);
    check_refused("i0+7/0", "division by zero", __LINE__);
    check_refused("i0+7%0", "division by zero", __LINE__);
    check_refused("99999999999999999999", "out of range", __LINE__);
    check_refused("@e99999999999999999999(i0)", "out of range", __LINE__);
    EXPR_IS("2*3+i0", 9);
    EXPR_IS("-7/2+i0", 0);
    EXPR_IS("-9223372036854775807-1", INT64_MIN);
    EXPR_IS("i0 > -9223372036854775807-1", 1);
    EXPR_IS("!(3<2)*i1", 4);
    /* non-constant parts keep their runtime meaning (x/0 is 0 in a kernel) */
    kl_expr *e = NULL;
    if (CHECK_OK(kl_expr_parse("i0/(i1-4)", &e))) CHECK_EQ_INT(e->kind, KL_EX_BINARY);
    kl_expr_free(e);
}

static void test_affine_reading_never_overflows(void)
{
    kl_expr *e = NULL;
    kl_affine a;
    if (CHECK_OK(kl_expr_parse("i0*4611686018427387904*4", &e))) CHECK(!kl_expr_affine(e, 2, &a));
    kl_expr_free(e);
    if (CHECK_OK(kl_expr_parse("-(i0*4611686018427387905)*2-i1", &e))) CHECK(!kl_expr_affine(e, 2, &a));
    kl_expr_free(e);
    if (CHECK_OK(kl_expr_parse("i0*(9223372036854775807)+9223372036854775807", &e))) {
        CHECK(kl_expr_affine(e, 2, &a));
        CHECK_EQ_INT(a.coef[0], INT64_MAX);
        CHECK_EQ_INT(a.constant, INT64_MAX);
    }
    kl_expr_free(e);
    if (CHECK_OK(kl_expr_parse("(i0+9223372036854775807)+1", &e))) CHECK(!kl_expr_affine(e, 2, &a));
    kl_expr_free(e);
    if (CHECK_OK(kl_expr_parse("i0*2-3*i1+5", &e)) && CHECK(kl_expr_affine(e, 2, &a))) {
        CHECK_EQ_INT(a.coef[0], 2);
        CHECK_EQ_INT(a.coef[1], -3);
        CHECK_EQ_INT(a.constant, 5);
    }
    kl_expr_free(e);
}

CHECK_MAIN(TEST(test_size_and_height_are_bounded), TEST(test_constant_folding_checks_overflow),
           TEST(test_affine_reading_never_overflows), TEST(test_valid_expressions), TEST(test_precedence_and_associativity),
           TEST(test_spaces_allowed), TEST(test_shape_names), TEST(test_ternary_optional),
           TEST(test_malformed_expressions), TEST(test_validation), TEST(test_binop_text),
           TEST(test_print_small_buffer))
