/* check.h: kiln's tiny C test harness (header-only).
 *
 * A test file defines several `static void test_xxx(void)` functions and ends
 * with
 *
 *     CHECK_MAIN(TEST(test_a), TEST(test_b), ...)
 *
 * Each test function runs in its own forked child process, so a crash or a
 * hang (CHECK_TIMEOUT seconds, default 120) in one test is reported as that
 * test's failure and the others still run. Set CHECK_NOFORK=1 to run every
 * test in-process (for gdb). Naming tests on the command line runs only those.
 *
 * Checks never abort: a failed check prints file:line and the reason, marks
 * the current test failed, and the test goes on. The binary ends with a line
 *
 *     N passed, N failed
 *
 * counting test functions, and exits nonzero if any test failed. */
#ifndef KILN_TEST_CHECK_H
#define KILN_TEST_CHECK_H

#include "kiln.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK_UNUSED __attribute__((unused))

/* Failed checks in the current test (in the current process). */
static int check_failures_ CHECK_UNUSED = 0;
/* Failure messages printed in the current test (capped to keep logs short). */
static int check_printed_ CHECK_UNUSED = 0;
#define CHECK_MAX_PRINTED 30

static inline void check_fail_(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void check_fail_(const char *file, int line, const char *fmt, ...)
{
    check_failures_++;
    if (check_printed_++ >= CHECK_MAX_PRINTED) {
        if (check_printed_ == CHECK_MAX_PRINTED + 1)
            printf("    ... (further failures in this test not printed)\n");
        return;
    }
    va_list ap;
    printf("    %s:%d: ", file, line);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static inline const char *check_status_name_(kl_status s)
{
    switch (s) {
    case KL_OK: return "KL_OK";
    case KL_ERR_VALUE: return "KL_ERR_VALUE";
    case KL_ERR_TYPE: return "KL_ERR_TYPE";
    case KL_ERR_INDEX: return "KL_ERR_INDEX";
    case KL_ERR_RUNTIME: return "KL_ERR_RUNTIME";
    case KL_ERR_MEMORY: return "KL_ERR_MEMORY";
    case KL_ERR_OVERFLOW: return "KL_ERR_OVERFLOW";
    case KL_ERR_INTERRUPTED: return "KL_ERR_INTERRUPTED";
    }
    return "KL_ERR_?";
}

static inline const char *check_last_error_(void)
{
    const char *e = kl_last_error();
    return e ? e : "(null)";
}

/* Records a failed CHECK / CHECK_MSG and returns 0. */
static inline int check_cond_fail_(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int check_cond_fail_(const char *file, int line, const char *cond, const char *fmt, ...)
{
    check_fail_(file, line, "CHECK(%s) failed", cond);
    if (check_printed_ <= CHECK_MAX_PRINTED) {
        va_list ap;
        printf("      ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
    }
    return 0;
}

/* CHECK(cond): cond must be true. Evaluates to cond's truth (0/1). */
#define CHECK(cond) ((cond) ? 1 : check_cond_fail0_(__FILE__, __LINE__, #cond))
static inline int check_cond_fail0_(const char *file, int line, const char *cond)
{
    check_fail_(file, line, "CHECK(%s) failed", cond);
    return 0;
}

/* CHECK_MSG(cond, fmt, ...): like CHECK with an extra printf-style message. */
#define CHECK_MSG(cond, ...) ((cond) ? 1 : check_cond_fail_(__FILE__, __LINE__, #cond, __VA_ARGS__))

/* CHECK_OK(expr): expr (a kl_status) must be KL_OK; prints kl_last_error().
 * Evaluates to 1 on success, 0 on failure, so `if (!CHECK_OK(...)) return;`. */
#define CHECK_OK(expr) check_ok_(__FILE__, __LINE__, #expr, (expr))
static inline int check_ok_(const char *file, int line, const char *text, kl_status s)
{
    if (s == KL_OK) return 1;
    check_fail_(file, line, "%s returned %s: \"%s\"", text, check_status_name_(s),
                check_last_error_());
    return 0;
}

/* CHECK_STATUS(expr, expected): expr must return exactly `expected`; when
 * expected is an error, kl_last_error() must be non-empty. */
#define CHECK_STATUS(expr, expected) check_status_(__FILE__, __LINE__, #expr, (expr), (expected))
static inline int check_status_(const char *file, int line, const char *text, kl_status got,
                                kl_status want)
{
    if (got != want) {
        check_fail_(file, line, "%s returned %s, expected %s (last error: \"%s\")", text,
                    check_status_name_(got), check_status_name_(want), check_last_error_());
        return 0;
    }
    if (want != KL_OK) {
        const char *e = kl_last_error();
        if (!e || !e[0]) {
            check_fail_(file, line, "%s returned %s but kl_last_error() is empty", text,
                        check_status_name_(got));
            return 0;
        }
    }
    return 1;
}

/* CHECK_EQ_INT(a, b): integer equality, printing both values. */
#define CHECK_EQ_INT(a, b) check_eq_int_(__FILE__, __LINE__, #a, #b, (long long)(a), (long long)(b))
static inline int check_eq_int_(const char *file, int line, const char *ta, const char *tb,
                                long long a, long long b)
{
    if (a == b) return 1;
    check_fail_(file, line, "%s == %s failed: %lld vs %lld", ta, tb, a, b);
    return 0;
}

/* CHECK_EQ_STR(a, b) */
#define CHECK_EQ_STR(a, b) check_eq_str_(__FILE__, __LINE__, #a, #b, (a), (b))
static inline int check_eq_str_(const char *file, int line, const char *ta, const char *tb,
                                const char *a, const char *b)
{
    if (a && b && strcmp(a, b) == 0) return 1;
    check_fail_(file, line, "%s == %s failed: \"%s\" vs \"%s\"", ta, tb, a ? a : "(null)",
                b ? b : "(null)");
    return 0;
}

/* True when got is within atol + rtol*|want| of want; NaN matches NaN and
 * infinities match the same infinity. */
static inline int check_is_close(double got, double want, double rtol, double atol)
{
    if (isnan(want)) return isnan(got);
    if (isnan(got)) return 0;
    if (isinf(want) || isinf(got)) return got == want;
    return fabs(got - want) <= atol + rtol * fabs(want);
}

/* CHECK_CLOSE(got, want, rtol, atol) */
#define CHECK_CLOSE(a, b, rtol, atol) \
    check_close_(__FILE__, __LINE__, #a, #b, (double)(a), (double)(b), (rtol), (atol))
static inline int check_close_(const char *file, int line, const char *ta, const char *tb,
                               double a, double b, double rtol, double atol)
{
    if (check_is_close(a, b, rtol, atol)) return 1;
    check_fail_(file, line, "CHECK_CLOSE(%s, %s) failed: got %.17g, expected %.17g (rtol %g, atol %g)",
                ta, tb, a, b, rtol, atol);
    return 0;
}

/* CHECK_ARRAY_CLOSE(got, want, n, rtol, atol, label): element-wise over two
 * double arrays; one failed check for the whole array, printing the first
 * few mismatches. `label` is a string naming the case. */
#define CHECK_ARRAY_CLOSE(got, want, n, rtol, atol, label) \
    check_array_close_(__FILE__, __LINE__, (got), (want), (n), (rtol), (atol), (label))
static inline int check_array_close_(const char *file, int line, const double *got,
                                     const double *want, int64_t n, double rtol, double atol,
                                     const char *label)
{
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        if (!check_is_close(got[i], want[i], rtol, atol)) {
            if (bad == 0) first = i;
            bad++;
        }
    }
    if (!bad) return 1;
    check_fail_(file, line, "%s: %lld of %lld elements differ (rtol %g, atol %g)", label,
                (long long)bad, (long long)n, rtol, atol);
    int shown = 0;
    for (int64_t i = first; i < n && shown < 5; i++) {
        if (!check_is_close(got[i], want[i], rtol, atol)) {
            printf("      [%lld] got %.17g, expected %.17g\n", (long long)i, got[i], want[i]);
            shown++;
        }
    }
    return 0;
}

/* ---- float16 (IEEE binary16, stored as uint16_t) ---- */

static inline float check_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal */
            float f = ldexpf((float)man, -24);
            return sign ? -f : f;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Round to nearest, ties to even. */
static inline uint16_t check_float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t exp = (x >> 23) & 0xff, man = x & 0x7fffff;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) {
        if (e < -10) return sign;
        man |= 0x800000;
        int shift = 14 - e;
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
    return (uint16_t)(sign | half);
}

/* ---- converting between doubles and any dtype ---- */

/* bfloat16 <-> float: the top half of a float32's bits. The store picks the
 * nearer of the two bfloat16 neighbours by value (ties: the even one), a
 * different route from the kernels' bit arithmetic. */
static inline float check_bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t check_float_to_bf16(float f)
{
    if (f != f) return 0x7fc0;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    double dl = fabs((double)check_bf16_to_float(lo) - f);
    double fh = check_bf16_to_float(hi);
    double dh = isinf(fh) ? fabs(ldexp(1.0, 128) * (fh < 0 ? -1 : 1) - f) : fabs(fh - f);
    if (isinf(f) || dl < dh) return lo;
    if (dh < dl) return hi;
    return (lo & 1) ? hi : lo;
}

static inline void check_store_(kl_dtype t, void *p, int64_t i, double v)
{
    switch (t) {
    case KL_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    case KL_INT8: ((int8_t *)p)[i] = (int8_t)v; break;
    case KL_UINT8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case KL_INT16: ((int16_t *)p)[i] = (int16_t)v; break;
    case KL_INT32: ((int32_t *)p)[i] = (int32_t)v; break;
    case KL_INT64: ((int64_t *)p)[i] = (int64_t)v; break;
    case KL_FLOAT16: ((uint16_t *)p)[i] = check_float_to_half((float)v); break;
    case KL_FLOAT32: ((float *)p)[i] = (float)v; break;
    case KL_FLOAT64: ((double *)p)[i] = v; break;
    case KL_BFLOAT16: ((uint16_t *)p)[i] = check_float_to_bf16((float)v); break;
    default: break;
    }
}

static inline double check_load_(kl_dtype t, const void *p, int64_t i)
{
    switch (t) {
    case KL_BOOL: return ((const uint8_t *)p)[i];
    case KL_INT8: return ((const int8_t *)p)[i];
    case KL_UINT8: return ((const uint8_t *)p)[i];
    case KL_INT16: return ((const int16_t *)p)[i];
    case KL_INT32: return ((const int32_t *)p)[i];
    case KL_INT64: return (double)((const int64_t *)p)[i];
    case KL_FLOAT16: return check_half_to_float(((const uint16_t *)p)[i]);
    case KL_FLOAT32: return ((const float *)p)[i];
    case KL_FLOAT64: return ((const double *)p)[i];
    case KL_BFLOAT16: return check_bf16_to_float(((const uint16_t *)p)[i]);
    default: return NAN;
    }
}

static inline size_t check_dtype_size_(kl_dtype t)
{
    static const size_t sizes[KL_DTYPE_COUNT] = {1, 1, 1, 2, 4, 8, 2, 4, 8, 2};
    return (unsigned)t < KL_DTYPE_COUNT ? sizes[t] : 8;
}

/* Rounds v to what dtype t can hold (the value a var of dtype t would store). */
static inline double check_round_to(kl_dtype t, double v)
{
    unsigned char buf[8];
    check_store_(t, buf, 0, v);
    return check_load_(t, buf, 0);
}

/* Makes a var of dtype t from doubles (converted as C casts do). NULL on failure
 * (a failed check is recorded). */
#define check_var(ctx, t, ndim, shape, vals) \
    check_var_(__FILE__, __LINE__, (ctx), (t), (ndim), (shape), (vals))
static inline kl_var *check_var_(const char *file, int line, kl_context *ctx, kl_dtype t,
                                 int ndim, const int64_t *shape, const double *vals)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    void *buf = malloc((size_t)(n > 0 ? n : 1) * check_dtype_size_(t));
    for (int64_t i = 0; i < n; i++) check_store_(t, buf, i, vals[i]);
    kl_var *v = NULL;
    kl_status s = kl_var_from_host(ctx, t, ndim, shape, buf, &v);
    free(buf);
    if (s != KL_OK) {
        check_ok_(file, line, "kl_var_from_host", s);
        return NULL;
    }
    return v;
}

/* Reads v (any dtype) into a newly malloc'd double array of numel elements;
 * NULL on failure (a failed check is recorded). Caller frees. */
#define check_read(v) check_read_(__FILE__, __LINE__, (v))
static inline double *check_read_(const char *file, int line, kl_var *v)
{
    if (!v) {
        check_fail_(file, line, "check_read: var is NULL");
        return NULL;
    }
    int64_t n = kl_var_numel(v);
    kl_dtype t = kl_var_dtype(v);
    size_t nbytes = (size_t)n * check_dtype_size_(t);
    void *buf = malloc(nbytes ? nbytes : 1);
    kl_status s = kl_var_copy_to_host(v, buf, nbytes);
    if (s != KL_OK) {
        check_ok_(file, line, "kl_var_copy_to_host", s);
        free(buf);
        return NULL;
    }
    double *out = malloc((size_t)(n > 0 ? n : 1) * sizeof *out);
    for (int64_t i = 0; i < n; i++) out[i] = check_load_(t, buf, i);
    free(buf);
    return out;
}

/* Releases a var if non-NULL. */
static inline void check_release(kl_var *v)
{
    if (v) kl_var_release(v);
}

/* Releases each of the vars given (NULL ones skipped). */
#define check_release_all(...) \
    check_release_n_((kl_var *[]){__VA_ARGS__}, sizeof((kl_var *[]){__VA_ARGS__}) / sizeof(kl_var *))
static inline void check_release_n_(kl_var *const *vs, size_t n)
{
    for (size_t i = 0; i < n; i++) check_release(vs[i]);
}

/* Whether ctx has oneDNN; when not, says so, and fails the test if it is
 * required (KILN_TEST_REQUIRE_DNNL=1, set by scripts/test.sh where the
 * package is installed: skipping would hide a break). */
static inline int check_have_dnnl(kl_context *ctx)
{
    if (kl_context_has_library(ctx, "dnnl")) return 1;
    const char *req = getenv("KILN_TEST_REQUIRE_DNNL");
    CHECK_MSG(!(req && strcmp(req, "1") == 0), "oneDNN (libdnnl.so.2) is installed but did not load");
    printf("    note: oneDNN (libdnnl.so.2) not found: checking the fused kernels only\n");
    return 0;
}

/* When on, *v replaced by stop_grad(cast(*v, its own dtype)): what no_grad
 * and an identity cast put between ops, which library patterns must see through. */
static inline int check_pass_through(int on, kl_var **v)
{
    if (!on) return 1;
    kl_var *c = NULL, *s = NULL;
    int ok = CHECK_OK(kl_cast(*v, kl_var_dtype(*v), &c)) && CHECK_OK(kl_stop_grad(c, &s));
    check_release(*v);
    check_release(c);
    *v = s;
    return ok;
}

/* CHECK_SHAPE(v, ndim, ...dims): v's rank and dims. */
#define CHECK_SHAPE(v, nd, ...) \
    check_shape_(__FILE__, __LINE__, #v, (v), (nd), (const int64_t[]){__VA_ARGS__})
static inline int check_shape_(const char *file, int line, const char *text, kl_var *v, int nd,
                               const int64_t *dims)
{
    if (!v) {
        check_fail_(file, line, "%s is NULL", text);
        return 0;
    }
    int ok = kl_var_ndim(v) == nd;
    const int64_t *s = kl_var_shape(v);
    for (int d = 0; ok && d < nd; d++) ok = s[d] == dims[d];
    if (ok) return 1;
    char got[160] = "", want[160] = "";
    size_t g = 0, w = 0;
    for (int d = 0; d < kl_var_ndim(v) && d < KL_MAX_DIMS && g < sizeof got - 24; d++)
        g += (size_t)snprintf(got + g, sizeof got - g, "%lld,", (long long)s[d]);
    for (int d = 0; d < nd && w < sizeof want - 24; d++)
        w += (size_t)snprintf(want + w, sizeof want - w, "%lld,", (long long)dims[d]);
    check_fail_(file, line, "%s has shape (%s) rank %d, expected (%s) rank %d", text, got,
                kl_var_ndim(v), want, nd);
    return 0;
}

/* CHECK_DTYPE(v, dtype) */
#define CHECK_DTYPE(v, t) check_dtype_(__FILE__, __LINE__, #v, (v), (t))
static inline int check_dtype_(const char *file, int line, const char *text, kl_var *v, kl_dtype t)
{
    if (!v) {
        check_fail_(file, line, "%s is NULL", text);
        return 0;
    }
    if (kl_var_dtype(v) == t) return 1;
    check_fail_(file, line, "%s has dtype %d (%s), expected %d (%s)", text, (int)kl_var_dtype(v),
                kl_dtype_name(kl_var_dtype(v)) ? kl_dtype_name(kl_var_dtype(v)) : "?", (int)t,
                kl_dtype_name(t) ? kl_dtype_name(t) : "?");
    return 0;
}

/* A deterministic pseudo-random double in [0, 1) (splitmix64), for test data. */
static inline double check_rand01(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static inline double check_now_(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- runner ---- */

typedef struct {
    const char *name;
    void (*fn)(void);
} check_test;

#define TEST(fn) {#fn, fn}

#define CHECK_MAIN(...)                                                               \
    int main(int argc, char **argv)                                                   \
    {                                                                                 \
        static const check_test check_tests_[] = {__VA_ARGS__};                       \
        return check_run_(argc, argv, check_tests_,                                   \
                          (int)(sizeof check_tests_ / sizeof check_tests_[0]));      \
    }

static inline int check_selected_(int argc, char **argv, const char *name)
{
    if (argc <= 1) return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return 1;
    return 0;
}

/* Runs one test in this process; returns 1 if it passed. */
static inline int check_run_inline_(const check_test *t)
{
    check_failures_ = 0;
    check_printed_ = 0;
    t->fn();
    fflush(stdout);
    return check_failures_ == 0;
}

static inline int check_run_(int argc, char **argv, const check_test *tests, int n)
{
    const char *nofork = getenv("CHECK_NOFORK");
    int use_fork = !(nofork && nofork[0] && strcmp(nofork, "0") != 0);
    const char *tmo = getenv("CHECK_TIMEOUT");
    int timeout = tmo ? atoi(tmo) : 120;
    int passed = 0, failed = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < n; i++) {
        const check_test *t = &tests[i];
        if (!check_selected_(argc, argv, t->name)) continue;
        printf("-- %s\n", t->name);
        fflush(stdout);
        fflush(stderr);
        double t0 = check_now_();
        int ok;
        char why[96] = "";
        if (!use_fork) {
            ok = check_run_inline_(t);
        } else {
            pid_t pid = fork();
            if (pid < 0) {
                perror("fork");
                ok = 0;
                snprintf(why, sizeof why, " (fork failed)");
            } else if (pid == 0) {
                if (timeout > 0) alarm((unsigned)timeout);
                ok = check_run_inline_(t);
                fflush(stdout);
                fflush(stderr);
                exit(ok ? 0 : 1); /* exit (not _exit) so LeakSanitizer runs */
            } else {
                int st = 0;
                while (waitpid(pid, &st, 0) < 0) {
                }
                if (WIFEXITED(st)) {
                    ok = WEXITSTATUS(st) == 0;
                    if (WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 1)
                        snprintf(why, sizeof why, " (exit status %d)", WEXITSTATUS(st));
                } else if (WIFSIGNALED(st)) {
                    ok = 0;
                    int sig = WTERMSIG(st);
                    snprintf(why, sizeof why, " (killed by signal %d%s)", sig,
                             sig == SIGALRM ? ": timed out" : "");
                } else {
                    ok = 0;
                }
            }
        }
        double dt = check_now_() - t0;
        printf("%s %s (%.2f s)%s\n", ok ? "   ok  " : "   FAIL", t->name, dt, why);
        if (ok)
            passed++;
        else
            failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout);
    return failed ? 1 : 0;
}

/* ---- small conveniences for tests ---- */

/* A new context, or NULL with a failed check. */
#define check_context() check_context_(__FILE__, __LINE__)
static inline kl_context *check_context_(const char *file, int line)
{
    kl_context *ctx = NULL;
    kl_status s = kl_context_new(&ctx);
    if (s != KL_OK) {
        check_ok_(file, line, "kl_context_new", s);
        return NULL;
    }
    return ctx;
}

/* A new context made while the environment variable off (KILN_BLAS,
 * KILN_DNNL) is "0": the backend reads it when the context is made, so this
 * one runs without that library; off is unset again afterwards. */
#define check_context_without(off) check_context_without_((off), __FILE__, __LINE__)
static inline kl_context *check_context_without_(const char *off, const char *file, int line)
{
    setenv(off, "0", 1);
    kl_context *ctx = check_context_(file, line);
    unsetenv(off);
    return ctx;
}

/* A rank-0 var holding value. */
static inline kl_var *check_scalar(kl_context *ctx, kl_dtype t, double value)
{
    kl_var *v = NULL;
    if (!CHECK_OK(kl_full(ctx, t, 0, NULL, value, &v))) return NULL;
    return v;
}

/* Binary / unary helpers that record failures and return NULL. */
static inline kl_var *check_bin(kl_binary_op op, kl_var *a, kl_var *b)
{
    kl_var *out = NULL;
    if (!a || !b) return NULL;
    if (!CHECK_OK(kl_binary(op, a, b, &out))) return NULL;
    return out;
}

static inline kl_var *check_un(kl_unary_op op, kl_var *a)
{
    kl_var *out = NULL;
    if (!a) return NULL;
    if (!CHECK_OK(kl_unary(op, a, &out))) return NULL;
    return out;
}

/* s as the body of a C string literal (quotes, backslashes and newlines
 * escaped), cut short to fit n bytes: for kernel sources written in tests. */
static inline void check_c_escape(const char *s, char *out, size_t n)
{
    size_t k = 0;
    for (; *s && k + 3 < n; s++) {
        if (*s == '"' || *s == '\\') out[k++] = '\\', out[k++] = *s;
        else if (*s == '\n') out[k++] = '\\', out[k++] = 'n';
        else out[k++] = *s;
    }
    out[k] = 0;
}

/* The host code of a CUDA code op (kl_code's KL_CODE_CUDA) as a test writes
 * it: the runtime's declaration, device_code as the string device_code, and
 * kl_kernel with rt (the runtime, buf[runtime_buf]) followed by body. */
static inline void check_cuda_host_code(char *out, size_t n, const char *device_code, int runtime_buf,
                                        const char *body)
{
    char code[4096];
    check_c_escape(device_code, code, sizeof code);
    snprintf(out, n,
             "#include <stddef.h>\n#include <stdint.h>\n#include <string.h>\n%s\n"
             "static const char device_code[] = \"%s\";\n"
             "extern \"C\" void kl_kernel(void *const *buf, const int64_t *iarg, const double *farg)\n{\n"
             "    (void)iarg; (void)farg;\n"
             "    kl_code_cuda_runtime *rt = (kl_code_cuda_runtime *)buf[%d];\n%s}\n",
             kl_code_cuda_runtime_decl(), code, runtime_buf, body);
}

#endif
