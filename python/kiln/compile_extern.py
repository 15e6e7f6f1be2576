"""Jittor's jt.compile_extern: the external op libraries Jittor builds as
op modules (CUDA's cuBLAS, cuDNN, cub, cuRAND, cuFFT; MKL on the CPU). kiln
reaches its libraries through the core's library patterns instead
(src/opt/, src/backend/cpu/patterns.c), so none of these exists as a module:
each is None, as in a Jittor build without it."""
cublas_ops = cudnn_ops = cub_ops = curand_ops = cufft_ops = mkl_ops = None
has_mkl = 0
