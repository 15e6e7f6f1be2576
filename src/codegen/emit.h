/* emit.h: the kernel emitter. A fused kernel is one loop nest; the emitter
 * walks the graph from the kernel's root and writes one SSA statement per
 * inlined op into the loop body, turning materialised vars into loads.
 * Shapes and scalars become runtime arguments, so the text (the cache key)
 * depends on structure and dtypes only. */
#ifndef KL_EMIT_H
#define KL_EMIT_H

#include "core/graph.h"
#include "codegen/strbuf.h"

#define KL_EMIT_MAX_BUFS 64
#define KL_EMIT_MAX_IARGS 512
#define KL_EMIT_MAX_FARGS 128
#define KL_EMIT_MAX_MEMO 512

/* Coordinates of the element being computed, as C index expressions.
 * identity: c[k] is the loop index i<k> of a map kernel over the same shape,
 * so the linear index "li" addresses the element directly. */
typedef struct {
    int n;
    int identity;
    const char *c[KL_MAX_DIMS];
} kl_coords;

typedef struct {
    kl_var *v;
    const char *coords; /* coords joined, the memo key with v */
    const char *temp;
} kl_emit_memo;

/* Where a kernel argument's value comes from, so a cached plan can read the
 * arguments of a new graph of the same structure without generating text. */
typedef enum {
    KL_ARG_SHAPE, KL_ARG_FULL, KL_ARG_SEED, KL_ARG_OFFSET, KL_ARG_RAND_A, KL_ARG_RAND_B, KL_ARG_OVERFLOW,
    KL_ARG_CHECK_LO, KL_ARG_CHECK_HI, KL_ARG_CHECK_WHAT, KL_ARG_CHECK_RECORD
} kl_arg_kind;

typedef struct {
    kl_var *v;
    uint8_t kind, dim;
} kl_arg_source;

/* The value of an argument of kind on v (integer arguments truncate). */
double kl_arg_value(const kl_var *v, kl_arg_kind kind, int dim);
/* The same for integer arguments, exact for all 64 bits (seeds). */
int64_t kl_arg_int(const kl_var *v, kl_arg_kind kind, int dim);

typedef struct kl_emitter {
    kl_var *root;
    kl_strbuf body;        /* statements of the innermost loop body */
    kl_strbuf comment;     /* what the kernel computes, for readers */
    int n_bufs;            /* bufs[0] is the output */
    kl_var *bufs[KL_EMIT_MAX_BUFS];
    int n_iargs, n_fargs;
    int64_t iargs[KL_EMIT_MAX_IARGS];
    double fargs[KL_EMIT_MAX_FARGS];
    kl_arg_source isrc[KL_EMIT_MAX_IARGS], fsrc[KL_EMIT_MAX_FARGS];
    struct { kl_var *v; int dim; int arg; } shapes[KL_EMIT_MAX_IARGS];
    int n_shapes;
    kl_strbuf decls;       /* argument declarations at the top of the kernel */
    kl_emit_memo memo[KL_EMIT_MAX_MEMO];
    int n_memo;
    kl_var *locals[256];   /* vars in order of first sight: their names in the text */
    int n_locals;
    int n_temps;
    int needs_coords;
    kl_status status;
    char **arena;          /* strings owned by the emitter */
    int n_arena, cap_arena;
} kl_emitter;

void kl_emitter_init(kl_emitter *em, kl_var *root);
void kl_emitter_free(kl_emitter *em);

/* The value of v at c, as the name of a temp (or a literal). NULL after an error. */
const char *kl_emit(kl_emitter *em, kl_var *v, const kl_coords *c);

/* printf into memory the emitter owns. */
const char *kl_emit_str(kl_emitter *em, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends "const <ctype> tN = <expr>;" to the body and returns "tN". */
const char *kl_emit_temp(kl_emitter *em, const char *ctype, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Name of the runtime argument holding v->shape[dim]. */
const char *kl_emit_shape(kl_emitter *em, kl_var *v, int dim);
/* A scalar argument: the value of kind on v (see kl_arg_kind). */
const char *kl_emit_iarg(kl_emitter *em, kl_var *v, kl_arg_kind kind);
const char *kl_emit_farg(kl_emitter *em, kl_var *v, kl_arg_kind kind);
/* Index of v in the kernel's buffer table (adding it), or -1 when full. */
int kl_emit_buffer(kl_emitter *em, kl_var *v);
/* The local name used for v in comments and argument names. */
int kl_emit_local(kl_emitter *em, kl_var *v);
/* Linear element offset of c in a contiguous var of v's shape. */
const char *kl_emit_offset(kl_emitter *em, kl_var *v, const kl_coords *c);
/* c mapped onto in (NumPy broadcasting, right-aligned) from an output of rank c->n. */
kl_coords kl_emit_broadcast_coords(kl_emitter *em, const kl_coords *c, kl_var *out, kl_var *in);
/* An index expression rendered as a hoisted int64 temp. i<k> reads idx->c[k];
 * xshape/yshape read x's and y's shapes; @e<k>(...) loads extras[k], clamped. */
const char *kl_emit_index_expr(kl_emitter *em, const kl_expr *e, const kl_coords *idx,
                               kl_var *x, kl_var *y, kl_var *const *extras);
/* Loop coordinates i0..i<n-1> (identity when for_map). */
kl_coords kl_emit_loop_coords(int n, int for_map);
/* The C expression of value `temp` of dtype `from` converted to `to`'s compute type. */
const char *kl_emit_convert(kl_emitter *em, const char *temp, kl_dtype from, kl_dtype to);
/* Records a failure (first one wins) and returns NULL for convenient returns. */
const char *kl_emit_fail(kl_emitter *em, kl_status s);

#endif
