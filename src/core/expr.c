/* expr.c: a recursive-descent parser for index expressions, their checks and
 * printing. The tree it builds is what code generation walks; its size and
 * height are bounded while it is built, so no walker can overflow the stack. */
#include "core/expr.h"
#include "core/error.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parser recursion: each level of parentheses costs two (ternary, unary). */
#define MAX_DEPTH (2 * KL_EXPR_MAX_HEIGHT + 8)

typedef struct {
    const char *src, *p;
    int depth;
    int nodes;
    kl_status status;
} parser;

static kl_expr *fail(parser *ps, const char *what);

static kl_expr *node(parser *ps, kl_expr_kind kind, int64_t value)
{
    if (++ps->nodes > KL_EXPR_MAX_NODES) {
        ps->p = ps->src + strlen(ps->src);
        return fail(ps, "expression too long (more than 4096 terms)");
    }
    kl_expr *e = calloc(1, sizeof *e);
    if (e) { e->kind = kind; e->value = value; e->height = 1; }
    return e;
}

/* Sets e's height from its args (now attached); a tree taller than the
 * bound is freed and refused. */
static kl_expr *grown(parser *ps, kl_expr *e)
{
    int h = 0;
    for (int i = 0; i < e->n_args; i++) h = e->args[i]->height > h ? e->args[i]->height : h;
    e->height = h + 1;
    if (e->height <= KL_EXPR_MAX_HEIGHT) return e;
    kl_expr_free(e);
    return fail(ps, "expression nested too deeply (more than 128 levels)");
}

void kl_expr_free(kl_expr *e)
{
    if (!e) return;
    for (int i = 0; i < e->n_args; i++) kl_expr_free(e->args[i]);
    free(e);
}

kl_expr *kl_expr_clone(const kl_expr *e)
{
    if (!e) return NULL;
    kl_expr *c = malloc(sizeof *c);
    if (!c) return NULL;
    *c = *e;
    for (int i = 0; i < e->n_args; i++) c->args[i] = kl_expr_clone(e->args[i]);
    return c;
}

static kl_expr *fail(parser *ps, const char *what)
{
    if (ps->status == KL_OK) {
        int long_src = strlen(ps->src) > 120;
        ps->status = kl_error(KL_ERR_VALUE, "bad index expression \"%.120s%s\": %s at column %d",
                              ps->src, long_src ? "..." : "", what, (int)(ps->p - ps->src) + 1);
    }
    return NULL;
}

static void skip_space(parser *ps) { while (isspace((unsigned char)*ps->p)) ps->p++; }

static int accept(parser *ps, const char *tok)
{
    skip_space(ps);
    size_t n = strlen(tok);
    if (strncmp(ps->p, tok, n) != 0) return 0;
    /* "<" must not swallow "<=", "&" is not "&&" */
    if (n == 1 && (tok[0] == '<' || tok[0] == '>' || tok[0] == '!' || tok[0] == '=') && ps->p[1] == '=')
        return 0;
    ps->p += n;
    return 1;
}

/* a op b on constants, as the generated code computes it (C division,
 * truncating); 0 with *why set on overflow or division by zero. */
static int fold_binary(kl_expr_binop op, int64_t a, int64_t b, int64_t *out, const char **why)
{
    *why = "integer overflow in a constant part of the expression";
    switch (op) {
    case KL_EXB_ADD: return !__builtin_add_overflow(a, b, out);
    case KL_EXB_SUB: return !__builtin_sub_overflow(a, b, out);
    case KL_EXB_MUL: return !__builtin_mul_overflow(a, b, out);
    case KL_EXB_DIV: case KL_EXB_MOD:
        if (b == 0) { *why = "division by zero in a constant part of the expression"; return 0; }
        if (a == INT64_MIN && b == -1) return 0;
        *out = op == KL_EXB_DIV ? a / b : a % b;
        return 1;
    case KL_EXB_LT: *out = a < b; return 1;
    case KL_EXB_LE: *out = a <= b; return 1;
    case KL_EXB_GT: *out = a > b; return 1;
    case KL_EXB_GE: *out = a >= b; return 1;
    case KL_EXB_EQ: *out = a == b; return 1;
    case KL_EXB_NE: *out = a != b; return 1;
    case KL_EXB_AND: *out = a && b; return 1;
    case KL_EXB_OR: *out = a || b; return 1;
    }
    return 0;
}

static kl_expr *binary(parser *ps, kl_expr_binop op, kl_expr *a, kl_expr *b)
{
    if (!a || !b) { kl_expr_free(a); kl_expr_free(b); return NULL; }
    if (a->kind == KL_EX_INT && b->kind == KL_EX_INT) {
        int64_t v;
        const char *why;
        int ok = fold_binary(op, a->value, b->value, &v, &why);
        kl_expr_free(b);
        if (!ok) { kl_expr_free(a); return fail(ps, why); }
        a->value = v;
        return a;
    }
    kl_expr *e = node(ps, KL_EX_BINARY, 0);
    if (!e) { kl_expr_free(a); kl_expr_free(b); return NULL; }
    e->op = op; e->n_args = 2; e->args[0] = a; e->args[1] = b;
    return grown(ps, e);
}

static kl_expr *parse_ternary(parser *ps);

/* Reads "(e, e, ...)" into e->args. */
static kl_expr *parse_call_args(parser *ps, kl_expr *e, int min_args, int max_args)
{
    if (!accept(ps, "(")) { kl_expr_free(e); return fail(ps, "expected '('"); }
    if (accept(ps, ")") && min_args == 0) return e;
    do {
        if (e->n_args >= max_args) { kl_expr_free(e); return fail(ps, "too many arguments"); }
        kl_expr *a = parse_ternary(ps);
        if (!a) { kl_expr_free(e); return NULL; }
        e->args[e->n_args++] = a;
    } while (accept(ps, ","));
    if (!accept(ps, ")")) { kl_expr_free(e); return fail(ps, "expected ')'"); }
    if (e->n_args < min_args) { kl_expr_free(e); return fail(ps, "too few arguments"); }
    return grown(ps, e);
}

/* 1: a number was read; 0: none here; -1: one too large for int64 (failed). */
static int read_number(parser *ps, int64_t *out)
{
    if (!isdigit((unsigned char)*ps->p)) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(ps->p, &end, 10);
    if (errno == ERANGE) { fail(ps, "integer literal out of range"); return -1; }
    ps->p = end;
    *out = v;
    return 1;
}

static kl_expr *parse_primary(parser *ps)
{
    int64_t v;
    skip_space(ps);
    int number = read_number(ps, &v);
    if (number) return number > 0 ? node(ps, KL_EX_INT, v) : NULL;
    if (accept(ps, "(")) {
        kl_expr *e = parse_ternary(ps);
        if (e && !accept(ps, ")")) { kl_expr_free(e); return fail(ps, "expected ')'"); }
        return e;
    }
    if (accept(ps, "@e")) {
        number = read_number(ps, &v);
        if (number <= 0) return number ? NULL : fail(ps, "expected extra number after '@e'");
        kl_expr *e = node(ps, KL_EX_EXTRA, v);
        return e ? parse_call_args(ps, e, 0, KL_MAX_DIMS) : NULL;
    }
    const char *start = ps->p;
    while (isalnum((unsigned char)*ps->p) || *ps->p == '_') ps->p++;
    size_t n = (size_t)(ps->p - start);
    if (n == 0) return fail(ps, *ps->p ? "unexpected character" : "unexpected end");
    static const struct { const char *prefix; kl_expr_kind kind; } names[] = {
        {"xshape", KL_EX_XSHAPE}, {"yshape", KL_EX_YSHAPE}, {"i", KL_EX_INDEX},
    };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        size_t pl = strlen(names[k].prefix);
        if (n > pl && strncmp(start, names[k].prefix, pl) == 0) {
            char *end;
            long idx = strtol(start + pl, &end, 10);
            if (end == ps->p && isdigit((unsigned char)start[pl])) return node(ps, names[k].kind, idx);
        }
    }
    if (n == 4 && strncmp(start, "XDIM", 4) == 0) return node(ps, KL_EX_XDIM, 0);
    if (n == 4 && strncmp(start, "YDIM", 4) == 0) return node(ps, KL_EX_YDIM, 0);
    if (n == 3 && (strncmp(start, "min", 3) == 0 || strncmp(start, "max", 3) == 0)) {
        kl_expr *e = node(ps, start[1] == 'i' ? KL_EX_MIN : KL_EX_MAX, 0);
        return e ? parse_call_args(ps, e, 2, 2) : NULL;
    }
    ps->p = start;
    char msg[96];
    snprintf(msg, sizeof msg, "unknown name '%.*s'", (int)(n > 40 ? 40 : n), start);
    return fail(ps, msg);
}

static kl_expr *parse_unary(parser *ps)
{
    if (++ps->depth > MAX_DEPTH) return fail(ps, "expression nested too deeply");
    kl_expr *e;
    if (accept(ps, "-") || accept(ps, "!")) {
        kl_expr_kind kind = ps->p[-1] == '-' ? KL_EX_NEG : KL_EX_NOT;
        kl_expr *a = parse_unary(ps);
        if (a && a->kind == KL_EX_INT && (kind == KL_EX_NOT || a->value != INT64_MIN)) {
            a->value = kind == KL_EX_NOT ? !a->value : -a->value; /* folded */
            e = a;
        } else if (a && a->kind == KL_EX_INT) {
            kl_expr_free(a);
            e = fail(ps, "integer overflow in a constant part of the expression");
        } else {
            e = a ? node(ps, kind, 0) : NULL;
            if (e) { e->n_args = 1; e->args[0] = a; e = grown(ps, e); } else kl_expr_free(a);
        }
    } else if (accept(ps, "+")) {
        e = parse_unary(ps);
    } else {
        e = parse_primary(ps);
    }
    ps->depth--;
    return e;
}

typedef struct { const char *tok; kl_expr_binop op; } binop_tok;

/* One precedence level: operand (op operand)*, left-associative. */
static kl_expr *parse_level(parser *ps, int level);

static const binop_tok levels[][4] = {
    {{"||", KL_EXB_OR}},
    {{"&&", KL_EXB_AND}},
    {{"==", KL_EXB_EQ}, {"!=", KL_EXB_NE}},
    {{"<=", KL_EXB_LE}, {">=", KL_EXB_GE}, {"<", KL_EXB_LT}, {">", KL_EXB_GT}},
    {{"+", KL_EXB_ADD}, {"-", KL_EXB_SUB}},
    {{"*", KL_EXB_MUL}, {"/", KL_EXB_DIV}, {"%", KL_EXB_MOD}},
};
#define N_LEVELS ((int)(sizeof levels / sizeof levels[0]))

static kl_expr *parse_level(parser *ps, int level)
{
    if (level == N_LEVELS) return parse_unary(ps);
    kl_expr *e = parse_level(ps, level + 1);
    while (e) {
        int matched = 0;
        for (int k = 0; k < 4 && levels[level][k].tok; k++) {
            if (accept(ps, levels[level][k].tok)) {
                e = binary(ps, levels[level][k].op, e, parse_level(ps, level + 1));
                matched = 1;
                break;
            }
        }
        if (!matched) break;
    }
    return e;
}

static kl_expr *parse_ternary(parser *ps)
{
    if (++ps->depth > MAX_DEPTH) return fail(ps, "expression nested too deeply");
    kl_expr *c = parse_level(ps, 0);
    if (c && accept(ps, "?")) {
        kl_expr *a = parse_ternary(ps);
        kl_expr *b = (a && accept(ps, ":")) ? parse_ternary(ps) : (a ? fail(ps, "expected ':'") : NULL);
        kl_expr *e = (a && b) ? node(ps, KL_EX_SELECT, 0) : NULL;
        if (!e) { kl_expr_free(c); kl_expr_free(a); kl_expr_free(b); c = NULL; }
        else { e->n_args = 3; e->args[0] = c; e->args[1] = a; e->args[2] = b; c = grown(ps, e); }
    }
    ps->depth--;
    return c;
}

kl_status kl_expr_parse(const char *src, kl_expr **out)
{
    *out = NULL;
    if (!src) return kl_error(KL_ERR_VALUE, "index expression is NULL");
    parser ps = {src, src, 0, 0, KL_OK};
    kl_expr *e = parse_ternary(&ps);
    skip_space(&ps);
    if (e && *ps.p) { kl_expr_free(e); e = fail(&ps, "unexpected text"); }
    if (!e) return ps.status != KL_OK ? ps.status : kl_error(KL_ERR_MEMORY, "out of memory parsing \"%s\"", src);
    *out = e;
    return KL_OK;
}

kl_status kl_expr_validate(const kl_expr *e, const char *src, int n_index, int xdim, int ydim,
                           int n_extras, const int *extra_ndims)
{
    const char *what = NULL;
    int64_t v = e->value;
    switch (e->kind) {
    case KL_EX_INDEX: if (v < 0 || v >= n_index) what = "index i%lld is outside the %d loop dims"; break;
    case KL_EX_XSHAPE: if (v < 0 || v >= xdim) what = "xshape%lld is outside x's %d dims"; break;
    case KL_EX_YSHAPE: if (v < 0 || v >= ydim) what = "yshape%lld is outside y's %d dims"; break;
    case KL_EX_EXTRA:
        if (v < 0 || v >= n_extras) what = "@e%lld names an extra input, but only %d were given";
        else if (e->n_args != extra_ndims[v])
            return kl_error(KL_ERR_VALUE, "bad index expression \"%s\": @e%lld takes %d indexes, got %d",
                            src, (long long)v, extra_ndims[v], e->n_args);
        break;
    default: break;
    }
    if (what) {
        char fmt[160];
        snprintf(fmt, sizeof fmt, "bad index expression \"%%s\": %s", what);
        int bound = e->kind == KL_EX_INDEX ? n_index : e->kind == KL_EX_XSHAPE ? xdim
                  : e->kind == KL_EX_YSHAPE ? ydim : n_extras;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        return kl_error(KL_ERR_VALUE, fmt, src, (long long)v, bound);
#pragma GCC diagnostic pop
    }
    for (int i = 0; i < e->n_args; i++)
        KL_TRY(kl_expr_validate(e->args[i], src, n_index, xdim, ydim, n_extras, extra_ndims));
    return KL_OK;
}

static const char *const binop_text[] = {
    [KL_EXB_ADD] = "+", [KL_EXB_SUB] = "-", [KL_EXB_MUL] = "*", [KL_EXB_DIV] = "/",
    [KL_EXB_MOD] = "%", [KL_EXB_LT] = "<", [KL_EXB_LE] = "<=", [KL_EXB_GT] = ">",
    [KL_EXB_GE] = ">=", [KL_EXB_EQ] = "==", [KL_EXB_NE] = "!=", [KL_EXB_AND] = "&&",
    [KL_EXB_OR] = "||",
};

const char *kl_expr_binop_text(int op) { return binop_text[op]; }

static size_t print_rec(const kl_expr *e, char *buf, size_t size, size_t pos)
{
#define OUT(...) pos += (size_t)snprintf(buf + (pos < size ? pos : size), pos < size ? size - pos : 0, __VA_ARGS__)
    long long v = (long long)e->value;
    switch (e->kind) {
    case KL_EX_INT:
        if (e->value == INT64_MIN) OUT("(-9223372036854775807-1)"); /* re-parses: no literal holds it */
        else OUT("%lld", v);
        break;
    case KL_EX_INDEX: OUT("i%lld", v); break;
    case KL_EX_XSHAPE: OUT("xshape%lld", v); break;
    case KL_EX_YSHAPE: OUT("yshape%lld", v); break;
    case KL_EX_XDIM: OUT("XDIM"); break;
    case KL_EX_YDIM: OUT("YDIM"); break;
    /* no parentheses of their own: infix operands print theirs, so the text
     * nests no deeper than the tree and always parses back */
    case KL_EX_NEG: OUT("-"); pos = print_rec(e->args[0], buf, size, pos); break;
    case KL_EX_NOT: OUT("!"); pos = print_rec(e->args[0], buf, size, pos); break;
    case KL_EX_BINARY:
        OUT("(");
        pos = print_rec(e->args[0], buf, size, pos);
        OUT("%s", binop_text[e->op]);
        pos = print_rec(e->args[1], buf, size, pos);
        OUT(")");
        break;
    case KL_EX_SELECT:
        OUT("(");
        pos = print_rec(e->args[0], buf, size, pos);
        OUT("?");
        pos = print_rec(e->args[1], buf, size, pos);
        OUT(":");
        pos = print_rec(e->args[2], buf, size, pos);
        OUT(")");
        break;
    case KL_EX_MIN: case KL_EX_MAX: case KL_EX_EXTRA:
        if (e->kind == KL_EX_EXTRA) OUT("@e%lld(", v);
        else OUT("%s(", e->kind == KL_EX_MIN ? "min" : "max");
        for (int i = 0; i < e->n_args; i++) {
            if (i) OUT(",");
            pos = print_rec(e->args[i], buf, size, pos);
        }
        OUT(")");
        break;
    }
    return pos;
#undef OUT
}

void kl_expr_print(const kl_expr *e, char *buf, size_t size)
{
    if (size) buf[0] = 0;
    print_rec(e, buf, size, 0);
}

/* Constants fold while parsing; what remains constant here is a literal. */
static int constant_of(const kl_expr *e, int64_t *out)
{
    if (e->kind != KL_EX_INT) return 0;
    *out = e->value;
    return 1;
}

/* Adds mult * e to a; 0 when e is not affine in i0..i<R-1> or a coefficient
 * would overflow int64. */
static int add_affine(const kl_expr *e, int64_t mult, int R, kl_affine *a)
{
    int64_t k, t;
    switch (e->kind) {
    case KL_EX_INT:
        return !__builtin_mul_overflow(mult, e->value, &t) && !__builtin_add_overflow(a->constant, t, &a->constant);
    case KL_EX_INDEX:
        if (e->value < 0 || e->value >= R) return 0;
        return !__builtin_add_overflow(a->coef[e->value], mult, &a->coef[e->value]);
    case KL_EX_NEG: return mult != INT64_MIN && add_affine(e->args[0], -mult, R, a);
    case KL_EX_BINARY:
        if (e->op == KL_EXB_ADD) return add_affine(e->args[0], mult, R, a) && add_affine(e->args[1], mult, R, a);
        if (e->op == KL_EXB_SUB)
            return mult != INT64_MIN && add_affine(e->args[0], mult, R, a) && add_affine(e->args[1], -mult, R, a);
        if (e->op != KL_EXB_MUL) return 0;
        if (constant_of(e->args[0], &k))
            return !__builtin_mul_overflow(mult, k, &t) && add_affine(e->args[1], t, R, a);
        if (constant_of(e->args[1], &k))
            return !__builtin_mul_overflow(mult, k, &t) && add_affine(e->args[0], t, R, a);
        return 0;
    default: return 0;
    }
}

int kl_expr_affine(const kl_expr *e, int n_index, kl_affine *a)
{
    memset(a, 0, sizeof *a);
    return add_affine(e, 1, n_index, a);
}
