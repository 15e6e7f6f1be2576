/* residency.c: unified memory, as the seeds describe it. When a device's
 * allocation fails, buffers the running step does not need move to host
 * memory, least recently used first, and come back when a step reads them,
 * so a model larger than the device's free memory runs (slower) instead of
 * failing. Plain device allocations throughout: never the driver's managed
 * memory. Only devices whose memory the host cannot read take part (the
 * CPU's buffers are never tracked). KILN_UNIFIED_MEMORY=0 turns it off; a
 * line on stderr says when it happens (the first time, then whenever the
 * total moved has doubled), and kl_counters.bytes_moved_to_host counts it. */
#include "core/context.h"
#include "core/error.h"
#include "core/graph.h"
#include "backend/backend.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tracked(const kl_buffer *b) { return !b->backend->ops->host_visible; }

static void unlink_lru(kl_context *ctx, kl_buffer *b)
{
    if (b->lru_prev) b->lru_prev->lru_next = b->lru_next;
    else if (ctx->lru_first == b) ctx->lru_first = b->lru_next;
    if (b->lru_next) b->lru_next->lru_prev = b->lru_prev;
    else if (ctx->lru_last == b) ctx->lru_last = b->lru_prev;
    b->lru_prev = b->lru_next = NULL;
}

/* b becomes the most recently used. */
static void touch(kl_context *ctx, kl_buffer *b)
{
    unlink_lru(ctx, b);
    b->lru_prev = ctx->lru_last;
    if (ctx->lru_last) ctx->lru_last->lru_next = b;
    else ctx->lru_first = b;
    ctx->lru_last = b;
}

void kl_residency_track(kl_buffer *b)
{
    if (tracked(b)) touch(b->ctx, b);
}

void kl_residency_forget(kl_buffer *b)
{
    if (tracked(b)) unlink_lru(b->ctx, b);
}

void kl_residency_next_step(kl_context *ctx) { ctx->residency_step++; }

/* b's bytes to host memory (kept there: buffers are written once, so a host
 * copy made earlier is still its contents), its device memory freed. */
static int move_to_host(kl_buffer *b)
{
    if (!b->host) {
        b->host = malloc(b->nbytes ? b->nbytes : 1);
        if (!b->host) return 0;
        if (b->backend->ops->copy(b->backend, b->host, b->data, b->nbytes, KL_COPY_DEVICE_TO_HOST) != KL_OK) {
            free(b->host);
            b->host = NULL;
            return 0;
        }
    }
    b->backend->ops->free(b->backend, b->data, b->nbytes);
    b->data = NULL;
    b->evicted = 1;
    return 1;
}

int kl_residency_make_room(kl_context *ctx, kl_backend *device, size_t nbytes)
{
    /* only a full device: a failing one keeps its error */
    if (!ctx->unified_memory || device->ops->host_visible || kl_last_status() != KL_ERR_MEMORY) return 0;
    size_t moved = 0;
    int n = 0;
    for (kl_buffer *b = ctx->lru_first, *next; b && moved < nbytes; b = next) {
        next = b->lru_next;
        if (b->backend != device || b->evicted || b->pin == ctx->residency_step) continue;
        if (!move_to_host(b)) break;
        unlink_lru(ctx, b);
        moved += b->nbytes;
        n++;
    }
    if (!n) return 0;
    uint64_t before = ctx->counters.bytes_moved_to_host, after = before + moved;
    ctx->counters.bytes_moved_to_host = after;
    /* said the first time, then each time the total moved doubles */
    if (after >= ctx->residency_logged) {
        ctx->residency_logged = after * 2;
        fprintf(stderr, "[kiln] %s: device memory full: moved %d buffer%s (%.1f MB) to host memory for %.1f MB; "
                "%.1f MB moved in all (unified memory; KILN_UNIFIED_MEMORY=0 turns it off)\n", device->name, n,
                n == 1 ? "" : "s", (double)moved / 1e6, (double)nbytes / 1e6, (double)after / 1e6);
    }
    return 1;
}

kl_status kl_buffer_resident(kl_buffer *b)
{
    kl_context *ctx = b->ctx;
    if (!tracked(b)) return KL_OK;
    b->pin = ctx->residency_step;
    if (b->evicted) {
        kl_backend *d = b->backend;
        void *p = d->ops->alloc(d, b->nbytes);
        while (!p && kl_residency_make_room(ctx, d, b->nbytes)) p = d->ops->alloc(d, b->nbytes);
        if (!p)
            return kl_error(KL_ERR_MEMORY, "out of memory: %zu bytes on %s to bring a buffer back from host memory "
                            "(everything the running step needs must fit)", b->nbytes, d->name);
        kl_status s = d->ops->copy(d, p, b->host, b->nbytes, KL_COPY_HOST_TO_DEVICE);
        if (s != KL_OK) {
            d->ops->free(d, p, b->nbytes);
            return s;
        }
        b->data = p;
        b->evicted = 0;
    }
    touch(ctx, b);
    return KL_OK;
}
