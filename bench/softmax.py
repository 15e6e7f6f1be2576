"""Softmax over the rows of a (4096, 1024) float32 matrix, read with numpy()."""
import numpy as np

from _harness import compare, jt, torch, torch_compiled

x_np = np.random.RandomState(0).randn(4096, 1024).astype(np.float32)
x = jt.array(x_np)
e = np.exp(x_np.astype(np.float64) - x_np.max(1, keepdims=True))
want = e / e.sum(1, keepdims=True)


def kiln_softmax():
    return jt.nn.softmax(x, dim=1).numpy()


assert np.allclose(kiln_softmax(), want, rtol=1e-4, atol=1e-6)
torch_softmax = compiled_softmax = None
if torch is not None:
    xt = torch.from_numpy(x_np)

    def torch_softmax():
        return torch.softmax(xt, dim=1).numpy()

    graph = torch_compiled(lambda t: torch.softmax(t, dim=1))
    if graph is not None:
        def compiled_softmax():
            return graph(xt).numpy()
        assert np.allclose(compiled_softmax(), want, rtol=1e-4, atol=1e-6)
compare("softmax rows (4096, 1024) f32", kiln_softmax, torch_softmax, compiled_softmax)
