"""What kiln compiles for (Jittor's jt.compiler). has_cuda: 1 when a CUDA
device can be used; kiln's backends today are the CPU's alone, so 0."""
has_cuda = 0
