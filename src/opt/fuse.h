/* fuse.h: deciding which pending vars become kernel outputs (materialised)
 * and which are inlined into their consumers' loops. */
#ifndef KL_FUSE_H
#define KL_FUSE_H

#include "core/graph.h"

/* order: the pending vars of one sync, inputs before consumers; is_target
 * marks the vars the caller asked for. Sets each var's materialize flag, and
 * its pattern: a library pattern (patterns[i], n of them) its device runs,
 * whose operands are then stored, or NULL. */
void kl_fuse_plan(kl_var **order, int n, const uint8_t *is_target, struct kl_pattern *patterns);

#endif
