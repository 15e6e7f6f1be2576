/* plan.h: a cache of generated kernels keyed by the structure of the graph
 * they compute, so a sync whose kernels were seen before (a training loop)
 * skips code generation and the compile-cache lookup: it reads the new
 * graph's arguments with the recorded recipe and launches. */
#ifndef KL_PLAN_H
#define KL_PLAN_H

#include "codegen/kernel.h"
#include "jit/jit.h"

/* Everything about a kernel's subgraph that code generation reads: ops,
 * their parameters, dtypes, ranks, which dims are size 1, which vars are
 * loads, and how vars are shared. vars lists them in first-visit order. */
typedef struct {
    uint32_t *words;
    int n_words, cap_words;
    kl_var **vars;
    int n_vars, cap_vars;
    uint64_t hash;
} kl_fingerprint;

typedef struct kl_plan kl_plan;

typedef struct {
    kl_plan **slots; /* open addressing, capacity a power of two */
    size_t capacity, count;
    uint64_t epoch;
    int check;       /* KILN_CHECK_PLANS=1: regenerate on every hit and compare */
    int disabled;    /* KILN_PLANS=0 */
} kl_plan_cache;

kl_status kl_fingerprint_build(kl_plan_cache *pc, kl_var *root, kl_fingerprint *fp);
void kl_fingerprint_free(kl_fingerprint *fp);
/* On a hit, fills k (buffers retained, arguments read from fp's vars) and *fn. */
int kl_plan_lookup(kl_plan_cache *pc, const kl_fingerprint *fp, kl_kernel *k, kl_kernel_fn *fn,
                   const char **source);
/* Records k, built from the graph fp describes, right after building it (the
 * visit indices are only valid until the next fingerprint); its function is
 * set with kl_plan_set_fn once compiled. NULL when the plan was not kept. */
kl_plan *kl_plan_insert(kl_plan_cache *pc, const kl_fingerprint *fp, const kl_kernel *k);
void kl_plan_set_fn(kl_plan *p, kl_kernel_fn fn);
void kl_plan_cache_free(kl_plan_cache *pc);

#endif
