/* host_alloc.c: size classes of 64 B * 2^k * {4,5,6,7}/4, so rounding wastes
 * at most a quarter; each class keeps a free list threaded through its blocks. */
#include "backend/cpu/host_alloc.h"
#include <stdlib.h>
#include <sys/mman.h>

/* The size of class c (aligned_alloc wants a multiple of the alignment). */
static void class_size_of(int c, size_t *size)
{
    size_t base = (size_t)KL_ALLOC_ALIGN << (c / 4);
    *size = (base / 4 * (size_t)(4 + c % 4) + KL_ALLOC_ALIGN - 1) / KL_ALLOC_ALIGN * KL_ALLOC_ALIGN;
}

/* The smallest class holding nbytes, and its size; -1 when none does. */
static int class_of(size_t nbytes, size_t *class_size)
{
    for (int c = 0; c < KL_ALLOC_CLASSES; c++) {
        class_size_of(c, class_size);
        if (*class_size >= nbytes) return c;
    }
    return -1;
}

/* A block from the system: large ones start on a 2 MiB boundary and ask
 * for transparent huge pages (where the kernel gives them only on request,
 * as Debian's does): one TLB entry and one page fault per 2 MiB instead of
 * 512, for kernels streaming over arrays and for MPI copying them. */
static void *system_block(size_t size)
{
    if (size < KL_ALLOC_HUGE_FROM) return aligned_alloc(KL_ALLOC_ALIGN, size);
    void *p = NULL;
    if (posix_memalign(&p, KL_ALLOC_HUGE_PAGE, size) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, size / KL_ALLOC_HUGE_PAGE * KL_ALLOC_HUGE_PAGE, MADV_HUGEPAGE); /* advice: failing is harmless */
#endif
    return p;
}

void *kl_host_alloc(kl_host_allocator *a, size_t nbytes)
{
    size_t size = 0;
    int c = class_of(nbytes ? nbytes : 1, &size);
    if (c < 0) return NULL;
    void *p;
    if (a->free_lists[c]) {
        kl_free_block *b = a->free_lists[c];
        a->free_lists[c] = b->next;
        a->bytes_cached -= size;
        p = b;
    } else {
        p = system_block(size);
        if (!p) {
            kl_host_trim(a); /* give cached blocks back and try once more */
            p = system_block(size);
            if (!p) return NULL;
        }
    }
    a->bytes_allocated += size;
    a->bytes_in_use += size;
    if (a->bytes_in_use > a->peak_bytes_in_use) a->peak_bytes_in_use = a->bytes_in_use;
    return p;
}

/* Frees waiting blocks, largest classes first, while what the allocator
 * holds (in use and waiting) is over its bound: twice the peak in use. A
 * repeated step reuses each size class's blocks at different moments, so
 * its steady footprint is more than its peak in use (ResNet-18's training
 * step: 1.3 times); a bound at the peak sent its largest blocks back to the
 * system every other step and page faults made them again (~19k a step). */
static void keep_bound(kl_host_allocator *a)
{
    uint64_t limit = 2 * a->peak_bytes_in_use > KL_ALLOC_MIN_CACHE ? 2 * a->peak_bytes_in_use : KL_ALLOC_MIN_CACHE;
    size_t size = KL_ALLOC_ALIGN;
    for (int c = KL_ALLOC_CLASSES - 1; c >= 0 && a->bytes_in_use + a->bytes_cached > limit; c--) {
        if (!a->free_lists[c]) continue;
        class_size_of(c, &size);
        while (a->free_lists[c] && a->bytes_in_use + a->bytes_cached > limit) {
            kl_free_block *b = a->free_lists[c];
            a->free_lists[c] = b->next;
            free(b);
            a->bytes_cached -= size;
        }
    }
}

void kl_host_free(kl_host_allocator *a, void *p, size_t nbytes)
{
    if (!p) return;
    size_t size = 0;
    int c = class_of(nbytes ? nbytes : 1, &size);
    kl_free_block *b = p;
    b->next = a->free_lists[c];
    a->free_lists[c] = b;
    a->bytes_in_use -= size;
    a->bytes_cached += size;
    keep_bound(a);
}

void kl_host_trim(kl_host_allocator *a)
{
    for (int c = 0; c < KL_ALLOC_CLASSES; c++) {
        while (a->free_lists[c]) {
            kl_free_block *b = a->free_lists[c];
            a->free_lists[c] = b->next;
            free(b);
        }
    }
    a->bytes_cached = 0;
}
