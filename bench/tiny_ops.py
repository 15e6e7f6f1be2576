"""Per-op overhead on tiny tensors: one add on 4 floats, read back with
numpy(), in a loop. kiln's path is build + fuse + (cached) kernel lookup +
launch + copy out; PyTorch's is eager dispatch (torch.compile: a guarded
call of the compiled graph)."""
import numpy as np

from _harness import compare, jt, torch, torch_compiled

LOOPS = 2000
a = jt.array(np.ones(4, np.float32))


def kiln_ops():
    for _ in range(LOOPS):
        (a + a).numpy()


torch_ops = compiled_ops = None
if torch is not None:
    at = torch.ones(4)
    add = torch_compiled(lambda t: t + t)

    def torch_ops():
        for _ in range(LOOPS):
            (at + at).numpy()

    if add is not None:
        def compiled_ops():
            for _ in range(LOOPS):
                add(at).numpy()

compare("tiny op: a+a on 4 floats, per op", kiln_ops, torch_ops, compiled_ops, repeat=5, per=LOOPS)
