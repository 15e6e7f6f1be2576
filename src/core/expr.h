/* expr.h: Jittor's integer index expressions ("i0*2+i1-1", "@e0(i0)"), parsed
 * once into a tree; never pasted as text into generated code. */
#ifndef KL_EXPR_H
#define KL_EXPR_H

#include "kiln.h"

typedef enum {
    KL_EX_INT,     /* value */
    KL_EX_INDEX,   /* i<value>: an output (reindex) or input (reindex_reduce) index */
    KL_EX_XSHAPE,  /* xshape<value> */
    KL_EX_YSHAPE,  /* yshape<value> */
    KL_EX_XDIM,
    KL_EX_YDIM,
    KL_EX_EXTRA,   /* @e<value>(args...) */
    KL_EX_NEG,
    KL_EX_NOT,
    KL_EX_BINARY,  /* op: one of the KL_EXB_* below */
    KL_EX_MIN,
    KL_EX_MAX,
    KL_EX_SELECT   /* args[0] ? args[1] : args[2] */
} kl_expr_kind;

typedef enum {
    KL_EXB_ADD, KL_EXB_SUB, KL_EXB_MUL, KL_EXB_DIV, KL_EXB_MOD,
    KL_EXB_LT, KL_EXB_LE, KL_EXB_GT, KL_EXB_GE, KL_EXB_EQ, KL_EXB_NE,
    KL_EXB_AND, KL_EXB_OR
} kl_expr_binop;

typedef struct kl_expr {
    kl_expr_kind kind;
    int op;           /* kl_expr_binop for KL_EX_BINARY */
    int64_t value;
    int height;       /* levels of the tree below and including this node */
    int n_args;
    struct kl_expr *args[KL_MAX_DIMS];
} kl_expr;

/* Bounds every parsed tree, so that the recursive walkers (codegen, printing,
 * freeing) cannot exhaust the stack whatever the text. */
#define KL_EXPR_MAX_NODES 4096
#define KL_EXPR_MAX_HEIGHT 128

/* Parses src, folding constant subexpressions (an overflow or a division by
 * zero there is an error); on error returns KL_ERR_VALUE with the position in
 * the message. Trees have at most KL_EXPR_MAX_NODES nodes and
 * KL_EXPR_MAX_HEIGHT levels. */
kl_status kl_expr_parse(const char *src, kl_expr **out);
void kl_expr_free(kl_expr *e);
kl_expr *kl_expr_clone(const kl_expr *e);
/* Checks the names e uses: indexes below n_index, shapes below the ranks,
 * extras below n_extras with as many args as that extra's rank. */
kl_status kl_expr_validate(const kl_expr *e, const char *src, int n_index, int xdim, int ydim,
                           int n_extras, const int *extra_ndims);
/* Writes e back as text (for debugging and cache keys). */
void kl_expr_print(const kl_expr *e, char *buf, size_t size);
const char *kl_expr_binop_text(int op);

/* e as sum(coef[k] * i<k>) + constant, when it is that (integer literals,
 * + - and multiplication by constants only, without int64 overflow); 0
 * otherwise. */
typedef struct {
    int64_t coef[KL_MAX_DIMS];
    int64_t constant;
} kl_affine;
int kl_expr_affine(const kl_expr *e, int n_index, kl_affine *a);

#endif
