"""Square float32 matrix products read with numpy(): kiln recognises
broadcast*mul*sum as a matrix product and calls its library (oneDNN's sgemm;
OpenBLAS with KILN_DNNL=0); PyTorch calls its BLAS."""
import numpy as np

from _harness import compare, jt, torch, torch_compiled

for n in (256, 1024):
    rng = np.random.RandomState(n)
    a_np, b_np = rng.rand(n, n).astype(np.float32), rng.rand(n, n).astype(np.float32)
    a, b = jt.array(a_np), jt.array(b_np)
    assert np.allclose(jt.matmul(a, b).numpy(), a_np.astype(np.float64) @ b_np, rtol=1e-4, atol=1e-3)
    torch_mm = compiled_mm = None
    if torch is not None:
        at, bt = torch.from_numpy(a_np), torch.from_numpy(b_np)

        def torch_mm():
            return torch.matmul(at, bt).numpy()

        graph = torch_compiled(torch.matmul)
        if graph is not None:
            def compiled_mm():
                return graph(at, bt).numpy()
    compare(f"matmul {n}x{n}x{n} f32", lambda: jt.matmul(a, b).numpy(), torch_mm, compiled_mm, repeat=10)
