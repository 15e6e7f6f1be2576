/* kdesc.c: building kernel descriptions: hash-consed instructions, the
 * buffer and argument tables, and the structure's hash and equality (what
 * the plan cache compares). */
#include "codegen/kdesc.h"
#include "core/context.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Forgets every entry of the hash-consing table, the memo and the locals'
 * index (their stamps are the old generation's). */
static void next_generation(kl_kdesc *k)
{
    if (++k->gen == 0) { /* wrapped: clear the stamps once */
        if (k->table) memset(k->table, 0, (size_t)k->cap_table * sizeof *k->table);
        memset(k->local_index, 0, sizeof k->local_index);
        k->cap_memo = k->n_memo = 0;
        free(k->memo);
        k->memo = NULL;
        k->gen = 1;
    }
}

void kl_kd_init(kl_kdesc *k)
{
    memset(&k->h, 0, sizeof k->h);
    k->h.value = k->h.target = k->h.skip = -1;
    k->status = KL_OK;
    k->hash = k->instrs_hash = 0;
    k->n_memo = 0;
    k->space_rank = 0;
    k->n_ranged = 0;
    next_generation(k);
}

void kl_kd_clear(kl_kdesc *k)
{
    for (int i = 0; i < k->h.n_bufs; i++) kl_var_release(k->bufs[i]);
    k->h.n_bufs = 0;
}

void kl_kd_free(kl_kdesc *k)
{
    kl_kd_clear(k);
    free(k->instrs);
    free(k->ranges);
    free(k->table);
    free(k->memo);
    k->instrs = NULL;
    k->ranges = NULL;
    k->table = NULL;
    k->memo = NULL;
    k->cap_instrs = k->cap_table = k->cap_memo = 0;
}

int32_t kl_kd_fail(kl_kdesc *k, kl_status s)
{
    if (k->status == KL_OK) k->status = s;
    return -1;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h = (h ^ v) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 32);
}

/* Over the normalized instruction's words (padding zero), finished so that
 * the low bits, which pick the slot, depend on every field. */
_Static_assert(sizeof(kl_instr) % 8 == 0, "instr_hash reads whole words");

static uint64_t instr_hash(const kl_instr *in)
{
    uint64_t w[sizeof *in / 8], h = 0x243f6a8885a308d3ULL;
    memcpy(w, in, sizeof w);
    for (size_t i = 0; i < sizeof w / sizeof *w; i++) h = mix(h, w[i]);
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 32);
}

static int grow_table(kl_kdesc *k)
{
    int cap = k->cap_table ? 2 * k->cap_table : 256;
    struct kl_kd_slot *t = calloc((size_t)cap, sizeof *t);
    if (!t) return 0;
    for (int i = 0; i < k->h.n_instrs; i++) {
        size_t j = instr_hash(&k->instrs[i]) & (size_t)(cap - 1);
        while (t[j].gen == k->gen) j = (j + 1) & (size_t)(cap - 1);
        t[j].gen = k->gen;
        t[j].id = i;
    }
    free(k->table);
    k->table = t;
    k->cap_table = cap;
    return 1;
}

/* Where in's operand instructions are; how many. */
static int operand_slots(kl_instr *in, int32_t *slot[5])
{
    switch (in->kind) {
    case KL_I_LOOP: case KL_I_LINEAR: case KL_I_CONST: case KL_I_IARG: case KL_I_FARG: return 0;
    case KL_I_LOAD: slot[0] = &in->b; return 1;
    case KL_I_NEG: case KL_I_NOT: case KL_I_CONVERT: case KL_I_UNARY: case KL_I_SCALAR: slot[0] = &in->a; return 1;
    case KL_I_SELECT: slot[0] = &in->a; slot[1] = &in->b; slot[2] = &in->c; return 3;
    case KL_I_RANDOM: case KL_I_CHECK:
        slot[0] = &in->a; slot[1] = &in->b; slot[2] = &in->c; slot[3] = &in->d; slot[4] = &in->e; return 5;
    default: slot[0] = &in->a; slot[1] = &in->b; return 2;
    }
}

int kl_kd_operands(const kl_instr *in, int32_t ops[5])
{
    int32_t *slot[5];
    int n = operand_slots((kl_instr *)in, slot); /* only read */
    for (int i = 0; i < n; i++) ops[i] = *slot[i];
    return n;
}

/* in with its padding zeroed (instructions are compared bytewise, here and
 * by the plan cache, and an initialiser leaves padding indeterminate) and
 * its loops flag derived from its operands. */
static kl_instr normalized(const kl_kdesc *k, const kl_instr *in)
{
    kl_instr n;
    memset(&n, 0, sizeof n);
    n.kind = in->kind;
    n.dtype = in->dtype;
    n.aux = in->aux;
    n.op = in->op;
    n.a = in->a;
    n.b = in->b;
    n.c = in->c;
    n.d = in->d;
    n.e = in->e;
    n.value = in->value;
    int32_t ops[5];
    int count = kl_kd_operands(&n, ops);
    n.loops = n.kind == KL_I_LOOP;
    for (int i = 0; i < count; i++) n.loops |= ops[i] >= 0 && ops[i] < k->h.n_instrs && k->instrs[ops[i]].loops;
    return n;
}

void kl_kd_set_space(kl_kdesc *k, int rank, const int64_t *extents)
{
    k->space_rank = 0;
    for (int d = 0; d < rank; d++)
        if (extents[d] <= 0) return;   /* an empty space runs nothing: decide nothing */
    memcpy(k->space, extents, (size_t)rank * sizeof *extents);
    k->space_rank = (uint8_t)rank;
}

int32_t kl_kd_add(kl_kdesc *k, const kl_instr *given)
{
    if (k->status != KL_OK) return -1;
    kl_instr norm = normalized(k, given);
    const kl_instr *in = &norm;
    /* only decisions fold, and only they need a range before the lookup
     * (a tiny op's sync describes every kernel: keep the rest cheap) */
    int decides = kl_kd_may_fold(in);
    kl_range range = {0, 0};
    if (decides && k->space_rank) {
        range = kl_kd_range_of(k, in);
        int32_t folded = kl_kd_fold(k, in, range);
        if (folded >= 0 || k->status != KL_OK) return folded;
    }
    if ((k->h.n_instrs + 1) * 2 > k->cap_table && !grow_table(k))
        return kl_kd_fail(k, kl_error(KL_ERR_MEMORY, "out of memory describing a kernel"));
    uint64_t hash = instr_hash(in);
    size_t mask = (size_t)(k->cap_table - 1), j = hash & mask;
    for (; k->table[j].gen == k->gen; j = (j + 1) & mask)
        if (memcmp(&k->instrs[k->table[j].id], in, sizeof *in) == 0) return k->table[j].id;
    if (k->h.n_instrs == k->cap_instrs) {
        int cap = k->cap_instrs ? 2 * k->cap_instrs : 128;
        kl_instr *p = realloc(k->instrs, (size_t)cap * sizeof *p);
        if (!p) return kl_kd_fail(k, kl_error(KL_ERR_MEMORY, "out of memory describing a kernel"));
        k->instrs = p;
        kl_range *r = realloc(k->ranges, (size_t)cap * sizeof *r);
        if (!r) return kl_kd_fail(k, kl_error(KL_ERR_MEMORY, "out of memory describing a kernel"));
        k->ranges = r;
        k->cap_instrs = cap;
    }
    int32_t id = k->h.n_instrs++;
    k->instrs[id] = *in;
    if (decides && k->space_rank && k->n_ranged == id) { /* computed above, in order */
        k->ranges[id] = range;
        k->n_ranged = id + 1;
    }
    k->table[j].gen = k->gen;
    k->table[j].id = id;
    k->instrs_hash = mix(k->instrs_hash, hash);
    return id;
}

int32_t kl_kd_op(kl_kdesc *k, kl_instr_kind kind, kl_dtype dtype, int op, int32_t a, int32_t b, int32_t c)
{
    if (k->status != KL_OK || a < -1 || b < -1 || c < -1) return -1;
    kl_instr in = {(uint8_t)kind, (uint8_t)dtype, 0, 0, op, a, b, c, -1, -1, 0};
    return kl_kd_add(k, &in);
}

int32_t kl_kd_const(kl_kdesc *k, int64_t value)
{
    kl_instr in = {KL_I_CONST, KL_INT64, 0, 0, 0, -1, -1, -1, -1, -1, value};
    return kl_kd_add(k, &in);
}

/* A double as int64, saturating (NaN: 0): never the undefined conversion. */
static int64_t saturate_i64(double d)
{
    if (d != d) return 0;
    if (d >= 9223372036854775808.0) return INT64_MAX;
    if (d < -9223372036854775808.0) return INT64_MIN;
    return (int64_t)d;
}

double kl_arg_value(const kl_var *v, kl_arg_kind kind, int dim)
{
    switch (kind) {
    case KL_ARG_SHAPE: return (double)v->shape[dim];
    case KL_ARG_FULL: return v->op.p.full.value;
    case KL_ARG_SEED: return (double)v->op.p.random.seed;
    case KL_ARG_OFFSET: return (double)v->op.p.random.offset;
    case KL_ARG_RAND_A: return v->op.p.random.a;
    case KL_ARG_RAND_B: return v->op.p.random.b;
    case KL_ARG_OVERFLOW: return v->op.p.reindex.overflow_value;
    case KL_ARG_CHECK_LO: case KL_ARG_CHECK_HI: case KL_ARG_CHECK_WHAT: case KL_ARG_CHECK_RECORD:
        return (double)kl_arg_int(v, kind, dim);
    case KL_ARG_INDEX_CONST: return 0; /* the description carries it (kl_kd_iarg_const) */
    case KL_ARG_SHAPE_RUN: return (double)kl_arg_int(v, kind, dim);
    }
    return 0;
}

int64_t kl_arg_int(const kl_var *v, kl_arg_kind kind, int dim)
{
    switch (kind) {
    case KL_ARG_SHAPE: return v->shape[dim];
    case KL_ARG_SHAPE_RUN: {
        int64_t n = 1;
        for (int d = dim & 15; d < (dim & 15) + (dim >> 4); d++) n *= v->shape[d];
        return n;
    }
    case KL_ARG_SEED: return (int64_t)v->op.p.random.seed;
    case KL_ARG_OFFSET: return (int64_t)v->op.p.random.offset;
    case KL_ARG_FULL: return v->op.p.full.ivalue;
    case KL_ARG_CHECK_LO: return v->op.p.check.lo;
    case KL_ARG_CHECK_HI: return v->op.p.check.hi;
    /* addresses travel as integers: the kernel text stays the same */
    case KL_ARG_CHECK_WHAT: return (int64_t)(intptr_t)v->op.p.check.what;
    case KL_ARG_CHECK_RECORD: return (int64_t)(intptr_t)v->ctx->index_error;
    default: return saturate_i64(kl_arg_value(v, kind, dim));
    }
}

/* The instruction reading integer argument i. */
static int32_t iarg_read(kl_kdesc *k, int i)
{
    kl_instr in = {KL_I_IARG, KL_INT64, 0, 0, 0, i, -1, -1, -1, -1, 0};
    return kl_kd_add(k, &in);
}

/* A new integer argument of the given value and source, and its read. */
static int32_t iarg_append(kl_kdesc *k, int64_t value, kl_var *v, kl_arg_kind kind, int dim)
{
    int n = k->h.n_iargs;
    if (n == KL_KD_MAX_IARGS) return kl_kd_fail(k, kl_error(KL_ERR_RUNTIME, "kernel too large: too many integer arguments"));
    k->iargs[n] = value;
    k->isrc[n].v = v;
    k->isrc[n].kind = (uint8_t)kind;
    k->isrc[n].dim = (uint8_t)dim;
    k->h.n_iargs++;
    return iarg_read(k, n);
}

int32_t kl_kd_iarg(kl_kdesc *k, kl_var *v, kl_arg_kind kind, int dim)
{
    if (k->status != KL_OK) return -1;
    for (int i = 0; i < k->h.n_iargs; i++)
        if (k->isrc[i].v == v && k->isrc[i].kind == kind && k->isrc[i].dim == dim) return iarg_read(k, i);
    return iarg_append(k, kl_arg_int(v, kind, dim), v, kind, dim);
}

int32_t kl_kd_iarg_const(kl_kdesc *k, int64_t value)
{
    if (k->status != KL_OK) return -1;
    for (int i = 0; i < k->h.n_iargs; i++)
        if (k->isrc[i].kind == KL_ARG_INDEX_CONST && k->iargs[i] == value) return iarg_read(k, i);
    return iarg_append(k, value, NULL, KL_ARG_INDEX_CONST, 0);
}

int32_t kl_kd_farg(kl_kdesc *k, kl_var *v, kl_arg_kind kind)
{
    if (k->status != KL_OK) return -1;
    if (k->h.n_fargs == KL_KD_MAX_FARGS)
        return kl_kd_fail(k, kl_error(KL_ERR_RUNTIME, "kernel too large: too many scalar arguments"));
    int n = k->h.n_fargs++;
    k->fargs[n] = kl_arg_value(v, kind, 0);
    k->fsrc[n].v = v;
    k->fsrc[n].kind = (uint8_t)kind;
    kl_instr in = {KL_I_FARG, KL_FLOAT64, 0, 0, 0, n, -1, -1, -1, -1, 0};
    return kl_kd_add(k, &in);
}

int kl_kd_buffer(kl_kdesc *k, kl_var *v)
{
    for (int i = 0; i < k->h.n_bufs; i++)
        if (k->bufs[i] == v) return i;
    if (k->h.n_bufs == KL_KD_MAX_BUFS) {
        kl_kd_fail(k, kl_error(KL_ERR_RUNTIME, "kernel too large: more than %d inputs", KL_KD_MAX_BUFS));
        return -1;
    }
    int b = k->h.n_bufs++;
    k->bufs[b] = v;
    kl_var_retain(v);
    k->buf_dtype[b] = (uint8_t)v->dtype;
    k->buf_local[b] = (uint8_t)kl_kd_local(k, v);
    return b;
}

int kl_kd_local(kl_kdesc *k, kl_var *v)
{
    const size_t mask = sizeof k->local_index / sizeof *k->local_index - 1;
    size_t j = (size_t)(((uintptr_t)v >> 4) * 0x9e3779b97f4a7c15ULL >> 40) & mask;
    for (; k->local_index[j].gen == k->gen; j = (j + 1) & mask)
        if (k->local_index[j].v == v) return k->local_index[j].index;
    if (k->h.n_locals == KL_KD_MAX_LOCALS) {
        kl_kd_fail(k, kl_error(KL_ERR_RUNTIME, "kernel too large: more than %d fused vars", KL_KD_MAX_LOCALS));
        return 0;
    }
    int i = k->h.n_locals++;
    k->local_index[j].v = v;
    k->local_index[j].gen = k->gen;
    k->local_index[j].index = i;
    k->local_vars[i] = v;
    /* a sibling (an output of this kernel, never read) is described as the root is */
    int loaded = i > 0 && (v->buf || (v->materialize && v->sibling_of != k->local_vars[0]));
    int32_t param = 0;
    if (!loaded) {
        switch (v->op.kind) {
        case KL_OP_UNARY: param = v->op.p.unary; break;
        case KL_OP_BINARY: param = v->op.p.binary; break;
        case KL_OP_REDUCE: param = v->op.p.reduce.op; break;
        default: break;
        }
    }
    k->locals[i].dtype = (uint8_t)v->dtype;
    k->locals[i].kind = (uint8_t)(loaded ? KL_OP_ARRAY : v->op.kind);
    k->locals[i].loaded = (uint8_t)loaded;
    k->locals[i].mean = (uint8_t)(!loaded && v->op.kind == KL_OP_REDUCE && v->op.p.reduce.op == KL_REDUCE_MEAN);
    k->locals[i].param = param;
    return i;
}

uint64_t kl_kd_hash(kl_kdesc *k)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    const uint64_t *w = (const uint64_t *)(const void *)&k->h;
    for (size_t i = 0; i < sizeof k->h / 8; i++) h = mix(h, w[i]);
    h = mix(h, k->instrs_hash);
    for (int i = 0; i < k->h.n_bufs; i++) h = mix(h, (uint64_t)k->buf_dtype[i] << 8 | k->buf_local[i]);
    for (int i = 0; i < k->h.n_locals; i++)
        h = mix(h, (uint64_t)k->locals[i].dtype << 40 | (uint64_t)k->locals[i].kind << 32 | (uint32_t)k->locals[i].param);
    return k->hash = h;
}

/* The parts of a structure, wherever they are stored: a description, or
 * the block of bytes a plan keeps (head, instructions, locals, checks,
 * buffer dtypes, buffer locals, in that order). */
typedef struct {
    kl_kd_head h;
    const void *instrs, *locals, *checks, *buf_dtype, *buf_local;
} parts;

static size_t size_of(const kl_kd_head *h, int part)
{
    switch (part) {
    case 0: return (size_t)h->n_instrs * sizeof(kl_instr);
    case 1: return (size_t)h->n_locals * sizeof(((kl_kdesc *)0)->locals[0]);
    case 2: return (size_t)h->n_checks * sizeof(int32_t);
    default: return (size_t)h->n_bufs;
    }
}

static parts parts_of(const kl_kdesc *k)
{
    return (parts){k->h, k->instrs, k->locals, k->checks, k->buf_dtype, k->buf_local};
}

static parts parts_of_block(const void *block)
{
    parts p;
    memcpy(&p.h, block, sizeof p.h);
    const char *at = (const char *)block + sizeof p.h;
    const void **fields[5] = {&p.instrs, &p.locals, &p.checks, &p.buf_dtype, &p.buf_local};
    for (int i = 0; i < 5; i++) {
        *fields[i] = at;
        at += size_of(&p.h, i);
    }
    return p;
}

static int parts_equal(const parts *a, const parts *b)
{
    if (memcmp(&a->h, &b->h, sizeof a->h) != 0) return 0;
    const void *pa[5] = {a->instrs, a->locals, a->checks, a->buf_dtype, a->buf_local};
    const void *pb[5] = {b->instrs, b->locals, b->checks, b->buf_dtype, b->buf_local};
    for (int i = 0; i < 5; i++)
        if (memcmp(pa[i], pb[i], size_of(&a->h, i)) != 0) return 0;
    return 1;
}

int kl_kd_same(const kl_kdesc *a, const kl_kdesc *b)
{
    parts pa = parts_of(a), pb = parts_of(b);
    return parts_equal(&pa, &pb);
}

size_t kl_kd_structure_size(const kl_kdesc *k)
{
    size_t n = sizeof k->h;
    for (int i = 0; i < 5; i++) n += size_of(&k->h, i);
    return n;
}

void kl_kd_structure_write(const kl_kdesc *k, void *block)
{
    parts p = parts_of(k);
    memcpy(block, &p.h, sizeof p.h);
    char *at = (char *)block + sizeof p.h;
    const void *from[5] = {p.instrs, p.locals, p.checks, p.buf_dtype, p.buf_local};
    for (int i = 0; i < 5; i++) {
        size_t n = size_of(&p.h, i);
        if (n) memcpy(at, from[i], n);
        at += n;
    }
}

int kl_kd_structure_is(const kl_kdesc *k, const void *block)
{
    parts pa = parts_of(k), pb = parts_of_block(block);
    return parts_equal(&pa, &pb);
}

/* ---- merging loops ---- */

/* Bit d set when the instructions the kernel needs read loop index i<d>
 * (not through the linear index); -1 when the kernel is too large to
 * look (then nothing merges). */
static int dims_read(const kl_kdesc *k)
{
    enum { MAX_SCANNED = 2048 };
    uint8_t need[MAX_SCANNED];
    const kl_kd_head *h = &k->h;
    if (h->n_instrs > MAX_SCANNED) return -1;
    memset(need, 0, (size_t)h->n_instrs);
    int32_t roots[2 + KL_KD_MAX_EXTRA + 64];
    int n = 0;
    roots[n++] = h->value;
    if (h->kind == KL_KD_REDUCE) roots[n++] = h->target;
    for (int j = 0; j < h->n_extra; j++) roots[n++] = h->extra_value[j];
    for (int i = 0; i < h->n_checks; i++) roots[n++] = k->checks[i];
    for (int i = 0; i < n; i++)
        if (roots[i] >= 0) need[roots[i]] = 1;
    int read = 0;
    for (int32_t i = h->n_instrs - 1; i >= 0; i--) {
        if (!need[i]) continue;
        const kl_instr *in = &k->instrs[i];
        if (in->kind == KL_I_LOOP) read |= 1 << in->a;
        int32_t ops[5];
        for (int o = 0, c = kl_kd_operands(in, ops); o < c; o++)
            if (ops[o] >= 0) need[ops[o]] = 1;
    }
    return read;
}

/* Whether dim d's extent is v's shape argument. */
static int shape_extent(const kl_kdesc *k, const kl_var *v, int d)
{
    const kl_instr *e = &k->instrs[k->h.dims[d]];
    return e->kind == KL_I_IARG && k->isrc[e->a].v == v && k->isrc[e->a].kind == KL_ARG_SHAPE && k->isrc[e->a].dim == d;
}

/* Whether dims d - 1 and d can share a loop: both v's shape arguments, or
 * both literals (a short reduced extent: the merged one is their product). */
static int mergeable_extents(const kl_kdesc *k, const kl_var *v, int d)
{
    int literal = k->instrs[k->h.dims[d]].kind == KL_I_CONST, before = k->instrs[k->h.dims[d - 1]].kind == KL_I_CONST;
    return literal ? before : !before && shape_extent(k, v, d) && shape_extent(k, v, d - 1);
}

/* The head's references to instructions; how many. */
static int head_roots(kl_kdesc *k, int32_t **root)
{
    kl_kd_head *h = &k->h;
    int n = 0;
    root[n++] = &h->value;
    root[n++] = &h->target;
    root[n++] = &h->skip;
    for (int j = 0; j < h->n_extra; j++) root[n++] = &h->extra_value[j];
    for (int i = 0; i < h->n_checks; i++) root[n++] = &k->checks[i];
    for (int d = 0; d < h->rank; d++) root[n++] = &h->dims[d];
    for (int d = 0; d < h->out_rank; d++) root[n++] = &h->out_dims[d];
    return n;
}

/* Drops the instructions nothing needs any more (a merge leaves the merged
 * dims' extents behind) and the arguments only they read, so that kernels
 * that differ only in what they no longer use are one structure (a
 * parameter's update is one plan for a matrix and a vector). The
 * description is complete: nothing is added to it afterwards. */
static void drop_unused(kl_kdesc *k)
{
    enum { MAX_KEPT = 2048 }; /* kl_kd_merge_dims scans no more */
    kl_kd_head *h = &k->h;
    if (k->status != KL_OK || h->n_instrs > MAX_KEPT) return;
    int32_t renum[MAX_KEPT], iarg_renum[KL_KD_MAX_IARGS], farg_renum[KL_KD_MAX_FARGS];
    int32_t *root[3 + KL_KD_MAX_EXTRA + 64 + 16];
    int n_roots = head_roots(k, root);
    memset(renum, 0, (size_t)h->n_instrs * sizeof *renum); /* 1: needed (renumbered below) */
    for (int r = 0; r < n_roots; r++)
        if (*root[r] >= 0) renum[*root[r]] = 1;
    for (int32_t i = h->n_instrs - 1; i >= 0; i--) {
        if (!renum[i]) continue;
        int32_t *slot[5];
        for (int o = 0, c = operand_slots(&k->instrs[i], slot); o < c; o++)
            if (*slot[o] >= 0) renum[*slot[o]] = 1;
    }
    /* arguments compact in place: an argument's read is made with it (one
     * instruction per argument), so kept ones are met in increasing order */
    memset(iarg_renum, -1, sizeof iarg_renum);
    memset(farg_renum, -1, sizeof farg_renum);
    int32_t kept = 0, n_iargs = 0, n_fargs = 0;
    for (int32_t i = 0; i < h->n_instrs; i++) {
        if (!renum[i]) { renum[i] = -1; continue; }
        kl_instr in = k->instrs[i];
        int32_t *slot[5];
        for (int o = 0, c = operand_slots(&in, slot); o < c; o++)
            if (*slot[o] >= 0) *slot[o] = renum[*slot[o]];
        if (in.kind == KL_I_IARG && iarg_renum[in.a] < 0) {
            k->iargs[n_iargs] = k->iargs[in.a];
            k->isrc[n_iargs] = k->isrc[in.a];
            iarg_renum[in.a] = n_iargs++;
        }
        if (in.kind == KL_I_FARG && farg_renum[in.a] < 0) {
            k->fargs[n_fargs] = k->fargs[in.a];
            k->fsrc[n_fargs] = k->fsrc[in.a];
            farg_renum[in.a] = n_fargs++;
        }
        if (in.kind == KL_I_IARG) in.a = iarg_renum[in.a];
        if (in.kind == KL_I_FARG) in.a = farg_renum[in.a];
        k->instrs[kept] = in;
        renum[i] = kept++;
    }
    for (int r = 0; r < n_roots; r++)
        if (*root[r] >= 0) *root[r] = renum[*root[r]];
    h->n_instrs = kept;
    h->n_iargs = n_iargs;
    h->n_fargs = n_fargs;
    k->n_ranged = 0;
    next_generation(k);
    k->instrs_hash = 0;
    for (int32_t i = 0; i < h->n_instrs; i++) k->instrs_hash = mix(k->instrs_hash, instr_hash(&k->instrs[i]));
}

static void merge_dims(kl_kdesc *k, kl_var *v)
{
    kl_kd_head *h = &k->h;
    if (k->status != KL_OK || h->rank < 2 || (h->kind != KL_KD_MAP && h->kind != KL_KD_REDUCE)) return;
    if (h->kind == KL_KD_REDUCE && (h->op == KL_REDUCE_ARGMAX || h->op == KL_REDUCE_ARGMIN)) return;
    int read = dims_read(k);
    if (read < 0) return;
    /* groups of adjacent dims: d joins d - 1's when neither is read, both
     * are shape arguments, and (a reduce) both are reduced or both kept */
    int group_of[8], start[8], count[8], groups = 0;
    for (int d = 0; d < h->rank; d++) {
        int joins = d > 0 && !(read >> d & 1) && !(read >> (d - 1) & 1) && mergeable_extents(k, v, d) &&
                    ((h->reduced >> d) & 1) == ((h->reduced >> (d - 1)) & 1);
        if (!joins) start[groups] = d, count[groups++] = 0;
        group_of[d] = groups - 1;
        count[groups - 1]++;
    }
    if (groups == h->rank) return;
    int32_t dims[8] = {0};
    uint8_t reduced = 0;
    for (int g = 0; g < groups; g++) {
        if (count[g] == 1) {
            dims[g] = h->dims[start[g]];
        } else if (k->instrs[h->dims[start[g]]].kind == KL_I_CONST) {
            int64_t n = 1;
            for (int d = start[g]; d < start[g] + count[g]; d++) n *= k->instrs[h->dims[d]].value;
            dims[g] = kl_kd_const(k, n);
        } else {
            dims[g] = kl_kd_iarg(k, v, KL_ARG_SHAPE_RUN, start[g] | count[g] << 4);
        }
        if (h->reduced >> start[g] & 1) reduced |= (uint8_t)(1u << g);
    }
    if (k->status != KL_OK) return;
    memcpy(h->dims, dims, sizeof dims);
    h->reduced = h->kind == KL_KD_REDUCE ? reduced : 0;
    h->rank = (uint8_t)groups;
    /* the loop indexes name their group (a merged group's is never read) */
    for (int32_t i = 0; i < h->n_instrs; i++)
        if (k->instrs[i].kind == KL_I_LOOP) k->instrs[i].a = group_of[k->instrs[i].a];
    k->instrs_hash = 0;
    for (int32_t i = 0; i < h->n_instrs; i++) k->instrs_hash = mix(k->instrs_hash, instr_hash(&k->instrs[i]));
}

void kl_kd_merge_dims(kl_kdesc *k, kl_var *v)
{
    merge_dims(k, v);
    drop_unused(k);
}
