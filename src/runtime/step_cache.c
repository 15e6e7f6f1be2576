/* step_cache.c: the whole-step plan cache. A training loop's syncs repeat
 * one graph: the same ops over the same shapes, new values. The first sync
 * of a graph plans it: fusion, library patterns and siblings
 * (kl_fuse_plan), then a description and a plan lookup per kernel. The
 * cache records the outcome against the graph's signature; a later sync
 * whose signature is equal replays it (one lookup for the whole step), and
 * only the launches' arguments are read afresh from the vars they came from
 * (a scalar that changed, a random op's new seed).
 *
 * The signature is everything planning reads: per pending var, in the
 * sync's order, its op with every parameter that decides anything (an
 * index expression's whole tree; of a scalar, only whether it is 0, which
 * finds a ReLU), dtype, full shape, its inputs as positions (so a var read
 * twice is one position), whether it is asked for, held, fusion-stopped,
 * and how many pending ops read it; the computed vars it reads, with their
 * dtypes and shapes; the device, the compile check, and what the device's
 * pattern answers depend on besides shapes (plan_state: the CPU's thread
 * count, by which oneDNN picks implementations). A replay asks the device
 * again whether it runs each recorded library pattern, with the same
 * layouts, and plans afresh when not. KILN_CHECK_PLANS=1 (on in the test
 * suite) plans every hit afresh as well and fails on any difference. */
#include "runtime/step.h"
#include "core/dtype.h"
#include "core/expr.h"
#include <stdlib.h>
#include <string.h>

#define MAX_PLANS 32                   /* distinct graphs kept */
#define MAX_WORDS ((size_t)1 << 22)    /* a larger graph's signature is not kept */
#define MAX_KEPT_WORDS ((size_t)1 << 23) /* signature words kept in all (64 MB, about as much in records) */
#define NO_VAR INT32_MIN               /* a position that names no var */

typedef struct {
    int32_t pos;   /* the var it is read from */
    uint8_t kind;  /* kl_arg_kind */
    uint8_t dim;
    int64_t value; /* an index constant's (structure: the signature holds it) */
} arg_source;

typedef struct {
    int32_t var;                 /* order index */
    uint8_t is_alias, is_collective, is_library;
    kl_plan *plan;               /* a kernel's */
    int32_t n_bufs, n_iargs, n_fargs, n_extra, n_checks;
    int64_t work;
    int32_t *bufs;               /* positions */
    arg_source *iargs, *fargs;
} step_record;

/* A library pattern with its vars as positions (the template's are NULL). */
typedef struct {
    kl_pattern p;
    int32_t a, b, bias, eps, epilogue[KL_MAX_EPILOGUE];
} pattern_record;

struct kl_step_plan {
    uint64_t hash;
    uint64_t *sig;
    size_t n_sig;
    int n_order;
    uint8_t *materialize, *n_siblings;
    int32_t *sibling_of, (*siblings)[KL_MAX_SIBLINGS], *pattern_at; /* positions; -1 / NO_VAR: none */
    pattern_record *patterns;
    int n_patterns;
    step_record *steps;
    int n_steps, cap_steps;
};

struct kl_step_cache {
    uint64_t plan_generation;   /* of the plan cache the recorded plans belong to */
    kl_step_plan *plans[MAX_PLANS];
    int n_plans;
    size_t kept_words;          /* their signatures' */
    /* this sync's */
    uint64_t *sig;
    size_t n_sig, cap_sig;
    int sig_failed, signed_ok;
    uint64_t hash, epoch;
    kl_var **ext;               /* the computed vars it reads, by first read */
    int n_ext, cap_ext;
    kl_var *const *order;
    int n_order;
    kl_step_plan *recording;    /* being recorded (NULL: not recording) */
};

/* ---- positions ---- */

/* v's position in this sync: its order index, or -(1 + its index among the
 * computed vars read); NO_VAR when it is neither (nothing planning reads). */
static int32_t pos_of(const kl_step_cache *c, const kl_var *v)
{
    return v && v->epoch == c->epoch ? v->sync_pos : NO_VAR;
}

static kl_var *var_at(const kl_step_cache *c, int32_t pos)
{
    if (pos == NO_VAR) return NULL;
    return pos >= 0 ? c->order[pos] : c->ext[-1 - pos];
}

/* An argument's value in this sync, read from its source. */
static int64_t iarg_from(const kl_step_cache *c, const arg_source *src)
{
    return src->kind == KL_ARG_INDEX_CONST ? src->value : kl_arg_int(var_at(c, src->pos), src->kind, src->dim);
}

static double farg_from(const kl_step_cache *c, const arg_source *src)
{
    return kl_arg_value(var_at(c, src->pos), src->kind, 0);
}

/* ---- the signature ---- */

static void put(kl_step_cache *c, uint64_t w)
{
    if (c->n_sig == c->cap_sig) {
        size_t cap = c->cap_sig ? 2 * c->cap_sig : 4096;
        uint64_t *p = cap <= MAX_WORDS ? realloc(c->sig, cap * sizeof *p) : NULL;
        if (!p) { c->sig_failed = 1; return; }
        c->sig = p;
        c->cap_sig = cap;
    }
    c->sig[c->n_sig++] = w;
}

static void put_expr(kl_step_cache *c, const kl_expr *e)
{
    put(c, (uint64_t)e->kind | (uint64_t)(uint32_t)e->op << 8 | (uint64_t)e->n_args << 40);
    put(c, (uint64_t)e->value);
    for (int i = 0; i < e->n_args; i++) put_expr(c, e->args[i]);
}

/* The parameters of v's op that decide anything; 0 when its graph is not kept. */
static int put_params(kl_step_cache *c, const kl_var *v)
{
    const kl_op *op = &v->op;
    switch (op->kind) {
    case KL_OP_UNARY: put(c, (uint64_t)op->p.unary); return 1;
    case KL_OP_BINARY: put(c, (uint64_t)op->p.binary); return 1;
    case KL_OP_FULL: put(c, op->p.full.value == 0.0); return 1; /* the value is an argument */
    case KL_OP_RANDOM: put(c, (uint64_t)op->p.random.kind); return 1; /* seeds and bounds are arguments */
    case KL_OP_INDEX: put(c, (uint64_t)op->p.index.dim); return 1;
    case KL_OP_BROADCAST: put(c, op->p.broadcast.mask); return 1;
    case KL_OP_REDUCE:
        put(c, (uint64_t)op->p.reduce.op | (uint64_t)op->p.reduce.mask << 8 | (uint64_t)op->p.reduce.keepdims << 16);
        return 1;
    case KL_OP_REINDEX:
    case KL_OP_REINDEX_REDUCE:
        put(c, (uint64_t)op->p.reindex.op | (uint64_t)op->p.reindex.n_indexes << 8 |
                   (uint64_t)op->p.reindex.n_conditions << 16 | (uint64_t)(op->p.reindex.overflow_value == 0.0) << 24);
        for (int i = 0; i < op->p.reindex.n_indexes; i++) put_expr(c, op->p.reindex.indexes[i]);
        for (int i = 0; i < op->p.reindex.n_conditions; i++) put_expr(c, op->p.reindex.conditions[i]);
        return 1;
    case KL_OP_COLLECTIVE:
        put(c, (uint64_t)op->p.collective.kind | (uint64_t)op->p.collective.op << 8);
        put(c, (uint64_t)(uint32_t)op->p.collective.root | (uint64_t)(uint32_t)op->p.collective.bucket << 32);
        return 1;
    case KL_OP_CAST: case KL_OP_WHERE: case KL_OP_RESHAPE: case KL_OP_STOP_GRAD: case KL_OP_CUSTOM_GRAD:
    case KL_OP_CHECK_INDEX: /* bounds and description are arguments */
        return 1;
    default: /* a jt.code op (its source is not here), or an op this file does not know */
        return 0;
    }
}

static void put_shape(kl_step_cache *c, const kl_var *v)
{
    put(c, (uint64_t)v->dtype | (uint64_t)v->ndim << 8);
    for (int d = 0; d < v->ndim; d++) put(c, (uint64_t)v->shape[d]);
}

/* The position of input `in`, a computed var numbered (and described) when first read. */
static void put_input(kl_step_cache *c, kl_var *in)
{
    if (in->epoch != c->epoch) {
        if (c->n_ext == c->cap_ext) {
            int cap = c->cap_ext ? 2 * c->cap_ext : 256;
            kl_var **p = realloc(c->ext, (size_t)cap * sizeof *p);
            if (!p) { c->sig_failed = 1; return; }
            c->ext = p;
            c->cap_ext = cap;
        }
        in->epoch = c->epoch; /* a computed var: topo_order never stamps it */
        in->sync_pos = -1 - c->n_ext;
        c->ext[c->n_ext++] = in;
        put(c, UINT64_MAX); /* a new computed input, described here */
        put_shape(c, in);
    }
    put(c, (uint64_t)(int64_t)in->sync_pos);
}

static uint64_t mix(uint64_t h, uint64_t w)
{
    h ^= w + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h * 0x100000001b3ULL;
}

int kl_step_cache_sign(kl_context *ctx, kl_var *const *order, int n, const uint8_t *is_target, uint64_t epoch)
{
    kl_step_cache *c = ctx->step_cache;
    if (!c && !(c = ctx->step_cache = calloc(1, sizeof *c))) return 0;
    if (c->plan_generation != ctx->plans.generation) { /* its plans are gone */
        kl_step_cache_clear(c);
        c->plan_generation = ctx->plans.generation;
    }
    c->n_sig = c->n_ext = 0;
    c->sig_failed = c->signed_ok = 0;
    c->epoch = epoch;
    c->order = order;
    c->n_order = n;
    if (ctx->plans.disabled || n == 0) return 0;
    kl_backend *dev = order[0]->device;
    put(c, (uint64_t)(uintptr_t)dev);
    put(c, (uint64_t)(uintptr_t)ctx->compile_check);
    put(c, dev->ops->plan_state ? dev->ops->plan_state(dev) : 0);
    put(c, (uint64_t)n);
    for (int i = 0; i < n; i++) order[i]->sync_pos = i;
    for (int i = 0; i < n && !c->sig_failed; i++) {
        const kl_var *v = order[i];
        put(c, (uint64_t)v->op.kind | (uint64_t)v->op.n_inputs << 8 | (uint64_t)is_target[i] << 16 |
                   (uint64_t)v->stop_fuse << 17 | (uint64_t)(v->user_refs > 0) << 18 |
                   (uint64_t)(uint32_t)v->graph_refs << 32);
        put_shape(c, v);
        for (int k = 0; k < v->op.n_inputs; k++) put_input(c, v->op.inputs[k]);
        if (!put_params(c, v)) return 0;
    }
    if (c->sig_failed) return 0;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < c->n_sig; i++) h = mix(h, c->sig[i]);
    c->hash = h;
    c->signed_ok = 1;
    return 1;
}

const kl_step_plan *kl_step_cache_find(kl_context *ctx)
{
    kl_step_cache *c = ctx->step_cache;
    if (!c || !c->signed_ok) return NULL;
    for (int i = 0; i < c->n_plans; i++) {
        const kl_step_plan *sp = c->plans[i];
        if (sp->hash == c->hash && sp->n_sig == c->n_sig && memcmp(sp->sig, c->sig, c->n_sig * sizeof *c->sig) == 0)
            return sp;
    }
    return NULL;
}

/* ---- replaying ---- */

/* p's vars from the record's positions. */
static void bind_pattern(const kl_step_cache *c, const pattern_record *r, kl_pattern *p)
{
    *p = r->p;
    p->a = var_at(c, r->a);
    p->b = var_at(c, r->b);
    for (int i = 0; i < KL_MAX_EPILOGUE; i++) p->epilogue_operand[i] = var_at(c, r->epilogue[i]);
    if (p->kind == KL_PATTERN_LAYERNORM) {
        p->layernorm.bias = var_at(c, r->bias);
        p->layernorm.eps = var_at(c, r->eps);
    }
}

/* Whether the device still runs p as recorded: the call, and the layouts
 * its input, residual and result were to be kept in. */
static int still_supported(kl_backend *dev, const kl_pattern *p)
{
    if (!dev->ops->supports || !dev->ops->supports(dev, p)) return 0;
    if (!p->a_layout && !p->residual_layout && !p->out_layout) return 1;
    if (!dev->ops->layout) return 0;
    return (!p->a_layout || dev->ops->layout(dev, p, 0) == p->a_layout) &&
           (!p->residual_layout || dev->ops->layout(dev, p, 1) == p->residual_layout) &&
           (!p->out_layout || dev->ops->layout(dev, p, 1) == p->out_layout);
}

int kl_step_plan_apply(kl_context *ctx, const kl_step_plan *sp, kl_var *const *order, int n, kl_pattern *patterns)
{
    kl_step_cache *c = ctx->step_cache;
    if (n != sp->n_order) return 0;
    for (int i = 0; i < n; i++) {
        kl_var *v = order[i];
        v->materialize = sp->materialize[i];
        v->absorbed = 0;
        v->sibling_of = sp->sibling_of[i] >= 0 ? order[sp->sibling_of[i]] : NULL;
        v->n_siblings = sp->n_siblings[i];
        for (int j = 0; j < v->n_siblings; j++) v->siblings[j] = order[sp->siblings[i][j]];
        v->pattern = NULL;
        if (sp->pattern_at[i] < 0) continue;
        bind_pattern(c, &sp->patterns[sp->pattern_at[i]], &patterns[i]);
        v->pattern = &patterns[i];
        if (!still_supported(v->device, v->pattern)) return 0;
    }
    return 1;
}

int kl_step_plan_steps(kl_context *ctx, const kl_step_plan *sp, kl_step *steps, int count_hits)
{
    kl_step_cache *c = ctx->step_cache;
    for (int s = 0; s < sp->n_steps; s++) {
        const step_record *r = &sp->steps[s];
        kl_step *st = &steps[s];
        kl_var *v = c->order[r->var];
        kl_step_init(st, v);
        kl_var_retain(v);
        st->is_alias = r->is_alias;
        st->is_collective = r->is_collective;
        if (r->is_library) st->pattern = v->pattern;
        if (!r->plan) continue;
        kl_launch_plan *a = &st->args;
        st->plan = r->plan;
        st->fn = r->plan->fn;
        a->n_bufs = r->n_bufs;
        for (int i = 0; i < r->n_bufs; i++) kl_var_retain(a->bufs[i] = var_at(c, r->bufs[i]));
        a->n_iargs = r->n_iargs;
        for (int i = 0; i < r->n_iargs; i++) a->iargs[i] = iarg_from(c, &r->iargs[i]);
        a->n_fargs = r->n_fargs;
        for (int i = 0; i < r->n_fargs; i++) a->fargs[i] = farg_from(c, &r->fargs[i]);
        a->n_extra = r->n_extra;
        a->n_checks = r->n_checks;
        a->work = r->work;
        if (count_hits) ctx->counters.cache_hits_memory++;
    }
    ctx->counters.syncs_replayed++;
    return sp->n_steps;
}

int kl_step_plan_count(const kl_step_plan *sp) { return sp->n_steps; }

/* ---- recording ---- */

static void plan_free(kl_step_plan *sp)
{
    if (!sp) return;
    for (int s = 0; s < sp->n_steps; s++) {
        free(sp->steps[s].bufs);
        free(sp->steps[s].iargs);
        free(sp->steps[s].fargs);
    }
    free(sp->steps);
    free(sp->sig);
    free(sp->materialize);
    free(sp->n_siblings);
    free(sp->sibling_of);
    free(sp->siblings);
    free(sp->pattern_at);
    free(sp->patterns);
    free(sp);
}

void kl_step_record_abort(kl_context *ctx)
{
    kl_step_cache *c = ctx->step_cache;
    if (!c) return;
    plan_free(c->recording);
    c->recording = NULL;
}

/* A template of p (its vars NULL, nothing but its kind's fields) and their positions. */
static int record_pattern(const kl_step_cache *c, const kl_pattern *p, pattern_record *r)
{
    memset(r, 0, sizeof *r);
    r->p.kind = p->kind;
    r->p.dtype = p->dtype;
    r->p.a_layout = p->a_layout;
    r->p.residual_layout = p->residual_layout;
    r->p.out_layout = p->out_layout;
    switch (p->kind) {
    case KL_PATTERN_GEMM: r->p.gemm = p->gemm; break;
    case KL_PATTERN_CONV: r->p.conv = p->conv; break;
    case KL_PATTERN_SOFTMAX: r->p.softmax = p->softmax; break;
    case KL_PATTERN_LAYERNORM:
        r->p.layernorm.rows = p->layernorm.rows;
        r->p.layernorm.axis = p->layernorm.axis;
        break;
    }
    r->a = pos_of(c, p->a);
    r->b = pos_of(c, p->b);
    r->bias = r->eps = NO_VAR;
    if (p->kind == KL_PATTERN_LAYERNORM) {
        r->bias = pos_of(c, p->layernorm.bias);
        r->eps = pos_of(c, p->layernorm.eps);
        if ((p->layernorm.bias && r->bias == NO_VAR) || (p->layernorm.eps && r->eps == NO_VAR)) return 0;
    }
    int n_epilogue = p->kind == KL_PATTERN_CONV ? p->conv.epilogue.n : 0;
    for (int i = 0; i < KL_MAX_EPILOGUE; i++) {
        r->epilogue[i] = i < n_epilogue ? pos_of(c, p->epilogue_operand[i]) : NO_VAR;
        if (i < n_epilogue && p->epilogue_operand[i] && r->epilogue[i] == NO_VAR) return 0;
    }
    return r->a != NO_VAR && (!p->b || r->b != NO_VAR);
}

int kl_step_record_begin(kl_context *ctx)
{
    kl_step_cache *c = ctx->step_cache;
    kl_step_record_abort(ctx);
    if (!c || !c->signed_ok) return 0;
    int n = c->n_order;
    kl_step_plan *sp = calloc(1, sizeof *sp);
    if (!sp) return 0;
    c->recording = sp;
    sp->n_order = n;
    sp->hash = c->hash;
    sp->n_sig = c->n_sig;
    sp->sig = malloc(c->n_sig * sizeof *sp->sig);
    sp->materialize = malloc((size_t)n);
    sp->n_siblings = malloc((size_t)n);
    sp->sibling_of = malloc((size_t)n * sizeof *sp->sibling_of);
    sp->siblings = malloc((size_t)n * sizeof *sp->siblings);
    sp->pattern_at = malloc((size_t)n * sizeof *sp->pattern_at);
    int n_patterns = 0;
    for (int i = 0; i < n; i++) n_patterns += c->order[i]->pattern != NULL;
    sp->patterns = malloc((size_t)(n_patterns ? n_patterns : 1) * sizeof *sp->patterns);
    if (!sp->sig || !sp->materialize || !sp->n_siblings || !sp->sibling_of || !sp->siblings || !sp->pattern_at ||
        !sp->patterns) {
        kl_step_record_abort(ctx);
        return 0;
    }
    memcpy(sp->sig, c->sig, c->n_sig * sizeof *sp->sig);
    for (int i = 0; i < n; i++) {
        const kl_var *v = c->order[i];
        sp->materialize[i] = (uint8_t)(v->materialize != 0);
        sp->sibling_of[i] = v->sibling_of ? pos_of(c, v->sibling_of) : -1;
        sp->n_siblings[i] = v->n_siblings;
        int ok = !v->sibling_of || sp->sibling_of[i] >= 0;
        for (int j = 0; j < v->n_siblings; j++) ok &= (sp->siblings[i][j] = pos_of(c, v->siblings[j])) >= 0;
        sp->pattern_at[i] = -1;
        if (v->pattern) {
            ok &= record_pattern(c, v->pattern, &sp->patterns[sp->n_patterns]);
            sp->pattern_at[i] = sp->n_patterns++;
        }
        if (!ok) { /* a var planning reads that the signature does not name */
            kl_step_record_abort(ctx);
            return 0;
        }
    }
    return 1;
}

/* Appends st's record; for a kernel, kd is its description (its buffers and
 * where each argument came from). */
void kl_step_record_step(kl_context *ctx, const kl_step *st, const kl_kdesc *kd)
{
    kl_step_cache *c = ctx->step_cache;
    kl_step_plan *sp = c ? c->recording : NULL;
    if (!sp) return;
    if (sp->n_steps == sp->cap_steps) {
        int cap = sp->cap_steps ? 2 * sp->cap_steps : 64;
        step_record *p = realloc(sp->steps, (size_t)cap * sizeof *p);
        if (!p) { kl_step_record_abort(ctx); return; }
        sp->steps = p;
        sp->cap_steps = cap;
    }
    step_record *r = &sp->steps[sp->n_steps];
    memset(r, 0, sizeof *r);
    r->var = pos_of(c, st->v);
    r->is_alias = (uint8_t)st->is_alias;
    r->is_collective = (uint8_t)st->is_collective;
    r->is_library = st->pattern != NULL && !kd;
    int ok = r->var >= 0 && !st->is_code;
    if (ok && kd) {
        r->plan = st->plan;
        r->n_bufs = kd->h.n_bufs;
        r->n_iargs = kd->h.n_iargs;
        r->n_fargs = kd->h.n_fargs;
        r->n_extra = kd->h.n_extra;
        r->n_checks = kd->h.n_checks;
        r->work = st->args.work;
        r->bufs = malloc((size_t)(r->n_bufs ? r->n_bufs : 1) * sizeof *r->bufs);
        r->iargs = malloc((size_t)(r->n_iargs ? r->n_iargs : 1) * sizeof *r->iargs);
        r->fargs = malloc((size_t)(r->n_fargs ? r->n_fargs : 1) * sizeof *r->fargs);
        sp->n_steps++; /* held from here: freed with the record */
        ok = r->bufs && r->iargs && r->fargs;
        for (int i = 0; ok && i < r->n_bufs; i++) ok = (r->bufs[i] = pos_of(c, kd->bufs[i])) != NO_VAR;
        for (int i = 0; ok && i < r->n_iargs; i++) {
            arg_source *a = &r->iargs[i];
            memset(a, 0, sizeof *a);
            a->kind = kd->isrc[i].kind;
            a->dim = kd->isrc[i].dim;
            if (a->kind == KL_ARG_INDEX_CONST) a->value = kd->iargs[i];
            else ok = (a->pos = pos_of(c, kd->isrc[i].v)) != NO_VAR;
        }
        for (int i = 0; ok && i < r->n_fargs; i++) {
            arg_source *a = &r->fargs[i];
            memset(a, 0, sizeof *a);
            a->kind = kd->fsrc[i].kind;
            ok = (a->pos = pos_of(c, kd->fsrc[i].v)) != NO_VAR;
        }
    } else if (ok) {
        sp->n_steps++;
    }
    if (!ok) kl_step_record_abort(ctx);
}

static int same_sources(const arg_source *a, const arg_source *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i].pos != b[i].pos || a[i].kind != b[i].kind || a[i].dim != b[i].dim || a[i].value != b[i].value)
            return 0;
    return 1;
}

/* Where two records of one signature differ (NULL: nowhere). */
static const char *difference(const kl_step_plan *x, const kl_step_plan *y)
{
    int n = x->n_order;
    if (memcmp(x->materialize, y->materialize, (size_t)n) != 0) return "which vars are stored";
    if (memcmp(x->sibling_of, y->sibling_of, (size_t)n * sizeof *x->sibling_of) != 0 ||
        memcmp(x->n_siblings, y->n_siblings, (size_t)n) != 0)
        return "the siblings";
    for (int i = 0; i < n; i++)
        for (int j = 0; j < x->n_siblings[i]; j++)
            if (x->siblings[i][j] != y->siblings[i][j]) return "the siblings";
    if (memcmp(x->pattern_at, y->pattern_at, (size_t)n * sizeof *x->pattern_at) != 0) return "the library patterns";
    for (int i = 0; i < x->n_patterns; i++)
        if (memcmp(&x->patterns[i], &y->patterns[i], sizeof x->patterns[i]) != 0) return "a library pattern";
    if (x->n_steps != y->n_steps) return "the number of steps";
    for (int s = 0; s < x->n_steps; s++) {
        const step_record *a = &x->steps[s], *b = &y->steps[s];
        if (a->var != b->var || a->is_alias != b->is_alias || a->is_collective != b->is_collective ||
            a->is_library != b->is_library || a->plan != b->plan)
            return "a step's kind or kernel";
        if (!a->plan) continue;
        if (a->n_bufs != b->n_bufs || a->n_iargs != b->n_iargs || a->n_fargs != b->n_fargs ||
            a->n_extra != b->n_extra || a->n_checks != b->n_checks || a->work != b->work ||
            memcmp(a->bufs, b->bufs, (size_t)a->n_bufs * sizeof *a->bufs) != 0 ||
            !same_sources(a->iargs, b->iargs, a->n_iargs) || !same_sources(a->fargs, b->fargs, a->n_fargs))
            return "a kernel's buffers or arguments";
    }
    return NULL;
}

/* Where the arguments read from a record's sources differ from those
 * planning gave the sync's steps (NULL: nowhere). */
static const char *argument_difference(const kl_step_cache *c, const kl_step_plan *sp, const kl_step *steps)
{
    for (int s = 0; s < sp->n_steps; s++) {
        const step_record *r = &sp->steps[s];
        const kl_launch_plan *a = &steps[s].args;
        if (steps[s].v != c->order[r->var]) return "a step's var";
        for (int i = 0; r->plan && i < r->n_bufs; i++)
            if (var_at(c, r->bufs[i]) != a->bufs[i]) return "a kernel's buffer";
        for (int i = 0; r->plan && i < r->n_iargs; i++)
            if (iarg_from(c, &r->iargs[i]) != a->iargs[i]) return "a kernel's integer argument";
        for (int i = 0; r->plan && i < r->n_fargs; i++) {
            double v = farg_from(c, &r->fargs[i]);
            if (memcmp(&v, &a->fargs[i], sizeof v) != 0) return "a kernel's float argument";
        }
    }
    return NULL;
}

kl_status kl_step_record_check(kl_context *ctx, const kl_step_plan *against, const kl_step *steps)
{
    kl_step_cache *c = ctx->step_cache;
    kl_step_plan *sp = c ? c->recording : NULL;
    if (!sp) return KL_OK; /* not recorded (out of memory): nothing to compare */
    c->recording = NULL;
    const char *where = difference(against, sp);
    if (!where) where = argument_difference(c, against, steps);
    plan_free(sp);
    return where ? kl_error(KL_ERR_RUNTIME, "internal: the step cache's plan differs from a fresh one in %s", where)
                 : KL_OK;
}

void kl_step_record_end(kl_context *ctx)
{
    kl_step_cache *c = ctx->step_cache;
    kl_step_plan *sp = c ? c->recording : NULL;
    if (!sp) return;
    c->recording = NULL;
    for (int i = 0; i < c->n_plans; i++)
        if (c->plans[i]->hash == sp->hash && c->plans[i]->n_sig == sp->n_sig &&
            memcmp(c->plans[i]->sig, sp->sig, sp->n_sig * sizeof *sp->sig) == 0) {
            plan_free(c->plans[i]); /* one the device no longer ran as recorded: replaced */
            c->plans[i] = sp;
            return;
        }
    /* a program of many graphs, or of large ones: start again */
    if (c->n_plans == MAX_PLANS || c->kept_words + sp->n_sig > MAX_KEPT_WORDS) kl_step_cache_clear(c);
    c->plans[c->n_plans++] = sp;
    c->kept_words += sp->n_sig;
}

void kl_step_cache_clear(kl_step_cache *c)
{
    for (int i = 0; i < c->n_plans; i++) plan_free(c->plans[i]);
    c->n_plans = 0;
    c->kept_words = 0;
    plan_free(c->recording);
    c->recording = NULL;
}

void kl_step_cache_free(kl_step_cache *c)
{
    if (!c) return;
    kl_step_cache_clear(c);
    free(c->sig);
    free(c->ext);
    free(c);
}
