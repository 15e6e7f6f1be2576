/* step.h: one step of a sync (exec.c): a fused kernel, a library call, an
 * alias, a jt.code kernel or a collective, with what its launch passes; and
 * groups (group.c): kernels of one plan that nothing else in the sync reads,
 * launched together. Private to src/runtime/. */
#ifndef KL_STEP_H
#define KL_STEP_H

#include "backend/backend.h"
#include "codegen/kdesc.h"
#include "codegen/plan.h"
#include "core/context.h"

/* What one launch of a fused kernel passes: the description's buffers
 * (retained; [0] is the output) and arguments. */
typedef struct {
    int n_bufs, n_iargs, n_fargs;
    int n_extra;  /* bufs[1..n_extra]: siblings' outputs, computed too */
    int64_t work; /* elements of the iteration space */
    int n_checks; /* index checks in the kernel */
    kl_var *bufs[KL_KD_MAX_BUFS];
    int64_t iargs[KL_KD_MAX_IARGS];
    double fargs[KL_KD_MAX_FARGS];
} kl_launch_plan;

/* Steps that run later than their place in the sync: a group's members
 * but the last (they run with it), aliases of their results (after every
 * other step). */
enum { KL_DEFERRED_MEMBER = 1, KL_DEFERRED_ALIAS = 2 };

typedef struct kl_step {
    kl_var *v;
    int is_alias, is_code, is_collective;
    const kl_pattern *pattern; /* a library call (found by the fusion pass) */
    kl_plan *plan;     /* a fused kernel's plan; its fn is set once compiled */
    int compile;       /* the plan's source goes to this sync's compile batch */
    kl_kernel_fn fn;
    char *check_source; /* the compile check's rendering of a new plan (malloc'd) */
    char *check_group_source; /* and of a group form this step's launch compiles (malloc'd) */
    /* a group (group.c): its members' launches wait for the last member's
     * step, which runs them all as one launch of the plan's group form */
    int deferred;                /* KL_DEFERRED_*: runs later than its place */
    struct kl_step *group_first; /* on the last member: the group's first; else NULL */
    struct kl_step *group_next;  /* the next member, in sync order */
    kl_launch_plan args;  /* last: ~5 KB, filled only for fused kernels */
} kl_step;

/* The stored vars a library call reads: a, b, then a convolution's
 * epilogue operands by step (NULL where a step reads none); their count. */
int kl_pattern_operands(const kl_pattern *p, kl_var **vars);

/* A failed allocation on a device that was not for want of memory (the
 * device said why: a fault of an earlier kernel, say). */
int kl_device_failed(const kl_backend *dev);

/* A fused kernel's memory (step.c): its inputs back on its device and
 * pinned for this launch (all before any address is read: bringing one
 * back may move another), their addresses into ptrs[1 + n_extra..]; its
 * outputs allocated and pinned into out[0..n_extra] and ptrs[0..n_extra]
 * (none held on failure); released, or handed to their vars. */
kl_status kl_step_inputs_resident(const kl_step *st);
void kl_step_input_pointers(const kl_step *st, void **ptrs);
kl_status kl_step_outputs_new(kl_context *ctx, const kl_step *st, kl_buffer **out, void **ptrs);
void kl_step_outputs_release(const kl_step *st, kl_buffer **out);
void kl_step_outputs_set(const kl_step *st, kl_buffer **out);

/* A step of v with everything but the launch's argument arrays cleared. */
void kl_step_init(kl_step *st, kl_var *v);

/* The whole-step plan cache (step_cache.c): a sync whose graph has the
 * signature of an earlier one replays its plan. */
typedef struct kl_step_plan kl_step_plan;
typedef struct kl_step_cache kl_step_cache;
/* Signs this sync's graph (its pending vars in order, which are asked for);
 * 0 when it is not kept (a jt.code op, plans off, out of memory). */
int kl_step_cache_sign(kl_context *ctx, kl_var *const *order, int n, const uint8_t *is_target, uint64_t epoch);
/* The recorded plan of the signed graph, or NULL. */
const kl_step_plan *kl_step_cache_find(kl_context *ctx);
/* Sets what fusion would (stored vars, siblings, library patterns into
 * patterns[]) as recorded; 0 when the device no longer runs a recorded
 * pattern as it was (then plan afresh: kl_fuse_plan sets every field). */
int kl_step_plan_apply(kl_context *ctx, const kl_step_plan *sp, kl_var *const *order, int n, kl_pattern *patterns);
/* Steps made from the record, their arguments read afresh (a replayed
 * sync in the counters, and each kernel a plan-cache hit when count_hits);
 * how many. */
int kl_step_plan_steps(kl_context *ctx, const kl_step_plan *sp, kl_step *steps, int count_hits);
int kl_step_plan_count(const kl_step_plan *sp);
/* Recording a signed sync's plan: after fusion (0: not recorded), each
 * step as planned (a kernel with its description), then kept once its
 * kernels compiled, or (KILN_CHECK_PLANS) compared with the plan a hit
 * gave and the arguments it would read with the steps planned: an error
 * where they differ. */
int kl_step_record_begin(kl_context *ctx);
void kl_step_record_step(kl_context *ctx, const kl_step *st, const kl_kdesc *kd);
void kl_step_record_end(kl_context *ctx);
kl_status kl_step_record_check(kl_context *ctx, const kl_step_plan *against, const kl_step *steps);
void kl_step_record_abort(kl_context *ctx);
void kl_step_cache_clear(struct kl_step_cache *c);
void kl_step_cache_free(struct kl_step_cache *c);

/* Groups a sync's fused kernels: those of one plan with a group form whose
 * results no later step reads (but aliases) run as one launch, in the
 * place of the last; aliases of the results of those before it are
 * deferred to the end (exec.c compiles the group forms' sources with the
 * sync's batch). */
void kl_groups_form(kl_step *steps, int n_steps);
/* The group whose last member is st, as one launch of its plan's group form. */
kl_status kl_group_run(kl_context *ctx, kl_step *last);

#endif
