"""sum(exp(2x+1)*x) over 4M float32, read with item(): kiln runs it as one
fused kernel, PyTorch eager as four passes, torch.compile as its own fused
kernel. Also checks each against a float64 NumPy reference, which shows the
accuracy of each framework's float32 sum."""
import numpy as np

from _harness import compare, jt, torch, torch_compiled

N = 4 * 1024 * 1024
x_np = np.random.RandomState(0).uniform(-1, 1, N).astype(np.float32)
reference = float((np.exp(2 * x_np.astype(np.float64) + 1) * x_np).sum())

x = jt.array(x_np)


def kiln_chain():
    return ((x * 2 + 1).exp() * x).sum().item()


values = {"kiln": kiln_chain()}
before = jt.counters()["kernels_launched"]
kiln_chain()
kernels = jt.counters()["kernels_launched"] - before

torch_chain = compiled_chain = None
if torch is not None:
    xt = torch.from_numpy(x_np)

    def chain(t):
        return ((t * 2 + 1).exp() * t).sum()

    def torch_chain():
        return chain(xt).item()

    values["torch"] = torch_chain()
    graph = torch_compiled(chain)
    if graph is not None:
        def compiled_chain():
            return graph(xt).item()
        values["compiled"] = compiled_chain()

compare("fused chain sum(exp(2x+1)*x), 4M f32", kiln_chain, torch_chain, compiled_chain,
        note=f"({kernels} kernel)")
print("  relative error vs float64: " +
      ", ".join(f"{k} {abs(v - reference) / abs(reference):.2e}" for k, v in values.items()))
