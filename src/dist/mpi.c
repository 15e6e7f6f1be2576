/* mpi.c: OpenMPI through dlopen, so that kiln builds and runs without it.
 * Only what mpirun starts joins a job: OMPI_COMM_WORLD_SIZE in the
 * environment is mpirun's mark (a plain process stays a world of one and
 * never pays for MPI_Init). */
#include "dist/mpi.h"
#include "core/dtype.h"
#include "core/error.h"
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MPI_SUCCESS_ 0
#define MPI_THREAD_SERIALIZED_ 2
#define MPI_IN_PLACE_ ((void *)1)
/* MPI counts are ints: larger arrays go in pieces of this many elements */
#define CHUNK ((int64_t)1 << 30)

typedef void *handle; /* MPI_Comm, MPI_Datatype, MPI_Op: pointers in OpenMPI */

struct kl_mpi {
    void *lib;
    int rank, size, local_rank, local_size;
    int initialised_here;
    int (*initialized)(int *);
    int (*finalized)(int *);
    int (*init_thread)(int *, char ***, int, int *);
    int (*comm_rank)(handle, int *);
    int (*comm_size)(handle, int *);
    int (*allreduce)(const void *, void *, int, handle, handle, handle);
    int (*reduce)(const void *, void *, int, handle, handle, int, handle);
    int (*bcast)(void *, int, handle, int, handle);
    int (*barrier)(handle);
    int (*abort_)(handle, int);
    int (*finalize)(void);
    int (*error_string)(int, char *, int *);
    handle world, sum, max, min, byte;
    handle types[KL_DTYPE_COUNT]; /* NULL: no MPI type for arithmetic */
};

static const char *const LIBRARIES[] = {"libmpi.so.40", "libmpi.so"};

static int env_int(const char *name, int fallback)
{
    const char *s = getenv(name);
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    return s && *s && !*end && v >= 0 && v <= INT_MAX ? (int)v : fallback;
}

static kl_status mpi_failed(const kl_mpi *m, const char *what, int code)
{
    char text[512] = "";
    int len = 0;
    if (m->error_string && m->error_string(code, text, &len) != MPI_SUCCESS_) text[0] = 0;
    return kl_error(KL_ERR_RUNTIME, "%s failed on rank %d: %s (MPI error %d)", what, m->rank, text, code);
}

/* Every symbol, or the first that is missing. */
static const char *resolve(kl_mpi *m)
{
#define SYM(field, name) \
    if (!(*(void **)&m->field = dlsym(m->lib, name))) return name;
    SYM(initialized, "MPI_Initialized")
    SYM(finalized, "MPI_Finalized")
    SYM(init_thread, "MPI_Init_thread")
    SYM(comm_rank, "MPI_Comm_rank")
    SYM(comm_size, "MPI_Comm_size")
    SYM(allreduce, "MPI_Allreduce")
    SYM(reduce, "MPI_Reduce")
    SYM(bcast, "MPI_Bcast")
    SYM(barrier, "MPI_Barrier")
    SYM(abort_, "MPI_Abort")
    SYM(finalize, "MPI_Finalize")
    SYM(error_string, "MPI_Error_string")
    SYM(world, "ompi_mpi_comm_world")
    SYM(sum, "ompi_mpi_op_sum")
    SYM(max, "ompi_mpi_op_max")
    SYM(min, "ompi_mpi_op_min")
    SYM(byte, "ompi_mpi_byte")
    SYM(types[KL_INT8], "ompi_mpi_int8_t")
    SYM(types[KL_UINT8], "ompi_mpi_uint8_t")
    SYM(types[KL_INT16], "ompi_mpi_int16_t")
    SYM(types[KL_INT32], "ompi_mpi_int32_t")
    SYM(types[KL_INT64], "ompi_mpi_int64_t")
    SYM(types[KL_FLOAT32], "ompi_mpi_float")
    SYM(types[KL_FLOAT64], "ompi_mpi_double")
#undef SYM
    return NULL;
}

kl_status kl_mpi_load(kl_mpi **out)
{
    *out = NULL;
    const char *world = getenv("OMPI_COMM_WORLD_SIZE");
    if (!world) return KL_OK;
    kl_mpi *m = calloc(1, sizeof *m);
    if (!m) return kl_error(KL_ERR_MEMORY, "out of memory loading MPI");
    /* global: OpenMPI's own plugins, loaded later, bind to libmpi's symbols */
    const char *why = NULL;
    for (size_t i = 0; i < sizeof LIBRARIES / sizeof *LIBRARIES && !m->lib; i++) {
        m->lib = dlopen(LIBRARIES[i], RTLD_NOW | RTLD_GLOBAL);
        if (!m->lib && !why) why = dlerror();
    }
    if (!m->lib) {
        free(m);
        return kl_error(KL_ERR_RUNTIME,
                        "mpirun started this process (OMPI_COMM_WORLD_SIZE=%s) but OpenMPI's library could not be "
                        "loaded: %s (Debian: apt install openmpi-bin libopenmpi3)",
                        world, why ? why : "not found");
    }
    const char *missing = resolve(m);
    if (missing) {
        dlclose(m->lib);
        free(m);
        return kl_error(KL_ERR_RUNTIME, "the loaded libmpi lacks %s: kiln speaks OpenMPI's ABI (libmpi.so.40)",
                        missing);
    }
    int done = 0, provided = 0, rc = MPI_SUCCESS_;
    m->initialized(&done);
    if (!done) {
        rc = m->init_thread(NULL, NULL, MPI_THREAD_SERIALIZED_, &provided);
        m->initialised_here = rc == MPI_SUCCESS_;
    }
    if (rc == MPI_SUCCESS_) rc = m->comm_rank(m->world, &m->rank);
    if (rc == MPI_SUCCESS_) rc = m->comm_size(m->world, &m->size);
    if (rc != MPI_SUCCESS_) {
        kl_status s = mpi_failed(m, "MPI_Init_thread", rc);
        dlclose(m->lib);
        free(m);
        return s;
    }
    /* mpirun says how many ranks share this machine; without it, all do */
    m->local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", m->rank);
    m->local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", m->size);
    *out = m;
    return KL_OK;
}

kl_status kl_mpi_close(kl_mpi *m)
{
    if (!m) return KL_OK;
    int done = 1, rc = MPI_SUCCESS_;
    if (m->initialised_here && m->finalized(&done) == MPI_SUCCESS_ && !done) rc = m->finalize();
    /* the library stays loaded: OpenMPI cannot be initialised twice in a process */
    kl_status s = rc == MPI_SUCCESS_ ? KL_OK : mpi_failed(m, "MPI_Finalize", rc);
    free(m);
    return s;
}

int kl_mpi_info_rank(const kl_mpi *m) { return m ? m->rank : 0; }
int kl_mpi_info_size(const kl_mpi *m) { return m ? m->size : 1; }
int kl_mpi_info_local_rank(const kl_mpi *m) { return m ? m->local_rank : 0; }
int kl_mpi_info_local_size(const kl_mpi *m) { return m ? m->local_size : 1; }

int kl_mpi_dtype_supported(kl_dtype dtype)
{
    switch (dtype) {
    case KL_INT8: case KL_UINT8: case KL_INT16: case KL_INT32: case KL_INT64: case KL_FLOAT32: case KL_FLOAT64:
        return 1;
    default:
        return 0;
    }
}

static handle op_handle(const kl_mpi *m, kl_reduce_op op)
{
    return op == KL_REDUCE_MAX ? m->max : op == KL_REDUCE_MIN ? m->min : m->sum;
}

static void divide_by_size(const kl_mpi *m, void *dst, int64_t n, kl_dtype dtype)
{
    if (dtype == KL_FLOAT32)
        for (int64_t i = 0; i < n; i++) ((float *)dst)[i] /= (float)m->size;
    else if (dtype == KL_FLOAT64)
        for (int64_t i = 0; i < n; i++) ((double *)dst)[i] /= (double)m->size;
}

kl_status kl_mpi_do_all_reduce(kl_mpi *m, const void *src, void *dst, int64_t n, kl_dtype dtype, kl_reduce_op op)
{
    size_t esize = kl_dtype_size(dtype);
    for (int64_t at = 0; at < n; at += CHUNK) {
        int count = (int)(n - at < CHUNK ? n - at : CHUNK);
        const char *s = src == dst ? MPI_IN_PLACE_ : (const char *)src + at * esize;
        int rc = m->allreduce(s, (char *)dst + at * esize, count, m->types[dtype], op_handle(m, op), m->world);
        if (rc != MPI_SUCCESS_) return mpi_failed(m, "MPI_Allreduce", rc);
    }
    if (op == KL_REDUCE_MEAN) divide_by_size(m, dst, n, dtype);
    return KL_OK;
}

kl_status kl_mpi_do_reduce(kl_mpi *m, const void *src, void *dst, int64_t n, kl_dtype dtype, kl_reduce_op op,
                           int root)
{
    size_t esize = kl_dtype_size(dtype);
    int at_root = m->rank == root;
    for (int64_t at = 0; at < n; at += CHUNK) {
        int count = (int)(n - at < CHUNK ? n - at : CHUNK);
        const char *s = at_root && src == dst ? MPI_IN_PLACE_ : (const char *)src + at * esize;
        int rc = m->reduce(s, at_root ? (char *)dst + at * esize : NULL, count, m->types[dtype], op_handle(m, op),
                           root, m->world);
        if (rc != MPI_SUCCESS_) return mpi_failed(m, "MPI_Reduce", rc);
    }
    if (!at_root) memset(dst, 0, (size_t)n * esize);
    else if (op == KL_REDUCE_MEAN) divide_by_size(m, dst, n, dtype);
    return KL_OK;
}

kl_status kl_mpi_do_broadcast(kl_mpi *m, const void *src, void *dst, size_t nbytes, int root)
{
    if (m->rank == root && src != dst) memcpy(dst, src, nbytes);
    for (size_t at = 0; at < nbytes; at += (size_t)CHUNK) {
        int count = (int)(nbytes - at < (size_t)CHUNK ? nbytes - at : (size_t)CHUNK);
        int rc = m->bcast((char *)dst + at, count, m->byte, root, m->world);
        if (rc != MPI_SUCCESS_) return mpi_failed(m, "MPI_Bcast", rc);
    }
    return KL_OK;
}

kl_status kl_mpi_do_barrier(kl_mpi *m)
{
    int rc = m->barrier(m->world);
    return rc == MPI_SUCCESS_ ? KL_OK : mpi_failed(m, "MPI_Barrier", rc);
}

void kl_mpi_do_abort(kl_mpi *m, int code)
{
    m->abort_(m->world, code);
}
