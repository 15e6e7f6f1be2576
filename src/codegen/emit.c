/* emit.c: the emitter's bookkeeping (buffers, arguments, temps, memo) and the
 * dispatch from a var's op to its family's emit function in src/ops/. */
#include "codegen/emit.h"
#include "core/context.h"
#include "core/dtype.h"
#include "ops/ops.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kl_emitter_init(kl_emitter *em, kl_var *root)
{
    /* the big tables are filled before they are read: zero the scalars only */
    em->body = em->comment = em->decls = (kl_strbuf){0};
    em->n_iargs = em->n_fargs = em->n_shapes = em->n_memo = em->n_locals = em->n_temps = 0;
    em->needs_coords = 0;
    em->arena = NULL;
    em->n_arena = em->cap_arena = 0;
    em->root = root;
    em->status = KL_OK;
    em->n_bufs = 1;
    em->bufs[0] = root;
    kl_emit_local(em, root);
}

void kl_emitter_free(kl_emitter *em)
{
    for (int i = 0; i < em->n_arena; i++) free(em->arena[i]);
    free(em->arena);
    kl_sb_free(&em->body);
    kl_sb_free(&em->decls);
    kl_sb_free(&em->comment);
}

const char *kl_emit_fail(kl_emitter *em, kl_status s)
{
    if (em->status == KL_OK) em->status = s;
    return NULL;
}

static const char *keep(kl_emitter *em, char *s)
{
    if (!s) return kl_emit_fail(em, kl_error(KL_ERR_MEMORY, "out of memory generating a kernel"));
    if (em->n_arena == em->cap_arena) {
        int cap = em->cap_arena ? 2 * em->cap_arena : 64;
        char **a = realloc(em->arena, (size_t)cap * sizeof *a);
        if (!a) { free(s); return kl_emit_fail(em, kl_error(KL_ERR_MEMORY, "out of memory generating a kernel")); }
        em->arena = a;
        em->cap_arena = cap;
    }
    em->arena[em->n_arena++] = s;
    return s;
}

static const char *vformat(kl_emitter *em, const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    return keep(em, s);
}

const char *kl_emit_str(kl_emitter *em, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *s = vformat(em, fmt, ap);
    va_end(ap);
    return s;
}

const char *kl_emit_temp(kl_emitter *em, const char *ctype, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *expr = vformat(em, fmt, ap);
    va_end(ap);
    if (!expr) return NULL;
    const char *name = kl_emit_str(em, "t%d", em->n_temps++);
    kl_sb_printf(&em->body, "        const %s %s = %s;\n", ctype, name, expr);
    return name;
}

int kl_emit_local(kl_emitter *em, kl_var *v)
{
    for (int i = 0; i < em->n_locals; i++)
        if (em->locals[i] == v) return i;
    if (em->n_locals == (int)(sizeof em->locals / sizeof em->locals[0])) {
        kl_emit_fail(em, kl_error(KL_ERR_RUNTIME, "kernel too large: more than 256 fused vars"));
        return 0;
    }
    em->locals[em->n_locals] = v;
    return em->n_locals++;
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

/* A double as int64, saturating (NaN: 0): never the undefined conversion. */
static int64_t saturate_i64(double d)
{
    if (d != d) return 0;
    if (d >= 9223372036854775808.0) return INT64_MAX;
    if (d < -9223372036854775808.0) return INT64_MIN;
    return (int64_t)d;
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

static int add_iarg(kl_emitter *em, kl_var *v, kl_arg_kind kind, int dim)
{
    if (em->n_iargs == KL_EMIT_MAX_IARGS) {
        kl_emit_fail(em, kl_error(KL_ERR_RUNTIME, "kernel too large: too many integer arguments"));
        return 0;
    }
    em->iargs[em->n_iargs] = kl_arg_int(v, kind, dim);
    em->isrc[em->n_iargs] = (kl_arg_source){v, (uint8_t)kind, (uint8_t)dim};
    return em->n_iargs++;
}

const char *kl_emit_shape(kl_emitter *em, kl_var *v, int dim)
{
    int local = kl_emit_local(em, v);
    for (int i = 0; i < em->n_shapes; i++)
        if (em->shapes[i].v == v && em->shapes[i].dim == dim)
            return kl_emit_str(em, "v%d_s%d", local, dim);
    int arg = add_iarg(em, v, KL_ARG_SHAPE, dim);
    em->shapes[em->n_shapes].v = v;
    em->shapes[em->n_shapes].dim = dim;
    em->shapes[em->n_shapes++].arg = arg;
    kl_sb_printf(&em->decls, "    const int64_t v%d_s%d = iarg[%d];\n", local, dim, arg);
    return kl_emit_str(em, "v%d_s%d", local, dim);
}

const char *kl_emit_iarg(kl_emitter *em, kl_var *v, kl_arg_kind kind)
{
    int arg = add_iarg(em, v, kind, 0);
    kl_sb_printf(&em->decls, "    const int64_t k%d = iarg[%d];\n", arg, arg);
    return kl_emit_str(em, "k%d", arg);
}

const char *kl_emit_farg(kl_emitter *em, kl_var *v, kl_arg_kind kind)
{
    if (em->n_fargs == KL_EMIT_MAX_FARGS)
        return kl_emit_fail(em, kl_error(KL_ERR_RUNTIME, "kernel too large: too many scalar arguments"));
    int arg = em->n_fargs;
    em->fsrc[arg] = (kl_arg_source){v, (uint8_t)kind, 0};
    em->fargs[em->n_fargs++] = kl_arg_value(v, kind, 0);
    kl_sb_printf(&em->decls, "    const double f%d = farg[%d];\n", arg, arg);
    return kl_emit_str(em, "f%d", arg);
}

int kl_emit_buffer(kl_emitter *em, kl_var *v)
{
    for (int i = 0; i < em->n_bufs; i++)
        if (em->bufs[i] == v) return i;
    if (em->n_bufs == KL_EMIT_MAX_BUFS) {
        kl_emit_fail(em, kl_error(KL_ERR_RUNTIME, "kernel too large: more than %d inputs", KL_EMIT_MAX_BUFS));
        return -1;
    }
    int b = em->n_bufs++;
    em->bufs[b] = v;
    const char *t = kl_dtype_ctype(v->dtype);
    kl_sb_printf(&em->decls, "    const %s *restrict b%d = (const %s *)buf[%d]; /* v%d */\n",
                 t, b, t, b, kl_emit_local(em, v));
    return b;
}

kl_coords kl_emit_loop_coords(int n, int for_map)
{
    static const char *const names[KL_MAX_DIMS] = {"i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7"};
    kl_coords c = {.n = n, .identity = for_map};
    for (int k = 0; k < n; k++) c.c[k] = names[k];
    return c;
}

const char *kl_emit_offset(kl_emitter *em, kl_var *v, const kl_coords *c)
{
    if (c->identity && v->ndim == c->n) return "li";
    em->needs_coords = 1;
    if (v->ndim == 0) return "0";
    kl_strbuf sb = {0};
    kl_sb_printf(&sb, "%s", c->c[0]);
    for (int k = 1; k < v->ndim; k++) {
        const char *s = kl_emit_shape(em, v, k);
        char *prev = kl_sb_take(&sb);
        kl_sb_printf(&sb, "(%s)*%s + %s", prev, s, c->c[k]);
        free(prev);
    }
    return keep(em, kl_sb_take(&sb));
}

kl_coords kl_emit_broadcast_coords(kl_emitter *em, const kl_coords *c, kl_var *out, kl_var *in)
{
    int same = in->ndim == out->ndim;
    for (int k = 0; same && k < in->ndim; k++) same = in->shape[k] == out->shape[k];
    if (same) return *c;
    kl_coords r = {.n = in->ndim, .identity = 0};
    int lead = c->n - in->ndim;
    for (int k = 0; k < in->ndim; k++) r.c[k] = in->shape[k] == 1 ? "0" : c->c[lead + k];
    em->needs_coords = 1;
    return r;
}

const char *kl_emit_convert(kl_emitter *em, const char *temp, kl_dtype from, kl_dtype to)
{
    if (strcmp(kl_dtype_compute_ctype(from), kl_dtype_compute_ctype(to)) == 0 && to != KL_BOOL) return temp;
    if (to == KL_BOOL) return kl_emit_str(em, "(uint8_t)(%s != 0)", temp);
    return kl_emit_str(em, "(%s)%s", kl_dtype_compute_ctype(to), temp);
}

static const char *index_text(kl_emitter *em, const kl_expr *e, const kl_coords *idx,
                              kl_var *x, kl_var *y, kl_var *const *extras)
{
    const char *a = NULL, *b = NULL;
    if (e->n_args >= 1 && e->kind != KL_EX_EXTRA) a = index_text(em, e->args[0], idx, x, y, extras);
    if (e->n_args >= 2 && e->kind != KL_EX_EXTRA) b = index_text(em, e->args[1], idx, x, y, extras);
    if (em->status != KL_OK) return NULL;
    switch (e->kind) {
    case KL_EX_INT:
        if (e->value == INT64_MIN) return "INT64_MIN"; /* its literal would not fit */
        return kl_emit_str(em, "INT64_C(%lld)", (long long)e->value);
    case KL_EX_INDEX: em->needs_coords = 1; return kl_emit_str(em, "(int64_t)(%s)", idx->c[e->value]);
    case KL_EX_XSHAPE: return kl_emit_shape(em, x, (int)e->value);
    case KL_EX_YSHAPE: return kl_emit_shape(em, y, (int)e->value);
    case KL_EX_XDIM: return kl_emit_str(em, "%d", x->ndim);
    case KL_EX_YDIM: return kl_emit_str(em, "%d", y->ndim);
    case KL_EX_NEG: return kl_emit_str(em, "(-%s)", a);
    case KL_EX_NOT: return kl_emit_str(em, "(int64_t)!%s", a);
    case KL_EX_MIN: return kl_emit_str(em, "kl_min_i64(%s, %s)", a, b);
    case KL_EX_MAX: return kl_emit_str(em, "kl_max_i64(%s, %s)", a, b);
    case KL_EX_SELECT: {
        const char *c2 = index_text(em, e->args[2], idx, x, y, extras);
        return c2 ? kl_emit_str(em, "(%s ? %s : %s)", a, b, c2) : NULL;
    }
    case KL_EX_BINARY: {
        int literal_divisor = e->args[1]->kind == KL_EX_INT && e->args[1]->value > 0;
        if (e->op == KL_EXB_DIV && !literal_divisor) return kl_emit_str(em, "kl_idiv(%s, %s)", a, b);
        if (e->op == KL_EXB_MOD && !literal_divisor) return kl_emit_str(em, "kl_imod(%s, %s)", a, b);
        return kl_emit_str(em, "(int64_t)(%s %s %s)", a, kl_expr_binop_text(e->op), b);
    }
    case KL_EX_EXTRA: {
        kl_var *ex = extras[e->value];
        kl_coords ec = {.n = ex->ndim, .identity = 0};
        for (int k = 0; k < ex->ndim; k++) {
            const char *arg = index_text(em, e->args[k], idx, x, y, extras);
            if (!arg) return NULL;
            /* clamped: a bad index in user data must not read outside the buffer */
            ec.c[k] = kl_emit_temp(em, "int64_t", "kl_clamp_i64(%s, %s)", arg, kl_emit_shape(em, ex, k));
        }
        int buf = kl_emit_buffer(em, ex);
        const char *off = kl_emit_offset(em, ex, &ec);
        if (buf < 0 || !off) return NULL;
        return kl_emit_temp(em, "int64_t", "(int64_t)b%d[%s]", buf, off);
    }
    }
    return NULL;
}

const char *kl_emit_index_expr(kl_emitter *em, const kl_expr *e, const kl_coords *idx,
                               kl_var *x, kl_var *y, kl_var *const *extras)
{
    const char *text = index_text(em, e, idx, x, y, extras);
    return text ? kl_emit_temp(em, "int64_t", "%s", text) : NULL;
}

const char *kl_load_emit(kl_emitter *em, kl_var *v, const kl_coords *c)
{
    int b = kl_emit_buffer(em, v);
    const char *off = kl_emit_offset(em, v, c);
    if (b < 0 || !off) return NULL;
    if (v->dtype == KL_FLOAT16) return kl_emit_temp(em, "float", "(float)b%d[%s]", b, off);
    return kl_emit_temp(em, kl_dtype_compute_ctype(v->dtype), "b%d[%s]", b, off);
}

typedef const char *(*emit_fn)(kl_emitter *em, kl_var *v, const kl_coords *c);

static const emit_fn emit_of[KL_OP_KIND_COUNT] = {
#define KL_OP(ID, name, emit, backward, traits) [KL_OP_##ID] = emit,
#include "ops/ops.def"
#undef KL_OP
};

static const char *memo_key(kl_emitter *em, const kl_coords *c)
{
    kl_strbuf sb = {0};
    kl_sb_printf(&sb, "%d|", c->identity);
    for (int k = 0; k < c->n; k++) kl_sb_printf(&sb, "%s,", c->c[k]);
    return keep(em, kl_sb_take(&sb));
}

const char *kl_emit(kl_emitter *em, kl_var *v, const kl_coords *c)
{
    if (em->status != KL_OK) return NULL;
    const char *key = memo_key(em, c);
    if (!key) return NULL;
    for (int i = 0; i < em->n_memo; i++)
        if (em->memo[i].v == v && strcmp(em->memo[i].coords, key) == 0) return em->memo[i].temp;
    const char *r;
    if (v != em->root && (v->buf || v->materialize)) {
        r = kl_load_emit(em, v, c);
    } else {
        kl_emit_local(em, v);
        if (!emit_of[v->op.kind])
            return kl_emit_fail(em, kl_error(KL_ERR_RUNTIME, "internal: %s cannot be inlined",
                                             kl_op_kind_name(v->op.kind)));
        r = emit_of[v->op.kind](em, v, c);
    }
    if (r && em->n_memo < KL_EMIT_MAX_MEMO) {
        em->memo[em->n_memo].v = v;
        em->memo[em->n_memo].coords = key;
        em->memo[em->n_memo++].temp = r;
    }
    return r;
}
