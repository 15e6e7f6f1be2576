/* world.c: the context's place in an MPI job, through the public API. */
#include "core/context.h"
#include "core/error.h"
#include "dist/mpi.h"
#include <stdio.h>

#define CTX_ARG(ctx, fn) KL_ARG(ctx, fn, "ctx")

kl_status kl_mpi_start(kl_context *ctx)
{
    CTX_ARG(ctx, "kl_mpi_start");
    if (ctx->mpi) return KL_OK;
    return kl_mpi_load(&ctx->mpi);
}

int kl_mpi_rank(const kl_context *ctx) { return ctx ? kl_mpi_info_rank(ctx->mpi) : 0; }
int kl_mpi_world_size(const kl_context *ctx) { return ctx ? kl_mpi_info_size(ctx->mpi) : 1; }
int kl_mpi_local_rank(const kl_context *ctx) { return ctx ? kl_mpi_info_local_rank(ctx->mpi) : 0; }
int kl_mpi_local_size(const kl_context *ctx) { return ctx ? kl_mpi_info_local_size(ctx->mpi) : 1; }

kl_status kl_mpi_all_reduce_host(kl_context *ctx, void *data, int64_t n, kl_dtype dtype)
{
    CTX_ARG(ctx, "kl_mpi_all_reduce_host");
    if (n < 0) return kl_error(KL_ERR_VALUE, "kl_mpi_all_reduce_host: negative count %lld", (long long)n);
    if (n) KL_ARG(data, "kl_mpi_all_reduce_host", "data");
    if ((unsigned)dtype >= KL_DTYPE_COUNT || !kl_mpi_dtype_supported(dtype))
        return kl_error(KL_ERR_TYPE, "kl_mpi_all_reduce_host: no MPI arithmetic for %s",
                        (unsigned)dtype < KL_DTYPE_COUNT ? kl_dtype_name(dtype) : "an invalid dtype");
    return ctx->mpi && n ? kl_mpi_do_all_reduce(ctx->mpi, data, data, n, dtype, KL_REDUCE_SUM) : KL_OK;
}

kl_status kl_mpi_barrier(kl_context *ctx)
{
    CTX_ARG(ctx, "kl_mpi_barrier");
    return ctx->mpi ? kl_mpi_do_barrier(ctx->mpi) : KL_OK;
}

void kl_mpi_abort(kl_context *ctx, int code, const char *message)
{
    if (message) {
        fputs(message, stderr);
        fputc('\n', stderr);
        fflush(stderr);
    }
    if (ctx && ctx->mpi) kl_mpi_do_abort(ctx->mpi, code);
}

kl_status kl_mpi_finish(kl_context *ctx)
{
    CTX_ARG(ctx, "kl_mpi_finish");
    kl_mpi *m = ctx->mpi;
    ctx->mpi = NULL;
    return kl_mpi_close(m);
}
