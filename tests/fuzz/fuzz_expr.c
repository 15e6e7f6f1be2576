/* fuzz_expr.c: libFuzzer harness for index expressions and the kernel
 * generation that reads them. The input is lines of text: the first line's
 * first byte picks the input's rank (1-3), the next lines are that many index
 * expressions, the rest (up to four) overflow conditions. Every expression is
 * parsed, printed, re-parsed, cloned and read as affine; when they are all
 * valid, a reindex and a reindex_reduce are built from them (with an integer
 * extra for @e0) and their kernels described and rendered (not compiled). Anything but a
 * clean error status is a finding (ASan/UBSan abort). */
#include "kiln.h"
#include "backend/backend.h"
#include "ops/lower.h"
#include "core/context.h"
#include "core/expr.h"
#include "core/graph.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static kl_context *ctx;

static void exercise_tree(const char *src)
{
    kl_expr *e = NULL;
    if (kl_expr_parse(src, &e) != KL_OK) return;
    char printed[4096];
    kl_expr_print(e, printed, sizeof printed);
    kl_expr *again = NULL;
    /* a printed tree re-parses whenever it fit the buffer */
    if (strlen(printed) + 1 < sizeof printed && kl_expr_parse(printed, &again) != KL_OK) abort();
    kl_expr_free(again);
    kl_expr *c = kl_expr_clone(e);
    kl_affine a;
    kl_expr_affine(e, 3, &a);
    int nd[1] = {1};
    kl_expr_validate(e, src, 3, 3, 2, 1, nd);
    kl_expr_free(c);
    kl_expr_free(e);
}

/* Describes root's kernel and renders it for the CPU, as a sync would. */
static void generate(kl_var *root)
{
    static kl_kdesc kd;
    root->materialize = 1;
    kl_kd_init(&kd);
    char *text = NULL;
    if (kl_lower_kernel(root, &kd) == KL_OK) {
        kl_backend *cpu = ctx->backends[0];
        cpu->ops->render(cpu, &kd, &text);
    }
    free(text);
    kl_kd_clear(&kd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx && kl_context_new(&ctx) != KL_OK) abort();
    if (size < 1 || size > 1 << 16) return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    char *lines[1 + KL_MAX_DIMS + 4];
    int n = 0;
    for (char *p = text; n < (int)(sizeof lines / sizeof *lines);) {
        lines[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = 0;
        p = nl + 1;
    }
    int rank = 1 + (unsigned char)lines[0][0] % 3;
    for (int i = 1; i < n; i++) exercise_tree(lines[i]);
    if (n < 1 + rank) { free(text); return 0; }
    const char **indexes = (const char **)&lines[1];
    const char **conds = (const char **)&lines[1 + rank];
    int n_conds = n - 1 - rank;
    int64_t xs[3] = {4, 3, 2}, ys[2] = {3, 5}, es = 5;
    kl_var *x = NULL, *extra = NULL, *r = NULL, *s = NULL;
    int32_t ev[5] = {0, 4, -1, 2, 100};
    if (kl_var_from_host(ctx, KL_FLOAT32, rank, xs, NULL, &x) == KL_OK &&
        kl_var_from_host(ctx, KL_INT32, 1, &es, ev, &extra) == KL_OK) {
        if (kl_reindex(x, 2, ys, indexes, 0, n_conds, conds, 1, &extra, &r) == KL_OK) generate(r);
        /* the same expressions as a scatter of a (3, 5) input into x's shape */
        kl_var *y = NULL;
        if (kl_var_from_host(ctx, KL_FLOAT32, 2, ys, NULL, &y) == KL_OK &&
            kl_reindex_reduce(y, KL_REDUCE_SUM, rank, xs, indexes, n_conds, conds, 1, &extra, &s) == KL_OK)
            generate(s);
        kl_var_release(y);
    }
    kl_var_release(r);
    kl_var_release(s);
    kl_var_release(x);
    kl_var_release(extra);
    free(text);
    return 0;
}
