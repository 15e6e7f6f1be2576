/* nccl.c: the job's collectives between GPUs with NCCL, loaded with dlopen
 * at the first collective on the device (libnccl.so.2; KILN_NCCL names
 * another library, KILN_NCCL=0 keeps MPI through host memory). The
 * communicator is made once, at that first collective, which every rank
 * reaches at the same point (MPI's rule for collectives): rank 0 draws a
 * unique id and the job's MPI shares it; the ranks first agree that every
 * one of them has NCCL 2.10 or later (ncclAvg, bfloat16), else they all
 * keep MPI. Each call then goes on the device's stream with device
 * buffers, no host copies. What NCCL has no type for (int16) goes through
 * MPI as before. On the emulator only a library KILN_NCCL names is used (a
 * test's stand-in: its memory is the host's, which MPI reaches anyway). */
#include "backend/cuda/cuda.h"
#include "core/dtype.h"
#include "core/error.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { /* NCCL's enum values */
    NCCL_SUM = 0, NCCL_MAX = 2, NCCL_MIN = 3, NCCL_AVG = 4,
    NCCL_INT8 = 0, NCCL_UINT8 = 1, NCCL_INT32 = 2, NCCL_INT64 = 4, NCCL_FLOAT16 = 6, NCCL_FLOAT32 = 7,
    NCCL_FLOAT64 = 8, NCCL_BFLOAT16 = 9,
    AVG_SINCE = 21000 /* ncclGetVersion's number for 2.10 */
};

static int nccl_type(kl_dtype t)
{
    switch (t) {
    case KL_INT8: return NCCL_INT8;
    case KL_UINT8: return NCCL_UINT8;
    case KL_INT32: return NCCL_INT32;
    case KL_INT64: return NCCL_INT64;
    case KL_FLOAT16: return NCCL_FLOAT16;
    case KL_BFLOAT16: return NCCL_BFLOAT16;
    case KL_FLOAT32: return NCCL_FLOAT32;
    case KL_FLOAT64: return NCCL_FLOAT64;
    default: return -1;
    }
}

static int bind(kl_nccl *n, void **slot, const char *symbol)
{
    *slot = dlsym(n->lib, symbol);
    if (!*slot) snprintf(n->why, sizeof n->why, "%s has no %s", n->path, symbol);
    return *slot != NULL;
}

/* 1 when NCCL is loaded, 0 when there is none to use (n->why says why). */
static int load(kl_nccl *n, int emulated)
{
    if (n->lib || n->tried) return n->lib != NULL;
    n->tried = 1;
    const char *env = getenv("KILN_NCCL");
    if (env && strcmp(env, "0") == 0) return 0;
    if (emulated && !(env && *env)) return 0;
    const char *names[] = {env && *env ? env : "libnccl.so.2", env && *env ? NULL : "/usr/local/cuda/lib64/libnccl.so.2"};
    for (size_t i = 0; i < sizeof names / sizeof *names && !n->lib; i++) {
        if (!names[i]) continue;
        n->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (n->lib) snprintf(n->path, sizeof n->path, "%s", names[i]);
    }
    if (!n->lib) {
        snprintf(n->why, sizeof n->why, "no NCCL library (%s)", env && *env ? env : "libnccl.so.2");
        return 0;
    }
    int ok = bind(n, (void **)&n->get_version, "ncclGetVersion") &&
             bind(n, (void **)&n->get_unique_id, "ncclGetUniqueId") &&
             bind(n, (void **)&n->comm_init_rank, "ncclCommInitRank") &&
             bind(n, (void **)&n->comm_destroy, "ncclCommDestroy") &&
             bind(n, (void **)&n->all_reduce, "ncclAllReduce") && bind(n, (void **)&n->reduce, "ncclReduce") &&
             bind(n, (void **)&n->broadcast, "ncclBroadcast") &&
             bind(n, (void **)&n->error_string, "ncclGetErrorString");
    if (ok && n->get_version(&n->version) != 0) ok = 0;
    if (!ok) {
        dlclose(n->lib);
        n->lib = NULL;
    }
    return ok;
}

static kl_status nccl_check(const kl_nccl *n, int rc, const char *what, int rank)
{
    if (rc == 0) return KL_OK;
    return kl_error(KL_ERR_RUNTIME, "%s failed on rank %d: %s (NCCL %d.%d.%d, %s, error %d)", what, rank,
                    n->error_string(rc), n->version / 10000, n->version / 100 % 100, n->version % 100, n->path, rc);
}

/* The communicator: rank 0 draws its id and shares it, or shares that it
 * could not (so that no rank waits for an id that never comes). */
static kl_status communicator(kl_nccl *n, const kl_collective_call *call)
{
    struct {
        int32_t ok, rc;
        kl_nccl_id id;
    } drawn;
    memset(&drawn, 0, sizeof drawn);
    if (call->rank == 0) {
        drawn.rc = n->get_unique_id(&drawn.id);
        drawn.ok = drawn.rc == 0;
    }
    KL_TRY(call->share(call->job, &drawn, sizeof drawn));
    if (!drawn.ok) return nccl_check(n, drawn.rc ? drawn.rc : 1, "ncclGetUniqueId (on rank 0)", call->rank);
    void *comm = NULL;
    int rc = n->comm_init_rank(&comm, call->size, drawn.id, call->rank);
    int32_t made = rc == 0; /* every rank's, or none uses it (no rank in NCCL while another is not) */
    KL_TRY(call->agree(call->job, &made));
    if (!made) {
        if (rc == 0) n->comm_destroy(comm);
        return rc ? nccl_check(n, rc, "ncclCommInitRank", call->rank)
                  : kl_error(KL_ERR_RUNTIME, "ncclCommInitRank failed on another rank (rank %d's succeeded)",
                             call->rank);
    }
    n->comm = comm;
    return KL_OK;
}

/* Whether the job uses NCCL: decided once, by every rank together, at the
 * first collective NCCL could run (the same on every rank), so that no rank
 * calls NCCL while another calls MPI. */
static kl_status decide(kl_cuda_backend *c, const kl_collective_call *call, int *use)
{
    kl_nccl *n = &c->nccl;
    *use = n->comm != NULL;
    if (n->decided) return KL_OK;
    n->decided = 1;
    int32_t can = load(n, c->mode == KL_CUDA_EMULATE) && n->version >= AVG_SINCE;
    KL_TRY(call->agree(call->job, &can));
    if (!can) return KL_OK;
    if (c->mode == KL_CUDA_DEVICE) c->drv.ctx_set_current(c->context);
    KL_TRY(communicator(n, call));
    *use = 1;
    return KL_OK;
}

static int nccl_op(kl_reduce_op op)
{
    return op == KL_REDUCE_MAX ? NCCL_MAX : op == KL_REDUCE_MIN ? NCCL_MIN : op == KL_REDUCE_MEAN ? NCCL_AVG : NCCL_SUM;
}

kl_status kl_cuda_collective(kl_backend *b, const kl_collective_call *call, int *done)
{
    kl_cuda_backend *c = (kl_cuda_backend *)b;
    kl_nccl *n = &c->nccl;
    *done = 0;
    int type = nccl_type(call->dtype), use = 0;
    if (type < 0) return KL_OK;
    KL_TRY(decide(c, call, &use));
    if (!use) return KL_OK;
    if (call->probe) {
        *done = 1;
        return KL_OK;
    }
    if (c->mode == KL_CUDA_DEVICE) c->drv.ctx_set_current(c->context);
    void *stream = c->mode == KL_CUDA_DEVICE ? c->stream : NULL;
    size_t count = (size_t)call->count;
    int rc;
    const char *what;
    if (call->kind == 0) {
        what = "ncclAllReduce";
        rc = n->all_reduce(call->src, call->dst, count, type, nccl_op(call->op), n->comm, stream);
    } else if (call->kind == 1) {
        what = "ncclReduce";
        rc = n->reduce(call->src, call->dst, count, type, nccl_op(call->op), call->root, n->comm, stream);
    } else {
        what = "ncclBroadcast";
        rc = n->broadcast(call->src, call->dst, count, type, call->root, n->comm, stream);
    }
    KL_TRY(nccl_check(n, rc, what, call->rank));
    if (call->kind == 1 && call->rank != call->root) /* as MPI's reduce leaves it */
        KL_TRY(b->ops->fill(b, call->dst, count * kl_dtype_size(call->dtype), 0));
    *done = 1;
    return KL_OK;
}

void kl_nccl_close(kl_nccl *n)
{
    if (n->comm) n->comm_destroy(n->comm);
    n->comm = NULL;
    /* the library stays mapped, as NVRTC does: dlopen counts its users */
}
