/* kdesc.h: the kernel description, between fusion and code. One fused
 * kernel: its iteration space, an SSA scalar body of typed instructions
 * (loads with their index arithmetic, element-wise ops, constants from
 * arguments), and what it stores (map: one value per element; reduce: a
 * value folded over some axes; scatter: a value folded into computed
 * targets), with the buffers and scalar arguments a launch passes. Ops build
 * it (src/ops/lower.c and each family's *_lower); a backend's renderer
 * prints it (src/backend/cpu/render_c.c); the plan cache keys on it.
 *
 * Nothing in it names a shape or a value: extents and constants are
 * arguments, so one description (and one compiled kernel) serves every
 * graph of the same structure. Instructions are hash-consed: a value used
 * twice is one instruction. */
#ifndef KL_KDESC_H
#define KL_KDESC_H

#include "core/graph.h"

typedef enum {
    KL_I_LOOP,      /* the iteration index i<a> (int64) */
    KL_I_LINEAR,    /* the element's linear index over the iteration space (int64) */
    KL_I_CONST,     /* the int64 literal `value` */
    KL_I_IARG,      /* int64 argument a */
    KL_I_FARG,      /* double argument a */
    KL_I_INDEX,     /* index arithmetic: op (a kl_expr_binop) of a and b, int64; / and % by 0 give 0 */
    KL_I_NEG,       /* -a, int64 */
    KL_I_NOT,       /* !a, int64 */
    KL_I_MIN,       /* min(a, b), int64 */
    KL_I_MAX,       /* max(a, b), int64 */
    KL_I_CLAMP,     /* a clamped to [0, b - 1], int64 */
    KL_I_SELECT,    /* a != 0 ? b : c, of dtype */
    KL_I_LOAD,      /* buffer a at element offset b, of the buffer's dtype */
    KL_I_CONVERT,   /* a, of dtype aux, as dtype (bool: a != 0) */
    KL_I_UNARY,     /* unary op on a, of dtype */
    KL_I_BINARY,    /* binary op on a and b (both of dtype aux), giving dtype */
    KL_I_SCALAR,    /* argument instruction a as a constant of dtype (bool: != 0) */
    KL_I_RANDOM,    /* op (kl_random_kind): seed a, first index b, element c, bounds d, e */
    KL_I_CHECK,     /* side effect: a outside [b, c) records it, with description d, in record e */
    KL_I_KIND_COUNT
} kl_instr_kind;

#define KL_DTYPE_I64 KL_INT64

typedef struct {
    uint8_t kind;   /* kl_instr_kind */
    uint8_t dtype;  /* the value's dtype */
    uint8_t aux;    /* CONVERT: the source dtype; BINARY: the operands' dtype */
    uint8_t loops;  /* reads an iteration index i<k> (derived from the operands by kl_kd_add) */
    int32_t op;
    int32_t a, b, c, d, e; /* operand instructions, or a buffer or argument index */
    int64_t value;
} kl_instr;

/* SOFTMAX: a softmax (op 1: log-softmax) of buffer 1 along iteration dim
 * `reduced`'s one bit, rows whole in cache: the renderers print it from
 * this head alone (src/opt/softmax.c describes it). LAYERNORM: buffer 1
 * normalised along the last dim (its bit in `reduced`), rows whole in
 * cache, with eps the first float argument; op bit 0: times the weight
 * vector (buffer 2), bit 1: plus the bias vector (the next buffer)
 * (src/opt/layernorm.c describes it). */
typedef enum { KL_KD_MAP, KL_KD_REDUCE, KL_KD_SCATTER, KL_KD_SOFTMAX, KL_KD_LAYERNORM } kl_kd_kind;

/* The values an int64 instruction can take in this launch (kd_range.c). */
typedef struct { int64_t lo, hi; } kl_range;

#define KL_KD_MAX_BUFS 64
/* reduced extents up to this are literals in a reduce's description (a
 * pooling window's: src/ops/reduce.c), so the compiler unrolls them */
#define KL_SHORT_EXTENT 8
#define KL_KD_MAX_EXTRA KL_MAX_SIBLINGS
#define KL_KD_MAX_IARGS 512
#define KL_KD_MAX_FARGS 128
#define KL_KD_MAX_LOCALS 256

/* Where an argument's value comes from (for readers of the generated code). */
typedef enum {
    KL_ARG_SHAPE, KL_ARG_FULL, KL_ARG_SEED, KL_ARG_OFFSET, KL_ARG_RAND_A, KL_ARG_RAND_B, KL_ARG_OVERFLOW,
    KL_ARG_CHECK_LO, KL_ARG_CHECK_HI, KL_ARG_CHECK_WHAT, KL_ARG_CHECK_RECORD,
    KL_ARG_INDEX_CONST, /* a literal of an index expression that is an offset or a bound */
    KL_ARG_SHAPE_RUN    /* the product of dims dim & 15 .. + (dim >> 4) of v's shape (merged loops) */
} kl_arg_kind;

/* The structure: everything the generated text depends on. Equal structures
 * render to equal text; the plan cache compares these words. */
typedef struct {
    uint8_t kind;          /* kl_kd_kind */
    uint8_t out_dtype;
    uint8_t rank;          /* of the iteration space */
    uint8_t out_rank;
    int32_t op;            /* reduce / scatter: the kl_reduce_op */
    uint8_t reduced;       /* reduce: bit d set when iteration dim d is folded */
    uint8_t in_dtype;      /* reduce: the folded value's dtype; scatter: the value's */
    uint8_t disjoint;      /* scatter: bit d set when distinct i<d> hit distinct targets */
    uint8_t uses_loops;    /* the body reads i<k> (else only li) */
    int32_t dims[8];       /* extents of the iteration space (IARG instructions) */
    int32_t out_dims[8];   /* reduce, scatter: extents of the output (IARG) */
    int32_t value;         /* the stored (or folded, or scattered) value */
    int32_t target;        /* reduce: the output offset; scatter: the target offset */
    int32_t skip;          /* scatter: nonzero when the target is outside (skip it) */
    int32_t n_instrs, n_bufs, n_iargs, n_fargs, n_locals, n_checks;
    /* siblings computed in the same loops (src/opt/siblings.c): output
     * j + 1 (buffer j + 1) gets extra_value[j], folded as the value is and
     * stored at the same target (reduce), or stored at the element's index
     * (map) */
    int32_t extra_value[KL_KD_MAX_EXTRA];
    uint8_t n_extra, pad_[3];
} kl_kd_head;
_Static_assert(sizeof(kl_kd_head) % 8 == 0, "the hash reads the head as whole words");

typedef struct kl_kdesc {
    kl_kd_head h;
    kl_instr *instrs;
    int cap_instrs;
    uint8_t buf_dtype[KL_KD_MAX_BUFS];
    uint8_t buf_local[KL_KD_MAX_BUFS];  /* which of the locals each buffer holds */
    int32_t checks[64];    /* the CHECK instructions, in order */
    /* the vars the kernel computes or reads, for the comment at its top:
     * dtype, op kind, its parameter, and whether it is loaded */
    struct { uint8_t dtype, kind, loaded, mean; int32_t param; } locals[KL_KD_MAX_LOCALS];

    /* not structure: what one launch passes, and which var each came from */
    kl_var *bufs[KL_KD_MAX_BUFS];           /* bufs[0] is the output; retained */
    int64_t iargs[KL_KD_MAX_IARGS];
    double fargs[KL_KD_MAX_FARGS];
    struct { kl_var *v; uint8_t kind, dim; } isrc[KL_KD_MAX_IARGS];
    struct { kl_var *v; uint8_t kind; } fsrc[KL_KD_MAX_FARGS];
    kl_var *local_vars[KL_KD_MAX_LOCALS];
    uint64_t hash;         /* of the structure, once built */
    uint64_t instrs_hash;  /* of the instructions so far, in order */
    kl_status status;      /* the first failure while building */
    /* this launch's iteration space (space_rank 0: not given) and what each
     * instruction can be in it; comparisons they decide fold (kd_range.c) */
    int64_t space[8];
    uint8_t space_rank;
    kl_range *ranges;      /* parallel to instrs, computed on demand: the first n_ranged */
    int32_t n_ranged;

    /* building: the hash-consing table and the (var, coordinates) memo
     * (src/ops/lower.c); an entry counts only when it has the current
     * generation, so starting a kernel clears neither */
    struct kl_kd_slot { uint32_t gen; int32_t id; } *table;
    int cap_table;
    struct kl_kd_memo *memo;
    int n_memo, cap_memo;
    struct { kl_var *v; uint32_t gen; int32_t index; } local_index[2 * KL_KD_MAX_LOCALS];
    uint32_t gen;
} kl_kdesc;

void kl_kd_init(kl_kdesc *k);
/* Releases the buffers' references and the building tables; keeps the
 * structure (instrs) for reuse by the next kl_kd_init of the same object. */
void kl_kd_clear(kl_kdesc *k);
void kl_kd_free(kl_kdesc *k);

/* The iteration space the kernel's loops run over, given before its body is
 * described: with it, kl_kd_add folds comparisons the extents and arguments
 * decide (a reindex's bounds checks where every read stays inside). */
void kl_kd_set_space(kl_kdesc *k, int rank, const int64_t *extents);
/* What in can be, from its operands' ranges (kd_range.c). */
kl_range kl_kd_range_of(kl_kdesc *k, const kl_instr *in);
/* What instruction i can be (computed when first asked). */
kl_range kl_kd_range(kl_kdesc *k, int32_t i);
/* Whether in is a kind kl_kd_fold may fold (a comparison, && || !, a
 * select, a clamp): only those need a range before they are added. */
int kl_kd_may_fold(const kl_instr *in);
/* An instruction equal in this launch to in (whose range is r), when the
 * ranges decide it (a constant, or one operand); -1 otherwise. */
int32_t kl_kd_fold(kl_kdesc *k, const kl_instr *in, kl_range r);

/* The instruction i (valid until the next kl_kd_instr). */
static inline const kl_instr *kl_kd_at(const kl_kdesc *k, int32_t i) { return &k->instrs[i]; }

/* Adds in (or finds an equal instruction: values are hash-consed); -1
 * after a failure (k->status says which). */
int32_t kl_kd_add(kl_kdesc *k, const kl_instr *in);
/* An instruction with up to three operands (the rest -1). */
int32_t kl_kd_op(kl_kdesc *k, kl_instr_kind kind, kl_dtype dtype, int op, int32_t a, int32_t b, int32_t c);
int32_t kl_kd_const(kl_kdesc *k, int64_t value);
/* An integer or floating-point argument of v's kind (once per var, kind, dim). */
int32_t kl_kd_iarg(kl_kdesc *k, kl_var *v, kl_arg_kind kind, int dim);
int32_t kl_kd_farg(kl_kdesc *k, kl_var *v, kl_arg_kind kind);
/* The extent of v's dim (an int64 argument). */
static inline int32_t kl_kd_shape(kl_kdesc *k, kl_var *v, int dim) { return kl_kd_iarg(k, v, KL_ARG_SHAPE, dim); }
/* An index expression's literal passed as an argument, not written into the
 * text: kernels that differ only in offsets and bounds (x[i:i+5] for each i)
 * are one kernel. Equal values share one argument, so the structure depends
 * only on which of them are equal. */
int32_t kl_kd_iarg_const(kl_kdesc *k, int64_t value);
/* v's index in the buffer table (adding it); -1 when full. */
int kl_kd_buffer(kl_kdesc *k, kl_var *v);
/* v's index among the kernel's vars (for the comment). */
int kl_kd_local(kl_kdesc *k, kl_var *v);
/* The operand instructions of in (buffer and argument indexes are not
 * operands); returns how many, at most 5. */
int kl_kd_operands(const kl_instr *in, int32_t ops[5]);
/* Records a failure (the first wins) and returns -1. */
int32_t kl_kd_fail(kl_kdesc *k, kl_status s);

/* After building a map or reduce description whose root's space is v
 * (the root, or a reduce's input): adjacent dims that the body reads only
 * through the element's linear index (a batch norm's H and W, reduced or
 * kept alike) become one loop, so the innermost loop runs over H*W
 * contiguous elements instead of W (a vector loop of 49, not 7). Literal
 * extents (a window's) stay as they are. Then the instructions nothing
 * needs go, with the arguments only they read: a description is complete
 * after it (nothing may be added). */
void kl_kd_merge_dims(kl_kdesc *k, kl_var *v);

/* Sets k->hash from the structure (after building); structural equality. */
uint64_t kl_kd_hash(kl_kdesc *k);
int kl_kd_same(const kl_kdesc *a, const kl_kdesc *b);
/* The structure as one block of bytes (what a plan keeps): its size, the
 * copy, and whether k's structure is the one in a block. */
size_t kl_kd_structure_size(const kl_kdesc *k);
void kl_kd_structure_write(const kl_kdesc *k, void *block);
int kl_kd_structure_is(const kl_kdesc *k, const void *block);

/* The value of an argument of kind on v (integer ones exact in all 64 bits). */
double kl_arg_value(const kl_var *v, kl_arg_kind kind, int dim);
int64_t kl_arg_int(const kl_var *v, kl_arg_kind kind, int dim);

#endif
