/* fake_cuda_driver.c: a stand-in for NVIDIA's driver library (libcuda.so.1)
 * that tests/c/test_cuda_device.c builds and names with KILN_CUDA_DRIVER,
 * so that the CUDA backend's device half (src/backend/cuda/device.c: its
 * opening, memory, copies, staging buffers, events, kernel loading and
 * launches) runs on a machine without a GPU. Device memory is host memory at addresses the host cannot
 * read (a tag bit set), so host code touching it faults. The one stream is as lazy as a real one may be: what is queued on
 * it runs only when the host waits (cuStreamSynchronize, or
 * cuEventSynchronize up to its event), and a copy from pinned memory
 * (cuMemHostAlloc) reads it then, as a GPU's DMA does, while one from
 * pageable memory is staged at once, as the real driver does. Modules are
 * NVRTC's cubins, read for their symbols; no kernel runs (there is no GPU
 * to run one): the last launch is recorded. Not kiln's code: a test
 * double. */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OP_COPY, OP_FILL, OP_FREE, OP_EVENT, OP_LAUNCH };
typedef struct {
    int kind;
    void *dst;
    const void *src;
    void *owned; /* a staged source, freed once copied */
    size_t n;
    unsigned char byte;
    void *event;
} op;

static op *queue;
static size_t queued, capacity;
static int launches;
typedef struct { void *p; size_t n; } pinned_block;
static pinned_block pinned[64];

int fake_cuda_launches(void) { return launches; }
size_t fake_cuda_queued(void) { return queued; }
size_t fake_cuda_pending_frees(void)
{
    size_t n = 0;
    for (size_t i = 0; i < queued; i++) n += queue[i].kind == OP_FREE;
    return n;
}

/* Device addresses carry a bit no host address has (non-canonical on
 * x86-64): host code reading device memory faults, as it would on a GPU. */
#define TAG ((uint64_t)1 << 62)
static uint64_t tagged(void *p) { return (uint64_t)(uintptr_t)p | TAG; }
static void *untagged(uint64_t p) { return (void *)(uintptr_t)(p & ~TAG); }

static int push(op o)
{
    if (queued == capacity) {
        size_t c = capacity ? 2 * capacity : 64;
        op *q = realloc(queue, c * sizeof *q);
        if (!q) return 2;
        queue = q;
        capacity = c;
    }
    queue[queued++] = o;
    return 0;
}

static void run(const op *o)
{
    if (o->kind == OP_COPY) memmove(o->dst, o->owned ? o->owned : o->src, o->n);
    if (o->kind == OP_FILL) memset(o->dst, o->byte, o->n);
    if (o->kind == OP_FREE) free(o->dst);
    free(o->owned);
}

/* runs the queue up to and with op `upto` */
static void drain(size_t upto)
{
    for (size_t i = 0; i < upto; i++) run(&queue[i]);
    memmove(queue, queue + upto, (queued - upto) * sizeof *queue);
    queued -= upto;
}

static int is_pinned(const void *p)
{
    for (int i = 0; i < 64; i++)
        if (pinned[i].p && (const char *)p >= (const char *)pinned[i].p &&
            (const char *)p < (const char *)pinned[i].p + pinned[i].n)
            return 1;
    return 0;
}

int cuInit(unsigned flags) { (void)flags; return 0; }
int cuGetErrorString(int rc, const char **s) { (void)rc; *s = "fake driver error"; return 0; }
int cuDriverGetVersion(int *v) { *v = 13000; return 0; }
int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuDeviceGet(int *d, int ordinal) { *d = ordinal; return 0; }
int cuDeviceGetName(char *name, int len, int d) { (void)d; strncpy(name, "fake", (size_t)len); return 0; }
int cuDeviceGetAttribute(int *v, int attr, int d)
{
    (void)d;
    switch (attr) {
    case 16: *v = 132; return 0;    /* SMs */
    case 75: *v = 9; return 0;      /* compute capability */
    case 76: *v = 0; return 0;
    case 91: *v = 1; return 0;      /* registered host memory at its own address */
    case 97: *v = 232448; return 0; /* shared memory a block may opt in to */
    default: *v = 0; return 0;
    }
}
static int context_token;
int cuDevicePrimaryCtxRetain(void **ctx, int d) { (void)d; *ctx = &context_token; return 0; }
int cuDevicePrimaryCtxRelease_v2(int d) { (void)d; return 0; }
int cuCtxSetCurrent(void *ctx) { (void)ctx; return 0; }
static int stream_token;
int cuStreamCreate(void **s, unsigned flags) { (void)flags; *s = &stream_token; return 0; }
int cuStreamDestroy_v2(void *s) { (void)s; return 0; }
int cuStreamSynchronize(void *s) { (void)s; drain(queued); return 0; }
static int pool_token;
int cuDeviceGetDefaultMemPool(void **pool, int d) { (void)d; *pool = &pool_token; return 0; }
int cuMemPoolSetAttribute(void *pool, int attr, void *v) { (void)pool; (void)attr; (void)v; return 0; }
int cuMemPoolGetAttribute(void *pool, int attr, void *v) { (void)pool; (void)attr; *(uint64_t *)v = 0; return 0; }
int cuMemPoolTrimTo(void *pool, size_t keep) { (void)pool; (void)keep; return 0; }
int cuMemGetInfo_v2(size_t *free_bytes, size_t *total) { *free_bytes = *total = (size_t)80 << 30; return 0; }
int cuMemAllocAsync(uint64_t *p, size_t n, void *s)
{
    (void)s;
    void *m = malloc(n ? n : 1);
    *p = tagged(m);
    return m ? 0 : 2;
}
int cuMemFreeAsync(uint64_t p, void *s) { (void)s; return push((op){.kind = OP_FREE, .dst = untagged(p)}); }
int cuMemcpyHtoDAsync_v2(uint64_t dst, const void *src, size_t n, void *s)
{
    (void)s;
    op o = {.kind = OP_COPY, .dst = untagged(dst), .src = src, .n = n};
    if (!is_pinned(src)) { /* pageable: staged now */
        o.owned = malloc(n ? n : 1);
        if (!o.owned) return 2;
        memcpy(o.owned, src, n);
    }
    return push(o);
}
int cuMemcpyDtoHAsync_v2(void *dst, uint64_t src, size_t n, void *s)
{
    (void)s;
    return push((op){.kind = OP_COPY, .dst = dst, .src = untagged(src), .n = n});
}
int cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t n, void *s)
{
    (void)s;
    return push((op){.kind = OP_COPY, .dst = untagged(dst), .src = untagged(src), .n = n});
}
int cuMemcpyDtoH_v2(void *dst, uint64_t src, size_t n) { memcpy(dst, untagged(src), n); return 0; }
int cuMemsetD8Async(uint64_t dst, unsigned char byte, size_t n, void *s)
{
    (void)s;
    return push((op){.kind = OP_FILL, .dst = untagged(dst), .byte = byte, .n = n});
}
int cuMemHostRegister_v2(void *p, size_t n, unsigned flags) { (void)p; (void)n; (void)flags; return 0; }
int cuMemHostUnregister(void *p) { (void)p; return 0; }
int cuMemHostAlloc(void **p, size_t n, unsigned flags)
{
    (void)flags;
    for (int i = 0; i < 64; i++)
        if (!pinned[i].p) {
            pinned[i].p = *p = malloc(n ? n : 1);
            pinned[i].n = n;
            return *p ? 0 : 2;
        }
    return 2;
}
int cuMemFreeHost(void *p)
{
    for (int i = 0; i < 64; i++)
        if (pinned[i].p == p) pinned[i].p = NULL;
    free(p);
    return 0;
}
int cuEventCreate(void **e, unsigned flags) { (void)flags; *e = malloc(1); return *e ? 0 : 2; }
int cuEventDestroy_v2(void *e)
{
    for (size_t i = 0; i < queued; i++)
        if (queue[i].kind == OP_EVENT && queue[i].event == e) queue[i].event = NULL;
    free(e);
    return 0;
}
int cuEventRecord(void *e, void *s) { (void)s; return push((op){.kind = OP_EVENT, .event = e}); }
int cuEventSynchronize(void *e)
{
    size_t last = 0; /* the last record of e still queued */
    for (size_t i = 0; i < queued; i++)
        if (queue[i].kind == OP_EVENT && queue[i].event == e) last = i + 1;
    drain(last);
    return 0;
}

/* Modules: a cubin's ELF is read for its symbols (kernels by name, a
 * global's bytes, a kernel's static shared memory); nothing runs. */
typedef struct {
    char name[128];
    int static_shared;
} function;
typedef struct {
    unsigned char *image;
    size_t size;
    void *globals[16];
    int n_globals;
    function functions[16]; /* the handles given out, freed with the module */
    int n_functions;
} module;
static char last_name[128];
static unsigned last_dims[6], last_shared;
static int last_optin;

void fake_cuda_last_launch(char *name, unsigned *dims, unsigned *shared, int *optin)
{
    strcpy(name, last_name);
    memcpy(dims, last_dims, sizeof last_dims);
    *shared = last_shared;
    *optin = last_optin;
}

static const Elf64_Shdr *section(const module *m, int i)
{
    const Elf64_Ehdr *e = (const Elf64_Ehdr *)m->image;
    return (const Elf64_Shdr *)(m->image + e->e_shoff + (size_t)i * e->e_shentsize);
}

static const char *section_name(const module *m, int i)
{
    const Elf64_Ehdr *e = (const Elf64_Ehdr *)m->image;
    return (const char *)m->image + section(m, e->e_shstrndx)->sh_offset + section(m, i)->sh_name;
}

/* the symbol `name` of type `type` (STT_FUNC, STT_OBJECT), or NULL */
static const Elf64_Sym *symbol(const module *m, const char *name, int type)
{
    const Elf64_Ehdr *e = (const Elf64_Ehdr *)m->image;
    for (int i = 0; i < e->e_shnum; i++) {
        const Elf64_Shdr *sh = section(m, i);
        if (sh->sh_type != SHT_SYMTAB) continue;
        const char *names = (const char *)m->image + section(m, (int)sh->sh_link)->sh_offset;
        for (size_t k = 0; k < sh->sh_size / sizeof(Elf64_Sym); k++) {
            const Elf64_Sym *sym = (const Elf64_Sym *)(m->image + sh->sh_offset) + k;
            if (ELF64_ST_TYPE(sym->st_info) == type && strcmp(names + sym->st_name, name) == 0) return sym;
        }
    }
    return NULL;
}

int cuModuleLoadData(void **out, const void *image)
{
    const Elf64_Ehdr *e = image;
    if (memcmp(e->e_ident, ELFMAG, SELFMAG) != 0 || e->e_ident[EI_CLASS] != ELFCLASS64) return 200; /* invalid image */
    size_t size = e->e_shoff + (size_t)e->e_shnum * e->e_shentsize;
    for (int i = 0; i < e->e_shnum; i++) {
        const Elf64_Shdr *sh = (const Elf64_Shdr *)((const unsigned char *)image + e->e_shoff + (size_t)i * e->e_shentsize);
        if (sh->sh_type != SHT_NOBITS && sh->sh_offset + sh->sh_size > size) size = sh->sh_offset + sh->sh_size;
    }
    module *m = calloc(1, sizeof *m);
    if (!m || !(m->image = malloc(size))) { free(m); return 2; }
    memcpy(m->image, image, size);
    m->size = size;
    *out = m;
    return 0;
}
int cuModuleUnload(void *p)
{
    module *m = p;
    for (int i = 0; i < m->n_globals; i++) free(m->globals[i]);
    free(m->image);
    free(m);
    return 0;
}
int cuModuleGetFunction(void **f, void *p, const char *name)
{
    module *m = p;
    if (!symbol(m, name, STT_FUNC)) return 500; /* not found */
    for (int i = 0; i < m->n_functions; i++)
        if (strcmp(m->functions[i].name, name) == 0) {
            *f = &m->functions[i];
            return 0;
        }
    if (m->n_functions == 16) return 2;
    function *fn = &m->functions[m->n_functions++];
    snprintf(fn->name, sizeof fn->name, "%s", name);
    char shared[160];
    snprintf(shared, sizeof shared, ".nv.shared.%s", name);
    const Elf64_Ehdr *e = (const Elf64_Ehdr *)m->image;
    for (int i = 0; i < e->e_shnum; i++)
        if (strcmp(section_name(m, i), shared) == 0) fn->static_shared = (int)section(m, i)->sh_size;
    *f = fn;
    return 0;
}
int cuModuleGetGlobal_v2(uint64_t *p, size_t *n, void *mp, const char *name)
{
    module *m = mp;
    const Elf64_Sym *sym = symbol(m, name, STT_OBJECT);
    if (!sym || m->n_globals == 16) return 500;
    void *copy = malloc(sym->st_size ? sym->st_size : 1);
    if (!copy) return 2;
    memcpy(copy, m->image + section(m, sym->st_shndx)->sh_offset + sym->st_value, sym->st_size);
    m->globals[m->n_globals++] = copy;
    *p = tagged(copy);
    *n = sym->st_size;
    return 0;
}
int cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                   unsigned shared, void *s, void **params, void **extra)
{
    (void)s; (void)params; (void)extra;
    launches++;
    snprintf(last_name, sizeof last_name, "%s", ((function *)f)->name);
    const unsigned dims[6] = {gx, gy, gz, bx, by, bz};
    memcpy(last_dims, dims, sizeof dims);
    last_shared = shared;
    return push((op){.kind = OP_LAUNCH});
}
int cuFuncSetAttribute(void *f, int attr, int v)
{
    (void)f;
    if (attr == 8) last_optin = v; /* the most dynamic shared memory it may be launched with */
    return 0;
}
int cuFuncGetAttribute(int *v, int attr, void *f)
{
    *v = attr == 1 ? ((function *)f)->static_shared : 0; /* its static shared memory */
    return 0;
}
