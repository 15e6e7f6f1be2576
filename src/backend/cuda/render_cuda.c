/* render_cuda.c: the CUDA backend's renderer: a kernel description printed
 * as CUDA C++ for NVRTC, with the statements of render_stmt.c. Every loop
 * is grid-stride, so a kernel is correct for any grid the launcher picks.
 *
 * Element-wise kernels and the folds of reductions take KL_UNROLL (4)
 * elements per thread and loop turn, a block apart so that loads stay
 * coalesced and each thread has several in flight; the linear index is split
 * into the loop indexes only when the body reads them; a map reading only
 * the linear index, on arrays on 16-byte boundaries, gives each thread 4
 * consecutive elements instead, which compile to 16-byte loads and stores.
 * Reductions choose at run time, uniformly over the grid: with enough
 * outputs to fill the device (or short ranges) a thread folds one output;
 * otherwise a block
 * folds one output with warp shuffles, and when there are fewer outputs
 * than blocks, several blocks split an output's range and the last to
 * finish combines their partial results in block order (through the
 * workspace), so sums are deterministic. Scatters run the dims that write
 * disjoint targets in parallel and the rest serially, with plain stores;
 * with no such dim, every element in parallel with atomic updates. */
#include "backend/cuda/cuda.h"
#include "codegen/render_stmt.h"
#include "core/dtype.h"
#include "core/error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef kl_stmt_printer renderer;

static const char *name(const renderer *r, int32_t i) { return kl_stmt_name(r, i); }

#define GRID_LOOP(var, limit) \
    "for (int64_t " var " = (int64_t)blockIdx.x * KL_BLOCK + threadIdx.x; " var " < " limit \
    "; " var " += (int64_t)gridDim.x * KL_BLOCK)"

/* The loop indexes i<d> of dims[0..n) (innermost last) from the flat
 * position in variable `rest`, which this consumes. */
static void split_index(const renderer *r, kl_strbuf *L, const int *dims, int n, const char *rest)
{
    for (int j = n - 1; j >= 0; j--) {
        const char *ext = name(r, r->k->h.dims[dims[j]]);
        if (j > 0) kl_sb_printf(L, "        const int64_t i%d = %s %% %s; %s /= %s;\n", dims[j], rest, ext, rest, ext);
        else kl_sb_printf(L, "        const int64_t i%d = %s;\n", dims[j], rest);
    }
}

/* ---- map ---- */

/* A map whose body reads only li (every array at li, or at fixed places),
 * with arrays all on 16-byte boundaries: each thread takes KL_UNROLL
 * consecutive elements, so its loads and stores of them merge into 16-byte
 * ones (the arrays' alignment is told to the compiler, the full runs
 * unrolled without bounds checks); the last partial run element by element. */
static void map_vector_branch(const renderer *r, kl_strbuf *L, const char *bd)
{
    const kl_kdesc *k = r->k;
    const kl_kd_head *h = &k->h;
    kl_sb_append(L, "    if (((unsigned long long)out");
    for (int i = 1; i < h->n_bufs; i++) kl_sb_printf(L, " | (unsigned long long)%s%d", i <= h->n_extra ? "out" : "b", i);
    kl_sb_append(L, ") % 16 == 0) {\n");
    /* the arrays again, under their own names, known to be aligned */
    const char *T = kl_stmt_buffer_type(r, (kl_dtype)h->out_dtype);
    kl_sb_printf(L, "        %s *__restrict__ const kl_a0 = (%s *)__builtin_assume_aligned(out, 16);\n", T, T);
    for (int i = 1; i < h->n_bufs; i++) {
        const char *bt = kl_stmt_buffer_type(r, (kl_dtype)k->buf_dtype[i]);
        const char *c = i <= h->n_extra ? "" : "const ";
        kl_sb_printf(L, "        %s%s *__restrict__ const kl_a%d = (%s%s *)__builtin_assume_aligned(%s%d, 16);\n", c,
                     bt, i, c, bt, i <= h->n_extra ? "out" : "b", i);
    }
    kl_sb_printf(L, "        {\n        %s *__restrict__ const out = kl_a0;\n", T);
    for (int i = 1; i < h->n_bufs; i++)
        kl_sb_printf(L, "        %s%s *__restrict__ const %s%d = kl_a%d;\n", i <= h->n_extra ? "" : "const ",
                     kl_stmt_buffer_type(r, (kl_dtype)k->buf_dtype[i]), i <= h->n_extra ? "out" : "b", i, i);
    kl_sb_append(L, "    for (int64_t base = ((int64_t)blockIdx.x * KL_BLOCK + threadIdx.x) * KL_UNROLL; base < n;\n"
                    "         base += (int64_t)gridDim.x * (KL_BLOCK * KL_UNROLL)) {\n"
                    "    if (base + KL_UNROLL <= n) {\n"
                    "    #pragma unroll\n    for (int u = 0; u < KL_UNROLL; u++) {\n"
                    "        const int64_t li = base + u;\n");
    kl_sb_append(L, bd);
    kl_stmt_map_stores(r, L);
    kl_sb_append(L, "    }\n    } else {\n    for (int64_t li = base; li < n; li++) {\n");
    kl_sb_append(L, bd);
    kl_stmt_map_stores(r, L);
    kl_sb_append(L, "    }\n    }\n    }\n        }\n        return;\n    }\n");
}

static void map_kernel(const renderer *r, kl_strbuf *L, const char *bd)
{
    const kl_kd_head *h = &r->k->h;
    kl_stmt_product(r, L, "n", h->dims, h->rank);
    if (!h->uses_loops && !h->n_checks) map_vector_branch(r, L, bd);
    /* KL_UNROLL elements per thread and turn, a block apart (coalesced), so
     * that each thread has several loads in flight */
    kl_sb_printf(L, "    for (int64_t base = (int64_t)blockIdx.x * (KL_BLOCK * KL_UNROLL) + threadIdx.x; base < n;\n"
                    "         base += (int64_t)gridDim.x * (KL_BLOCK * KL_UNROLL)) {\n"
                    "    #pragma unroll\n    for (int u = 0; u < KL_UNROLL; u++) {\n"
                    "        const int64_t li = base + u * KL_BLOCK;\n        if (li >= n) break;\n");
    if (h->uses_loops && h->rank > 0) {
        int all[KL_MAX_DIMS];
        for (int d = 0; d < h->rank; d++) all[d] = d;
        kl_sb_printf(L, "        int64_t rest = li;\n");
        split_index(r, L, all, h->rank, "rest");
    }
    kl_sb_append(L, bd);
    kl_stmt_map_stores(r, L);
    kl_sb_append(L, "    }\n    }\n");
}

/* ---- reduce ---- */

/* The statements of a reduction, for the value (accumulator a) and its
 * sibling values (a1, a2...; kdesc.h), each stored at the same offset to its
 * own buffer (out, out1...). */
typedef struct {
    kl_reduce_acc acc;
    int n_out;
    char decl[256];             /* the siblings' accumulators, started */
    char fold[1024], nanfold[256], off[8192];
    char merge[4][160];         /* per output: o<j> folded into a<j> */
    char final[4][256];         /* per output: the stored value of a<j> */
    int kept[KL_MAX_DIMS], red[KL_MAX_DIMS], nk, nr, flat; /* flat: li = ko * rn + r */
} reduce_parts;

_Static_assert(KL_CUDA_WS_BYTES >= KL_CUDA_MAX_GRID * (16 + 8 * KL_MAX_SIBLINGS),
               "the workspace holds each sibling's partial results");

/* Every output's store at the target, when `guard` (a condition, or 1). */
static void store_outputs(kl_strbuf *L, const reduce_parts *p, const char *indent, const char *guard)
{
    for (int j = 0; j < p->n_out; j++)
        kl_sb_printf(L, "%sif (%s) out%s[%s] = %s;\n", indent, guard, kl_stmt_out_suffix(j), p->off, p->final[j]);
}

/* The fold of the reduced range [from, rn) by step into a, n. */
static void fold_range(const renderer *r, kl_strbuf *L, const reduce_parts *p, const char *from, const char *step,
                       const char *bd)
{
    kl_sb_printf(L, "        %s a = %s; %sint n = 0; (void)n; int32_t ai = 0; (void)ai;\n", p->acc.acc_type, p->acc.identity,
                 p->decl);
    kl_sb_printf(L, "        for (int64_t r0 = %s; r0 < rn; r0 += (%s) * KL_UNROLL) {\n"
                    "        #pragma unroll\n        for (int u = 0; u < KL_UNROLL; u++) {\n"
                    "        const int64_t ri = r0 + u * (%s);\n        if (ri >= rn) break;\n", from, step, step);
    if (p->flat) {
        kl_sb_printf(L, "        const int64_t li = ko * rn + ri;\n");
    } else {
        kl_sb_printf(L, "        int64_t rest_r = ri;\n");
        split_index(r, L, p->red, p->nr, "rest_r");
        kl_sb_printf(L, "        const int64_t li = ");
        kl_stmt_loop_offset(r, L);
        kl_sb_printf(L, "; (void)li;\n");
    }
    kl_sb_printf(L, "%s        %s%s\n        }\n        }\n", bd, p->fold, p->nanfold);
}

/* a, n of this warp's threads combined into lane 0's. */
static void warp_combine(kl_strbuf *L, const reduce_parts *p)
{
    kl_sb_printf(L, "        for (int s = 16; s > 0; s >>= 1) {\n");
    for (int j = 0; j < p->n_out; j++)
        kl_sb_printf(L, "            const %s o%s = __shfl_down_sync(0xffffffffu, a%s, s); %s\n", p->acc.acc_type,
                     kl_stmt_out_suffix(j), kl_stmt_out_suffix(j), p->merge[j]);
    kl_sb_printf(L, "            const int on = __shfl_down_sync(0xffffffffu, n, s);\n"
                    "            n |= on;\n        }\n");
}

static void reduce_kernel(const renderer *r, kl_strbuf *L, const char *bd)
{
    const kl_kd_head *h = &r->k->h;
    kl_reduce_op op = (kl_reduce_op)h->op;
    kl_dtype in_t = (kl_dtype)h->in_dtype, out_t = (kl_dtype)h->out_dtype;
    reduce_parts *p = calloc(1, sizeof *p);
    if (!p) { L->failed = 1; return; }
    for (int d = 0; d < h->rank; d++) {
        if (h->reduced >> d & 1) p->red[p->nr++] = d;
        else p->kept[p->nk++] = d;
    }
    int trailing = 1;
    for (int i = 0; i < p->nr; i++) trailing &= p->red[i] == p->nk + i;
    p->flat = trailing && !h->uses_loops;
    p->acc = kl_stmt_reduce_acc(op, in_t);
    p->n_out = 1 + h->n_extra;
    const char *T = p->acc.acc_type;
    int arg = op == KL_REDUCE_ARGMAX || op == KL_REDUCE_ARGMIN;
    size_t dl = 0, fl = 0;
    for (int j = 0; j < p->n_out; j++) {
        const char *x = kl_stmt_out_suffix(j), *raw = name(r, j ? h->extra_value[j - 1] : h->value);
        char a[8], o[8], t[96], fold[256], value[96];
        snprintf(a, sizeof a, "a%s", x);
        snprintf(o, sizeof o, "o%s", x);
        kl_stmt_fold_operand(t, sizeof t, op, T, raw);
        if (arg) kl_stmt_arg_fold(fold, sizeof fold, op, in_t, t, "ri");
        else kl_stmt_combine(fold, sizeof fold, op, a, t);
        fl += (size_t)snprintf(p->fold + fl, sizeof p->fold - fl, "%s%s", j ? " " : "", fold);
        if (j) dl += (size_t)snprintf(p->decl + dl, sizeof p->decl - dl, "%s %s = %s; ", T, a, p->acc.identity);
        if (!j && p->acc.track_nan) snprintf(p->nanfold, sizeof p->nanfold, " n |= %s != %s;", t, t);
        kl_stmt_combine(p->merge[j], sizeof p->merge[j], op, a, o);
        if (arg) snprintf(value, sizeof value, "ai");
        else kl_stmt_reduce_result(value, sizeof value, op, p->acc.track_nan, a);
        kl_stmt_stored(r, p->final[j], sizeof p->final[j], out_t, value);
    }
    kl_strbuf offb = {0};
    kl_stmt_index_expr(r, &offb, h->target, 1);
    if (offb.len >= sizeof p->off) L->failed = 1; /* reported as a failed render, never a cut expression */
    snprintf(p->off, sizeof p->off, "%s", offb.data ? offb.data : "0");
    kl_sb_free(&offb);

    int32_t kd[KL_MAX_DIMS], rd[KL_MAX_DIMS];
    for (int i = 0; i < p->nk; i++) kd[i] = h->dims[p->kept[i]];
    for (int i = 0; i < p->nr; i++) rd[i] = h->dims[p->red[i]];
    kl_stmt_product(r, L, "kn", kd, p->nk);
    kl_stmt_product(r, L, "rn", rd, p->nr);
    for (int j = 0; j < p->n_out; j++) kl_sb_printf(L, "    __shared__ %s kl_sa%s[KL_BLOCK / 32];\n", T, kl_stmt_out_suffix(j));
    kl_sb_printf(L, "    __shared__ int kl_sn[KL_BLOCK / 32], kl_last;\n");
    /* a thread per output (argmax / argmin: always; the scan's order is the position's) */
    kl_sb_printf(L, arg ? "    {\n" : "    if (rn <= 32 || kn >= (int64_t)gridDim.x * KL_BLOCK / 4) {\n");
    kl_sb_printf(L, "    " GRID_LOOP("ko", "kn") " {\n        int64_t rest_k = ko; (void)rest_k;\n");
    split_index(r, L, p->kept, p->nk, "rest_k");
    fold_range(r, L, p, "0", "1", bd);
    store_outputs(L, p, "        ", "1");
    kl_sb_printf(L, "    }\n    return;\n    }\n");
    if (arg) {
        free(p);
        return;
    }
    /* a block per output, or G blocks per output (none: nothing to do) */
    kl_sb_printf(L, "    if (kn == 0) return;\n    const int64_t G = kn >= gridDim.x ? 1 : gridDim.x / kn;\n");
    kl_sb_printf(L, "    for (int64_t w = blockIdx.x; w < kn * G; w += gridDim.x) {\n");
    kl_sb_printf(L, "        const int64_t ko = w / G, g = w %% G;\n        int64_t rest_k = ko; (void)rest_k;\n");
    split_index(r, L, p->kept, p->nk, "rest_k");
    fold_range(r, L, p, "g * KL_BLOCK + threadIdx.x", "G * KL_BLOCK", bd);
    warp_combine(L, p);
    kl_sb_printf(L, "        if ((threadIdx.x & 31) == 0) { kl_sn[threadIdx.x >> 5] = n;");
    for (int j = 0; j < p->n_out; j++) kl_sb_printf(L, " kl_sa%s[threadIdx.x >> 5] = a%s;", kl_stmt_out_suffix(j), kl_stmt_out_suffix(j));
    kl_sb_printf(L, " }\n        __syncthreads();\n        if (threadIdx.x < 32) {\n"
                    "        n = threadIdx.x < KL_BLOCK / 32 ? kl_sn[threadIdx.x] : 0;\n");
    for (int j = 0; j < p->n_out; j++)
        kl_sb_printf(L, "        a%s = threadIdx.x < KL_BLOCK / 32 ? kl_sa%s[threadIdx.x] : (%s)(%s);\n", kl_stmt_out_suffix(j),
                     kl_stmt_out_suffix(j), T, p->acc.identity);
    warp_combine(L, p);
    kl_sb_printf(L, "        }\n        if (G == 1) {\n");
    store_outputs(L, p, "            ", "threadIdx.x == 0");
    /* partial results: the value's at the workspace's start, the siblings'
     * after the counters (KL_CUDA_WS_BYTES has room for them) */
    kl_sb_printf(L, "        } else {\n"
                    "            %s *part = (%s *)kl_ws; int *part_n = (int *)(kl_ws + 8 * KL_MAX_GRID);\n"
                    "            unsigned *count = (unsigned *)(kl_ws + 12 * KL_MAX_GRID) + ko;\n", T, T);
    for (int j = 1; j < p->n_out; j++)
        kl_sb_printf(L, "            %s *part%d = (%s *)(kl_ws + %d * KL_MAX_GRID);\n", T, j, T, 16 + 8 * (j - 1));
    kl_sb_printf(L, "            if (threadIdx.x == 0) {\n                part_n[w] = n;");
    for (int j = 0; j < p->n_out; j++) kl_sb_printf(L, " part%s[w] = a%s;", kl_stmt_out_suffix(j), kl_stmt_out_suffix(j));
    kl_sb_printf(L, "\n                __threadfence();\n"
                    "                kl_last = atomicAdd(count, 1u) == (unsigned)(G - 1);\n            }\n"
                    "            __syncthreads();\n"
                    "            if (kl_last && threadIdx.x == 0) {\n                __threadfence();\n"
                    "                n = 0;");
    for (int j = 0; j < p->n_out; j++) kl_sb_printf(L, " a%s = %s;", kl_stmt_out_suffix(j), p->acc.identity);
    kl_sb_printf(L, "\n                for (int64_t j = 0; j < G; j++) {\n"
                    "                    n |= ((volatile int *)part_n)[ko * G + j];\n");
    for (int j = 0; j < p->n_out; j++)
        kl_sb_printf(L, "                    const %s o%s = ((volatile %s *)part%s)[ko * G + j]; %s\n", T, kl_stmt_out_suffix(j),
                     T, kl_stmt_out_suffix(j), p->merge[j]);
    kl_sb_printf(L, "                }\n");
    store_outputs(L, p, "                ", "1");
    kl_sb_printf(L, "                *count = 0;\n            }\n        }\n        __syncthreads();\n    }\n");
    free(p);
}

/* ---- softmax ---- */

/* A softmax (log-softmax) along one dim: a block per row (a row of `axis`
 * elements `inner` apart), its threads striding over the row; the max and
 * the sum combine in shared memory in a fixed order (deterministic). */
static void softmax_kernel(const renderer *r, kl_strbuf *L)
{
    const kl_kd_head *h = &r->k->h;
    kl_stmt_row_extents(r, L);
    kl_sb_printf(L, "    __shared__ float kl_red[KL_BLOCK];\n");
    kl_sb_printf(L, "    for (int64_t row = blockIdx.x; row < outer * inner; row += gridDim.x) {\n"
                    "        const int64_t o = row / inner, c = row %% inner;\n"
                    "        const float *x = b1 + o * axis * inner + c;\n        float *y = out + o * axis * inner + c;\n"
                    "        float m = -INFINITY; int n = 0;\n"
                    "        for (int64_t j = threadIdx.x; j < axis; j += KL_BLOCK) { const float v = x[j * inner]; m = v > m ? v : m; n |= v != v; }\n"
                    "        kl_red[threadIdx.x] = n ? NAN : m;\n        __syncthreads();\n"
                    "        for (int w = KL_BLOCK / 2; w > 0; w >>= 1) {\n"
                    "            if (threadIdx.x < w) { const float a = kl_red[threadIdx.x], b = kl_red[threadIdx.x + w];\n"
                    "                kl_red[threadIdx.x] = (a != a || b != b) ? NAN : a > b ? a : b; }\n"
                    "            __syncthreads();\n        }\n"
                    "        m = kl_red[0];\n        __syncthreads();\n        float s = 0;\n"
                    "        for (int64_t j = threadIdx.x; j < axis; j += KL_BLOCK) { const float e = expf(x[j * inner] - m); %s s += e; }\n"
                    "        kl_red[threadIdx.x] = s;\n        __syncthreads();\n"
                    "        for (int w = KL_BLOCK / 2; w > 0; w >>= 1) {\n"
                    "            if (threadIdx.x < w) kl_red[threadIdx.x] += kl_red[threadIdx.x + w];\n"
                    "            __syncthreads();\n        }\n"
                    "        const float f = %s(kl_red[0]);\n        __syncthreads();\n"
                    "        for (int64_t j = threadIdx.x; j < axis; j += KL_BLOCK) %s\n    }\n",
                 h->op ? "" : "y[j * inner] = e;", h->op ? "logf" : "1.0f /",
                 h->op ? "y[j * inner] = x[j * inner] - m - f;" : "y[j * inner] *= f;");
}

/* ---- layer norm ---- */

/* Layer norm over the last dim: a block per row, its threads striding over
 * the row; the sum and the sum of squares of the centred values (doubles,
 * as the meta-op form's reductions) combine in shared memory in a fixed
 * order (deterministic); the output in float in the meta-op form's order. */
static void layernorm_kernel(const renderer *r, kl_strbuf *L)
{
    kl_stmt_row_extents(r, L);
    char value[96];
    kl_stmt_layernorm_value(&r->k->h, value, sizeof value);
    static const char *const tree = "        for (int w = KL_BLOCK / 2; w > 0; w >>= 1) {\n"
                                    "            if (threadIdx.x < w) kl_red[threadIdx.x] += kl_red[threadIdx.x + w];\n"
                                    "            __syncthreads();\n        }\n";
    kl_sb_printf(L, "    (void)inner;\n    __shared__ double kl_red[KL_BLOCK];\n"
                    "    for (int64_t row = blockIdx.x; row < outer; row += gridDim.x) {\n"
                    "        const float *x = b1 + row * axis;\n        float *y = out + row * axis;\n"
                    "        double s = 0, q = 0;\n"
                    "        for (int64_t j = threadIdx.x; j < axis; j += KL_BLOCK) s += (double)x[j];\n"
                    "        kl_red[threadIdx.x] = s;\n        __syncthreads();\n%s"
                    "        const float m = (float)(kl_red[0] / (double)axis);\n        __syncthreads();\n"
                    "        for (int64_t j = threadIdx.x; j < axis; j += KL_BLOCK) {\n"
                    "            const float c = x[j] - m;\n            q += (double)(c * c);\n        }\n"
                    "        kl_red[threadIdx.x] = q;\n        __syncthreads();\n%s"
                    "        const float rs = 1.0f / sqrtf((float)(kl_red[0] / (double)axis) + (float)f0);\n"
                    "        __syncthreads();\n"
                    "        for (int64_t j = threadIdx.x; j < axis; j += KL_BLOCK) y[j] = %s;\n    }\n",
                 tree, tree, value);
}

/* ---- scatter ---- */

/* The value the target takes when val folds into its current value now. */
static void folded(const renderer *r, char *buf, size_t size, kl_reduce_op op, kl_dtype t, const char *now,
                   const char *val)
{
    char e[400];
    const char *T = kl_stmt_buffer_type(r, t);
    switch (op) {
    case KL_REDUCE_SUM: case KL_REDUCE_PROD:
        if (t == KL_BOOL) { snprintf(buf, size, "(uint8_t)(%s %s %s)", now, op == KL_REDUCE_SUM ? "|" : "&", val); return; }
        snprintf(e, sizeof e, "%s %s %s", now, op == KL_REDUCE_SUM ? "+" : "*", val);
        break;
    case KL_REDUCE_ANY: snprintf(buf, size, "(uint8_t)(%s | (uint8_t)(%s != 0))", now, val); return;
    case KL_REDUCE_ALL: snprintf(buf, size, "(uint8_t)(%s & (uint8_t)(%s != 0))", now, val); return;
    case KL_REDUCE_XOR: snprintf(buf, size, "(uint8_t)(%s ^ (uint8_t)(%s != 0))", now, val); return;
    case KL_REDUCE_BIT_AND: snprintf(buf, size, "(%s)(%s & %s)", T, now, val); return;
    case KL_REDUCE_BIT_OR: snprintf(buf, size, "(%s)(%s | %s)", T, now, val); return;
    case KL_REDUCE_BIT_XOR: snprintf(buf, size, "(%s)(%s ^ %s)", T, now, val); return;
    default: /* max, min: NaN wins */
        snprintf(e, sizeof e, "(%s %s %s || %s != %s) ? %s : %s", val, op == KL_REDUCE_MAX ? ">" : "<", now, val, val,
                 val, now);
    }
    kl_stmt_stored(r, buf, size, t, e);
}

static const char *loaded(kl_dtype t) { return t == KL_FLOAT16 ? "kl_f16_load" : t == KL_BFLOAT16 ? "kl_bf16_load" : ""; }

static void scatter_update(const renderer *r, kl_strbuf *L, int atomic)
{
    const kl_kd_head *h = &r->k->h;
    kl_reduce_op op = (kl_reduce_op)h->op;
    kl_dtype t = (kl_dtype)h->out_dtype;
    const char *val = name(r, h->value), *off = name(r, h->target);
    char now[96], upd[640];
    kl_sb_printf(L, "        if (!(%s)) {\n", name(r, h->skip));
    if (!atomic) {
        snprintf(now, sizeof now, "%s(out[%s])", loaded(t), off);
        folded(r, upd, sizeof upd, op, t, now, val);
        kl_sb_printf(L, "            out[%s] = %s;\n        }\n", off, upd);
        return;
    }
    if (op == KL_REDUCE_SUM && (t == KL_FLOAT32 || t == KL_FLOAT64)) {
        kl_sb_printf(L, "            atomicAdd(&out[%s], %s);\n        }\n", off, val);
        return;
    }
    if (op == KL_REDUCE_SUM && (t == KL_INT32 || t == KL_INT64)) {
        const char *U = t == KL_INT32 ? "unsigned" : "unsigned long long";
        kl_sb_printf(L, "            atomicAdd((%s *)&out[%s], (%s)%s);\n        }\n", U, off, U, val);
        return;
    }
    snprintf(now, sizeof now, "%s(cur)", loaded(t));
    folded(r, upd, sizeof upd, op, t, now, val);
    const char *S = kl_stmt_buffer_type(r, t);
    kl_sb_printf(L, "            kl_atomic(&out[%s], [&](%s cur) { return (%s)(%s); });\n        }\n", off, S, S, upd);
}

static void scatter_kernel(const renderer *r, kl_strbuf *L, const char *bd)
{
    const kl_kd_head *h = &r->k->h;
    int dis[KL_MAX_DIMS] = {0}, rest[KL_MAX_DIMS] = {0}, nd = 0, nrest = 0;
    for (int d = 0; d < h->rank; d++) {
        if (h->disjoint >> d & 1) dis[nd++] = d;
        else rest[nrest++] = d;
    }
    int32_t dd[KL_MAX_DIMS] = {0};
    for (int i = 0; i < nd; i++) dd[i] = h->dims[dis[i]];
    int atomic = nd == 0;
    if (atomic) { /* every element in parallel */
        nd = h->rank;
        nrest = 0;
        for (int d = 0; d < h->rank; d++) { dis[d] = d; dd[d] = h->dims[d]; }
    }
    kl_stmt_product(r, L, "pn", dd, nd);
    kl_sb_printf(L, "    " GRID_LOOP("q", "pn") " {\n        int64_t rest = q; (void)rest;\n");
    split_index(r, L, dis, nd, "rest");
    for (int j = 0; j < nrest; j++) {
        kl_sb_indent(L, 8 + 4 * j);
        kl_sb_printf(L, "for (int64_t i%d = 0; i%d < %s; i%d++)\n", rest[j], rest[j], name(r, h->dims[rest[j]]), rest[j]);
    }
    kl_sb_printf(L, "        {\n%s", bd);
    scatter_update(r, L, atomic);
    kl_sb_printf(L, "        }\n    }\n");
}

static void scatter_init(const renderer *r, kl_strbuf *L)
{
    const kl_kd_head *h = &r->k->h;
    char start[96];
    kl_stmt_stored(r, start, sizeof start, (kl_dtype)h->out_dtype, kl_stmt_identity((kl_reduce_op)h->op, (kl_dtype)h->out_dtype));
    kl_stmt_product(r, L, "on", h->out_dims, h->out_rank);
    kl_sb_printf(L, "    " GRID_LOOP("li", "on") " out[li] = %s;\n", start);
}

/* ---- the kernel ---- */

static void signature(const renderer *r, kl_strbuf *s, const char *fn)
{
    const kl_kdesc *k = r->k;
    const kl_kd_head *h = &k->h;
    const char *T = kl_stmt_buffer_type(r, (kl_dtype)h->out_dtype);
    kl_sb_printf(s, "extern \"C\" __global__ void __launch_bounds__(KL_BLOCK) %s(\n    %s *__restrict__ out /* v0 */", fn, T);
    for (int i = 1; i < h->n_bufs; i++) {
        const char *bt = kl_stmt_buffer_type(r, (kl_dtype)k->buf_dtype[i]);
        if (i <= h->n_extra) /* a sibling's output */
            kl_sb_printf(s, ",\n    %s *__restrict__ out%d /* v%d */", bt, i, k->buf_local[i]);
        else
            kl_sb_printf(s, ",\n    const %s *__restrict__ b%d /* v%d */", bt, i, k->buf_local[i]);
    }
    for (int i = 0; i < h->n_iargs; i++) kl_sb_printf(s, ", const int64_t k%d", i);
    for (int i = 0; i < h->n_fargs; i++) kl_sb_printf(s, ", const double f%d", i);
    kl_sb_printf(s, ",\n    unsigned char *__restrict__ kl_ws)\n{\n    (void)kl_ws;\n");
}

/* For the emulator (emulate.c), which compiles the same text as C++ for the
 * host: an entry point taking the launch's arrays, which runs the kernels
 * block after block (NVRTC never sees it). */
static void emulation_entry(const renderer *r, kl_strbuf *s)
{
    const kl_kdesc *k = r->k;
    const kl_kd_head *h = &k->h;
    kl_strbuf args = {0};
    kl_sb_printf(&args, "(%s *)buf[0]", kl_stmt_buffer_type(r, (kl_dtype)h->out_dtype));
    for (int i = 1; i < h->n_bufs; i++)
        kl_sb_printf(&args, ", (%s%s *)buf[%d]", i <= h->n_extra ? "" : "const ",
                     kl_stmt_buffer_type(r, (kl_dtype)k->buf_dtype[i]), i);
    for (int i = 0; i < h->n_iargs; i++) kl_sb_printf(&args, ", iarg[%d]", i);
    for (int i = 0; i < h->n_fargs; i++) kl_sb_printf(&args, ", farg[%d]", i);
    kl_sb_printf(&args, ", ws");
    const char *a = args.data ? args.data : "";
    kl_sb_printf(s, "#ifdef KL_EMULATE\nextern \"C\" int kl_emulate(void *const *buf, const int64_t *iarg, "
                    "const double *farg, unsigned char *ws, int grid)\n{\n    (void)iarg; (void)farg;\n");
    if (h->kind == KL_KD_SCATTER) kl_sb_printf(s, "    KL_EMULATE_LAUNCH(grid, kl_kernel_init, (%s));\n", a);
    kl_sb_printf(s, "    KL_EMULATE_LAUNCH(grid, kl_kernel, (%s));\n    return 0;\n}\n#endif\n", a);
    if (args.failed) s->failed = 1;
    kl_sb_free(&args);
}

/* The group form (src/runtime/group.c has its arguments): the members'
 * elements end to end as one grid-stride loop, each element's member found
 * by a binary search over where they end. The arrays are in device memory
 * (the launch copies them there: kl_launch_args.arrays). */
static void group_kernel(const renderer *r, kl_strbuf *s, const char *bd, const char *store)
{
    const kl_kdesc *k = r->k;
    const kl_kd_head *h = &k->h;
    kl_sb_printf(s,
                 "extern \"C\" __global__ void __launch_bounds__(KL_BLOCK) kl_kernel(\n"
                 "    void *const *__restrict__ buf, const int64_t *__restrict__ iarg, const double *__restrict__ farg,\n"
                 "    unsigned char *__restrict__ kl_ws)\n{\n"
                 "    (void)kl_ws;\n"
                 "    const int64_t members = iarg[0], total = iarg[members];\n"
                 "    const int64_t *const ends = iarg + 1;\n"
                 "    for (int64_t base = (int64_t)blockIdx.x * (KL_BLOCK * KL_UNROLL) + threadIdx.x; base < total;\n"
                 "         base += (int64_t)gridDim.x * (KL_BLOCK * KL_UNROLL)) {\n"
                 "    #pragma unroll\n    for (int u = 0; u < KL_UNROLL; u++) {\n"
                 "        const int64_t g = base + u * KL_BLOCK;\n        if (g >= total) break;\n"
                 "        int64_t m = 0, top = members - 1; /* the member whose elements hold g */\n"
                 "        while (m < top) {\n"
                 "            const int64_t mid = (m + top) / 2;\n"
                 "            if (ends[mid] <= g) m = mid + 1; else top = mid;\n"
                 "        }\n"
                 "        const int64_t li = g - (m ? ends[m - 1] : 0);\n"
                 "        void *const *mbuf = buf + m * %d;\n"
                 "        const int64_t *miarg = iarg + 1 + members + m * %d;\n"
                 "        const double *mfarg = farg + m * %d;\n"
                 "        (void)miarg; (void)mfarg;\n",
                 h->n_bufs, h->n_iargs, h->n_fargs);
    kl_stmt_declare_args(r, s, "        ", "mbuf", "miarg", "mfarg");
    kl_sb_printf(s, "%s%s    }\n    }\n}\n", bd, store);
    kl_sb_append(s, "#ifdef KL_EMULATE\nextern \"C\" int kl_emulate(void *const *buf, const int64_t *iarg, "
                    "const double *farg, unsigned char *ws, int grid)\n{\n"
                    "    KL_EMULATE_LAUNCH(grid, kl_kernel, (buf, iarg, farg, ws));\n    return 0;\n}\n#endif\n");
}

kl_status kl_cuda_render_group(kl_backend *b, const kl_kdesc *k, char **out)
{
    (void)b;
    return kl_stmt_group_form(k, KL_DIALECT_CUDA, group_kernel, out);
}

kl_status kl_cuda_render(kl_backend *b, const kl_kdesc *k, char **out)
{
    (void)b;
    *out = NULL;
    const kl_kd_head *h = &k->h;
    renderer r;
    KL_TRY(kl_stmt_init(&r, k, KL_DIALECT_CUDA));
    kl_strbuf bd = {0}, src = {0};
    kl_status s = kl_stmt_body(&r, &bd);
    const char *bdt = bd.data ? bd.data : "";
    if (s == KL_OK) {
        kl_stmt_header_comment(k, &src);
        if (h->kind == KL_KD_SCATTER) {
            signature(&r, &src, "kl_kernel_init");
            scatter_init(&r, &src);
            kl_sb_append(&src, "}\n");
        }
        signature(&r, &src, "kl_kernel");
        if (h->kind == KL_KD_MAP) map_kernel(&r, &src, bdt);
        else if (h->kind == KL_KD_REDUCE) reduce_kernel(&r, &src, bdt);
        else if (h->kind == KL_KD_SOFTMAX) softmax_kernel(&r, &src);
        else if (h->kind == KL_KD_LAYERNORM) layernorm_kernel(&r, &src);
        else scatter_kernel(&r, &src, bdt);
        kl_sb_append(&src, "}\n");
        emulation_entry(&r, &src);
        if (src.failed || bd.failed) s = kl_error(KL_ERR_MEMORY, "out of memory rendering a kernel");
        else *out = kl_sb_take(&src);
    }
    kl_sb_free(&src);
    kl_sb_free(&bd);
    kl_stmt_free(&r);
    return s;
}
