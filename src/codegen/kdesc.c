/* kdesc.c: building kernel descriptions: hash-consed instructions, the
 * buffer and argument tables, and the structure's hash and equality (what
 * the plan cache compares). */
#include "codegen/kdesc.h"
#include "core/context.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct kl_kd_memo { kl_var *v; int32_t n, identity; int32_t c[KL_MAX_DIMS]; int32_t value; };

void kl_kd_init(kl_kdesc *k)
{
    memset(&k->h, 0, sizeof k->h);
    k->h.value = k->h.target = k->h.skip = -1;
    k->status = KL_OK;
    k->hash = 0;
    k->n_memo = 0;
    if (k->table) memset(k->table, 0xff, (size_t)k->cap_table * sizeof *k->table);
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
    free(k->table);
    free(k->memo);
    k->instrs = NULL;
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
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdULL;
}

static uint64_t instr_hash(const kl_instr *in)
{
    uint64_t h = mix(0, (uint64_t)in->kind << 24 | (uint64_t)in->dtype << 16 | (uint64_t)in->aux << 8);
    h = mix(h, (uint64_t)(uint32_t)in->op);
    h = mix(h, (uint64_t)(uint32_t)in->a << 32 | (uint32_t)in->b);
    h = mix(h, (uint64_t)(uint32_t)in->c << 32 | (uint32_t)in->d);
    h = mix(h, (uint64_t)(uint32_t)in->e);
    return mix(h, (uint64_t)in->value);
}

static int grow_table(kl_kdesc *k)
{
    int cap = k->cap_table ? 2 * k->cap_table : 256;
    int32_t *t = malloc((size_t)cap * sizeof *t);
    if (!t) return 0;
    memset(t, 0xff, (size_t)cap * sizeof *t);
    for (int i = 0; i < k->h.n_instrs; i++) {
        size_t j = instr_hash(&k->instrs[i]) & (size_t)(cap - 1);
        while (t[j] >= 0) j = (j + 1) & (size_t)(cap - 1);
        t[j] = i;
    }
    free(k->table);
    k->table = t;
    k->cap_table = cap;
    return 1;
}

/* in with its padding zeroed: instructions are compared bytewise (here and
 * by the plan cache), and an initialiser leaves padding indeterminate. */
static kl_instr normalized(const kl_instr *in)
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
    return n;
}

int32_t kl_kd_add(kl_kdesc *k, const kl_instr *given)
{
    if (k->status != KL_OK) return -1;
    kl_instr norm = normalized(given);
    const kl_instr *in = &norm;
    if ((k->h.n_instrs + 1) * 2 > k->cap_table && !grow_table(k))
        return kl_kd_fail(k, kl_error(KL_ERR_MEMORY, "out of memory describing a kernel"));
    size_t mask = (size_t)(k->cap_table - 1), j = instr_hash(in) & mask;
    for (; k->table[j] >= 0; j = (j + 1) & mask)
        if (memcmp(&k->instrs[k->table[j]], in, sizeof *in) == 0) return k->table[j];
    if (k->h.n_instrs == k->cap_instrs) {
        int cap = k->cap_instrs ? 2 * k->cap_instrs : 128;
        kl_instr *p = realloc(k->instrs, (size_t)cap * sizeof *p);
        if (!p) return kl_kd_fail(k, kl_error(KL_ERR_MEMORY, "out of memory describing a kernel"));
        k->instrs = p;
        k->cap_instrs = cap;
    }
    int32_t id = k->h.n_instrs++;
    k->instrs[id] = *in;
    k->table[j] = id;
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
    }
    return 0;
}

int64_t kl_arg_int(const kl_var *v, kl_arg_kind kind, int dim)
{
    switch (kind) {
    case KL_ARG_SHAPE: return v->shape[dim];
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

int32_t kl_kd_iarg(kl_kdesc *k, kl_var *v, kl_arg_kind kind, int dim)
{
    if (k->status != KL_OK) return -1;
    int n = k->h.n_iargs;
    for (int i = 0; i < n; i++)
        if (k->isrc[i].v == v && k->isrc[i].kind == kind && k->isrc[i].dim == dim) {
            kl_instr in = {KL_I_IARG, KL_INT64, 0, 0, 0, i, -1, -1, -1, -1, 0};
            return kl_kd_add(k, &in);
        }
    if (n == KL_KD_MAX_IARGS) return kl_kd_fail(k, kl_error(KL_ERR_RUNTIME, "kernel too large: too many integer arguments"));
    k->iargs[n] = kl_arg_int(v, kind, dim);
    k->isrc[n].v = v;
    k->isrc[n].kind = (uint8_t)kind;
    k->isrc[n].dim = (uint8_t)dim;
    k->h.n_iargs++;
    kl_instr in = {KL_I_IARG, KL_INT64, 0, 0, 0, n, -1, -1, -1, -1, 0};
    return kl_kd_add(k, &in);
}

int32_t kl_kd_farg(kl_kdesc *k, kl_var *v, kl_arg_kind kind)
{
    if (k->status != KL_OK) return -1;
    if (k->h.n_fargs == KL_KD_MAX_FARGS)
        return kl_kd_fail(k, kl_error(KL_ERR_RUNTIME, "kernel too large: too many scalar arguments"));
    int n = k->h.n_fargs++;
    k->fargs[n] = kl_arg_value(v, kind, 0);
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
    for (int i = 0; i < k->h.n_locals; i++)
        if (k->local_vars[i] == v) return i;
    if (k->h.n_locals == KL_KD_MAX_LOCALS) {
        kl_kd_fail(k, kl_error(KL_ERR_RUNTIME, "kernel too large: more than %d fused vars", KL_KD_MAX_LOCALS));
        return 0;
    }
    int i = k->h.n_locals++;
    k->local_vars[i] = v;
    int loaded = i > 0 && (v->buf || v->materialize);
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
    for (int i = 0; i < k->h.n_instrs; i++) h = mix(h, instr_hash(&k->instrs[i]));
    for (int i = 0; i < k->h.n_bufs; i++) h = mix(h, (uint64_t)k->buf_dtype[i] << 8 | k->buf_local[i]);
    for (int i = 0; i < k->h.n_locals; i++)
        h = mix(h, (uint64_t)k->locals[i].dtype << 40 | (uint64_t)k->locals[i].kind << 32 | (uint32_t)k->locals[i].param);
    return k->hash = h;
}

int kl_kd_same(const kl_kdesc *a, const kl_kdesc *b)
{
    if (memcmp(&a->h, &b->h, sizeof a->h) != 0) return 0;
    if (memcmp(a->instrs, b->instrs, (size_t)a->h.n_instrs * sizeof *a->instrs) != 0) return 0;
    if (memcmp(a->buf_dtype, b->buf_dtype, (size_t)a->h.n_bufs) != 0) return 0;
    if (memcmp(a->buf_local, b->buf_local, (size_t)a->h.n_bufs) != 0) return 0;
    if (memcmp(a->checks, b->checks, (size_t)a->h.n_checks * sizeof *a->checks) != 0) return 0;
    for (int i = 0; i < a->h.n_locals; i++)
        if (memcmp(&a->locals[i], &b->locals[i], sizeof a->locals[i]) != 0) return 0;
    return 1;
}

kl_kdesc *kl_kd_copy_structure(const kl_kdesc *k)
{
    kl_kdesc *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->h = k->h;
    c->hash = k->hash;
    c->instrs = malloc((size_t)(k->h.n_instrs ? k->h.n_instrs : 1) * sizeof *c->instrs);
    if (!c->instrs) { free(c); return NULL; }
    memcpy(c->instrs, k->instrs, (size_t)k->h.n_instrs * sizeof *c->instrs);
    c->cap_instrs = k->h.n_instrs;
    memcpy(c->buf_dtype, k->buf_dtype, sizeof c->buf_dtype);
    memcpy(c->buf_local, k->buf_local, sizeof c->buf_local);
    memcpy(c->checks, k->checks, sizeof c->checks);
    memcpy(c->locals, k->locals, sizeof c->locals);
    return c; /* bufs stay NULL: a copy holds no buffers */
}
