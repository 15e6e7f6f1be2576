/* render_c.c: the CPU backend's renderer: a kernel description printed as C
 * with OpenMP. The instructions become SSA temps in the innermost loop; the
 * schedule is chosen here: small kernels run serially (an OpenMP region costs
 * ~0.4 us even when its if() asks for one thread), element-wise kernels run
 * one flat `parallel for simd` loop when every access is at the element's own
 * index, reductions run over rows or over column chunks and sum float32 in
 * short float blocks added in double, scatters run the dims that write
 * disjoint targets in parallel and update the rest atomically (max and min:
 * serially). */
#include "backend/cpu/cpu.h"
#include "codegen/render_stmt.h"
#include "codegen/strbuf.h"
#include "core/dtype.h"
#include "core/error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef kl_stmt_printer renderer;

static const char *name(const renderer *r, int32_t i) { return kl_stmt_name(r, i); }

/* Elements below which a kernel runs serially: an OpenMP region costs ~1 us
 * with its threads spinning, so a short body needs 32768 elements to gain
 * from it and a long one (a pooling window's gather: ~80 statements) far
 * fewer; measured on 2x2 pooling in a training step, where its kernels ran
 * on one thread at 32768 elements. */
static long serial_limit(const char *body)
{
    long lines = 0;
    for (const char *c = body; *c; c++) lines += *c == '\n';
    return 131072 / (lines > 4 ? lines : 4);
}

/* ---- map ---- */

static void map_loops(renderer *r, kl_strbuf *L, int parallel, const char *bd, const char *store)
{
    const kl_kd_head *h = &r->k->h;
    int rank = h->rank;
    if (!h->uses_loops || rank == 0) {
        kl_sb_printf(L, "    #pragma omp %s\n", parallel ? "parallel for simd schedule(static)" : "simd");
        kl_sb_printf(L, "    for (int64_t li = 0; li < n; li++) {\n%s%s    }\n", bd, store);
        return;
    }
    if (parallel && rank == 1) kl_sb_printf(L, "    #pragma omp parallel for simd schedule(static)\n");
    else if (parallel) kl_sb_printf(L, "    #pragma omp parallel for collapse(%d) schedule(static)\n", rank - 1);
    else if (rank == 1) kl_sb_printf(L, "    #pragma omp simd\n");
    for (int d = 0; d < rank; d++) {
        if (d == rank - 1 && rank > 1) { kl_sb_indent(L, 4 + 4 * d); kl_sb_append(L, "#pragma omp simd\n"); }
        kl_sb_indent(L, 4 + 4 * d);
        kl_sb_printf(L, "for (int64_t i%d = 0; i%d < %s; i%d++)\n", d, d, name(r, h->dims[d]), d);
    }
    kl_sb_append(L, "    {\n        const int64_t li = ");
    kl_stmt_loop_offset(r, L);
    kl_sb_printf(L, ";\n%s%s    }\n", bd, store);
}
static kl_status map_kernel(renderer *r, kl_strbuf *L, const char *bd)
{
    const kl_kd_head *h = &r->k->h;
    kl_strbuf stores = {0};
    kl_stmt_map_stores(r, &stores);
    const char *store = stores.data ? stores.data : "";
    kl_stmt_product(r, L, "n", h->dims, h->rank);
    kl_sb_printf(L, "    if (n <= %ld) {\n", serial_limit(bd));
    map_loops(r, L, 0, bd, store);
    kl_sb_printf(L, "    } else {\n");
    map_loops(r, L, 1, bd, store);
    kl_sb_printf(L, "    }\n");
    kl_status st = stores.failed ? kl_error(KL_ERR_MEMORY, "out of memory rendering a kernel") : KL_OK;
    kl_sb_free(&stores);
    return st;
}

/* ---- reduce ---- */

typedef struct {
    const char *acc_type, *omp_op, *identity;
    int track_nan;
} reduce_code;

/* The accumulator and its OpenMP reduction operator. */
static reduce_code code_for(kl_reduce_op op, kl_dtype in)
{
    kl_reduce_acc acc = kl_stmt_reduce_acc(op, in);
    static const char *const omp[KL_REDUCE_COUNT] = {
        [KL_REDUCE_PROD] = "*", [KL_REDUCE_MAX] = "max", [KL_REDUCE_MIN] = "min", [KL_REDUCE_ANY] = "|",
        [KL_REDUCE_ALL] = "&", [KL_REDUCE_BIT_AND] = "&", [KL_REDUCE_BIT_OR] = "|", [KL_REDUCE_BIT_XOR] = "^",
        [KL_REDUCE_XOR] = "^"};
    reduce_code rc = {acc.acc_type, omp[op] ? omp[op] : "+", acc.identity, acc.track_nan};
    return rc;
}

/* The statements of a reduction, for every output it folds: the value
 * (accumulator a) and its siblings' (a1, a2...; kdesc.h), each stored at
 * the same offset to its own buffer (out, out1...). */
typedef struct {
    reduce_code rc;
    const char *body;
    int n_out;
    char decl[512];     /* the accumulators, started */
    char fold[1024], nanfold[256], red_clause[128];
    /* float blocks (blocked): the partial sums, their clause, the folds
     * into them and the partials added to the accumulators */
    char bdecl[160], bclause[96], badd[512], bmerge[160];
    /* columns: the accumulators' arrays, started, loaded, kept, read at the end */
    char cdecl[256], cstart[256], cload[512], ckeep[256], cfinal[512];
    char final[4][256]; /* per output: the stored value of its accumulator */
    int blocked;
} reduce_parts;

/* Every output's store at offset off, on one line. */
static void store_outputs(kl_strbuf *L, const reduce_parts *p, const char *off)
{
    kl_sb_append(L, "        ");
    for (int j = 0; j < p->n_out; j++)
        kl_sb_printf(L, "%sout%s[%s] = %s;", j ? " " : "", kl_stmt_out_suffix(j), off, p->final[j]);
    kl_sb_append(L, "\n");
}

/* The reduction of one output k over the flat range [0, rn) of its inputs
 * (li = k * rn + j), parallel over the range when asked. */
static void flat_reduction(kl_strbuf *L, const reduce_parts *p, int parallel)
{
    kl_sb_printf(L, "        %s\n", p->decl);
    if (p->blocked) {
        if (parallel) kl_sb_printf(L, "        #pragma omp parallel for %s schedule(static)\n", p->red_clause);
        kl_sb_printf(L, "        for (int64_t blk = 0; blk < rn; blk += 1024) {\n");
        kl_sb_printf(L, "        %s const int64_t bend = blk + 1024 < rn ? blk + 1024 : rn;\n", p->bdecl);
        kl_sb_printf(L, "        #pragma omp simd %s\n", p->bclause);
        kl_sb_printf(L, "        for (int64_t j = blk; j < bend; j++) {\n        const int64_t li = k * rn + j;\n");
        kl_sb_printf(L, "%s        %s\n        }\n        %s\n        }\n", p->body, p->badd, p->bmerge);
    } else {
        kl_sb_printf(L, "        #pragma omp %s %s\n", parallel ? "parallel for simd" : "simd", p->red_clause);
        kl_sb_printf(L, "        for (int64_t j = 0; j < rn; j++) {\n        const int64_t li = k * rn + j;\n");
        kl_sb_printf(L, "%s        %s%s\n        }\n", p->body, p->fold, p->nanfold);
    }
    store_outputs(L, p, "k");
}

/* Every input read at the element's own linear index and the reduced dims
 * trailing: kept and reduced dims each flatten into one loop. Tiny
 * reductions run serially; else parallel over outputs when there are
 * enough, over the range when not. */
static void flat_reduce_kernel(kl_strbuf *L, const reduce_parts *p)
{
    kl_sb_printf(L, "    if (kn * rn <= 32768) {\n    for (int64_t k = 0; k < kn; k++) {\n");
    flat_reduction(L, p, 0);
    kl_sb_printf(L, "    }\n    } else if (kn >= 16) {\n");
    kl_sb_printf(L, "    #pragma omp parallel for schedule(static)\n    for (int64_t k = 0; k < kn; k++) {\n");
    flat_reduction(L, p, 0);
    kl_sb_printf(L, "    }\n    } else {\n    for (int64_t k = 0; k < kn; k++) {\n");
    flat_reduction(L, p, 1);
    kl_sb_printf(L, "    }\n    }\n");
}

static void open_loop(renderer *r, kl_strbuf *sb, int d, int depth)
{
    kl_sb_indent(sb, 4 * depth);
    kl_sb_printf(sb, "for (int64_t i%d = 0; i%d < %s; i%d++)\n", d, d, name(r, r->k->h.dims[d]), d);
}

/* The line defining li (the input's linear index, from the loop indexes),
 * then the body: what a reduction's per-dim loops run. */
static void body_with_li(renderer *r, kl_strbuf *sb, const char *bd)
{
    kl_sb_append(sb, "        const int64_t li = ");
    kl_stmt_loop_offset(r, sb);
    kl_sb_printf(sb, "; (void)li;\n%s", bd);
}

/* Every reduced extent is a short literal (a window: src/ops/reduce.c
 * writes short ones into the kernel), and some dim is kept. Literals that
 * merged (kl_kd_merge_dims: a batch norm's 7x7, read as one run of 49) are
 * rows, not windows. */
static int short_window(const renderer *r, const int *red, int nr, int nk)
{
    for (int i = 0; i < nr; i++) {
        const kl_instr *e = &r->k->instrs[r->k->h.dims[red[i]]];
        if (e->kind != KL_I_CONST || e->value > KL_SHORT_EXTENT) return 0;
    }
    return nr > 0 && nk > 0;
}

/* The loops over the kept dims of a window reduction: all but the last in
 * parallel, the last vectorised, each lane folding its own (unrolled)
 * window: the form pooling wants (measured 3x over a loop per window). */
static void window_kept_loops(renderer *r, kl_strbuf *L, const int *kept, int nk, long limit)
{
    if (nk > 1) kl_sb_printf(L, "    #pragma omp parallel for collapse(%d) if(kn * rn > %ld) schedule(static)\n", nk - 1, limit);
    for (int i = 0; i < nk - 1; i++) open_loop(r, L, kept[i], 1 + i);
    kl_sb_indent(L, 4 * nk);
    if (nk > 1) kl_sb_append(L, "#pragma omp simd\n");
    else kl_sb_printf(L, "#pragma omp parallel for simd if(kn * rn > %ld) schedule(static)\n", limit);
    open_loop(r, L, kept[nk - 1], nk);
}

/* argmax / argmin: per output, a scan of its reduced dims for the extreme
 * (NaN tracked as max and min do) and a second for the first position
 * holding it, outputs in parallel. Two scans of a row in cache beat one
 * that carries value and position together (a compare-select chain:
 * measured ~3x slower on pooling windows). A short window (literal extents,
 * a pooling's) keeps the values the first scan read in a local array that
 * the second, backwards, reads instead of gathering them again. */
static kl_status arg_reduce_kernel(renderer *r, kl_strbuf *L, const char *bd)
{
    const kl_kd_head *h = &r->k->h;
    kl_reduce_op op = (kl_reduce_op)h->op, extreme = op == KL_REDUCE_ARGMAX ? KL_REDUCE_MAX : KL_REDUCE_MIN;
    kl_dtype in_t = (kl_dtype)h->in_dtype;
    int rank = h->rank, kept[KL_MAX_DIMS], red[KL_MAX_DIMS], nk = 0, nr = 0;
    for (int d = 0; d < rank; d++) { if (h->reduced >> d & 1) red[nr++] = d; else kept[nk++] = d; }
    int32_t kd[KL_MAX_DIMS], rd[KL_MAX_DIMS];
    for (int i = 0; i < nk; i++) kd[i] = h->dims[kept[i]];
    for (int i = 0; i < nr; i++) rd[i] = h->dims[red[i]];
    kl_stmt_product(r, L, "kn", kd, nk);
    kl_stmt_product(r, L, "rn", rd, nr);
    kl_strbuf pos = {0}, offb = {0}, scan = {0};
    for (int i = 0; i < nr; i++) kl_sb_append(&pos, "(");
    for (int i = 0; i < nr; i++) {
        if (i) kl_sb_printf(&pos, " * %s + ", name(r, h->dims[red[i]]));
        kl_sb_printf(&pos, "i%d)", red[i]);
    }
    kl_stmt_index_expr(r, &offb, h->target, 1);
    for (int i = 0; i < nr; i++) open_loop(r, &scan, red[i], 2 + i);
    kl_sb_append(&scan, "    {\n");
    body_with_li(r, &scan, bd);
    const char *t = name(r, h->value), *loops = scan.data ? scan.data : "";
    kl_reduce_acc acc = kl_stmt_reduce_acc(extreme, in_t);
    char fold[256];
    kl_stmt_combine(fold, sizeof fold, extreme, "a", t);
    int64_t window = 1; /* the short window's size, known here */
    if (short_window(r, red, nr, nk)) {
        for (int i = 0; i < nr; i++) window *= r->k->instrs[h->dims[red[i]]].value;
        window_kept_loops(r, L, kept, nk, serial_limit(bd));
    } else {
        if (nk) kl_sb_printf(L, "    #pragma omp parallel for collapse(%d) if(kn * rn > %ld) schedule(static)\n", nk,
                             serial_limit(bd));
        for (int i = 0; i < nk; i++) open_loop(r, L, kept[i], 1 + i);
    }
    kl_sb_printf(L, "    {\n        %s a = %s; int n = 0; int32_t ai = INT32_MAX; (void)n;\n", acc.acc_type, acc.identity);
    if (window > 1 && window <= 64) {
        kl_sb_printf(L, "        %s kl_w[%lld];\n", acc.acc_type, (long long)window);
        kl_sb_printf(L, "%s        kl_w[(int32_t)%s] = %s;\n        %s", loops, pos.data ? pos.data : "0", t, fold);
        if (acc.track_nan) kl_sb_printf(L, " n |= %s != %s;", t, t);
        kl_sb_printf(L, "\n    }\n        for (int32_t kl_r = %lld; kl_r >= 0; kl_r--) {\n", (long long)window - 1);
        if (acc.track_nan) kl_sb_append(L, "            const int kl_hit = n ? kl_w[kl_r] != kl_w[kl_r] : kl_w[kl_r] == a;\n");
        else kl_sb_append(L, "            const int kl_hit = kl_w[kl_r] == a;\n");
        kl_sb_append(L, "            ai = kl_hit ? kl_r : ai;\n        }\n");
    } else {
        kl_sb_printf(L, "%s        %s", loops, fold);
        if (acc.track_nan) kl_sb_printf(L, " n |= %s != %s;", t, t);
        kl_sb_printf(L, "\n    }\n%s        const int32_t kl_r = (int32_t)%s;\n", loops, pos.data ? pos.data : "0");
        if (acc.track_nan) kl_sb_printf(L, "        const int kl_hit = n ? %s != %s : %s == a;\n", t, t, t);
        else kl_sb_printf(L, "        const int kl_hit = %s == a;\n", t);
        kl_sb_printf(L, "        ai = (kl_hit & (kl_r < ai)) ? kl_r : ai;\n    }\n");
    }
    kl_sb_printf(L, "        out[%s] = ai;\n    }\n", offb.data ? offb.data : "0");
    kl_status s = pos.failed || offb.failed || scan.failed ? kl_error(KL_ERR_MEMORY, "out of memory rendering a kernel") : KL_OK;
    kl_sb_free(&pos);
    kl_sb_free(&offb);
    kl_sb_free(&scan);
    return s;
}

static kl_status reduce_kernel(renderer *r, kl_strbuf *L, const char *bd)
{
    const kl_kd_head *h = &r->k->h;
    kl_reduce_op op = (kl_reduce_op)h->op;
    if (op == KL_REDUCE_ARGMAX || op == KL_REDUCE_ARGMIN) return arg_reduce_kernel(r, L, bd);
    kl_dtype in_t = (kl_dtype)h->in_dtype, out_t = (kl_dtype)h->out_dtype;
    int rank = h->rank, kept[KL_MAX_DIMS], red[KL_MAX_DIMS], nk = 0, nr = 0;
    for (int d = 0; d < rank; d++) { if (h->reduced >> d & 1) red[nr++] = d; else kept[nk++] = d; }
    reduce_parts p;
    memset(&p, 0, sizeof p);
    p.rc = code_for(op, in_t);
    p.n_out = 1 + h->n_extra;
    kl_strbuf offb = {0};
    kl_stmt_index_expr(r, &offb, h->target, 1);
    const char *off = offb.data ? offb.data : "0";
    kl_sb_printf(L, "    int64_t kn = 1, rn = 1;\n");
    for (int i = 0; i < nk; i++) kl_sb_printf(L, "    kn *= %s;\n", name(r, h->dims[kept[i]]));
    for (int i = 0; i < nr; i++) kl_sb_printf(L, "    rn *= %s;\n", name(r, h->dims[red[i]]));
    p.blocked = nr > 0 && (op == KL_REDUCE_SUM || op == KL_REDUCE_MEAN) && (in_t == KL_FLOAT32 || in_t == KL_FLOAT16);
    char accs[64] = "", baccs[64] = "";
    size_t at = 0, bat = 0, dl = 0, bl = 0, fl = 0, al = 0, ml = 0, cdl = 0, csl = 0, cll = 0, ckl = 0, cfl = 0;
    for (int j = 0; j < p.n_out; j++) {
        const char *x = kl_stmt_out_suffix(j), *raw = name(r, j ? h->extra_value[j - 1] : h->value), *sep = j ? " " : "";
        const char *T = p.rc.acc_type, *I = p.rc.identity;
        char a[8], t[96], fold[256], value[96];
        snprintf(a, sizeof a, "a%s", x);
        kl_stmt_fold_operand(t, sizeof t, op, T, raw);
        kl_stmt_reduce_result(value, sizeof value, op, p.rc.track_nan, a);
        kl_stmt_stored(r, p.final[j], sizeof p.final[j], out_t, value);
        kl_stmt_combine(fold, sizeof fold, op, a, t);
        if (!j && p.rc.track_nan) snprintf(p.nanfold, sizeof p.nanfold, " n |= %s != %s;", t, t);
        at += (size_t)snprintf(accs + at, sizeof accs - at, "%s%s", j ? "," : "", a);
        bat += (size_t)snprintf(baccs + bat, sizeof baccs - bat, "%sba%s", j ? "," : "", x);
        dl += (size_t)snprintf(p.decl + dl, sizeof p.decl - dl, "%s a%s = %s; ", T, x, I);
        bl += (size_t)snprintf(p.bdecl + bl, sizeof p.bdecl - bl, "%sfloat ba%s = 0;", sep, x);
        fl += (size_t)snprintf(p.fold + fl, sizeof p.fold - fl, "%s%s", sep, fold);
        al += (size_t)snprintf(p.badd + al, sizeof p.badd - al, "%sba%s += %s;", sep, x, raw);
        ml += (size_t)snprintf(p.bmerge + ml, sizeof p.bmerge - ml, "%sa%s += ba%s;", sep, x, x);
        cdl += (size_t)snprintf(p.cdecl + cdl, sizeof p.cdecl - cdl, "%s acc%s[256]; ", T, x);
        csl += (size_t)snprintf(p.cstart + csl, sizeof p.cstart - csl, "acc%s[j] = %s; ", x, I);
        cll += (size_t)snprintf(p.cload + cll, sizeof p.cload - cll, "%s a%s = acc%s[j]; ", T, x, x);
        ckl += (size_t)snprintf(p.ckeep + ckl, sizeof p.ckeep - ckl, "acc%s[j] = a%s; ", x, x);
        cfl += (size_t)snprintf(p.cfinal + cfl, sizeof p.cfinal - cfl, "const %s a%s = acc%s[j]; ", T, x, x);
    }
    snprintf(p.decl + dl, sizeof p.decl - dl, "int n = 0; (void)n;");
    snprintf(p.red_clause, sizeof p.red_clause, "reduction(%s:%s)%s", p.rc.omp_op, accs,
             p.rc.track_nan ? " reduction(|:n)" : "");
    snprintf(p.bclause, sizeof p.bclause, "reduction(+:%s)", baccs);
    if (short_window(r, red, nr, nk)) {
        /* a window's few elements fold in the accumulator directly */
        window_kept_loops(r, L, kept, nk, serial_limit(bd));
        kl_sb_printf(L, "    {\n        %s\n", p.decl);
        for (int i = 0; i < nr; i++) open_loop(r, L, red[i], 2 + i);
        kl_sb_append(L, "    {\n");
        body_with_li(r, L, bd);
        kl_sb_printf(L, "        %s%s\n    }\n", p.fold, p.nanfold);
        store_outputs(L, &p, off);
        kl_sb_append(L, "    }\n");
        kl_sb_free(&offb);
        return KL_OK;
    }
    int trailing = nr > 0;
    for (int i = 0; i < nr; i++) trailing &= red[i] == nk + i;
    if (trailing && !h->uses_loops) {
        p.body = bd;
        flat_reduce_kernel(L, &p);
        kl_sb_free(&offb);
        return KL_OK;
    }
    /* per-dim loops; a load at the input's linear index reads li, defined from them */
    kl_strbuf withli = {0};
    body_with_li(r, &withli, bd);
    const char *body_li = withli.data ? withli.data : "";
    if (nr == 0 || red[nr - 1] == rank - 1) {
        /* rows: the innermost input dim is reduced */
        for (int variant = 0; variant < 2; variant++) {
            int over_kept = variant == 0;
            kl_sb_printf(L, over_kept ? "    if (kn >= 16 || rn <= 32768) {\n" : "    } else {\n");
            if (over_kept && nk)
                kl_sb_printf(L, "    #pragma omp parallel for collapse(%d) if(kn * rn > %ld) schedule(static)\n", nk,
                             serial_limit(bd));
            for (int i = 0; i < nk; i++) open_loop(r, L, kept[i], 1 + i);
            kl_sb_printf(L, "    {\n        %s\n", p.decl);
            for (int i = 0; i < nr; i++) {
                int innermost = i == nr - 1;
                const char *S = name(r, h->dims[red[i]]);
                if (innermost && over_kept) {
                    /* a short row (a pooling window's) runs ~4x faster as a
                     * plain loop than vectorised (the compiler's own check
                     * of the trip count, simd if(), does not help) */
                    kl_sb_indent(L, 4 * (2 + i));
                    kl_sb_printf(L, "if (%s < 16)\n", S);
                    if (p.blocked)
                        kl_sb_printf(L, "    {\n        %s\n        for (int64_t i%d = 0; i%d < %s; i%d++) {\n"
                                        "%s        %s\n        }\n        %s\n    }\n",
                                     p.bdecl, red[i], red[i], S, red[i], body_li, p.badd, p.bmerge);
                    else
                        kl_sb_printf(L, "    for (int64_t i%d = 0; i%d < %s; i%d++)\n    {\n%s        %s%s\n    }\n",
                                     red[i], red[i], S, red[i], body_li, p.fold, p.nanfold);
                    kl_sb_indent(L, 4 * (2 + i));
                    kl_sb_printf(L, "else\n");
                }
                if (innermost && p.blocked) {
                    /* float partial sums over short blocks, blocks summed in double */
                    if (i == 0 && !over_kept)
                        kl_sb_printf(L, "    #pragma omp parallel for %s if(rn > 32768) schedule(static)\n", p.red_clause);
                    kl_sb_printf(L, "    for (int64_t blk = 0; blk < %s; blk += 1024) {\n", S);
                    kl_sb_printf(L, "        %s const int64_t bend = blk + 1024 < %s ? blk + 1024 : %s;\n", p.bdecl, S, S);
                    kl_sb_printf(L, "    #pragma omp simd %s\n", p.bclause);
                    kl_sb_printf(L, "    for (int64_t i%d = blk; i%d < bend; i%d++)\n", red[i], red[i], red[i]);
                    kl_sb_printf(L, "    {\n%s        %s\n    }\n        %s\n    }\n", body_li, p.badd, p.bmerge);
                    break;
                }
                if (i == 0 && !over_kept)
                    kl_sb_printf(L, "    #pragma omp parallel for%s %s if(rn > 32768) schedule(static)\n",
                                 nr == 1 ? " simd" : "", p.red_clause);
                else if (innermost)
                    kl_sb_printf(L, "    #pragma omp simd %s\n", p.red_clause);
                open_loop(r, L, red[i], 2 + i);
            }
            if (!p.blocked) kl_sb_printf(L, "    {\n%s        %s%s\n    }\n", body_li, p.fold, p.nanfold);
            store_outputs(L, &p, off);
            kl_sb_append(L, "    }\n");
        }
        kl_sb_printf(L, "    }\n");
    } else {
        /* columns: the innermost input dim is kept; each task owns a chunk of it */
        int last = rank - 1;
        kl_sb_printf(L, "    const int64_t nlast = %s, nchunk = (nlast + 255) / 256;\n", name(r, h->dims[last]));
        kl_sb_printf(L, "    #pragma omp parallel for collapse(%d) if(kn * rn > 32768) schedule(static)\n", nk);
        for (int i = 0; i < nk - 1; i++) open_loop(r, L, kept[i], 1 + i);
        kl_sb_printf(L, "    for (int64_t chunk = 0; chunk < nchunk; chunk++) {\n");
        kl_sb_printf(L, "        %sint nan[256];\n", p.cdecl);
        kl_sb_printf(L, "        const int64_t j0 = chunk * 256, jn = nlast - j0 < 256 ? nlast - j0 : 256;\n");
        kl_sb_printf(L, "        for (int64_t j = 0; j < jn; j++) { %snan[j] = 0; }\n", p.cstart);
        for (int i = 0; i < nr; i++) open_loop(r, L, red[i], 2 + i);
        kl_sb_printf(L, "        {\n        #pragma omp simd\n        for (int64_t j = 0; j < jn; j++) {\n");
        kl_sb_printf(L, "        const int64_t i%d = j0 + j;\n%s", last, body_li);
        kl_sb_printf(L, "        %sint n = nan[j]; (void)n;\n", p.cload);
        kl_sb_printf(L, "        %s%s\n        %snan[j] = n;\n        }\n        }\n", p.fold, p.nanfold, p.ckeep);
        kl_sb_printf(L, "        for (int64_t j = 0; j < jn; j++) {\n            const int64_t i%d = j0 + j;\n", last);
        kl_sb_printf(L, "            %sconst int n = nan[j]; (void)n;\n    ", p.cfinal);
        store_outputs(L, &p, off);
        kl_sb_append(L, "        }\n    }\n");
    }
    kl_sb_free(&withli);
    kl_sb_free(&offb);
    return KL_OK;
}

/* ---- softmax ---- */

/* A softmax (log-softmax) along one dim: per row (a run of `inner`
 * columns, 64 at a time, when the dim is not the innermost) the max, then
 * exp(x - max) stored and summed, then the scale (or the log of the sum
 * subtracted), all while the row is in cache; rows in parallel. NaN in a
 * row makes it NaN, as the meta-op form does; sums in float per lane; the
 * exponential is the prelude's kl_exp_nonpos (its argument is at most 0). */
static kl_status softmax_kernel(renderer *r, kl_strbuf *L)
{
    const kl_kd_head *h = &r->k->h;
    kl_stmt_row_extents(r, L);
    const char *fin = h->op ? "logf" : "1.0f /";   /* the row's constant: log(sum) or 1 / sum */
    const char *row_out = h->op ? "y[j] = x[j] - m - f;" : "y[j] *= f;";
    const char *col_out = h->op ? "y[j * inner + c] = x[j * inner + c] - m[c] - f[c];" : "y[j * inner + c] *= f[c];";
    /* rows: vectorised along the row */
    kl_sb_printf(L, "    if (inner == 1) {\n"
                    "    #pragma omp parallel for schedule(static) if(outer * axis > 32768)\n"
                    "    for (int64_t o = 0; o < outer; o++) {\n"
                    "        const float *restrict x = b1 + o * axis;\n        float *restrict y = out + o * axis;\n"
                    "        float m = -INFINITY; int n = 0;\n"
                    "        #pragma omp simd reduction(max:m) reduction(|:n)\n"
                    "        for (int64_t j = 0; j < axis; j++) { m = x[j] > m ? x[j] : m; n |= x[j] != x[j]; }\n"
                    "        if (n) m = NAN;\n        float s = 0;\n"
                    "        #pragma omp simd reduction(+:s)\n"
                    "        for (int64_t j = 0; j < axis; j++) { const float e = kl_exp_nonpos(x[j] - m); %s s += e; }\n"
                    "        const float f = %s(s);\n"
                    "        #pragma omp simd\n        for (int64_t j = 0; j < axis; j++) %s\n    }\n",
                 h->op ? "" : "y[j] = e;", fin, row_out);
    /* columns: 64 of the inner run at once, vectorised across them */
    kl_sb_printf(L, "    } else {\n    const int64_t nchunk = (inner + 63) / 64;\n"
                    "    #pragma omp parallel for collapse(2) schedule(static) if(outer * axis * inner > 32768)\n"
                    "    for (int64_t o = 0; o < outer; o++)\n    for (int64_t ch = 0; ch < nchunk; ch++) {\n"
                    "        const int64_t c0 = ch * 64, cn = inner - c0 < 64 ? inner - c0 : 64;\n"
                    "        const float *restrict x = b1 + o * axis * inner + c0;\n"
                    "        float *restrict y = out + o * axis * inner + c0;\n"
                    "        float m[64], s[64], f[64]; int n[64];\n"
                    "        for (int64_t c = 0; c < cn; c++) { m[c] = -INFINITY; s[c] = 0; n[c] = 0; }\n"
                    "        for (int64_t j = 0; j < axis; j++)\n        #pragma omp simd\n"
                    "        for (int64_t c = 0; c < cn; c++) { const float v = x[j * inner + c]; m[c] = v > m[c] ? v : m[c]; n[c] |= v != v; }\n"
                    "        for (int64_t c = 0; c < cn; c++) if (n[c]) m[c] = NAN;\n"
                    "        for (int64_t j = 0; j < axis; j++)\n        #pragma omp simd\n"
                    "        for (int64_t c = 0; c < cn; c++) { const float e = kl_exp_nonpos(x[j * inner + c] - m[c]); %s s[c] += e; }\n"
                    "        for (int64_t c = 0; c < cn; c++) f[c] = %s(s[c]);\n"
                    "        for (int64_t j = 0; j < axis; j++)\n        #pragma omp simd\n"
                    "        for (int64_t c = 0; c < cn; c++) %s\n    }\n    }\n",
                 h->op ? "" : "y[j * inner + c] = e;", fin, col_out);
    return KL_OK;
}

/* ---- layer norm ---- */

/* Layer norm over the last dim: per row, in cache, the mean, then the mean
 * square of the centred values (both summed in double, as the reductions
 * of the meta-op form are), then the normalised row times the weight plus
 * the bias, in float in the meta-op form's order; rows in parallel. */
static kl_status layernorm_kernel(renderer *r, kl_strbuf *L)
{
    kl_stmt_row_extents(r, L);
    char value[96];
    kl_stmt_layernorm_value(&r->k->h, value, sizeof value);
    kl_sb_printf(L, "    (void)inner;\n"
                    "    #pragma omp parallel for schedule(static) if(outer * axis > 32768)\n"
                    "    for (int64_t o = 0; o < outer; o++) {\n"
                    "        const float *restrict x = b1 + o * axis;\n        float *restrict y = out + o * axis;\n"
                    "        double s = 0, q = 0;\n"
                    "        #pragma omp simd reduction(+:s)\n"
                    "        for (int64_t j = 0; j < axis; j++) s += (double)x[j];\n"
                    "        const float m = (float)(s / (double)axis);\n"
                    "        #pragma omp simd reduction(+:q)\n"
                    "        for (int64_t j = 0; j < axis; j++) { const float c = x[j] - m; q += (double)(c * c); }\n"
                    "        const float rs = (float)1 / sqrtf((float)(q / (double)axis) + (float)f0);\n"
                    "        #pragma omp simd\n"
                    "        for (int64_t j = 0; j < axis; j++) y[j] = %s;\n    }\n", value);
    return KL_OK;
}

/* ---- scatter ---- */

static kl_status scatter_kernel(renderer *r, kl_strbuf *L, const char *bd)
{
    const kl_kd_head *h = &r->k->h;
    kl_reduce_op op = (kl_reduce_op)h->op;
    kl_dtype t = (kl_dtype)h->out_dtype;
    const char *T = kl_dtype_compute_ctype(t);
    const char *val = name(r, h->value), *off = name(r, h->target), *outside = name(r, h->skip);
    kl_stmt_product(r, L, "on", h->out_dims, h->out_rank);
    kl_stmt_product(r, L, "yn", h->dims, h->rank);
    char start[96], update[320];
    kl_stmt_stored(r, start, sizeof start, t, kl_stmt_identity(op, t));
    kl_sb_printf(L, "    #pragma omp parallel for simd if(on > 32768) schedule(static)\n"
                    "    for (int64_t li = 0; li < on; li++) out[li] = %s;\n", start);
    /* the dims whose distinct values write distinct targets run in parallel,
     * no update atomic; with none, add and multiply are atomic, max and min serial */
    int order[KL_MAX_DIMS], n_disjoint = 0, n = 0;
    for (int d = 0; d < h->rank; d++) if (h->disjoint >> d & 1) order[n++] = d;
    n_disjoint = n;
    for (int d = 0; d < h->rank; d++) if (!(h->disjoint >> d & 1)) order[n++] = d;
    int atomic = !n_disjoint && t != KL_FLOAT16 && t != KL_BFLOAT16 && op != KL_REDUCE_MAX && op != KL_REDUCE_MIN;
    if (n_disjoint)
        kl_sb_printf(L, "    #pragma omp parallel for collapse(%d) if(yn > 32768) schedule(static)\n", n_disjoint);
    else if (atomic && h->rank > 0)
        kl_sb_printf(L, "    #pragma omp parallel for collapse(%d) if(yn > 32768) schedule(static)\n", h->rank);
    for (int j = 0; j < h->rank; j++) {
        int d = order[j];
        kl_sb_indent(L, 4 + 4 * j);
        kl_sb_printf(L, "for (int64_t i%d = 0; i%d < %s; i%d++)\n", d, d, name(r, h->dims[d]), d);
    }
    kl_sb_printf(L, "    {\n%s", bd);
    kl_sb_printf(L, "        if (!(%s)) {\n", outside);
    char tgt[96], now[112];
    snprintf(tgt, sizeof tgt, "out[%s]", off);
    if (t == KL_FLOAT16) snprintf(now, sizeof now, "(float)out[%s]", off);
    else if (t == KL_BFLOAT16) snprintf(now, sizeof now, "kl_bf16_load(out[%s])", off);
    else snprintf(now, sizeof now, "%s", tgt);
    if (atomic) kl_sb_printf(L, "            #pragma omp atomic\n");
    switch (op) {
    case KL_REDUCE_SUM:
        if (t == KL_BOOL) kl_sb_printf(L, "            %s |= %s;\n", tgt, val);
        else if (atomic) kl_sb_printf(L, "            %s += %s;\n", tgt, val);
        else {
            char sum[160];
            snprintf(sum, sizeof sum, "%s + %s", now, val);
            kl_stmt_stored(r, update, sizeof update, t, sum);
            kl_sb_printf(L, "            %s = %s;\n", tgt, update);
        }
        break;
    case KL_REDUCE_PROD:
        if (t == KL_BOOL) kl_sb_printf(L, "            %s &= %s;\n", tgt, val);
        else if (atomic) kl_sb_printf(L, "            %s *= %s;\n", tgt, val);
        else {
            char prod[160];
            snprintf(prod, sizeof prod, "%s * %s", now, val);
            kl_stmt_stored(r, update, sizeof update, t, prod);
            kl_sb_printf(L, "            %s = %s;\n", tgt, update);
        }
        break;
    case KL_REDUCE_ANY: kl_sb_printf(L, "            %s |= (uint8_t)(%s != 0);\n", tgt, val); break;
    case KL_REDUCE_ALL: kl_sb_printf(L, "            %s &= (uint8_t)(%s != 0);\n", tgt, val); break;
    case KL_REDUCE_XOR: kl_sb_printf(L, "            %s ^= (uint8_t)(%s != 0);\n", tgt, val); break;
    case KL_REDUCE_BIT_AND: kl_sb_printf(L, "            %s &= %s;\n", tgt, val); break;
    case KL_REDUCE_BIT_OR: kl_sb_printf(L, "            %s |= %s;\n", tgt, val); break;
    case KL_REDUCE_BIT_XOR: kl_sb_printf(L, "            %s ^= %s;\n", tgt, val); break;
    default: {
        const char *cmp = op == KL_REDUCE_MAX ? ">" : "<";
        kl_sb_printf(L, "            const %s cur = %s;\n", T, now);
        char pick[192];
        snprintf(pick, sizeof pick, "(%s %s cur || %s != %s) ? %s : cur", val, cmp, val, val, val);
        kl_stmt_stored(r, update, sizeof update, t, pick);
        kl_sb_printf(L, "            %s = %s;\n", tgt, update);
    }
    }
    kl_sb_printf(L, "        }\n    }\n");
    return KL_OK;
}

/* ---- the kernel ---- */

/* The group form (src/runtime/group.c has its arguments): the members'
 * elements end to end, split evenly over the threads, each thread running
 * the parts of the members its share covers. */
static void group_kernel(const renderer *r, kl_strbuf *src, const char *bd, const char *store)
{
    const kl_kdesc *k = r->k;
    const kl_kd_head *h = &k->h;
    kl_sb_printf(src,
                 "int omp_get_num_threads(void);\nint omp_get_thread_num(void);\n"
                 "void kl_kernel(void *const *buf, const int64_t *iarg, const double *farg)\n{\n"
                 "    const int64_t members = iarg[0], total = iarg[members];\n"
                 "    const int64_t *const ends = iarg + 1;\n"
                 "    #pragma omp parallel if(total > %ld)\n    {\n"
                 "        const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();\n"
                 "        const int64_t lo = total * t / threads, hi = total * (t + 1) / threads;\n"
                 "        for (int64_t m = 0; m < members; m++) {\n"
                 "            const int64_t start = m ? ends[m - 1] : 0, end = ends[m];\n"
                 "            if (end <= lo || start >= hi) continue;\n"
                 "            void *const *mbuf = buf + m * %d;\n"
                 "            const int64_t *miarg = iarg + 1 + members + m * %d;\n"
                 "            const double *mfarg = farg + m * %d;\n"
                 "            (void)miarg; (void)mfarg;\n",
                 serial_limit(bd), h->n_bufs, h->n_iargs, h->n_fargs);
    kl_stmt_declare_args(r, src, "            ", "mbuf", "miarg", "mfarg");
    kl_sb_printf(src,
                 "            const int64_t from = (lo > start ? lo : start) - start;\n"
                 "            const int64_t to = (hi < end ? hi : end) - start;\n"
                 "            #pragma omp simd\n"
                 "            for (int64_t li = from; li < to; li++) {\n%s%s            }\n"
                 "        }\n    }\n}\n",
                 bd, store);
}

kl_status kl_cpu_render_group(kl_backend *b, const kl_kdesc *k, char **out)
{
    (void)b;
    return kl_stmt_group_form(k, KL_DIALECT_C, group_kernel, out);
}

kl_status kl_cpu_render(kl_backend *b, const kl_kdesc *k, char **out)
{
    (void)b;
    *out = NULL;
    const kl_kd_head *h = &k->h;
    renderer r;
    KL_TRY(kl_stmt_init(&r, k, KL_DIALECT_C));
    kl_strbuf bd = {0}, L = {0}, src = {0};
    kl_status s = kl_stmt_body(&r, &bd);
    const char *bdt = bd.data ? bd.data : "";
    if (s == KL_OK) {
        if (h->kind == KL_KD_MAP) s = map_kernel(&r, &L, bdt);
        else if (h->kind == KL_KD_REDUCE) s = reduce_kernel(&r, &L, bdt);
        else if (h->kind == KL_KD_SOFTMAX) s = softmax_kernel(&r, &L);
        else if (h->kind == KL_KD_LAYERNORM) s = layernorm_kernel(&r, &L);
        else s = scatter_kernel(&r, &L, bdt);
    }
    if (s == KL_OK) {
        kl_stmt_header_comment(k, &src);
        kl_sb_append(&src, "void kl_kernel(void *const *buf, const int64_t *iarg, const double *farg)\n{\n"
                           "    (void)iarg; (void)farg;\n");
        kl_stmt_declare_args(&r, &src, "    ", "buf", "iarg", "farg");
        kl_sb_append(&src, L.data ? L.data : "");
        kl_sb_append(&src, "}\n");
        if (src.failed || L.failed || bd.failed) s = kl_error(KL_ERR_MEMORY, "out of memory rendering a kernel");
        else *out = kl_sb_take(&src);
    }
    kl_sb_free(&src);
    kl_sb_free(&L);
    kl_sb_free(&bd);
    kl_stmt_free(&r);
    return s;
}
