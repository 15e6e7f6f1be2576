"""Per-op overhead on tiny tensors: build one add and sync it, in a loop.
kiln's path is build + fuse + (cached) kernel lookup + launch; PyTorch's is
eager dispatch."""
import numpy as np

from _harness import jt, median_time, report, torch

LOOPS = 2000
a = jt.array(np.ones(4, np.float32))


def kiln_ops():
    for _ in range(LOOPS):
        (a + a).sync()


kiln_s = median_time(kiln_ops, repeat=5) / LOOPS
torch_s = None
if torch is not None:
    at = torch.ones(4)

    def torch_ops():
        for _ in range(LOOPS):
            at + at

    torch_s = median_time(torch_ops, repeat=5) / LOOPS
report("tiny op: a+a on 4 floats, per op", kiln_s, torch_s)
