/* host_alloc.h: the caching host allocator. Freed blocks wait in size-class
 * lists for reuse, so a training loop stops calling malloc after one step.
 * What it holds, in use and waiting, is bounded: at most twice the peak in
 * use (or KL_ALLOC_MIN_CACHE, whichever is more); past it the largest
 * waiting blocks go back to the system first, so a workload whose sizes
 * change does not hoard old ones. */
#ifndef KL_HOST_ALLOC_H
#define KL_HOST_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#define KL_ALLOC_ALIGN 64
#define KL_ALLOC_CLASSES 192
#define KL_ALLOC_MIN_CACHE ((uint64_t)64 << 20)
#define KL_ALLOC_HUGE_PAGE ((size_t)2 << 20)
#define KL_ALLOC_HUGE_FROM ((size_t)4 << 20) /* blocks this large ask for huge pages */

typedef struct kl_free_block { struct kl_free_block *next; } kl_free_block;

typedef struct {
    kl_free_block *free_lists[KL_ALLOC_CLASSES];
    uint64_t bytes_allocated, bytes_in_use, bytes_cached, peak_bytes_in_use;
} kl_host_allocator;

/* Returns a 64-byte aligned block of at least nbytes (at least 64), or NULL. */
void *kl_host_alloc(kl_host_allocator *a, size_t nbytes);
/* nbytes must be the size passed to kl_host_alloc. */
void kl_host_free(kl_host_allocator *a, void *p, size_t nbytes);
/* Returns every cached block to the system. */
void kl_host_trim(kl_host_allocator *a);

#endif
