/* test_api.c: the C API's boundary. Every public function given NULL for any
 * pointer argument returns an error (or a neutral value) with a message and
 * never crashes; a var released twice is recognised (an error here, a message
 * and abort() in a -DKL_DEBUG_HANDLES build); a context with live vars is not
 * freed. */
#include "check.h"

#include <errno.h>

/* An error status with a message mentioning `what`. */
#define REFUSED(call, what)                                                                          \
    do {                                                                                             \
        kl_status s_ = (call);                                                                       \
        CHECK_MSG(s_ != KL_OK, "%s succeeded", #call);                                               \
        CHECK_MSG(strstr(kl_last_error(), (what)) != NULL, "%s: message \"%s\" lacks \"%s\"", #call, \
                  kl_last_error(), (what));                                                          \
    } while (0)

static void test_null_pointer_arguments(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 4, shape2[2] = {2, 2};
    kl_var *x = check_var(ctx, KL_FLOAT32, 1, &n, ((double[]){1, 2, 3, 4}));
    kl_var *ix = NULL, *out = NULL;
    CHECK_OK(kl_full(ctx, KL_INT32, 1, &n, 1, &ix));
    const char *idx[1] = {"i0"}, *null_idx[1] = {NULL};
    kl_var *null_extra[1] = {NULL};
    kl_dtype dt;
    kl_unary_op uop;
    kl_binary_op bop;
    kl_reduce_op rop;
    const void *data;
    float buf[4];
    int dims[1] = {0};

    REFUSED(kl_context_new(NULL), "out is NULL");
    REFUSED(kl_dtype_from_name("float32", NULL), "out is NULL");
    REFUSED(kl_dtype_from_name(NULL, &dt), "NULL");
    REFUSED(kl_dtype_promote(KL_FLOAT32, KL_INT32, NULL), "out is NULL");
    REFUSED(kl_unary_from_name("exp", NULL), "out is NULL");
    REFUSED(kl_binary_from_name("add", NULL), "out is NULL");
    REFUSED(kl_reduce_from_name("sum", NULL), "out is NULL");
    REFUSED(kl_unary_from_name(NULL, &uop), "(null)");
    REFUSED(kl_binary_from_name(NULL, &bop), "(null)");
    REFUSED(kl_reduce_from_name(NULL, &rop), "(null)");
    REFUSED(kl_context_set_cache_dir(NULL, "/tmp"), "ctx is NULL");
    REFUSED(kl_context_set_cache_dir(ctx, NULL), "non-empty");
    REFUSED(kl_sync_all(NULL), "ctx is NULL");

    REFUSED(kl_var_from_host(NULL, KL_FLOAT32, 1, &n, NULL, &out), "ctx is NULL");
    REFUSED(kl_var_from_host(ctx, KL_FLOAT32, 1, NULL, NULL, &out), "shape is NULL");
    REFUSED(kl_var_from_host(ctx, KL_FLOAT32, 1, &n, NULL, NULL), "out is NULL");
    REFUSED(kl_full(NULL, KL_FLOAT32, 1, &n, 0, &out), "context is NULL");
    REFUSED(kl_full(ctx, KL_FLOAT32, 2, NULL, 0, &out), "shape is NULL");
    REFUSED(kl_full(ctx, KL_FLOAT32, 1, &n, 0, NULL), "out is NULL");
    REFUSED(kl_random(ctx, KL_FLOAT32, 1, &n, KL_RANDOM_UNIFORM, 0, 1, NULL), "out is NULL");
    REFUSED(kl_random(NULL, KL_FLOAT32, 1, &n, KL_RANDOM_UNIFORM, 0, 1, &out), "context is NULL");
    REFUSED(kl_index(ctx, KL_INT32, 1, &n, 0, NULL), "out is NULL");
    REFUSED(kl_index(ctx, KL_INT32, 1, NULL, 0, &out), "shape is NULL");

    REFUSED(kl_unary(KL_EXP, NULL, &out), "input is NULL");
    REFUSED(kl_unary(KL_EXP, x, NULL), "out is NULL");
    REFUSED(kl_cast(NULL, KL_FLOAT64, &out), "input is NULL");
    REFUSED(kl_cast(x, KL_FLOAT64, NULL), "out is NULL");
    REFUSED(kl_binary(KL_ADD, x, NULL, &out), "input b is NULL");
    REFUSED(kl_binary(KL_ADD, NULL, x, &out), "input a is NULL");
    REFUSED(kl_binary(KL_ADD, x, x, NULL), "out is NULL");
    REFUSED(kl_where(NULL, x, x, &out), "cond is NULL");
    REFUSED(kl_where(x, x, x, NULL), "out is NULL");
    REFUSED(kl_broadcast_to(NULL, 1, &n, 0, NULL, &out), "input is NULL");
    REFUSED(kl_broadcast_to(x, 2, NULL, 0, NULL, &out), "shape is NULL");
    REFUSED(kl_broadcast_to(x, 2, shape2, 1, NULL, &out), "dims is NULL");
    REFUSED(kl_broadcast_to(x, 1, &n, 0, NULL, NULL), "out is NULL");
    REFUSED(kl_reindex(NULL, 1, &n, idx, 0, 0, NULL, 0, NULL, &out), "input is NULL");
    REFUSED(kl_reindex(x, 1, NULL, idx, 0, 0, NULL, 0, NULL, &out), "shape is NULL");
    REFUSED(kl_reindex(x, 1, &n, NULL, 0, 0, NULL, 0, NULL, &out), "indexes is NULL");
    REFUSED(kl_reindex(x, 1, &n, null_idx, 0, 0, NULL, 0, NULL, &out), "index expression 0 is NULL");
    REFUSED(kl_reindex(x, 1, &n, idx, 0, 1, NULL, 0, NULL, &out), "conditions is NULL");
    REFUSED(kl_reindex(x, 1, &n, idx, 0, 1, null_idx, 0, NULL, &out), "condition 0 is NULL");
    REFUSED(kl_reindex(x, 1, &n, idx, 0, 0, NULL, 1, NULL, &out), "extras is NULL");
    REFUSED(kl_reindex(x, 1, &n, idx, 0, 0, NULL, 1, null_extra, &out), "extra input is NULL");
    REFUSED(kl_reindex(x, 1, &n, idx, 0, 0, NULL, 0, NULL, NULL), "out is NULL");
    REFUSED(kl_reindex_reduce(NULL, KL_REDUCE_SUM, 1, &n, idx, 0, NULL, 0, NULL, &out), "input is NULL");
    REFUSED(kl_reindex_reduce(x, KL_REDUCE_SUM, 1, &n, NULL, 0, NULL, 0, NULL, &out), "indexes is NULL");
    REFUSED(kl_reindex_reduce(x, KL_REDUCE_SUM, 1, &n, idx, 0, NULL, 0, NULL, NULL), "out is NULL");
    REFUSED(kl_reduce(NULL, KL_REDUCE_SUM, 0, NULL, 0, &out), "input is NULL");
    REFUSED(kl_reduce(x, KL_REDUCE_SUM, 1, NULL, 0, &out), "dims is NULL");
    REFUSED(kl_reduce(x, KL_REDUCE_SUM, 1, dims, 0, NULL), "out is NULL");
    REFUSED(kl_reshape(NULL, 1, &n, &out), "input is NULL");
    REFUSED(kl_reshape(x, 2, NULL, &out), "shape is NULL");
    REFUSED(kl_reshape(x, 1, &n, NULL), "out is NULL");
    REFUSED(kl_stop_grad(NULL, &out), "input is NULL");
    REFUSED(kl_stop_grad(x, NULL), "out is NULL");

    kl_var *g = NULL;
    REFUSED(kl_grad(NULL, NULL, 1, &x, &g), "output is NULL");
    REFUSED(kl_grad(x, NULL, 1, NULL, &g), "xs is NULL");
    REFUSED(kl_grad(x, NULL, 1, &x, NULL), "grads is NULL");
    REFUSED(kl_grad(x, NULL, 1, null_extra, &g), "an input is NULL");

    kl_code_output co = {KL_FLOAT32, 1, {4}};
    kl_var *made[1];
    const char *src = "void kl_kernel(void *const *b, const int64_t *i, const double *f) {}";
    REFUSED(kl_code(NULL, 0, NULL, 1, &co, src, 0, 0, NULL, made), "context is NULL");
    REFUSED(kl_code(ctx, 0, NULL, 1, &co, NULL, 0, 0, NULL, made), "source is NULL");
    REFUSED(kl_code(ctx, 0, NULL, 1, NULL, src, 0, 0, NULL, made), "outs is NULL");
    REFUSED(kl_code(ctx, 0, NULL, 1, &co, src, 0, 0, NULL, NULL), "outputs is NULL");
    REFUSED(kl_code(ctx, 1, NULL, 1, &co, src, 0, 0, NULL, made), "inputs is NULL");
    REFUSED(kl_code(ctx, 1, null_extra, 1, &co, src, 0, 0, NULL, made), "an input is NULL");
    REFUSED(kl_code(ctx, 1, &x, 1, &co, src, 0, 1, NULL, made), "grad_sources is NULL");

    REFUSED(kl_sync(NULL, 1), "vars is NULL");
    REFUSED(kl_sync(null_extra, 1), "a var is NULL");
    REFUSED(kl_var_data(NULL, &data), "var is NULL");
    REFUSED(kl_var_data(x, NULL), "out is NULL");
    REFUSED(kl_var_copy_to_host(NULL, buf, sizeof buf), "var is NULL");
    REFUSED(kl_var_copy_to_host(x, NULL, sizeof buf), "dst is NULL");
    REFUSED(kl_var_retain(NULL), "var is NULL");
    CHECK_OK(kl_var_release(NULL)); /* like free(NULL) */
    CHECK_OK(kl_context_free(NULL));

    /* getters answer neutral values, with the reason */
    CHECK(kl_var_context(NULL) == NULL);
    CHECK_EQ_INT(kl_var_dtype(NULL), KL_DTYPE_COUNT);
    CHECK_EQ_INT(kl_var_ndim(NULL), -1);
    CHECK(kl_var_shape(NULL) == NULL);
    CHECK_EQ_INT(kl_var_numel(NULL), -1);
    CHECK_EQ_INT(kl_var_id(NULL), 0);
    CHECK_EQ_INT(kl_var_is_computed(NULL), 0);
    CHECK_EQ_INT(kl_var_requires_grad(NULL), 0);
    CHECK_EQ_STR(kl_var_op_name(NULL), "invalid");
    CHECK(strstr(kl_last_error(), "kl_var_op_name: var is NULL") != NULL);
    kl_var_set_requires_grad(NULL, 1);
    kl_var_release_graph(NULL);
    CHECK(kl_context_cache_dir(NULL) == NULL);
    CHECK_EQ_INT(kl_context_debug(NULL), 0);
    kl_context_set_debug(NULL, 1);
    kl_context_seed(NULL, 1);
    kl_context_gc(NULL);
    CHECK_EQ_INT(kl_context_has_library(NULL, "blas"), 0);
    CHECK_EQ_INT(kl_context_has_library(ctx, NULL), 0);
    kl_counters c;
    kl_context_counters(NULL, &c);
    CHECK_EQ_INT(c.vars_alive, 0);
    kl_context_counters(ctx, NULL);
    CHECK_EQ_STR(kl_dtype_name((kl_dtype)99), "invalid");
    CHECK_EQ_INT(kl_dtype_size((kl_dtype)-1), 0);

    /* the context works as before */
    kl_var *y = check_un(KL_NEG, x);
    double *got = check_read(y);
    if (got) CHECK_ARRAY_CLOSE(got, ((double[]){-1, -2, -3, -4}), 4, 0, 0, "neg after the refusals");
    free(got);
    check_release(y);
    check_release(x);
    check_release(ix);
    CHECK_OK(kl_context_free(ctx));
}

static void test_context_with_live_vars_is_not_freed(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    int64_t n = 3;
    kl_var *x = check_var(ctx, KL_FLOAT64, 1, &n, ((double[]){1, 2, 3}));
    kl_var *y = check_un(KL_EXP, x);
    REFUSED(kl_context_free(ctx), "still has 2 vars");
    /* still usable: the vars compute, then the context frees */
    double *got = check_read(y);
    if (got) CHECK_ARRAY_CLOSE(got, ((double[]){exp(1), exp(2), exp(3)}), 3, 1e-12, 0, "exp");
    free(got);
    check_release(x);
    check_release(y);
    CHECK_OK(kl_context_free(ctx));
}

/* Runs fn in a child and reports how it ended: its exit code, or -signal. */
static int in_child(void (*fn)(void), char *err, size_t err_size)
{
    int fds[2];
    if (pipe(fds) != 0) return -1000;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn();
        _exit(0);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < err_size && ((r = read(fds[0], err + got, err_size - 1 - got)) > 0 || (r < 0 && errno == EINTR)))
        if (r > 0) got += (size_t)r;
    err[got] = 0;
    close(fds[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFSIGNALED(st) ? -WTERMSIG(st) : WEXITSTATUS(st);
}

static void release_twice(void)
{
    kl_context *ctx;
    if (kl_context_new(&ctx) != KL_OK) _exit(10);
    int64_t n = 2;
    kl_var *x, *y;
    if (kl_full(ctx, KL_FLOAT32, 1, &n, 1, &x) || kl_unary(KL_EXP, x, &y)) _exit(11);
    if (kl_var_release(y) != KL_OK) _exit(12);
    kl_status s = kl_var_release(y); /* the bug under test */
    if (s == KL_OK || !strstr(kl_last_error(), "already released")) _exit(13);
    kl_var *z;
    if (kl_unary(KL_NEG, y, &z) == KL_OK || !strstr(kl_last_error(), "already released")) _exit(14);
    if (kl_var_retain(y) == KL_OK) _exit(15);
    if (kl_var_ndim(y) != -1) _exit(16);
    if (kl_sync(&y, 1) == KL_OK) _exit(17);
    /* the context is intact */
    float v[2];
    if (kl_var_copy_to_host(x, v, sizeof v) != KL_OK || v[0] != 1.0f) _exit(18);
    kl_var_release(x);
    if (kl_context_free(ctx) != KL_OK) _exit(19);
    _exit(0);
}

static void test_double_release_is_recognised(void)
{
    char err[2000];
    int how = in_child(release_twice, err, sizeof err);
#ifdef KL_DEBUG_HANDLES
    CHECK_MSG(how == -SIGABRT, "a debug build should abort on a double release; the child ended with %d", how);
    CHECK_MSG(strstr(err, "kl_var_release: var is a var that was already released") != NULL,
              "no message before the abort: \"%s\"", err);
#else
    CHECK_MSG(how == 0, "the child ended with %d (10+: a step failed; negative: a signal): %s", how, err);
#endif
}

static void test_every_live_var_is_listed_with_its_graph(void)
{
    kl_context *ctx = check_context();
    if (!ctx) return;
    CHECK_EQ_INT(kl_context_vars(ctx, NULL, 0), 0);
    int64_t n = 3;
    kl_var *x = check_var(ctx, KL_FLOAT64, 1, &n, ((double[]){1, 2, 3}));
    kl_var *e = check_un(KL_EXP, x);
    kl_var *y = check_un(KL_NEG, e);
    check_release(e); /* still alive: y's op reads it */
    kl_var *all[8];
    CHECK_EQ_INT(kl_context_vars(ctx, all, 8), 3);
    CHECK(all[0] == x && all[2] == y);
    kl_var_info info;
    CHECK_OK(kl_var_get_info(all[1], &info));
    CHECK_EQ_STR(info.op, "exp");
    CHECK_EQ_INT(info.user_refs, 0);
    CHECK_EQ_INT(info.graph_refs, 1);
    CHECK_EQ_INT(info.n_inputs, 1);
    CHECK(info.inputs[0] == kl_var_id(x));
    CHECK_EQ_INT(info.computed, 0);
    CHECK(info.name == NULL && info.buffer == 0);
    CHECK_OK(kl_var_set_name(all[1], "e"));
    CHECK_OK(kl_var_set_name(all[1], "exp of x")); /* renaming frees the old name (ASan) */
    REFUSED(kl_var_set_name(all[1], NULL), "name is NULL");
    CHECK_OK(kl_var_get_info(all[1], &info));
    CHECK_EQ_STR(info.name, "exp of x");
    CHECK_EQ_INT(kl_context_vars(ctx, all, 1), 3); /* the count, whatever fits */
    double *got = check_read(y);
    free(got);
    CHECK_OK(kl_var_get_info(y, &info));
    CHECK_EQ_INT(info.computed, 1);
    CHECK_EQ_INT((int)info.nbytes, 3 * 8);
    CHECK(info.buffer != 0);
    check_release(y); /* y goes, and with it exp (fused into y, never computed) */
    CHECK_EQ_INT(kl_context_vars(ctx, all, 8), 1);
    CHECK(all[0] == x);
    CHECK_EQ_INT(kl_context_vars(ctx, NULL, 2), -1);
    REFUSED(kl_var_get_info(x, NULL), "no output given");
    check_release(x);
    CHECK_EQ_INT(kl_context_vars(ctx, all, 8), 0);
    CHECK_OK(kl_context_free(ctx));
}

CHECK_MAIN(TEST(test_null_pointer_arguments), TEST(test_context_with_live_vars_is_not_freed),
           TEST(test_every_live_var_is_listed_with_its_graph),
           TEST(test_double_release_is_recognised))
