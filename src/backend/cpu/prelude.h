/* prelude.h: the common head of every generated kernel. */
#ifndef KL_PRELUDE_H
#define KL_PRELUDE_H
extern const char kl_kernel_prelude[];
#endif
