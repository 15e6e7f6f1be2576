/* test_cache.c: the on-disk kernel cache across processes. A second process on
 * the same cache compiles nothing; two processes filling one empty cache at
 * the same time both succeed; a process killed while compiling leaves nothing
 * that blocks the next one. */
#include "check.h"

#include <errno.h>
#include <ftw.h>
#include <sys/stat.h>

/* ---- temp dirs ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir)
{
    if (dir && dir[0]) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int make_temp_dir(char *buf, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, size, "%s/kiln_test_cache_XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(buf)) {
        check_fail_(__FILE__, __LINE__, "mkdtemp(%s): %s", buf, strerror(errno));
        return 0;
    }
    return 1;
}

/* ---- the child's work ---- */

enum { CHILD_OK = 0, CHILD_API_ERROR = 2, CHILD_WRONG = 3, CHILD_IO = 4 };

typedef struct {
    int code;
    kl_counters counters;
    char message[200];
} child_report;

/* A few kernels: an element-wise chain with a sum, a broadcast product, a flip. */
static int child_compute(kl_context *ctx, char *msg, size_t msg_size)
{
    enum { N = 3000 };
    int64_t n = N;
    static float v[N];
    double ref = 0;
    for (int i = 0; i < N; i++) {
        v[i] = (float)((i % 50) * 0.02 - 0.5);
        ref += exp(3.0 * v[i] - 1.0);
    }
    kl_var *x = NULL, *three = NULL, *one = NULL, *a = NULL, *b = NULL, *c = NULL, *y1 = NULL;
    kl_var *two = NULL, *p = NULL, *y2 = NULL, *y3 = NULL;
    int rc = CHILD_API_ERROR;
    const char *flip[1] = {"xshape0-1-i0"};
    if (kl_var_from_host(ctx, KL_FLOAT32, 1, &n, v, &x) ||
        kl_full(ctx, KL_FLOAT32, 0, NULL, 3, &three) || kl_full(ctx, KL_FLOAT32, 0, NULL, 1, &one) ||
        kl_full(ctx, KL_FLOAT32, 0, NULL, 2, &two) || kl_binary(KL_MUL, x, three, &a) ||
        kl_binary(KL_SUB, a, one, &b) || kl_unary(KL_EXP, b, &c) ||
        kl_reduce(c, KL_REDUCE_SUM, 0, NULL, 0, &y1) || kl_binary(KL_ADD, x, two, &p) ||
        kl_binary(KL_MUL, p, x, &y2) ||
        kl_reindex(x, 1, &n, flip, 0, 0, NULL, 0, NULL, &y3)) {
        snprintf(msg, msg_size, "build failed: %s", check_last_error_());
        goto out;
    }
    float s = 0;
    static float g2[N], g3[N];
    if (kl_var_copy_to_host(y1, &s, sizeof s) || kl_var_copy_to_host(y2, g2, sizeof g2) ||
        kl_var_copy_to_host(y3, g3, sizeof g3)) {
        snprintf(msg, msg_size, "run failed: %s", check_last_error_());
        goto out;
    }
    rc = CHILD_WRONG;
    if (fabs(s - ref) > 1e-5 * fabs(ref)) {
        snprintf(msg, msg_size, "sum %.9g, expected %.9g", s, ref);
        goto out;
    }
    for (int i = 0; i < N; i++) {
        float w2 = (v[i] + 2.0f) * v[i];
        if (g2[i] != w2 || g3[i] != v[N - 1 - i]) {
            snprintf(msg, msg_size, "element %d: %g vs %g, %g vs %g", i, g2[i], w2, g3[i], v[N - 1 - i]);
            goto out;
        }
    }
    rc = CHILD_OK;
out:;
    kl_var *all[] = {x, three, one, a, b, c, y1, two, p, y2, y3};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        if (all[k]) kl_var_release(all[k]);
    return rc;
}

/* In the child: wait for the start signal (if any), compute, report, exit. */
static void child_main(const char *dir, int use_env, int start_fd, int report_fd)
{
    alarm(120);
    child_report rep;
    memset(&rep, 0, sizeof rep);
    if (start_fd >= 0) {
        char ch;
        while (read(start_fd, &ch, 1) < 0 && errno == EINTR) {
        }
        close(start_fd);
    }
    kl_context *ctx = NULL;
    if (use_env) setenv("KILN_CACHE_DIR", dir, 1);
    if (kl_context_new(&ctx) != KL_OK) {
        rep.code = CHILD_API_ERROR;
        snprintf(rep.message, sizeof rep.message, "kl_context_new: %s", check_last_error_());
    } else if (!use_env && kl_context_set_cache_dir(ctx, dir) != KL_OK) {
        rep.code = CHILD_API_ERROR;
        snprintf(rep.message, sizeof rep.message, "kl_context_set_cache_dir: %s", check_last_error_());
    } else if (!kl_context_cache_dir(ctx) || strcmp(kl_context_cache_dir(ctx), dir) != 0) {
        rep.code = CHILD_WRONG;
        snprintf(rep.message, sizeof rep.message, "kl_context_cache_dir is \"%s\", expected \"%s\"",
                 kl_context_cache_dir(ctx) ? kl_context_cache_dir(ctx) : "(null)", dir);
    } else {
        rep.code = child_compute(ctx, rep.message, sizeof rep.message);
        kl_context_counters(ctx, &rep.counters);
    }
    if (ctx) kl_context_free(ctx);
    ssize_t w = write(report_fd, &rep, sizeof rep);
    close(report_fd);
    fflush(stdout);
    exit(w == (ssize_t)sizeof rep ? 0 : CHILD_IO);
}

typedef struct {
    pid_t pid;
    int report_fd;
} child;

static child spawn(const char *dir, int use_env, int start_fd, int start_wr)
{
    child c = {-1, -1};
    int fds[2];
    if (pipe(fds) != 0) {
        check_fail_(__FILE__, __LINE__, "pipe: %s", strerror(errno));
        return c;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        check_fail_(__FILE__, __LINE__, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return c;
    }
    if (pid == 0) {
        close(fds[0]);
        if (start_wr >= 0) close(start_wr);
        child_main(dir, use_env, start_fd, fds[1]);
    }
    close(fds[1]);
    c.pid = pid;
    c.report_fd = fds[0];
    return c;
}

/* Waits for c; returns 1 and fills rep if it exited cleanly with a report. */
static int finish(child c, child_report *rep, const char *what)
{
    memset(rep, 0, sizeof *rep);
    if (c.pid < 0) return 0;
    ssize_t got = 0, r;
    while (got < (ssize_t)sizeof *rep &&
           ((r = read(c.report_fd, (char *)rep + got, sizeof *rep - (size_t)got)) > 0 ||
            (r < 0 && errno == EINTR)))
        if (r > 0) got += r;
    close(c.report_fd);
    int st = 0;
    while (waitpid(c.pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        if (WIFSIGNALED(st))
            check_fail_(__FILE__, __LINE__, "%s: child killed by signal %d", what, WTERMSIG(st));
        else
            check_fail_(__FILE__, __LINE__, "%s: child exit status %d", what, WEXITSTATUS(st));
        return 0;
    }
    if (got != (ssize_t)sizeof *rep) {
        check_fail_(__FILE__, __LINE__, "%s: no report from the child", what);
        return 0;
    }
    if (rep->code != CHILD_OK) {
        check_fail_(__FILE__, __LINE__, "%s: child failed (code %d): %s", what, rep->code, rep->message);
        return 0;
    }
    return 1;
}

static void print_report(const char *what, const child_report *r)
{
    printf("      %s: compiled %llu, disk hits %llu, memory hits %llu, launched %llu\n", what,
           (unsigned long long)r->counters.kernels_compiled,
           (unsigned long long)r->counters.cache_hits_disk,
           (unsigned long long)r->counters.cache_hits_memory,
           (unsigned long long)r->counters.kernels_launched);
}

static void test_second_process_compiles_nothing(void)
{
    char dir[512];
    if (!make_temp_dir(dir, sizeof dir)) return;
    child_report r1, r2, r3;
    if (finish(spawn(dir, 0, -1, -1), &r1, "first process")) {
        CHECK_MSG(r1.counters.kernels_compiled > 0, "first process on an empty cache compiled %llu kernels",
                  (unsigned long long)r1.counters.kernels_compiled);
        CHECK_EQ_INT(r1.counters.cache_hits_disk, 0);
    }
    /* the second uses KILN_CACHE_DIR instead of kl_context_set_cache_dir */
    if (finish(spawn(dir, 1, -1, -1), &r2, "second process")) {
        CHECK_EQ_INT(r2.counters.kernels_compiled, 0);
        CHECK(r2.counters.cache_hits_disk > 0);
        CHECK_EQ_INT(r2.counters.cache_hits_disk, r1.counters.kernels_compiled);
    }
    if (finish(spawn(dir, 0, -1, -1), &r3, "third process")) {
        CHECK_EQ_INT(r3.counters.kernels_compiled, 0);
        CHECK(r3.counters.cache_hits_disk > 0);
    }
    if (check_failures_) {
        print_report("first", &r1);
        print_report("second", &r2);
        print_report("third", &r3);
    }
    rm_tree(dir);
}

static void test_two_processes_on_one_empty_cache(void)
{
    char dir[512];
    if (!make_temp_dir(dir, sizeof dir)) return;
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            rm_tree(dir);
            if (!make_temp_dir(dir, sizeof dir)) return;
        }
        int start[2];
        if (pipe(start) != 0) {
            check_fail_(__FILE__, __LINE__, "pipe: %s", strerror(errno));
            break;
        }
        child a = spawn(dir, round, start[0], start[1]);
        child b = spawn(dir, round, start[0], start[1]);
        close(start[0]);
        close(start[1]); /* both children start now */
        child_report ra, rb, rc;
        int ok_a = finish(a, &ra, "concurrent process A");
        int ok_b = finish(b, &rb, "concurrent process B");
        /* after both, the cache is complete */
        if (ok_a && ok_b && finish(spawn(dir, 0, -1, -1), &rc, "process after the concurrent pair")) {
            CHECK_EQ_INT(rc.counters.kernels_compiled, 0);
            CHECK(rc.counters.cache_hits_disk > 0);
        }
    }
    rm_tree(dir);
}

static void test_killed_compile_does_not_block(void)
{
    char dir[512];
    if (!make_temp_dir(dir, sizeof dir)) return;
    /* Kill processes at several moments of their first compile. */
    static const int delays_ms[4] = {5, 40, 120, 300};
    for (int k = 0; k < 4; k++) {
        child c = spawn(dir, 0, -1, -1);
        if (c.pid < 0) break;
        struct timespec ts = {0, delays_ms[k] * 1000000L};
        nanosleep(&ts, NULL);
        kill(c.pid, SIGKILL);
        int st;
        while (waitpid(c.pid, &st, 0) < 0 && errno == EINTR) {
        }
        close(c.report_fd);
        /* the next process proceeds and computes the right values */
        child_report r;
        double t0 = check_now_();
        char what[64];
        snprintf(what, sizeof what, "process after a kill at %d ms", delays_ms[k]);
        finish(spawn(dir, 0, -1, -1), &r, what);
        double dt = check_now_() - t0;
        CHECK_MSG(dt < 60, "%s took %.1f s", what, dt);
    }
    /* and the cache ends complete */
    child_report r;
    if (finish(spawn(dir, 0, -1, -1), &r, "final process")) CHECK_EQ_INT(r.counters.kernels_compiled, 0);
    rm_tree(dir);
}

static void test_cache_dir_api(void)
{
    char dir[512];
    if (!make_temp_dir(dir, sizeof dir)) return;
    kl_context *ctx = check_context();
    if (ctx) {
        const char *d = kl_context_cache_dir(ctx);
        CHECK(d && d[0]);
        if (CHECK_OK(kl_context_set_cache_dir(ctx, dir))) CHECK_EQ_STR(kl_context_cache_dir(ctx), dir);
        /* a cache dir that does not exist yet is created (or refused with an error, not a crash) */
        char sub[600];
        snprintf(sub, sizeof sub, "%s/a/b", dir);
        kl_status s = kl_context_set_cache_dir(ctx, sub);
        if (s == KL_OK) {
            int64_t n = 3;
            kl_var *x = check_var(ctx, KL_FLOAT32, 1, &n, ((double[]){1, 2, 3}));
            kl_var *y = check_un(KL_NEG, x);
            double *g = check_read(y);
            if (g) CHECK_ARRAY_CLOSE(g, ((double[]){-1, -2, -3}), 3, 0, 0, "neg in a new cache dir");
            free(g);
            check_release(x);
            check_release(y);
        } else {
            CHECK(kl_last_error()[0]);
        }
        kl_context_free(ctx);
    }
    rm_tree(dir);
}

CHECK_MAIN(TEST(test_second_process_compiles_nothing), TEST(test_two_processes_on_one_empty_cache),
           TEST(test_killed_compile_does_not_block), TEST(test_cache_dir_api))
