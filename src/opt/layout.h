/* layout.h: which convolution results stay in the library's own layout
 * (oneDNN's blocked one, say) instead of being reordered to row-major and
 * back by the next convolution: those that further convolutions alone
 * read, as their input or residual, in that same layout, and that nothing
 * can read after the sync (no handle, no consumer outside it, no gradient
 * through the convolutions that read them). The pattern's layouts
 * (backend.h) record the decision; the device keeps to it. */
#ifndef KL_LAYOUT_H
#define KL_LAYOUT_H

#include "core/graph.h"

/* After the fusion plan (patterns and epilogues found): order, n and
 * is_target as kl_fuse_plan's. */
void kl_layout_plan(kl_var **order, int n, const uint8_t *is_target);

#endif
