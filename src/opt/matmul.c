/* matmul.c: recognising matrix products. The fused loop kernel computes
 * the same thing; a backend that runs gemm takes it over when the pattern
 * matches exactly (one reduced dim, one row dim, one column dim, any batch
 * dims, float32/float64, operands laid out so gemm can read them). */
#include "opt/matmul.h"
#include "opt/operand.h"
#include <string.h>

static int fits(int64_t v) { return v > 0 && v < (INT64_C(1) << 31); }

int kl_matmul_match(kl_var *v, int assume_roots, kl_pattern *pat)
{
    kl_gemm_shape *p = &pat->gemm;
    if (v->op.kind != KL_OP_REDUCE || v->op.p.reduce.op != KL_REDUCE_SUM) return 0;
    if (v->dtype != KL_FLOAT32 && v->dtype != KL_FLOAT64) return 0;
    kl_var *prod = kl_operand_through(v->op.inputs[0]);
    if (prod->buf || prod->materialize || prod->op.kind != KL_OP_BINARY || prod->op.p.binary != KL_MUL) return 0;
    kl_var *x = prod->op.inputs[0], *y = prod->op.inputs[1];
    if (x->dtype != v->dtype || y->dtype != v->dtype) return 0;
    int R = prod->ndim;
    const int64_t *shape = prod->shape;
    int64_t sx[KL_MAX_DIMS], sy[KL_MAX_DIMS];
    kl_var *a, *b;
    if (!kl_operand_view(x, R, shape, assume_roots, &a, sx) || !kl_operand_view(y, R, shape, assume_roots, &b, sy)) return 0;
    if (a->dtype != v->dtype || b->dtype != v->dtype) return 0;
    uint8_t mask = v->op.p.reduce.mask;
    int kd = -1, md = -1, nd = -1;
    memset(pat, 0, sizeof *pat); /* no layouts or epilogue operands left from another use of it */
    int64_t out_stride[KL_MAX_DIMS], s = 1;
    for (int d = R - 1; d >= 0; d--) { out_stride[d] = (mask >> d & 1) ? 0 : s; if (!(mask >> d & 1)) s *= shape[d]; }
    for (int d = 0; d < R; d++) {
        if (mask >> d & 1) {
            if (kd >= 0) return 0;
            kd = d;
        } else if (shape[d] == 1) {
            continue;
        } else if (sx[d] && sy[d]) {
            p->batch_size[p->n_batch] = shape[d];
            p->batch_a[p->n_batch] = sx[d];
            p->batch_b[p->n_batch] = sy[d];
            p->batch_c[p->n_batch++] = out_stride[d];
        } else if (sx[d] && md < 0) {
            md = d;
        } else if (sy[d] && nd < 0) {
            nd = d;
        } else {
            return 0;
        }
    }
    if (kd < 0 || (md < 0 && nd < 0) || !sx[kd] || !sy[kd]) return 0;
    int64_t k = shape[kd], ak = sx[kd], bk = sy[kd];
    /* A[i,k] at i*am + k*ak, B[k,j] at k*bk + j*bn, C[i,j] at i*cm + j*cn.
     * A matrix-vector product (a batch-1 linear layer) is gemm with m or n 1;
     * the missing dim gets strides gemm accepts. */
    int64_t m = 1, n = 1, am, bn, cm, cn;
    if (nd >= 0) { n = shape[nd]; bn = sy[nd]; cn = out_stride[nd]; }
    else { bn = 1; cn = 1; }
    if (md >= 0) { m = shape[md]; am = sx[md]; cm = out_stride[md]; }
    else { am = ak == 1 ? k : 1; cm = cn == 1 ? n : 1; }
    if (cn != 1) { /* C is column-major: compute C^T = B^T A^T */
        if (cm != 1) return 0;
        kl_var *t = a; a = b; b = t;
        int64_t t1 = m; m = n; n = t1;
        int64_t nam = bn, nak = bk, nbk = ak, nbn = am;
        am = nam; ak = nak; bk = nbk; bn = nbn;
        cm = cn;
        for (int i = 0; i < p->n_batch; i++) { int64_t t2 = p->batch_a[i]; p->batch_a[i] = p->batch_b[i]; p->batch_b[i] = t2; }
    }
    int64_t lda, ldb;
    if (ak == 1 && am >= k) { p->trans_a = 0; lda = am; }
    else if (am == 1 && ak >= m) { p->trans_a = 1; lda = ak; }
    else return 0;
    if (bn == 1 && bk >= n) { p->trans_b = 0; ldb = bk; }
    else if (bk == 1 && bn >= k) { p->trans_b = 1; ldb = bn; }
    else return 0;
    if (!fits(m) || !fits(n) || !fits(k) || !fits(lda) || !fits(ldb) || !fits(cm)) return 0;
    pat->kind = KL_PATTERN_GEMM;
    pat->dtype = v->dtype;
    pat->a = a; pat->b = b;
    p->m = (int)m; p->n = (int)n; p->k = (int)k;
    p->lda = (int)lda; p->ldb = (int)ldb; p->ldc = (int)cm;
    return 1;
}
