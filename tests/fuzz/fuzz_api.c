/* fuzz_api.c: libFuzzer harness for sequences of public C API calls. The
 * input is a little program: each step's first byte picks a call (make a
 * var from the input's bytes, a constant, a random var; a unary, binary,
 * where, cast, broadcast, reduce, reshape, reindex, reindex_reduce,
 * check_index, stop_grad, grad; read or sync a var; release one), the next
 * bytes its operands (slots of a small table of handles) and parameters.
 * Arguments are often wrong on purpose (shapes, dims, dtypes, NULL): every
 * call must answer a status, never crash. Reads compare nothing (the unit
 * tests do); they make the graph run, so kernels are compiled and launched. */
#include "kiln.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 16

typedef struct {
    const uint8_t *p, *end;
} reader;

static unsigned byte(reader *r) { return r->p < r->end ? *r->p++ : 0; }

static kl_context *ctx;
static kl_var *slot[SLOTS];

static kl_var *pick(reader *r)
{
    unsigned b = byte(r);
    return b == 255 ? NULL : slot[b % SLOTS]; /* NULL on purpose now and then */
}

static void put(reader *r, kl_status s, kl_var *v)
{
    unsigned i = byte(r) % SLOTS;
    if (s != KL_OK) {
        if (v) abort(); /* an error must leave no var behind */
        return;
    }
    kl_var_release(slot[i]);
    slot[i] = v;
}

static int small_shape(reader *r, int64_t *shape)
{
    int nd = byte(r) % 4;
    for (int d = 0; d < nd; d++) shape[d] = byte(r) % 5;
    if (byte(r) == 0xfe) shape[0] = -3; /* a bad dim now and then */
    return nd;
}

static const char *const exprs[] = {
    "i0", "i1", "i0+1", "i1*2-1", "xshape0-1-i0", "@e0(i0)", "i0/2", "i0%3", "max(i0-1,0)",
    "i1", "i2", "(i0<2)?i1:i0", "", "i9", "@e1(i0)", "yshape0-i0",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx && kl_context_new(&ctx) != KL_OK) abort();
    reader rd = {data, data + size}, *r = &rd;
    for (int steps = 0; r->p < r->end && steps < 64; steps++) {
        kl_var *out = NULL, *a, *b, *c;
        int64_t shape[KL_MAX_DIMS];
        int nd, dims[KL_MAX_DIMS];
        kl_status s;
        switch (byte(r) % 20) {
        case 0: { /* a var from the input's bytes */
            kl_dtype t = (kl_dtype)(byte(r) % (KL_DTYPE_COUNT + 1));
            nd = small_shape(r, shape);
            unsigned char buf[8 * 64] = {0};
            size_t take = (size_t)(r->end - r->p) < sizeof buf ? (size_t)(r->end - r->p) : sizeof buf;
            memcpy(buf, r->p, take);
            int64_t n = 1;
            for (int d = 0; d < nd; d++) n *= shape[d] > 0 ? shape[d] : 1;
            s = n <= 64 ? kl_var_from_host(ctx, t, nd, shape, buf, &out) : KL_ERR_VALUE;
            put(r, s, out);
            break;
        }
        case 1: {
            kl_dtype t = (kl_dtype)(byte(r) % KL_DTYPE_COUNT);
            nd = small_shape(r, shape);
            int64_t v = (int64_t)byte(r) - 128;
            s = byte(r) & 1 ? kl_full_int(ctx, t, nd, shape, (int64_t)((uint64_t)v << (byte(r) % 60)), &out)
                            : kl_full(ctx, t, nd, shape, (double)v / 7.0, &out);
            put(r, s, out);
            break;
        }
        case 2:
            nd = small_shape(r, shape);
            s = kl_random(ctx, (kl_dtype)(byte(r) % KL_DTYPE_COUNT), nd, shape, (kl_random_kind)(byte(r) % 3), 0, 1, &out);
            put(r, s, out);
            break;
        case 3:
            a = pick(r);
            s = kl_unary((kl_unary_op)(byte(r) % (KL_UNARY_COUNT + 1)), a, &out);
            put(r, s, out);
            break;
        case 4:
            a = pick(r); b = pick(r);
            s = kl_binary((kl_binary_op)(byte(r) % (KL_BINARY_COUNT + 1)), a, b, &out);
            put(r, s, out);
            break;
        case 5:
            a = pick(r); b = pick(r); c = pick(r);
            s = kl_where(a, b, c, &out);
            put(r, s, out);
            break;
        case 6:
            a = pick(r);
            s = kl_cast(a, (kl_dtype)(byte(r) % (KL_DTYPE_COUNT + 1)), &out);
            put(r, s, out);
            break;
        case 7:
            a = pick(r);
            nd = small_shape(r, shape);
            s = kl_broadcast_to(a, nd, shape, 0, NULL, &out);
            put(r, s, out);
            break;
        case 8: {
            a = pick(r);
            int n = byte(r) % 3;
            for (int i = 0; i < n; i++) dims[i] = (int)byte(r) % 7 - 3;
            s = kl_reduce(a, (kl_reduce_op)(byte(r) % (KL_REDUCE_COUNT + 1)), n, dims, byte(r) & 1, &out);
            put(r, s, out);
            break;
        }
        case 9:
            a = pick(r);
            nd = small_shape(r, shape);
            if (nd && byte(r) & 1) shape[0] = -1;
            s = kl_reshape(a, nd, shape, &out);
            put(r, s, out);
            break;
        case 10: case 11: {
            int reduce = byte(r) & 1;
            a = pick(r);
            kl_var *extras[2] = {pick(r), pick(r)};
            nd = 1 + byte(r) % 3;
            for (int d = 0; d < nd; d++) shape[d] = 1 + byte(r) % 4;
            int nc = byte(r) % 2;
            const char *idx[KL_MAX_DIMS], *cond[1]; /* as many as the call reads: it cannot check */
            for (int i = 0; i < KL_MAX_DIMS; i++) idx[i] = exprs[byte(r) % 16];
            cond[0] = exprs[byte(r) % 16];
            int ne = byte(r) % 3;
            s = reduce ? kl_reindex_reduce(a, (kl_reduce_op)(byte(r) % KL_REDUCE_COUNT), nd, shape, idx, nc, cond, ne, extras, &out)
                       : kl_reindex(a, nd, shape, idx, (double)byte(r), nc, cond, ne, extras, &out);
            put(r, s, out);
            break;
        }
        case 12:
            a = pick(r);
            s = kl_check_index(a, -(int64_t)(byte(r) % 4), byte(r) % 6, "fuzz", &out);
            put(r, s, out);
            break;
        case 13:
            a = pick(r);
            s = kl_stop_grad(a, &out);
            put(r, s, out);
            break;
        case 14: {
            a = pick(r); b = pick(r);
            if (a) kl_var_set_requires_grad(a, 1);
            kl_var *g = NULL;
            s = kl_grad(b, NULL, a ? 1 : 0, &a, &g);
            put(r, s, g);
            break;
        }
        case 15: case 16: { /* read: runs the graph */
            a = pick(r);
            int64_t n = a ? kl_var_numel(a) : 0;
            size_t bytes = a ? (size_t)n * kl_dtype_size(kl_var_dtype(a)) : 0;
            if (bytes <= 4096) {
                unsigned char buf[4096];
                kl_var_copy_to_host(a, buf, bytes);
            }
            break;
        }
        case 17: {
            kl_var *vs[3] = {pick(r), pick(r), pick(r)};
            kl_sync(vs, 1 + byte(r) % 3);
            break;
        }
        case 18: {
            unsigned i = byte(r) % SLOTS;
            kl_var_release(slot[i]);
            slot[i] = NULL;
            break;
        }
        case 19:
            a = pick(r);
            kl_var_ndim(a); kl_var_shape(a); kl_var_op_name(a); kl_var_is_computed(a);
            kl_var_release_graph(a);
            break;
        }
    }
    for (int i = 0; i < SLOTS; i++) { kl_var_release(slot[i]); slot[i] = NULL; }
    kl_counters c;
    kl_context_counters(ctx, &c);
    if (c.vars_alive != 0) abort(); /* every var of the program is gone with its handles */
    return 0;
}
