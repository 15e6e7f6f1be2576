/* fake_nccl.c: a stand-in for NCCL that the tests build and name with
 * KILN_NCCL, so that kiln's NCCL path (src/backend/cuda/nccl.c: the
 * communicator's id shared by rank 0, types, ops, a reduce's other ranks,
 * broadcasts, a bucket packed on the device) runs on the CUDA emulator,
 * whose memory is the host's, on a machine without a GPU. Each call is the
 * MPI call NCCL's is named after, through the libmpi kiln loaded (global
 * symbols). ncclCommInitRank fails unless every rank was given rank 0's id.
 * fake_nccl_calls() counts the collectives it ran. Not kiln's code: a test
 * double for a library only a GPU machine has. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct { char internal[128]; } ncclUniqueId;
typedef struct { int nranks, rank; } fake_comm;
typedef void *handle;

static int calls;

int fake_nccl_calls(void) { return calls; }

static void *mpi(const char *name) { return dlsym(RTLD_DEFAULT, name); }

static handle world(void) { return mpi("ompi_mpi_comm_world"); }

static handle type_of(int t)
{
    static const char *const names[] = {"ompi_mpi_int8_t", "ompi_mpi_uint8_t", "ompi_mpi_int32_t", NULL,
                                        "ompi_mpi_int64_t", NULL, NULL, "ompi_mpi_float", "ompi_mpi_double"};
    return t >= 0 && t < 9 && names[t] ? mpi(names[t]) : NULL;
}

static handle op_of(int op)
{
    return mpi(op == 2 ? "ompi_mpi_op_max" : op == 3 ? "ompi_mpi_op_min" : "ompi_mpi_op_sum");
}

static size_t size_of(int t) { return t <= 1 ? 1 : t <= 3 ? 4 : t <= 5 ? 8 : t == 7 ? 4 : t == 8 ? 8 : 2; }

/* ncclAvg: the sum divided by the ranks */
static void average(void *buf, size_t count, int t, int nranks)
{
    if (t == 7) for (size_t i = 0; i < count; i++) ((float *)buf)[i] /= (float)nranks;
    if (t == 8) for (size_t i = 0; i < count; i++) ((double *)buf)[i] /= (double)nranks;
}

int ncclGetVersion(int *v) { *v = 22000; return 0; }

const char *ncclGetErrorString(int rc) { return rc == 3 ? "internal error (fake: ranks hold different ids)" : "error"; }

int ncclGetUniqueId(ncclUniqueId *id)
{
    memset(id, 0, sizeof *id);
    long pid = (long)getpid();
    memcpy(id->internal, "fake-nccl", 9);
    memcpy(id->internal + 16, &pid, sizeof pid);
    return 0;
}

int ncclCommInitRank(void **comm, int nranks, ncclUniqueId id, int rank)
{
    int (*allreduce)(const void *, void *, int, handle, handle, handle) = mpi("MPI_Allreduce");
    if (!allreduce || memcmp(id.internal, "fake-nccl", 9) != 0) return 3;
    long mine, lo = 0, hi = 0;
    memcpy(&mine, id.internal + 16, sizeof mine);
    allreduce(&mine, &lo, 1, mpi("ompi_mpi_long"), mpi("ompi_mpi_op_min"), world());
    allreduce(&mine, &hi, 1, mpi("ompi_mpi_long"), mpi("ompi_mpi_op_max"), world());
    if (lo != hi) return 3;
    fake_comm *c = malloc(sizeof *c);
    if (!c) return 1;
    c->nranks = nranks;
    c->rank = rank;
    *comm = c;
    return 0;
}

int ncclCommDestroy(void *comm) { free(comm); return 0; }

int ncclAllReduce(const void *src, void *dst, size_t count, int t, int op, void *comm, void *stream)
{
    (void)stream;
    int (*allreduce)(const void *, void *, int, handle, handle, handle) = mpi("MPI_Allreduce");
    int rc = allreduce(src == dst ? (const void *)1 : src, dst, (int)count, type_of(t), op_of(op), world());
    if (op == 4) average(dst, count, t, ((fake_comm *)comm)->nranks);
    calls++;
    return rc ? 1 : 0;
}

int ncclReduce(const void *src, void *dst, size_t count, int t, int op, int root, void *comm, void *stream)
{
    (void)stream;
    int (*reduce)(const void *, void *, int, handle, handle, int, handle) = mpi("MPI_Reduce");
    int at_root = ((fake_comm *)comm)->rank == root;
    int rc = reduce(at_root && src == dst ? (const void *)1 : src, at_root ? dst : NULL, (int)count, type_of(t),
                    op_of(op), root, world());
    if (at_root && op == 4) average(dst, count, t, ((fake_comm *)comm)->nranks);
    calls++;
    return rc ? 1 : 0;
}

int ncclBroadcast(const void *src, void *dst, size_t count, int t, int root, void *comm, void *stream)
{
    (void)stream;
    int (*bcast)(void *, int, handle, int, handle) = mpi("MPI_Bcast");
    if (((fake_comm *)comm)->rank == root && src != dst) memcpy(dst, src, count * size_of(t));
    calls++;
    return bcast(dst, (int)(count * size_of(t)), mpi("ompi_mpi_byte"), root, world()) ? 1 : 0;
}
