"""What kiln compiles for (Jittor's jt.compiler). has_cuda: 1 when the NVIDIA
driver reports a GPU kiln could use (jt.flags.use_cuda = 1 opens it)."""
from . import _C

has_cuda = int(_C.cuda_device_count() > 0)
