/* test_cache.c: the on-disk kernel cache across processes. A second process on
 * the same cache compiles nothing; two processes filling one empty cache at
 * the same time both succeed; a process killed while compiling leaves nothing
 * that blocks the next one. A damaged cache heals: truncated, flipped or
 * swapped artifacts, FIFOs and directories at kernel paths are recompiled
 * over, never loaded or waited on; stale temporaries are swept; concurrent
 * processes compile each kernel once; a held lock is waited on only so long;
 * a cache that cannot be written gives way to a private one. */
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <utime.h>

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
    const char *err_path = getenv("KILN_TEST_STDERR");
    if (err_path && *err_path) {
        int fd = open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) { dup2(fd, 2); close(fd); }
    }
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

/* ---- a damaged cache heals ---- */

/* Calls fn(path, arg) for every file in <dir>/kernels whose name ends with suffix. */
static int each_file(const char *dir, const char *suffix, void (*fn)(const char *, void *), void *arg)
{
    char kd[600];
    snprintf(kd, sizeof kd, "%s/kernels", dir);
    DIR *d = opendir(kd);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    size_t ls = strlen(suffix);
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l <= ls || strcmp(e->d_name + l - ls, suffix) != 0) continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", kd, e->d_name);
        if (fn) fn(path, arg);
        n++;
    }
    closedir(d);
    return n;
}

static void truncate_half(const char *path, void *arg)
{
    (void)arg;
    struct stat st;
    if (stat(path, &st) == 0 && truncate(path, st.st_size / 2) != 0) check_fail_(__FILE__, __LINE__, "truncate");
}

static void flip_bytes(const char *path, void *arg)
{
    (void)arg;
    int fd = open(path, O_RDWR);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) { check_fail_(__FILE__, __LINE__, "open %s", path); return; }
    for (off_t at = 64; at < st.st_size; at += st.st_size / 7 + 1) {
        unsigned char b;
        if (pread(fd, &b, 1, at) == 1) { b ^= 0x5a; if (pwrite(fd, &b, 1, at) != 1) break; }
    }
    close(fd);
}

/* Replaces the file with a FIFO, or with a directory holding a file. */
static void make_fifo(const char *path, void *arg)
{
    (void)arg;
    unlink(path);
    if (mkfifo(path, 0644) != 0) check_fail_(__FILE__, __LINE__, "mkfifo %s: %s", path, strerror(errno));
}

static void make_dir(const char *path, void *arg)
{
    (void)arg;
    unlink(path);
    char inner[1300];
    snprintf(inner, sizeof inner, "%s/x", path);
    if (mkdir(path, 0755) != 0) { check_fail_(__FILE__, __LINE__, "mkdir %s", path); return; }
    FILE *f = fopen(inner, "w");
    if (f) fclose(f);
}

/* Keeps the first path seen (arg: char[1200]); swaps it with each later one. */
static void swap_with_first(const char *path, void *arg)
{
    char *first = arg;
    if (!first[0]) { snprintf(first, 1200, "%s", path); return; }
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.swap", path);
    if (rename(path, tmp) || rename(first, path) || rename(tmp, first))
        check_fail_(__FILE__, __LINE__, "swap %s: %s", path, strerror(errno));
}

static void drop_meta(const char *path, void *arg)
{
    (void)arg;
    unlink(path);
}

static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return strstr(buf, needle) != NULL;
}

/* Fills a cache, damages it with damage(suffix), then checks that the next
 * process computes right values (no crash, no hang), recompiles, and that the
 * process after it finds a whole cache again. */
static void heal_after(const char *what, const char *suffix, void (*damage)(const char *, void *), void *arg,
                       const char *log_reason)
{
    char dir[512], log[600];
    if (!make_temp_dir(dir, sizeof dir)) return;
    child_report r;
    if (!finish(spawn(dir, 0, -1, -1), &r, "filling process")) { rm_tree(dir); return; }
    int damaged = each_file(dir, suffix, damage, arg);
    CHECK_MSG(damaged > 0, "%s: no %s files to damage", what, suffix);
    snprintf(log, sizeof log, "%s/stderr.txt", dir);
    setenv("KILN_TEST_STDERR", log, 1);
    setenv("KILN_LOG", "compile", 1);
    double t0 = check_now_();
    char label[160];
    snprintf(label, sizeof label, "process after %s", what);
    if (finish(spawn(dir, 0, -1, -1), &r, label)) {
        CHECK_MSG(r.counters.kernels_compiled > 0, "%s: nothing was recompiled", what);
        CHECK_MSG(check_now_() - t0 < 60, "%s: took %.1f s", what, check_now_() - t0);
        if (log_reason)
            CHECK_MSG(file_contains(log, log_reason), "%s: KILN_LOG=compile does not say \"%s\"", what, log_reason);
    }
    unsetenv("KILN_TEST_STDERR");
    unsetenv("KILN_LOG");
    if (finish(spawn(dir, 0, -1, -1), &r, label)) CHECK_EQ_INT(r.counters.kernels_compiled, 0);
    rm_tree(dir);
}

static void test_truncated_artifacts_are_recompiled(void)
{
    heal_after("truncating every .so to half", ".so", truncate_half, NULL, "(truncated?)");
}

static void test_flipped_bytes_are_recompiled(void)
{
    heal_after("flipping bytes in every .so", ".so", flip_bytes, NULL, "do not match its header");
}

static void test_swapped_artifacts_are_recompiled(void)
{
    char first[1200] = "";
    heal_after("swapping .so files", ".so", swap_with_first, first, "do not match its header");
    /* a swap of whole pairs (artifact and header) is caught by the kernel's key */
    char a[1200] = "";
    heal_after("swapping .meta files", ".meta", swap_with_first, a, "names kernel");
}

static void test_fifos_and_directories_at_kernel_paths(void)
{
    heal_after("FIFOs at .so paths", ".so", make_fifo, NULL, "not a readable regular file");
    heal_after("FIFOs at .meta paths", ".meta", make_fifo, NULL, "not a readable regular file");
    heal_after("directories at .so paths", ".so", make_dir, NULL, "not a readable regular file");
    heal_after("directories at .meta paths", ".meta", make_dir, NULL, "not a readable regular file");
    heal_after("removing the headers", ".meta", drop_meta, NULL, "its header");
}

/* A FIFO at a source or lock path, with the kernel's header removed so that
 * the kernel must be compiled through it. */
static void fifo_then_drop_meta(const char *path, void *arg)
{
    (void)arg;
    make_fifo(path, NULL);
    char meta[1200];
    snprintf(meta, sizeof meta, "%.*s.meta", (int)(strrchr(path, '.') - path), path);
    unlink(meta);
}

static void test_fifos_at_source_and_lock_paths(void)
{
    heal_after("FIFOs at .c paths", ".c", fifo_then_drop_meta, NULL, NULL);
    heal_after("FIFOs at .lock paths", ".lock", fifo_then_drop_meta, NULL, NULL);
}

static void test_stale_temporaries_are_swept(void)
{
    char dir[512];
    if (!make_temp_dir(dir, sizeof dir)) return;
    char kd[600], dead[700], live[700], old[700];
    snprintf(kd, sizeof kd, "%s/kernels", dir);
    mkdir(kd, 0755);
    /* a pid that is gone: a child that already exited */
    pid_t gone = fork();
    if (gone == 0) _exit(0);
    waitpid(gone, NULL, 0);
    snprintf(dead, sizeof dead, "%s/abc.so.tmp-%d", kd, (int)gone);
    snprintf(live, sizeof live, "%s/abc.so.tmp-%d", kd, (int)getpid());
    snprintf(old, sizeof old, "%s/def.log.tmp-%d", kd, (int)getpid());
    const char *paths[3] = {dead, live, old};
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(paths[i], "w");
        if (f) { fputs("partial", f); fclose(f); }
    }
    struct utimbuf twenty_min = {time(NULL) - 1200, time(NULL) - 1200};
    struct utimbuf two_days = {time(NULL) - 2 * 86400, time(NULL) - 2 * 86400};
    utime(dead, &twenty_min);
    utime(live, &twenty_min);
    utime(old, &two_days);
    child_report r;
    finish(spawn(dir, 0, -1, -1), &r, "process on a cache with stale temporaries");
    CHECK_MSG(access(dead, F_OK) != 0, "%s (its process is gone) was not swept", dead);
    CHECK_MSG(access(live, F_OK) == 0, "%s (its process is alive) was swept", live);
    CHECK_MSG(access(old, F_OK) != 0, "%s (two days old) was not swept", old);
    rm_tree(dir);
}

static void test_eight_processes_compile_each_kernel_once(void)
{
    char dir[512], alone[512];
    if (!make_temp_dir(dir, sizeof dir) || !make_temp_dir(alone, sizeof alone)) return;
    child_report r;
    uint64_t distinct = 0;
    if (finish(spawn(alone, 0, -1, -1), &r, "a process alone")) distinct = r.counters.kernels_compiled;
    int start[2];
    if (pipe(start) != 0) return;
    enum { N = 8 };
    child c[N];
    for (int i = 0; i < N; i++) c[i] = spawn(dir, 0, start[0], start[1]);
    close(start[0]);
    close(start[1]);
    uint64_t compiled = 0, hits = 0;
    for (int i = 0; i < N; i++)
        if (finish(c[i], &r, "one of eight concurrent processes")) {
            compiled += r.counters.kernels_compiled;
            hits += r.counters.cache_hits_disk;
        }
    CHECK_MSG(compiled == distinct, "eight processes compiled %llu kernels in all; one alone compiles %llu",
              (unsigned long long)compiled, (unsigned long long)distinct);
    CHECK_EQ_INT(hits, (N - 1) * distinct);
    rm_tree(dir);
    rm_tree(alone);
}

static void take_lock(const char *path, void *arg)
{
    int *fds = arg;
    int fd = open(path, O_RDWR);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 && fds[0] < 16) fds[++fds[0]] = fd;
}

static void test_a_held_lock_is_waited_on_only_so_long(void)
{
    char dir[512];
    if (!make_temp_dir(dir, sizeof dir)) return;
    child_report r;
    if (!finish(spawn(dir, 0, -1, -1), &r, "filling process")) return;
    each_file(dir, ".meta", drop_meta, NULL); /* every kernel must be compiled again */
    int fds[17] = {0};
    each_file(dir, ".lock", take_lock, fds); /* a stuck process holds every lock */
    CHECK(fds[0] > 0);
    setenv("KILN_COMPILE_LOCK_TIMEOUT", "1", 1);
    double t0 = check_now_();
    if (finish(spawn(dir, 0, -1, -1), &r, "process facing held locks")) {
        double dt = check_now_() - t0;
        CHECK(r.counters.kernels_compiled > 0);
        CHECK_MSG(dt >= 0.9 && dt < 30, "took %.1f s with a 1 s lock timeout", dt);
    }
    unsetenv("KILN_COMPILE_LOCK_TIMEOUT");
    for (int i = 1; i <= fds[0]; i++) close(fds[i]);
    rm_tree(dir);
}

static void test_unwritable_cache_falls_back_to_a_private_one(void)
{
    char dir[512], file[600], bad[700], log[700];
    if (!make_temp_dir(dir, sizeof dir)) return;
    /* a cache path under a regular file cannot be created, even by root */
    snprintf(file, sizeof file, "%s/plain-file", dir);
    FILE *f = fopen(file, "w");
    if (f) fclose(f);
    snprintf(bad, sizeof bad, "%s/cache", file);
    snprintf(log, sizeof log, "%s/stderr.txt", dir);
    setenv("KILN_TEST_STDERR", log, 1);
    child_report r;
    if (finish(spawn(bad, 0, -1, -1), &r, "process with an unwritable cache"))
        CHECK(r.counters.kernels_compiled > 0);
    unsetenv("KILN_TEST_STDERR");
    CHECK_MSG(file_contains(log, "cannot be written"), "no warning about the unwritable cache");
    /* one warning, not one per kernel */
    FILE *lf = fopen(log, "r");
    int warnings = 0;
    char line[2000];
    while (lf && fgets(line, sizeof line, lf)) warnings += strstr(line, "warning") != NULL;
    if (lf) fclose(lf);
    CHECK_EQ_INT(warnings, 1);
    rm_tree(dir);
}

/* Distinct .so files of dir mapped into this process. */
static int mapped_kernels(const char *dir)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[1200], seen[64][80];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, dir);
        if (!p || !strstr(p, ".so")) continue;
        char *name = strrchr(p, '/') + 1;
        name[strcspn(name, "\n")] = 0;
        int known = 0;
        for (int i = 0; i < n; i++) known |= strcmp(seen[i], name) == 0;
        if (!known && n < 64) snprintf(seen[n++], sizeof seen[0], "%s", name);
    }
    fclose(f);
    return n;
}

/* A process that makes many distinct kernels unloads them past the limit
 * (KILN_MAX_LOADED_KERNELS), so it never runs out of memory mappings. */
static void test_loaded_kernels_are_bounded(void)
{
    char dir[512];
    if (!make_temp_dir(dir, sizeof dir)) return;
    setenv("KILN_MAX_LOADED_KERNELS", "3", 1);
    kl_context *ctx = check_context();
    unsetenv("KILN_MAX_LOADED_KERNELS");
    if (!ctx || !CHECK_OK(kl_context_set_cache_dir(ctx, dir))) return;
    static const kl_unary_op ops[] = {KL_EXP, KL_LOG, KL_SIN, KL_COS, KL_TANH, KL_SQRT, KL_ABS, KL_NEG,
                                      KL_SIGMOID, KL_FLOOR, KL_CEIL, KL_ERF};
    int64_t n = 4;
    kl_var *x = check_var(ctx, KL_FLOAT64, 1, &n, ((double[]){0.5, 1, 2, 3}));
    for (int round = 0; round < 2; round++)
        for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
            kl_var *y = check_un(ops[k], x);
            double *got = check_read(y);
            if (got && ops[k] == KL_NEG) CHECK(got[2] == -2.0);
            free(got);
            check_release(y);
            int mapped = mapped_kernels(dir);
            CHECK_MSG(mapped <= 4, "%d kernels of the cache mapped with a limit of 3", mapped);
        }
    check_release(x);
    CHECK_OK(kl_context_free(ctx));
    rm_tree(dir);
}

CHECK_MAIN(TEST(test_loaded_kernels_are_bounded), TEST(test_second_process_compiles_nothing), TEST(test_two_processes_on_one_empty_cache),
           TEST(test_killed_compile_does_not_block), TEST(test_cache_dir_api),
           TEST(test_truncated_artifacts_are_recompiled), TEST(test_flipped_bytes_are_recompiled),
           TEST(test_swapped_artifacts_are_recompiled), TEST(test_fifos_and_directories_at_kernel_paths),
           TEST(test_fifos_at_source_and_lock_paths), TEST(test_stale_temporaries_are_swept),
           TEST(test_eight_processes_compile_each_kernel_once), TEST(test_a_held_lock_is_waited_on_only_so_long),
           TEST(test_unwritable_cache_falls_back_to_a_private_one))
