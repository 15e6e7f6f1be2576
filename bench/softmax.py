"""Softmax over the rows of a (4096, 1024) float32 matrix: kiln fuses it into
a max kernel, an exp-sum kernel and a normalising kernel."""
import numpy as np

from _harness import jt, median_time, report, torch

x_np = np.random.RandomState(0).randn(4096, 1024).astype(np.float32)
x = jt.array(x_np)
got = jt.nn.softmax(x, dim=1).numpy()
e = np.exp(x_np.astype(np.float64) - x_np.max(1, keepdims=True))
assert np.allclose(got, e / e.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)
kiln_s = median_time(lambda: jt.nn.softmax(x, dim=1).sync())
torch_s = None
if torch is not None:
    xt = torch.from_numpy(x_np)
    torch_s = median_time(lambda: torch.softmax(xt, dim=1))
report("softmax rows (4096, 1024) f32", kiln_s, torch_s)
