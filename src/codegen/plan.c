/* plan.c: the plan cache. Equal structures render to equal text (the
 * renderer reads nothing else; KILN_CHECK_PLANS=1 verifies it on every hit),
 * so a plan found by structure is the kernel a fresh render would compile. */
#include "codegen/plan.h"
#include <stdlib.h>
#include <string.h>

#define MAX_PLANS 4096

static uint64_t key_hash(const struct kl_backend *device, const kl_kdesc *k)
{
    return (k->hash ^ (uint64_t)(uintptr_t)device * 0x9e3779b97f4a7c15ULL) | 1;
}

static kl_plan **slot_of(const kl_plan_cache *pc, const struct kl_backend *device, const kl_kdesc *k, uint64_t h)
{
    for (size_t i = h & (pc->capacity - 1);; i = (i + 1) & (pc->capacity - 1)) {
        kl_plan *p = pc->slots[i];
        if (!p || (p->hash == h && p->device == device && kl_kd_structure_is(k, p->structure))) return &pc->slots[i];
    }
}

kl_plan *kl_plan_find(const kl_plan_cache *pc, const struct kl_backend *device, const kl_kdesc *k)
{
    if (!pc->capacity || pc->disabled) return NULL;
    return *slot_of(pc, device, k, key_hash(device, k));
}

static void plan_free(kl_plan *p)
{
    if (!p) return;
    plan_free(p->group);
    free(p->check_source);
    free(p->structure);
    free(p->source);
    free(p);
}

void kl_plan_cache_free(kl_plan_cache *pc)
{
    for (size_t i = 0; i < pc->capacity; i++) plan_free(pc->slots[i]);
    free(pc->slots);
    pc->slots = NULL;
    pc->capacity = pc->count = 0;
    pc->generation++;
}

void kl_plan_cache_bound(kl_plan_cache *pc)
{
    /* disabled: plans live for one sync only */
    if (pc->disabled || pc->count >= MAX_PLANS) kl_plan_cache_free(pc);
}

static int grow(kl_plan_cache *pc)
{
    size_t cap = pc->capacity ? pc->capacity * 2 : 256;
    kl_plan **slots = calloc(cap, sizeof *slots);
    if (!slots) return 0;
    for (size_t i = 0; i < pc->capacity; i++) {
        kl_plan *p = pc->slots[i];
        if (!p) continue;
        size_t j = p->hash & (cap - 1);
        while (slots[j]) j = (j + 1) & (cap - 1);
        slots[j] = p;
    }
    free(pc->slots);
    pc->slots = slots;
    pc->capacity = cap;
    return 1;
}

int kl_plan_set_group(kl_plan *p, const char *source)
{
    kl_plan *g = calloc(1, sizeof *g);
    if (!g || !(g->source = strdup(source))) {
        free(g);
        return 0;
    }
    g->device = p->device;
    p->group = g;
    return 1;
}

kl_plan *kl_plan_insert(kl_plan_cache *pc, const struct kl_backend *device, const kl_kdesc *k, const char *source)
{
    if ((pc->count + 1) * 2 > pc->capacity && !grow(pc)) return NULL;
    uint64_t h = key_hash(device, k);
    kl_plan **slot = slot_of(pc, device, k, h);
    if (*slot) return *slot;
    kl_plan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->device = device;
    p->hash = h;
    p->structure = malloc(kl_kd_structure_size(k));
    if (p->structure) kl_kd_structure_write(k, p->structure);
    p->source = strdup(source);
    if (!p->structure || !p->source) { plan_free(p); return NULL; }
    *slot = p;
    pc->count++;
    return p;
}
