"""ResNet-18/50 forward (eval, batch 1 and 8, 224x224) beside torchvision
with the same weights, and kiln's cold and warm start: a new process's time
to its first ResNet-18 forward with an empty kernel cache, then with the
cache the first process filled."""
import tempfile

import numpy as np

from _harness import jt, median_time, new_process_seconds, report, torch

import kiln.models as models

FIRST_FORWARD = """
import time, numpy as np
t0 = time.perf_counter()
import kiln as jt, kiln.models as models
m = models.resnet18(); m.eval()
m(jt.array(np.zeros((1, 3, 224, 224), np.float32))).sync()
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
        torch_s = None
        if torch is not None and torchvision is not None:
            tm = getattr(torchvision.models, name)()
            tm.eval()
            km.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
            xt = torch.from_numpy(x_np)
            with torch.no_grad():
                want = tm(xt).numpy()
            got = km(jt.array(x_np)).numpy()
            assert np.abs(got - want).max() <= 1e-3 * max(1.0, np.abs(want).max()), np.abs(got - want).max()

            def torch_fwd():
                with torch.no_grad():
                    tm(xt)
            torch_s = median_time(torch_fwd, repeat=5, warmup=1)
        x = jt.array(x_np)
        kiln_s = median_time(lambda: km(x).sync(), repeat=5, warmup=1)
        report(f"{name} forward batch {batch}", kiln_s, torch_s)
