/* lower.c: the walk that turns a fused kernel's vars into its description:
 * dispatch to each family's *_lower (ops.def), the (var, coordinates) memo,
 * loads of stored vars, and the index arithmetic the families share. The
 * map kernel is described here; reduce and scatter kernels by their
 * families (reduce.c, reindex_reduce.c). */
#include "ops/lower.h"
#include "core/dtype.h"
#include "ops/ops.h"
#include <stdlib.h>
#include <string.h>

struct kl_kd_memo { kl_var *v; uint32_t gen; int32_t n, identity; int32_t c[KL_MAX_DIMS]; int32_t value; };

typedef int32_t (*lower_fn)(kl_kdesc *k, kl_var *v, const kl_coords *c);

static const lower_fn lower_of[KL_OP_KIND_COUNT] = {
#define KL_OP(ID, name, lower, backward, traits) [KL_OP_##ID] = lower,
#include "ops/ops.def"
#undef KL_OP
};

static uint64_t memo_hash(const kl_var *v, const kl_coords *c)
{
    uint64_t h = (uint64_t)(uintptr_t)v * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(c->n * 2 + c->identity);
    for (int i = 0; i < c->n; i++) h = (h ^ (uint32_t)c->c[i]) * 0xff51afd7ed558ccdULL;
    return h ^ (h >> 29);
}

static int memo_match(const struct kl_kd_memo *m, const kl_var *v, const kl_coords *c)
{
    return m->v == v && m->n == c->n && m->identity == c->identity &&
           memcmp(m->c, c->c, (size_t)c->n * sizeof *c->c) == 0;
}

/* The memo's slot for (v, c): its entry (of this kernel's generation), or
 * the free slot to fill. */
static struct kl_kd_memo *memo_slot(kl_kdesc *k, const kl_var *v, const kl_coords *c)
{
    if ((k->n_memo + 1) * 2 > k->cap_memo) {
        int cap = k->cap_memo ? 2 * k->cap_memo : 256;
        struct kl_kd_memo *m = calloc((size_t)cap, sizeof *m);
        if (!m) return NULL;
        for (int i = 0; i < k->cap_memo; i++) {
            if (k->memo[i].gen != k->gen) continue;
            kl_coords cc = {.n = k->memo[i].n, .identity = k->memo[i].identity};
            memcpy(cc.c, k->memo[i].c, sizeof cc.c);
            size_t j = memo_hash(k->memo[i].v, &cc) & (size_t)(cap - 1);
            while (m[j].gen == k->gen) j = (j + 1) & (size_t)(cap - 1);
            m[j] = k->memo[i];
        }
        free(k->memo);
        k->memo = m;
        k->cap_memo = cap;
    }
    size_t mask = (size_t)(k->cap_memo - 1), j = memo_hash(v, c) & mask;
    while (k->memo[j].gen == k->gen && !memo_match(&k->memo[j], v, c)) j = (j + 1) & mask;
    return &k->memo[j];
}

kl_coords kl_lower_loop_coords(kl_kdesc *k, int n, int for_map)
{
    kl_coords c = {.n = n, .identity = for_map};
    for (int i = 0; i < n; i++) c.c[i] = kl_kd_op(k, KL_I_LOOP, KL_INT64, 0, i, -1, -1);
    return c;
}

int32_t kl_lower_offset(kl_kdesc *k, kl_var *v, const kl_coords *c)
{
    if (c->identity && v->ndim == c->n) return kl_kd_op(k, KL_I_LINEAR, KL_INT64, 0, -1, -1, -1);
    if (v->ndim == 0) return kl_kd_const(k, 0);
    int32_t off = c->c[0];
    for (int d = 1; d < v->ndim; d++) {
        int32_t scaled = kl_kd_op(k, KL_I_INDEX, KL_INT64, KL_EXB_MUL, off, kl_kd_shape(k, v, d), -1);
        off = kl_kd_op(k, KL_I_INDEX, KL_INT64, KL_EXB_ADD, scaled, c->c[d], -1);
    }
    return off;
}

kl_coords kl_lower_broadcast_coords(kl_kdesc *k, const kl_coords *c, kl_var *out, kl_var *in)
{
    int same = in->ndim == out->ndim;
    for (int d = 0; same && d < in->ndim; d++) same = in->shape[d] == out->shape[d];
    if (same) return *c;
    kl_coords r = {.n = in->ndim, .identity = 0};
    int lead = c->n - in->ndim;
    for (int d = 0; d < in->ndim; d++) r.c[d] = in->shape[d] == 1 ? kl_kd_const(k, 0) : c->c[lead + d];
    return r;
}

int32_t kl_lower_convert(kl_kdesc *k, int32_t t, kl_dtype from, kl_dtype to)
{
    if (to != KL_BOOL && (from == to || strcmp(kl_dtype_compute_ctype(from), kl_dtype_compute_ctype(to)) == 0))
        return t;
    if (t < 0) return -1;
    kl_instr in = {KL_I_CONVERT, (uint8_t)to, (uint8_t)from, 0, 0, t, -1, -1, -1, -1, 0};
    return kl_kd_add(k, &in);
}

int32_t kl_load_lower(kl_kdesc *k, kl_var *v, const kl_coords *c)
{
    int b = kl_kd_buffer(k, v);
    int32_t off = kl_lower_offset(k, v, c);
    if (b < 0 || off < 0) return -1;
    return kl_kd_op(k, KL_I_LOAD, v->dtype, 0, b, off, -1);
}

int32_t kl_pass_lower(kl_kdesc *k, kl_var *v, const kl_coords *c) { return kl_lower(k, v->op.inputs[0], c); }

int32_t kl_lower(kl_kdesc *k, kl_var *v, const kl_coords *c)
{
    if (k->status != KL_OK) return -1;
    struct kl_kd_memo *m = memo_slot(k, v, c);
    if (!m) return kl_kd_fail(k, kl_error(KL_ERR_MEMORY, "out of memory describing a kernel"));
    if (m->gen == k->gen) return m->value;
    int cap = k->cap_memo;
    int32_t r;
    /* the root, and a map sibling a later output reads (src/opt/siblings.c),
     * are computed here, never loaded */
    int root = v == k->local_vars[0] || (!v->buf && v->sibling_of == k->local_vars[0]);
    if (!root && (v->buf || v->materialize)) {
        kl_kd_local(k, v);
        r = kl_load_lower(k, v, c);
    } else {
        kl_kd_local(k, v);
        if (!lower_of[v->op.kind])
            return kl_kd_fail(k, kl_error(KL_ERR_RUNTIME, "internal: %s cannot be inlined", kl_op_kind_name(v->op.kind)));
        r = lower_of[v->op.kind](k, v, c);
    }
    if (r < 0) return -1;
    /* the walk below may have grown the table or taken the free slot */
    if (k->cap_memo != cap || m->gen == k->gen) m = memo_slot(k, v, c);
    if (!m) return kl_kd_fail(k, kl_error(KL_ERR_MEMORY, "out of memory describing a kernel"));
    if (m->gen != k->gen) {
        m->gen = k->gen;
        m->v = v;
        m->n = c->n;
        m->identity = c->identity;
        memcpy(m->c, c->c, (size_t)c->n * sizeof *c->c);
        m->value = r;
        k->n_memo++;
    }
    return r;
}

/* Operands of + - and comparisons are offsets and bounds: passed as
 * arguments when literal (slices at new offsets reuse the kernel); factors,
 * divisors and moduli stay literals the compiler strength-reduces. */
static int offset_operand(const kl_expr *parent)
{
    return parent->kind == KL_EX_BINARY && parent->op != KL_EXB_MUL && parent->op != KL_EXB_DIV &&
           parent->op != KL_EXB_MOD;
}

static int32_t lower_operand(kl_kdesc *k, const kl_expr *parent, const kl_expr *e, const kl_coords *idx,
                             kl_var *x, kl_var *y, kl_var *const *extras)
{
    if (e->kind == KL_EX_INT && offset_operand(parent)) return kl_kd_iarg_const(k, e->value);
    return kl_lower_index_expr(k, e, idx, x, y, extras);
}

int32_t kl_lower_index_expr(kl_kdesc *k, const kl_expr *e, const kl_coords *idx, kl_var *x, kl_var *y,
                            kl_var *const *extras)
{
    int32_t a = -1, b = -1;
    if (e->n_args >= 1 && e->kind != KL_EX_EXTRA) a = lower_operand(k, e, e->args[0], idx, x, y, extras);
    if (e->n_args >= 2 && e->kind != KL_EX_EXTRA) b = lower_operand(k, e, e->args[1], idx, x, y, extras);
    if (k->status != KL_OK) return -1;
    switch (e->kind) {
    case KL_EX_INT: return kl_kd_const(k, e->value);
    case KL_EX_INDEX: return idx->c[e->value];
    case KL_EX_XSHAPE: return kl_kd_shape(k, x, (int)e->value);
    case KL_EX_YSHAPE: return kl_kd_shape(k, y, (int)e->value);
    case KL_EX_XDIM: return kl_kd_const(k, x->ndim);
    case KL_EX_YDIM: return kl_kd_const(k, y->ndim);
    case KL_EX_NEG: return kl_kd_op(k, KL_I_NEG, KL_INT64, 0, a, -1, -1);
    case KL_EX_NOT: return kl_kd_op(k, KL_I_NOT, KL_INT64, 0, a, -1, -1);
    case KL_EX_MIN: return kl_kd_op(k, KL_I_MIN, KL_INT64, 0, a, b, -1);
    case KL_EX_MAX: return kl_kd_op(k, KL_I_MAX, KL_INT64, 0, a, b, -1);
    case KL_EX_SELECT: {
        int32_t c2 = kl_lower_index_expr(k, e->args[2], idx, x, y, extras);
        return kl_kd_op(k, KL_I_SELECT, KL_INT64, 0, a, b, c2);
    }
    case KL_EX_BINARY: return kl_kd_op(k, KL_I_INDEX, KL_INT64, e->op, a, b, -1);
    case KL_EX_EXTRA: {
        kl_var *ex = extras[e->value];
        kl_coords ec = {.n = ex->ndim, .identity = 0};
        for (int d = 0; d < ex->ndim; d++) {
            int32_t arg = kl_lower_index_expr(k, e->args[d], idx, x, y, extras);
            /* clamped: a bad index in user data must not read outside the buffer */
            ec.c[d] = kl_kd_op(k, KL_I_CLAMP, KL_INT64, 0, arg, kl_kd_shape(k, ex, d), -1);
        }
        kl_kd_local(k, ex);
        int32_t val = kl_load_lower(k, ex, &ec);
        return kl_lower_convert(k, val, ex->dtype, KL_INT64);
    }
    }
    return kl_kd_fail(k, kl_error(KL_ERR_RUNTIME, "internal: unknown index expression node"));
}

int32_t kl_lower_outside(kl_kdesc *k, int32_t t, kl_var *x, int d)
{
    int32_t below = kl_kd_op(k, KL_I_INDEX, KL_INT64, KL_EXB_LT, t, kl_kd_const(k, 0), -1);
    int32_t above = kl_kd_op(k, KL_I_INDEX, KL_INT64, KL_EXB_GE, t, kl_kd_shape(k, x, d), -1);
    return kl_kd_op(k, KL_I_INDEX, KL_INT64, KL_EXB_OR, below, above, -1);
}

int32_t kl_lower_targets(kl_kdesc *k, kl_var *v, const kl_coords *c, kl_var *x, kl_var *y, kl_coords *targets)
{
    kl_var *const *extras = v->op.inputs + 1;
    int32_t outside = kl_kd_const(k, 0);
    *targets = (kl_coords){.n = x->ndim, .identity = 0};
    for (int d = 0; d < x->ndim; d++) {
        int32_t t = kl_lower_index_expr(k, v->op.p.reindex.indexes[d], c, x, y, extras);
        targets->c[d] = t;
        outside = kl_kd_op(k, KL_I_INDEX, KL_INT64, KL_EXB_OR, outside, kl_lower_outside(k, t, x, d), -1);
    }
    for (int i = 0; i < v->op.p.reindex.n_conditions; i++) {
        int32_t t = kl_lower_index_expr(k, v->op.p.reindex.conditions[i], c, x, y, extras);
        outside = kl_kd_op(k, KL_I_INDEX, KL_INT64, KL_EXB_OR, outside, t, -1);
    }
    return outside;
}

/* The value at every element of the root's shape, stored at its linear
 * index; its siblings' (outputs of the same shape) beside it. */
static kl_status map_kernel(kl_kdesc *k, kl_var *root)
{
    kl_coords c = kl_lower_loop_coords(k, root->ndim, 1);
    int32_t v = kl_lower(k, root, &c);
    k->h.value = kl_lower_convert(k, v, root->dtype, root->dtype);
    for (int j = 0; j < root->n_siblings; j++) {
        kl_var *s = root->siblings[j];
        k->h.extra_value[j] = kl_lower_convert(k, kl_lower(k, s, &c), s->dtype, s->dtype);
    }
    return k->status;
}

kl_status kl_lower_kernel(kl_var *root, kl_kdesc *k)
{
    k->local_vars[0] = root; /* the root is computed, never loaded */
    kl_kd_local(k, root);
    k->h.out_dtype = (uint8_t)root->dtype;
    if (kl_kd_buffer(k, root) != 0) return k->status;
    /* siblings' outputs follow the root's (buffers 1..n_extra) */
    for (int j = 0; j < root->n_siblings; j++) {
        kl_kd_local(k, root->siblings[j]);
        if (kl_kd_buffer(k, root->siblings[j]) != 1 + j) return k->status;
    }
    k->h.n_extra = root->n_siblings;
    /* the loops run over the output (map), the reduced input (reduce) or
     * the scattered values (scatter) */
    int folds = root->op.kind == KL_OP_REDUCE || root->op.kind == KL_OP_REINDEX_REDUCE;
    const kl_var *space = folds ? root->op.inputs[0] : root;
    kl_kd_set_space(k, space->ndim, space->shape);
    kl_status s;
    if (root->op.kind == KL_OP_REDUCE) s = kl_reduce_lower_kernel(k, root);
    else if (root->op.kind == KL_OP_REINDEX_REDUCE) s = kl_reindex_reduce_lower_kernel(k, root);
    else s = map_kernel(k, root);
    if (s != KL_OK) return s;
    if (k->status != KL_OK) return k->status;
    if (root->op.kind != KL_OP_REDUCE && root->op.kind != KL_OP_REINDEX_REDUCE) {
        k->h.kind = KL_KD_MAP;
        k->h.rank = (uint8_t)root->ndim;
        for (int d = 0; d < root->ndim; d++) k->h.dims[d] = kl_kd_shape(k, root, d);
    }
    if (root->op.kind != KL_OP_REINDEX_REDUCE) kl_kd_merge_dims(k, (kl_var *)space);
    int loops = k->instrs[k->h.value].loops;
    for (int j = 0; j < k->h.n_extra; j++) loops |= k->instrs[k->h.extra_value[j]].loops;
    for (int i = 0; i < k->h.n_checks; i++) loops |= k->instrs[k->checks[i]].loops;
    k->h.uses_loops = (uint8_t)loops;
    kl_kd_hash(k);
    return k->status;
}
