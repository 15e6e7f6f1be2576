/* context.h: the one object that holds kiln's mutable state: settings,
 * counters, the backends (through their interface only), the kernel table
 * and the caches. */
#ifndef KL_CONTEXT_H
#define KL_CONTEXT_H

#include "kiln.h"
#include "jit/jit.h"
#include "codegen/plan.h"
#include <limits.h>

struct kl_backend;

/* A growable list of vars (the executor's graph walks). */
typedef struct {
    struct kl_var **v;
    int n, cap;
} kl_var_list;

/* What a sync reuses from one to the next (syncs of a context never
 * overlap): the walk's lists and the planning arrays, grown, never shrunk. */
typedef struct {
    kl_var_list order, stack, next;
    struct { void *p; size_t bytes; } arrays[6];
} kl_sync_scratch;

/* Frees a context's sync scratch (src/runtime/exec.c). */
void kl_sync_scratch_free(kl_sync_scratch *s);

#define KL_GRAVEYARD 1024
#define KL_MAX_BACKENDS 8

struct kl_context {
    char cache_dir[PATH_MAX];
    int debug;
    int log_compile; /* KILN_LOG=compile: one line per compile, saying why */
    int keep_graphs; /* float leaves start requiring grad (kl_context_set_keep_graphs) */
    uint64_t seed, rng_offset;
    uint64_t next_var_id, next_buffer_id, sync_epoch;
    uint64_t grad_epoch; /* kl_grad's walks */
    int grad_depth;      /* kl_grad running (a custom gradient may not call it again) */
    uint64_t vars_alive;
    uint64_t vars_held; /* vars with a handle outside the graph (user_refs > 0) */
    uint64_t ops_alive; /* vars still holding an op: pending, or kept for backward */
    kl_counters counters; /* kernel counters; memory figures come from the backends */
    struct kl_backend *backends[KL_MAX_BACKENDS]; /* backends[0]: the CPU */
    int n_backends;
    struct kl_backend *device;  /* where new vars made from nothing go */
    struct kl_backend *compile_check; /* also compiles every new kernel (never runs them); NULL: off */
    /* unified memory (src/core/residency.c): device buffers, least recently
     * used first; the running step's number; off with KILN_UNIFIED_MEMORY=0 */
    struct kl_buffer *lru_first, *lru_last;
    uint64_t residency_step;
    uint64_t residency_logged; /* the bytes moved at which the next log line is due */
    int unified_memory;
    struct kl_backend *check_backend; /* made at the first check; kept until the context goes (the jit
                                         table holds its kernels) */
    kl_jit jit;
    kl_plan_cache plans;
    struct kl_step_cache *step_cache; /* whole syncs' plans (src/runtime/step_cache.c) */
    kl_kdesc *kdesc;  /* the kernel description being built (reused, grown once) */
    kl_sync_scratch sync;
    kl_var *pending; /* vars not yet computed, newest first (kl_sync_all) */
    kl_var *live_first, *live_last; /* every var that exists, oldest first */
    /* what a kernel's check_index op found: [0] set, [1] the value, [2] lo,
     * [3] hi, [4] the op's description (a char *) (src/ops/check.c) */
    int64_t index_error[5];
    size_t max_loaded_kernels; /* past it a sync first unloads every kernel */
    int (*interrupt)(void *arg); /* asked between kernels whether to stop */
    void *interrupt_arg;
    struct {
        int on, n, cap;
        kl_profile_record *records;
    } profile; /* src/runtime/exec.c records, kl_context_profile_take reads */
    struct kl_mpi *mpi; /* the MPI job this process is in (NULL: a world of one) */
    /* the last vars freed, kept (poisoned under ASan) so that a handle
     * released twice is recognised instead of touching freed memory */
    kl_var *graveyard[KL_GRAVEYARD];
    int graveyard_next, graveyard_count;
};

#endif
