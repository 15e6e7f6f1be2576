"""What kiln compiles for (Jittor's jt.compiler). has_cuda: 1 when the NVIDIA
driver reports a GPU kiln could use (jt.flags.use_cuda = 1 opens it). It is
asked of the driver at the first read, not at import: initialising CUDA costs
a process that never uses the GPU time, and makes its forks unable to."""
import functools

from . import _C


@functools.lru_cache(maxsize=None)
def _has_cuda():
    return int(_C.cuda_device_count() > 0)


def __getattr__(name):
    if name == "has_cuda":
        return _has_cuda()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
