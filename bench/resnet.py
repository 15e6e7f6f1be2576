"""ResNet-18/50 inference (eval(), no_grad, batch 1 and 8, 224x224, the
logits read with numpy()) beside torchvision with the same weights loaded
through load_state_dict, eager and under torch.compile; and kiln's cold and
warm start: a new process's time to its first ResNet-18 forward with an
empty kernel cache, then with the cache the first process filled."""
import tempfile

import numpy as np

from _harness import compare, jt, new_process_seconds, torch, torch_compiled

import kiln.models as models

FIRST_FORWARD = """
import time, numpy as np
t0 = time.perf_counter()
import kiln as jt, kiln.models as models
m = models.resnet18(); m.eval()
with jt.no_grad():
    m(jt.array(np.zeros((1, 3, 224, 224), np.float32))).numpy()
print(time.perf_counter() - t0)
"""


with tempfile.TemporaryDirectory() as cache:
    cold = new_process_seconds(FIRST_FORWARD, cache)
    warm = new_process_seconds(FIRST_FORWARD, cache)
print(f"{'resnet18 first forward, new process':<40} cold {cold:7.2f} s   warm {warm:7.2f} s")

try:
    import torchvision
except ImportError:
    torchvision = None

for name in ("resnet18", "resnet50"):
    for batch in (1, 8):
        x_np = np.random.RandomState(0).rand(batch, 3, 224, 224).astype(np.float32)
        km = getattr(models, name)()
        km.eval()
        x = jt.array(x_np)

        def kiln_fwd():
            with jt.no_grad():
                return km(x).numpy()

        torch_fwd = compiled_fwd = None
        if torch is not None and torchvision is not None:
            tm = getattr(torchvision.models, name)()
            tm.eval()
            km.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
            xt = torch.from_numpy(x_np)

            def run_with(f):
                def fwd():
                    with torch.no_grad():
                        return f(xt).numpy()
                return fwd

            torch_fwd = run_with(tm)
            want = torch_fwd()
            got = kiln_fwd()
            assert np.abs(got - want).max() <= 1e-3 * max(1.0, np.abs(want).max()), np.abs(got - want).max()
            graph = torch_compiled(tm)
            if graph is not None:
                compiled_fwd = run_with(graph)
        compare(f"{name} forward batch {batch}", kiln_fwd, torch_fwd, compiled_fwd, repeat=5, warmup=1)
