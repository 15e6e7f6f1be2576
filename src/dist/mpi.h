/* mpi.h: OpenMPI, loaded with dlopen when mpirun started the process. The
 * context owns one kl_mpi (NULL: a world of one rank). OpenMPI's handles
 * (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM) are the addresses of its predefined
 * objects, so they are looked up by symbol like its functions. */
#ifndef KL_DIST_MPI_H
#define KL_DIST_MPI_H

#include "kiln.h"

typedef struct kl_mpi kl_mpi;

/* A world of one when mpirun did not start this process (*out stays NULL);
 * an error naming the library when it did and OpenMPI cannot be loaded. */
kl_status kl_mpi_load(kl_mpi **out);
/* MPI_Finalize (when kiln initialised MPI) and the handle freed. */
kl_status kl_mpi_close(kl_mpi *m);

int kl_mpi_info_rank(const kl_mpi *m);
int kl_mpi_info_size(const kl_mpi *m);
int kl_mpi_info_local_rank(const kl_mpi *m);
int kl_mpi_info_local_size(const kl_mpi *m);

/* n elements of dtype from src into dst (which may be src). op is SUM, MEAN
 * (a sum divided by the world size), MAX or MIN. */
kl_status kl_mpi_do_all_reduce(kl_mpi *m, const void *src, void *dst, int64_t n, kl_dtype dtype, kl_reduce_op op);
/* The root gets the reduction in dst, the other ranks zeros. */
kl_status kl_mpi_do_reduce(kl_mpi *m, const void *src, void *dst, int64_t n, kl_dtype dtype, kl_reduce_op op,
                           int root);
/* Every rank's dst gets the root's src (nbytes). */
kl_status kl_mpi_do_broadcast(kl_mpi *m, const void *src, void *dst, size_t nbytes, int root);
kl_status kl_mpi_do_barrier(kl_mpi *m);
void kl_mpi_do_abort(kl_mpi *m, int code);

/* Whether dtype can be summed (a float, or an integer MPI type); the op
 * checks this before building the graph. */
int kl_mpi_dtype_supported(kl_dtype dtype);

#endif
