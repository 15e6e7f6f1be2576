/* jit.h: turning kernel source into a callable function: an in-memory table,
 * the on-disk cache, the system C compiler (several at once) and dlopen. */
#ifndef KL_JIT_H
#define KL_JIT_H

#include "kiln.h"
#include "backend/backend.h"
#include <stdint.h>

typedef struct kl_jit_entry {
    uint64_t hash;
    char *source;
    kl_kernel_fn fn;
    void *handle;
    kl_backend *backend;   /* whose load made it (it unloads it) */
} kl_jit_entry;

/* One backend's compiler for one kind of source, asked once. */
typedef struct {
    kl_backend *backend;
    kl_lang lang;
    kl_toolchain tc;
    uint64_t base_hash;    /* hash of identity, prelude and backend: the start of every key */
} kl_jit_lang;

#define KL_JIT_MAX_TOOLCHAINS 16

typedef struct {
    kl_jit_entry *entries; /* open addressing, capacity a power of two */
    size_t capacity, count;
    kl_jit_lang langs[KL_JIT_MAX_TOOLCHAINS];
    int n_langs;
    int cores;             /* compiles run at once */
    /* the cache directories as last prepared: <cache>/kernels for lookups,
     * and where new kernels are written (a private temporary directory
     * when the cache cannot be written) */
    char prepared_for[4096];
    char read_dir[4096 + 16];
    char write_dir[4096 + 16];
    int private_dir;       /* write_dir is a temporary made by this process */
    double lock_timeout;   /* seconds to wait for another process's compile */
} kl_jit;

struct kl_context;

/* Looks up or compiles every source; misses compile in parallel. fns[i] is
 * set for each i. On a compile failure the error names the kept source file.
 * A kernel from the disk cache is loaded only after its header vouches for
 * it (src/jit/disk.c); a kernel another process is compiling is waited for. */
kl_status kl_jit_get_many(struct kl_context *ctx, kl_backend *backend, int n, const char *const *sources,
                          const kl_lang *langs, kl_kernel_fn *fns);
void kl_jit_free(kl_jit *jit);
/* Closes every loaded kernel (dlclose) and empties the table; callers must
 * hold no function from it (kl_sync does this between syncs, with the plan
 * cache emptied too). Each loaded kernel costs the process a few memory
 * mappings, of which Linux allows ~65000. */
void kl_jit_unload(kl_jit *jit);
size_t kl_jit_loaded(const kl_jit *jit);
/* How many kernels may stay loaded (KILN_MAX_LOADED_KERNELS, default 4096). */
size_t kl_jit_max_loaded(void);

#endif
