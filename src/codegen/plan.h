/* plan.h: a cache of compiled kernels keyed by their kernel description's
 * structure (codegen/kdesc.h) and device, so a sync whose kernels were seen
 * before (a training loop) skips rendering and the compile-cache lookup: the
 * fresh description's arguments go straight to the recorded function. */
#ifndef KL_PLAN_H
#define KL_PLAN_H

#include "codegen/kdesc.h"
#include "jit/jit.h"

struct kl_backend;

typedef struct kl_plan {
    const struct kl_backend *device;
    void *structure;     /* kl_kd_structure_write's block */
    uint64_t hash;       /* of the structure and the device */
    char *source;        /* the rendered text */
    kl_kernel_fn fn;     /* NULL until compiled */
    /* the structure's group form (src/runtime/group.c: several launches of
     * it as one), when the device has one: owned, outside the table */
    struct kl_plan *group;
    /* a group form's rendering for the compile check, until the sync that
     * first compiles the form takes it */
    char *check_source;
} kl_plan;

typedef struct {
    kl_plan **slots; /* open addressing, capacity a power of two */
    size_t capacity, count;
    int check;       /* KILN_CHECK_PLANS=1: render again on every hit and compare */
    int disabled;    /* KILN_PLANS=0: a plan serves one sync only */
    uint64_t generation; /* counts frees: what holds plans of an older one holds freed plans */
} kl_plan_cache;

/* The plan for k's structure on device; NULL when none was recorded. */
kl_plan *kl_plan_find(const kl_plan_cache *pc, const struct kl_backend *device, const kl_kdesc *k);
/* Records k's structure and its rendered source (its function follows once
 * compiled); the plan already there for an equal structure; NULL when out
 * of memory. */
kl_plan *kl_plan_insert(kl_plan_cache *pc, const struct kl_backend *device, const kl_kdesc *k, const char *source);
/* Gives p the group form rendered as source (its function follows once
 * compiled); 0 when out of memory. */
int kl_plan_set_group(kl_plan *p, const char *source);
/* Starts again when the cache holds too many plans; call between syncs only
 * (plans found in a sync are used until it ends). */
void kl_plan_cache_bound(kl_plan_cache *pc);
void kl_plan_cache_free(kl_plan_cache *pc);

#endif
