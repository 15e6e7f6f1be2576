"""Layer norm (nn.LayerNorm(1024), eval) over a (4096, 1024) float32 matrix
under no_grad, read with numpy(); both frameworks' layers with the same
weight and bias."""
import numpy as np

from _harness import compare, jt, torch, torch_compiled

r = np.random.RandomState(0)
x_np = (r.randn(4096, 1024) * 2 + 1).astype(np.float32)
w_np, b_np = r.randn(1024).astype(np.float32), r.randn(1024).astype(np.float32)
layer = jt.nn.LayerNorm(1024)
layer.load_state_dict({"weight": w_np, "bias": b_np})
layer.eval()
x = jt.array(x_np)
x64 = x_np.astype(np.float64)
want = (x64 - x64.mean(1, keepdims=True)) / np.sqrt(x64.var(1, keepdims=True) + 1e-5) * w_np + b_np


def kiln_layer_norm():
    with jt.no_grad():
        return layer(x).numpy()


assert np.allclose(kiln_layer_norm(), want, rtol=1e-4, atol=1e-4)
torch_layer_norm = compiled_layer_norm = None
if torch is not None:
    tlayer = torch.nn.LayerNorm(1024)
    tlayer.load_state_dict({"weight": torch.from_numpy(w_np), "bias": torch.from_numpy(b_np)})
    tlayer.eval()
    xt = torch.from_numpy(x_np)

    def run_with(f):
        def run():
            with torch.no_grad():
                return f(xt).numpy()
        return run

    torch_layer_norm = run_with(tlayer)
    graph = torch_compiled(tlayer)
    if graph is not None:
        compiled_layer_norm = run_with(graph)
        assert np.allclose(compiled_layer_norm(), want, rtol=1e-4, atol=1e-4)
compare("layer norm rows (4096, 1024) f32", kiln_layer_norm, torch_layer_norm, compiled_layer_norm)
