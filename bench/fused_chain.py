"""sum(exp(2x+1)*x) over 4M float32: kiln runs it as one fused kernel, PyTorch
as four passes. Also checks both against a float64 NumPy reference, which
shows the accuracy of each framework's float32 sum."""
import numpy as np

from _harness import jt, median_time, report, torch

N = 4 * 1024 * 1024
x_np = np.random.RandomState(0).uniform(-1, 1, N).astype(np.float32)
reference = float((np.exp(2 * x_np.astype(np.float64) + 1) * x_np).sum())

x = jt.array(x_np)


def kiln_chain():
    return ((x * 2 + 1).exp() * x).sum().item()


kiln_value = kiln_chain()
before = jt.counters()["kernels_launched"]
kiln_chain()
kernels = jt.counters()["kernels_launched"] - before
kiln_s = median_time(kiln_chain)

torch_s = torch_value = None
if torch is not None:
    xt = torch.from_numpy(x_np)

    def torch_chain():
        return ((xt * 2 + 1).exp() * xt).sum().item()

    torch_value = torch_chain()
    torch_s = median_time(torch_chain)

report("fused chain sum(exp(2x+1)*x), 4M f32", kiln_s, torch_s, f"({kernels} kernel)")
print(f"  relative error vs float64: kiln {abs(kiln_value - reference) / abs(reference):.2e}"
      + (f", torch {abs(torch_value - reference) / abs(reference):.2e}" if torch_value is not None else ""))
