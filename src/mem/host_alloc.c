/* host_alloc.c: size classes of 64 B * 2^k * {4,5,6,7}/4, so rounding wastes
 * at most a quarter; each class keeps a free list threaded through its blocks. */
#include "mem/host_alloc.h"
#include <stdlib.h>

static int class_of(size_t nbytes, size_t *class_size)
{
    size_t base = KL_ALLOC_ALIGN;
    for (int k = 0; k < KL_ALLOC_CLASSES / 4; k++, base *= 2) {
        for (int q = 0; q < 4; q++) {
            /* aligned_alloc wants a multiple of the alignment */
            size_t size = (base / 4 * (size_t)(4 + q) + KL_ALLOC_ALIGN - 1) / KL_ALLOC_ALIGN * KL_ALLOC_ALIGN;
            if (size >= nbytes) { *class_size = size; return k * 4 + q; }
        }
    }
    return -1;
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
        p = aligned_alloc(KL_ALLOC_ALIGN, size);
        if (!p) {
            kl_host_trim(a); /* give cached blocks back and try once more */
            p = aligned_alloc(KL_ALLOC_ALIGN, size);
            if (!p) return NULL;
        }
    }
    a->bytes_allocated += size;
    a->bytes_in_use += size;
    if (a->bytes_in_use > a->peak_bytes_in_use) a->peak_bytes_in_use = a->bytes_in_use;
    return p;
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
