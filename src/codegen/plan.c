/* plan.c: fingerprints of kernel subgraphs and the plan cache. A plan is a
 * compiled kernel plus the recipe for its arguments: which visited var and
 * which attribute (a shape dim, a constant, a seed) each argument is. The
 * fingerprint holds exactly what code generation reads, so equal
 * fingerprints mean equal kernel text; KILN_CHECK_PLANS=1 verifies that on
 * every hit by generating the text anyway. */
#include "codegen/plan.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

#define MAX_PLANS 4096

struct kl_plan {
    uint64_t hash;
    uint32_t *words;
    int n_words;
    kl_kernel_fn fn;
    char *source;
    int n_bufs, n_iargs, n_fargs;
    int *bufs;                      /* visit index of each buffer's var */
    struct { int var; uint8_t kind, dim; } *isrc, *fsrc;
};

enum { TAG_REF = 0x7f000000u, TAG_LOAD = 0x7e000000u, TAG_VAR = 0x7d000000u };

static int push(kl_fingerprint *fp, uint32_t w)
{
    if (fp->n_words == fp->cap_words) {
        int cap = fp->cap_words ? 2 * fp->cap_words : 128;
        uint32_t *p = realloc(fp->words, (size_t)cap * sizeof *p);
        if (!p) return 0;
        fp->words = p;
        fp->cap_words = cap;
    }
    fp->words[fp->n_words++] = w;
    return 1;
}

static int push_expr(kl_fingerprint *fp, const kl_expr *e)
{
    int ok = push(fp, (uint32_t)e->kind << 16 | (uint32_t)e->op << 8 | (uint32_t)e->n_args) &&
             push(fp, (uint32_t)e->value) && push(fp, (uint32_t)((uint64_t)e->value >> 32));
    for (int i = 0; ok && i < e->n_args; i++) ok = push_expr(fp, e->args[i]);
    return ok;
}

static uint32_t size1_mask(const kl_var *v)
{
    uint32_t m = 0;
    for (int d = 0; d < v->ndim; d++) m |= (uint32_t)(v->shape[d] == 1) << d;
    return m;
}

static int walk(kl_fingerprint *fp, uint64_t epoch, kl_var *v, int is_root)
{
    if (v->fp_epoch == epoch) return push(fp, TAG_REF | (uint32_t)v->fp_index);
    if (fp->n_vars == fp->cap_vars) {
        int cap = fp->cap_vars ? 2 * fp->cap_vars : 32;
        kl_var **p = realloc(fp->vars, (size_t)cap * sizeof *p);
        if (!p) return 0;
        fp->vars = p;
        fp->cap_vars = cap;
    }
    v->fp_epoch = epoch;
    v->fp_index = fp->n_vars;
    fp->vars[fp->n_vars++] = v;
    if (!push(fp, TAG_VAR | (uint32_t)v->dtype << 8 | (uint32_t)v->ndim) || !push(fp, size1_mask(v))) return 0;
    if (!is_root && (v->buf || v->materialize)) return push(fp, TAG_LOAD);
    const kl_op *o = &v->op;
    uint32_t param = 0;
    switch (o->kind) {
    case KL_OP_UNARY: param = (uint32_t)o->p.unary; break;
    case KL_OP_BINARY: param = (uint32_t)o->p.binary; break;
    case KL_OP_BROADCAST: param = o->p.broadcast.mask; break;
    case KL_OP_REDUCE: param = (uint32_t)o->p.reduce.op << 16 | (uint32_t)o->p.reduce.mask << 1 | (uint32_t)o->p.reduce.keepdims; break;
    case KL_OP_RANDOM: param = (uint32_t)o->p.random.kind; break;
    case KL_OP_INDEX: param = (uint32_t)o->p.index.dim; break;
    case KL_OP_REINDEX: case KL_OP_REINDEX_REDUCE:
        param = (uint32_t)o->p.reindex.op << 16 | (uint32_t)o->p.reindex.n_indexes << 8 | (uint32_t)o->p.reindex.n_conditions;
        break;
    default: break;
    }
    if (!push(fp, (uint32_t)o->kind << 24 | (uint32_t)o->n_inputs) || !push(fp, param)) return 0;
    if (o->kind == KL_OP_REINDEX || o->kind == KL_OP_REINDEX_REDUCE) {
        for (int i = 0; i < o->p.reindex.n_indexes; i++) if (!push_expr(fp, o->p.reindex.indexes[i])) return 0;
        for (int i = 0; i < o->p.reindex.n_conditions; i++) if (!push_expr(fp, o->p.reindex.conditions[i])) return 0;
    }
    for (int i = 0; i < o->n_inputs; i++)
        if (!walk(fp, epoch, o->inputs[i], 0)) return 0;
    return 1;
}

kl_status kl_fingerprint_build(kl_plan_cache *pc, kl_var *root, kl_fingerprint *fp)
{
    fp->n_words = fp->n_vars = 0;
    if (!walk(fp, ++pc->epoch, root, 1)) return kl_error(KL_ERR_MEMORY, "out of memory fingerprinting a kernel");
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < fp->n_words; i++) { h ^= fp->words[i]; h *= 0x100000001b3ULL; }
    fp->hash = h;
    return KL_OK;
}

void kl_fingerprint_free(kl_fingerprint *fp)
{
    free(fp->words);
    free(fp->vars);
    memset(fp, 0, sizeof *fp);
}

static kl_plan **slot_of(kl_plan_cache *pc, const kl_fingerprint *fp)
{
    for (size_t i = fp->hash & (pc->capacity - 1);; i = (i + 1) & (pc->capacity - 1)) {
        kl_plan *p = pc->slots[i];
        if (!p || (p->hash == fp->hash && p->n_words == fp->n_words &&
                   memcmp(p->words, fp->words, (size_t)fp->n_words * sizeof *fp->words) == 0))
            return &pc->slots[i];
    }
}

int kl_plan_lookup(kl_plan_cache *pc, const kl_fingerprint *fp, kl_kernel *k, kl_kernel_fn *fn, const char **source)
{
    if (!pc->capacity || pc->disabled) return 0;
    kl_plan *p = *slot_of(pc, fp);
    if (!p || !p->fn) return 0;
    k->source = NULL;
    k->n_bufs = p->n_bufs;
    for (int i = 0; i < p->n_bufs; i++) { k->bufs[i] = fp->vars[p->bufs[i]]; kl_var_retain(k->bufs[i]); }
    k->n_iargs = p->n_iargs;
    for (int i = 0; i < p->n_iargs; i++) {
        kl_var *v = fp->vars[p->isrc[i].var];
        kl_arg_kind kind = (kl_arg_kind)p->isrc[i].kind;
        k->isrc[i] = (kl_arg_source){v, p->isrc[i].kind, p->isrc[i].dim};
        k->iargs[i] = kl_arg_int(v, kind, p->isrc[i].dim);
    }
    k->n_fargs = p->n_fargs;
    for (int i = 0; i < p->n_fargs; i++) {
        kl_var *v = fp->vars[p->fsrc[i].var];
        k->fsrc[i] = (kl_arg_source){v, p->fsrc[i].kind, p->fsrc[i].dim};
        k->fargs[i] = kl_arg_value(v, (kl_arg_kind)p->fsrc[i].kind, p->fsrc[i].dim);
    }
    *fn = p->fn;
    *source = p->source;
    return 1;
}

static void plan_free(kl_plan *p)
{
    if (!p) return;
    free(p->words); free(p->source); free(p->bufs); free(p->isrc); free(p->fsrc);
    free(p);
}

void kl_plan_cache_free(kl_plan_cache *pc)
{
    for (size_t i = 0; i < pc->capacity; i++) plan_free(pc->slots[i]);
    free(pc->slots);
    pc->slots = NULL;
    pc->capacity = pc->count = 0;
}

/* Visit index of a var the kernel uses; -1 if the fingerprint did not visit it. */
static int index_of(const kl_fingerprint *fp, const kl_var *v)
{
    return v->fp_index < fp->n_vars && fp->vars[v->fp_index] == v ? v->fp_index : -1;
}

void kl_plan_set_fn(kl_plan *p, kl_kernel_fn fn) { p->fn = fn; }

kl_plan *kl_plan_insert(kl_plan_cache *pc, const kl_fingerprint *fp, const kl_kernel *k)
{
    if (pc->disabled) return NULL;
    if (pc->count >= MAX_PLANS) kl_plan_cache_free(pc); /* a simple bound: start again */
    if ((pc->count + 1) * 2 > pc->capacity) {
        size_t cap = pc->capacity ? pc->capacity * 2 : 256;
        kl_plan **slots = calloc(cap, sizeof *slots);
        if (!slots) return NULL; /* the cache is an optimisation: skip it */
        kl_plan **old = pc->slots;
        size_t old_cap = pc->capacity;
        pc->slots = slots;
        pc->capacity = cap;
        for (size_t i = 0; i < old_cap; i++) {
            kl_plan *p = old[i];
            if (!p) continue;
            size_t j = p->hash & (cap - 1);
            while (slots[j]) j = (j + 1) & (cap - 1);
            slots[j] = p;
        }
        free(old);
    }
    kl_plan **slot = slot_of(pc, fp);
    /* already there, or waiting for its function (two kernels of one sync
     * can share a structure): keep the one that is there */
    if (*slot) return NULL;
    kl_plan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->hash = fp->hash;
    p->n_words = fp->n_words;
    p->words = malloc((size_t)fp->n_words * sizeof *p->words);
    p->source = k->source ? strdup(k->source) : NULL;
    p->bufs = malloc((size_t)(k->n_bufs ? k->n_bufs : 1) * sizeof *p->bufs);
    p->isrc = malloc((size_t)(k->n_iargs ? k->n_iargs : 1) * sizeof *p->isrc);
    p->fsrc = malloc((size_t)(k->n_fargs ? k->n_fargs : 1) * sizeof *p->fsrc);
    int ok = p->words && p->source && p->bufs && p->isrc && p->fsrc;
    if (ok) memcpy(p->words, fp->words, (size_t)fp->n_words * sizeof *p->words);
    p->n_bufs = k->n_bufs;
    for (int i = 0; ok && i < k->n_bufs; i++) ok = (p->bufs[i] = index_of(fp, k->bufs[i])) >= 0;
    p->n_iargs = k->n_iargs;
    for (int i = 0; ok && i < k->n_iargs; i++) {
        p->isrc[i].var = index_of(fp, k->isrc[i].v);
        p->isrc[i].kind = k->isrc[i].kind;
        p->isrc[i].dim = k->isrc[i].dim;
        ok = p->isrc[i].var >= 0;
    }
    p->n_fargs = k->n_fargs;
    for (int i = 0; ok && i < k->n_fargs; i++) {
        p->fsrc[i].var = index_of(fp, k->fsrc[i].v);
        p->fsrc[i].kind = k->fsrc[i].kind;
        p->fsrc[i].dim = k->fsrc[i].dim;
        ok = p->fsrc[i].var >= 0;
    }
    if (!ok) { plan_free(p); return NULL; }
    *slot = p;
    pc->count++;
    return p;
}
