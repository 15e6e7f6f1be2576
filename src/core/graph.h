/* graph.h: the lazy graph's data structures: vars, the op that produces each,
 * buffers, and the context that owns caches and counters. Internal to the core. */
#ifndef KL_GRAPH_H
#define KL_GRAPH_H

#include "kiln.h"
#include "core/error.h"
#include "core/expr.h"
#include <stdbool.h>

typedef enum {
#define KL_OP(ID, name, emit, backward, traits) KL_OP_##ID,
#include "ops/ops.def"
#undef KL_OP
    KL_OP_KIND_COUNT
} kl_op_kind;

/* What an op kind is (ops/ops.def's traits). */
enum { KL_LEAF = 1, KL_GENERATOR = 2, KL_ALIAS = 4, KL_ROOT = 8, KL_STOPS_GRAD = 16, KL_WHOLE_INPUTS = 32 };

/* The MPI collectives (src/ops/collective.c). */
typedef enum { KL_COLLECTIVE_ALL_REDUCE, KL_COLLECTIVE_REDUCE, KL_COLLECTIVE_BROADCAST } kl_collective_kind;
int kl_op_traits(kl_op_kind k);

/* A device's memory shared by a var and the reshapes that alias it. Its
 * contents never change after the op that made it wrote them, so the id
 * (unique in the context) names the contents: library calls cache what they
 * derive from it. */
typedef struct kl_buffer {
    int refcount;
    uint64_t id;
    void *data;              /* the backend's pointer */
    size_t nbytes;
    struct kl_context *ctx;
    struct kl_backend *backend;
    void *host;              /* a host copy, for devices whose memory the host cannot read */
    /* unified memory (residency.c), for such devices: a buffer moved to host
     * memory when the device was full has data NULL and its bytes in host */
    int evicted;
    uint64_t pin;            /* the step that reads it on the device (not moved while it runs); 0: none */
    struct kl_buffer *lru_prev, *lru_next; /* least recently used first */
} kl_buffer;

#define KL_MAX_INPUTS KL_MAX_OP_INPUTS
/* results one kernel computes beside its own (src/opt/siblings.c) */
#define KL_MAX_SIBLINGS 3

typedef struct kl_op {
    kl_op_kind kind;
    int n_inputs;
    kl_var *inputs[KL_MAX_INPUTS];
    union {
        kl_unary_op unary;
        kl_binary_op binary;
        struct { double value; int64_t ivalue; } full; /* ivalue: an integer dtype's exact value */
        struct { kl_random_kind kind; double a, b; uint64_t seed, offset; } random;
        struct { int dim; } index;
        struct { uint8_t mask; } broadcast; /* bit d: output dim d is new (not from x) */
        struct {
            kl_reduce_op op;     /* reindex_reduce only */
            int n_indexes, n_conditions;
            kl_expr *indexes[KL_MAX_DIMS];
            kl_expr *conditions[KL_MAX_DIMS];
            double overflow_value;
        } reindex;
        struct { kl_reduce_op op; uint8_t mask; int keepdims; } reduce; /* bit d: input dim d reduced */
        /* detach: set by src/ops/code.c, so the core frees a code op
         * without calling into ops */
        struct { struct kl_code_node *node; int index; void (*detach)(struct kl_op *op); } code;
        struct { int64_t lo, hi; char *what; } check;
        struct { kl_collective_kind kind; kl_reduce_op op; int root, bucket; } collective;
        struct { kl_grad_fn fn; void *user; void (*release)(void *user); } custom_grad;
    } p;
} kl_op;

/* A var's first word: live handles are recognised, released ones refused. */
#define KL_VAR_LIVE 0x6b6c7661u /* "klva" */
#define KL_VAR_DEAD 0x64656164u /* "dead" */

struct kl_var {
    uint32_t magic;  /* KL_VAR_LIVE while the var exists (see kl_var_check) */
    struct kl_context *ctx;
    struct kl_backend *device; /* where it is (or will be) computed: its inputs' device */
    uint64_t id;
    int user_refs;   /* handles held outside the graph */
    int graph_refs;  /* pending consumers holding this var as an input */
    kl_dtype dtype;
    int ndim;
    int64_t shape[KL_MAX_DIMS];
    int64_t numel;
    kl_op op;        /* op.kind == KL_OP_ARRAY once computed */
    kl_buffer *buf;  /* non-NULL once computed */
    /* Computed vars keep their op and inputs only when a gradient may be
     * asked of them later (an input requires grad). */
    uint8_t requires_grad;
    uint8_t graph_forgotten; /* computed from ops whose graph it no longer keeps */
    /* scratch for the executor, meaningful only during one sync */
    uint64_t epoch;
    int materialize;
    int cost;        /* nodes an inlined copy of this var adds to a kernel */
    int reads;       /* stored buffers an inlined copy reads (an upper bound) */
    struct kl_pattern *pattern; /* a library pattern its device runs (src/opt/fuse.c) */
    uint8_t absorbed; /* computed inside a consumer's library pattern, never on its own */
    uint8_t stop_fuse; /* stored when computed, never inlined into consumers (kl_var_stop_fuse) */
    /* siblings (src/opt/siblings.c): a result computed in another's kernel
     * points to it; that one lists them */
    uint8_t n_siblings;
    uint8_t reads_candidate; /* scratch of that pass: computing it reads the candidate sibling */
    uint8_t read_mark; /* scratch of src/runtime/group.c: a step of the sync reads it */
    int32_t sync_pos;  /* scratch of src/runtime/step_cache.c: its position in the sync (with epoch) */
    kl_var *sibling_of;
    kl_var *siblings[KL_MAX_SIBLINGS];
    char *name;        /* the name the program gave it, for dumps (kl_var_set_name) */
    kl_var *grad;    /* scratch for kl_grad */
    /* kl_grad's own marks (a custom gradient may sync while kl_grad runs,
     * which reuses epoch and cost) */
    uint64_t grad_epoch;
    int grad_pos;
    /* the context's list of pending vars (kl_sync_all), while pending */
    kl_var *pending_prev, *pending_next;
    uint8_t pending_linked;
    kl_var *live_prev, *live_next; /* every var of the context, oldest first (kl_context_vars) */
};

/* KL_OK when v is a live var; else an error naming fn and what: NULL, or a
 * var already freed (recognised while its memory is kept in the context's
 * graveyard of recently freed vars; a build with -DKL_DEBUG_HANDLES prints
 * the message and aborts instead, to catch the caller's bug where it is). */
kl_status kl_var_check(const kl_var *v, const char *fn, const char *what);
#define KL_VAR_ARG(v, fn, what) KL_TRY(kl_var_check((v), (fn), (what)))
/* Frees the vars a context keeps in its graveyard (kl_context_free). */
void kl_graveyard_free(struct kl_context *ctx);

/* Creates a var with the given op (inputs retained) and one user reference. */
kl_status kl_var_new(struct kl_context *ctx, kl_dtype dtype, int ndim, const int64_t *shape,
                     const kl_op *op, kl_var **out);
/* Drops a graph reference taken by kl_var_new for an input. */
void kl_var_unref_graph(kl_var *v);
/* Turns a pending var into a leaf holding buf (takes buf's reference) and
 * releases its inputs. */
void kl_var_set_computed(kl_var *v, kl_buffer *buf);
const char *kl_op_kind_name(kl_op_kind k);
/* Frees what an op owns besides its inputs (parsed expressions, a code node). */
void kl_op_free_params(kl_op *op);
int64_t kl_shape_numel(int ndim, const int64_t *shape);
/* "(2, 3)" into buf (cut short to fit n bytes), for messages. */
void kl_shape_format(int ndim, const int64_t *shape, char *buf, size_t n);
kl_status kl_check_shape(const char *op, int ndim, const int64_t *shape);

/* A buffer of nbytes on device (NULL when out of memory). */
kl_buffer *kl_buffer_new(struct kl_context *ctx, struct kl_backend *device, size_t nbytes);
/* A pointer to b's contents the host can read: b's own on a host device,
 * else a copy (made once; contents never change). NULL with an error set. */
const void *kl_buffer_host(kl_buffer *b);
/* residency.c: b's bytes on its device for the step now running (brought
 * back from host memory if they were moved there), marked as used. */
kl_status kl_buffer_resident(kl_buffer *b);
/* A new step: the buffers the last one pinned may move again. */
void kl_residency_next_step(struct kl_context *ctx);
/* Room for nbytes on device made by moving least recently used buffers
 * (none pinned by the running step) to host memory; 0 when nothing moved. */
int kl_residency_make_room(struct kl_context *ctx, struct kl_backend *device, size_t nbytes);
void kl_residency_track(kl_buffer *b);
void kl_residency_forget(kl_buffer *b);
void kl_buffer_release(kl_buffer *b);

#endif
