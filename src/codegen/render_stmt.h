/* render_stmt.h: the scalar half of rendering, shared by every backend
 * whose kernels are C-family text (the CPU's C, CUDA C++): each instruction
 * of a kernel description as one `const T tN = ...;` statement, index
 * arithmetic, stores in a dtype's stored form, the identities and folds of
 * reductions. A backend's renderer adds the loops, the schedule and the
 * kernel's signature around them; its prelude defines the kl_* helpers the
 * statements call (with equal meaning on every backend). */
#ifndef KL_RENDER_STMT_H
#define KL_RENDER_STMT_H

#include "codegen/kdesc.h"
#include "codegen/strbuf.h"

typedef enum {
    KL_DIALECT_C,    /* C11 with the CPU prelude: float16 is _Float16 */
    KL_DIALECT_CUDA  /* CUDA C++ with the CUDA prelude: float16 is 16 bits converted by kl_f16_* */
} kl_dialect;

typedef struct {
    const kl_kdesc *k;
    kl_dialect dialect;
    char (*names)[32];   /* per instruction: its name or temp */
    uint8_t *need;       /* per instruction: the stored value, target or a check reads it */
} kl_stmt_printer;

/* Names every instruction and marks those the kernel needs. */
kl_status kl_stmt_init(kl_stmt_printer *p, const kl_kdesc *k, kl_dialect dialect);
void kl_stmt_free(kl_stmt_printer *p);

static inline const char *kl_stmt_name(const kl_stmt_printer *p, int32_t i) { return p->names[i]; }

/* The statements of every needed instruction, in order, into out. */
kl_status kl_stmt_body(const kl_stmt_printer *p, kl_strbuf *out);
/* Index instruction i as an expression; deep: written out in full (for
 * offsets used outside the loop body, where the temps do not exist). */
void kl_stmt_index_expr(const kl_stmt_printer *p, kl_strbuf *s, int32_t i, int deep);
/* The linear offset of the loop indexes i0.. over the iteration space. */
void kl_stmt_loop_offset(const kl_stmt_printer *p, kl_strbuf *s);
/* `int64_t var = 1;` times the extents dims[0..n) (IARG instructions). */
void kl_stmt_product(const kl_stmt_printer *p, kl_strbuf *s, const char *var, const int32_t *dims, int n);
/* expr (a compute-type value) as dtype t's stored form. */
void kl_stmt_stored(const kl_stmt_printer *p, char *buf, size_t n, kl_dtype t, const char *expr);
/* Output j's name suffix ("", "1", "2"...: out, out1...; the value's,
 * then its siblings', kdesc.h). */
const char *kl_stmt_out_suffix(int j);
/* A map's stores at the element's index li: its value's, then its
 * siblings' (one line each). */
void kl_stmt_map_stores(const kl_stmt_printer *p, kl_strbuf *s);
/* The C type a buffer of dtype t is declared with. */
const char *kl_stmt_buffer_type(const kl_stmt_printer *p, kl_dtype t);

/* A reduction's starting value for dtype t, and the statement folding
 * value t into accumulator a. */
const char *kl_stmt_identity(kl_reduce_op op, kl_dtype t);
void kl_stmt_combine(char *out, size_t size, kl_reduce_op op, const char *a, const char *t);
/* The operand a reduction of op folds from the value raw: cast to the
 * accumulator's type acc_type for sums, products and means. */
void kl_stmt_fold_operand(char *out, size_t size, kl_reduce_op op, const char *acc_type, const char *raw);
/* What a reduction of op stores from its accumulator acc (before the
 * stored form): a mean divided by rn (NaN for none), NaN where track_nan
 * and the NaN flag n is set. */
void kl_stmt_reduce_result(char *out, size_t size, kl_reduce_op op, int track_nan, const char *acc);
/* A softmax's or layer norm's outer, axis and inner extents as int64
 * locals of those names (the rows are outer x inner, axis long, inner
 * apart; a layer norm's inner is 1). */
void kl_stmt_row_extents(const kl_stmt_printer *p, kl_strbuf *s);
/* A layer norm's value of row element j from x[j], the row's mean m and
 * rsqrt rs: times the weight (b2), plus the bias (the buffer after). */
void kl_stmt_layernorm_value(const kl_kd_head *h, char *out, size_t size);
/* The statement an argmax / argmin folds value t at position rank with:
 * into the extreme a and its position ai (int32). */
void kl_stmt_arg_fold(char *out, size_t size, kl_reduce_op op, kl_dtype in, const char *t, const char *rank);

/* How a reduction accumulates: the accumulator's type, its start, and
 * whether NaN is tracked beside it (max and min of floats: NaN wins). */
typedef struct {
    const char *acc_type, *identity;
    int track_nan;
} kl_reduce_acc;
kl_reduce_acc kl_stmt_reduce_acc(kl_reduce_op op, kl_dtype in);

/* The comment naming the kernel's kind and vars (its first lines). */
void kl_stmt_header_comment(const kl_kdesc *k, kl_strbuf *s);

/* The kernel's buffers and arguments as locals (out, out1.., b2.., k0..,
 * f0..), each line after indent, from the arrays named buf, iarg and farg. */
void kl_stmt_declare_args(const kl_stmt_printer *p, kl_strbuf *s, const char *indent, const char *buf,
                          const char *iarg, const char *farg);

/* A description's group form (src/runtime/group.c) in a dialect: none
 * (*out NULL) but for a map whose body reads only the linear index, without
 * index checks; else the header comment and the group's arguments, then
 * what print makes of the body's statements and the map's stores
 * (malloc'd text in *out). */
typedef void (*kl_group_printer)(const kl_stmt_printer *p, kl_strbuf *s, const char *body, const char *stores);
kl_status kl_stmt_group_form(const kl_kdesc *k, kl_dialect dialect, kl_group_printer print, char **out);

#endif
