/* kernel.c: assembling a fused kernel: the element-wise (map) loop nest here,
 * reductions and scatters from their op files, then the C text around them. */
#include "codegen/kernel.h"
#include "core/dtype.h"
#include "ops/ops.h"
#include <stdlib.h>
#include <string.h>

/* The loop nest over the root's shape, parallel or serial. */
static void map_loops(kl_emitter *em, kl_strbuf *L, int parallel, const char *body, const char *store)
{
    kl_var *v = em->root;
    int r = v->ndim;
    if (!em->needs_coords || r == 0) {
        kl_sb_printf(L, "    #pragma omp %s\n", parallel ? "parallel for simd schedule(static)" : "simd");
        kl_sb_printf(L, "    for (int64_t li = 0; li < n; li++) {\n%s%s    }\n", body, store);
        return;
    }
    if (parallel && r == 1) kl_sb_printf(L, "    #pragma omp parallel for simd schedule(static)\n");
    else if (parallel) kl_sb_printf(L, "    #pragma omp parallel for collapse(%d) schedule(static)\n", r - 1);
    else if (r == 1) kl_sb_printf(L, "    #pragma omp simd\n");
    for (int d = 0; d < r; d++) {
        if (d == r - 1 && r > 1) { kl_sb_indent(L, 4 + 4 * d); kl_sb_append(L, "#pragma omp simd\n"); }
        kl_sb_indent(L, 4 + 4 * d);
        kl_sb_printf(L, "for (int64_t i%d = 0; i%d < %s; i%d++)\n", d, d,
                     kl_emit_shape(em, v, d), d);
    }
    kl_coords own = kl_emit_loop_coords(r, 0);
    const char *li = kl_emit_offset(em, v, &own);
    kl_sb_printf(L, "    {\n        const int64_t li = %s;\n%s%s    }\n", li, body, store);
}

/* out[...] = value over the root's shape: one flat loop when every access is
 * at the element's own linear index, else a nest with the innermost loop
 * contiguous. Small outputs take a serial copy of the loop: entering an
 * OpenMP region costs ~0.4 us even when its if() clause says one thread. */
static kl_status map_kernel(kl_emitter *em, kl_strbuf *L)
{
    kl_var *v = em->root;
    int r = v->ndim;
    kl_coords c = kl_emit_loop_coords(r, 1);
    const char *t = kl_emit(em, v, &c);
    if (!t) return em->status;
    const char *store = kl_emit_str(em, "        out[li] = (%s)%s;\n", kl_dtype_ctype(v->dtype), t);
    kl_sb_printf(L, "    int64_t n = 1;\n");
    for (int d = 0; d < r; d++) kl_sb_printf(L, "    n *= %s;\n", kl_emit_shape(em, v, d));
    const char *body = em->body.data ? em->body.data : "";
    kl_sb_printf(L, "    if (n <= 32768) {\n");
    map_loops(em, L, 0, body, store);
    kl_sb_printf(L, "    } else {\n");
    map_loops(em, L, 1, body, store);
    kl_sb_printf(L, "    }\n");
    return em->status;
}

static void describe(kl_emitter *em, kl_strbuf *sb)
{
    /* names, ops and dtypes only: shapes are arguments, not part of the text;
     * nothing about a loaded var but its dtype (the plan cache relies on it) */
    for (int i = 0; i < em->n_locals; i++) {
        kl_var *v = em->locals[i];
        int loaded = i > 0 && (v->buf || v->materialize);
        int mean = !loaded && v->op.kind == KL_OP_REDUCE && v->op.p.reduce.op == KL_REDUCE_MEAN;
        kl_sb_printf(sb, " *   v%d: %s %s%s\n", i, kl_dtype_name(v->dtype), loaded ? "input" : kl_var_op_name(v),
                     mean ? " (mean)" : "");
    }
}

kl_status kl_kernel_build(kl_var *root, kl_kernel *k)
{
    k->source = NULL;
    k->n_bufs = k->n_iargs = k->n_fargs = 0;
    kl_emitter *em = malloc(sizeof *em);
    if (!em) return kl_error(KL_ERR_MEMORY, "out of memory generating a kernel");
    kl_emitter_init(em, root);
    kl_strbuf loops = {0};
    const char *kind = "map";
    kl_status s;
    if (root->op.kind == KL_OP_REDUCE) {
        kind = kl_reduce_name(root->op.p.reduce.op);
        s = kl_reduce_kernel(em, &loops);
    } else if (root->op.kind == KL_OP_REINDEX_REDUCE) {
        kind = "scatter";
        s = kl_reindex_reduce_kernel(em, &loops);
    } else {
        s = map_kernel(em, &loops);
    }
    if (s == KL_OK && (loops.failed || em->body.failed || em->decls.failed))
        s = kl_error(KL_ERR_MEMORY, "out of memory generating a kernel");
    if (s == KL_OK) {
        kl_strbuf src = {0};
        kl_sb_printf(&src, "/* kiln kernel (%s):\n", kind);
        describe(em, &src);
        kl_sb_printf(&src, " */\n");
        const char *T = kl_dtype_ctype(root->dtype);
        kl_sb_printf(&src, "void kl_kernel(void *const *buf, const int64_t *iarg, const double *farg)\n{\n"
                           "    (void)iarg; (void)farg;\n    %s *restrict out = (%s *)buf[0]; /* v0 */\n", T, T);
        kl_sb_append(&src, em->decls.data ? em->decls.data : "");
        kl_sb_append(&src, loops.data ? loops.data : "");
        kl_sb_append(&src, "}\n");
        if (src.failed) { kl_sb_free(&src); s = kl_error(KL_ERR_MEMORY, "out of memory generating a kernel"); }
        else k->source = kl_sb_take(&src);
    }
    if (s == KL_OK) {
        k->n_bufs = em->n_bufs;
        for (int i = 0; i < em->n_bufs; i++) { k->bufs[i] = em->bufs[i]; kl_var_retain(k->bufs[i]); }
        k->n_iargs = em->n_iargs;
        k->n_fargs = em->n_fargs;
        memcpy(k->iargs, em->iargs, (size_t)em->n_iargs * sizeof *k->iargs);
        memcpy(k->fargs, em->fargs, (size_t)em->n_fargs * sizeof *k->fargs);
        memcpy(k->isrc, em->isrc, (size_t)em->n_iargs * sizeof *k->isrc);
        memcpy(k->fsrc, em->fsrc, (size_t)em->n_fargs * sizeof *k->fsrc);
    }
    kl_sb_free(&loops);
    kl_emitter_free(em);
    free(em);
    return s;
}

void kl_kernel_free(kl_kernel *k)
{
    free(k->source);
    k->source = NULL;
    for (int i = 0; i < k->n_bufs; i++) kl_var_release(k->bufs[i]);
    k->n_bufs = 0;
}
