"""Square float32 matrix products: kiln recognises broadcast*mul*sum as a
matrix product and calls OpenBLAS; PyTorch calls its BLAS (OpenBLAS when
libopenblas0-pthread is installed)."""
import numpy as np

from _harness import jt, median_time, report, torch

for n in (256, 1024):
    rng = np.random.RandomState(n)
    a_np, b_np = rng.rand(n, n).astype(np.float32), rng.rand(n, n).astype(np.float32)
    a, b = jt.array(a_np), jt.array(b_np)
    got = jt.matmul(a, b).numpy()
    assert np.allclose(got, a_np.astype(np.float64) @ b_np, rtol=1e-4, atol=1e-3)
    kiln_s = median_time(lambda: jt.matmul(a, b).sync(), repeat=10)
    torch_s = None
    if torch is not None:
        at, bt = torch.from_numpy(a_np), torch.from_numpy(b_np)
        torch_s = median_time(lambda: torch.matmul(at, bt), repeat=10)
    report(f"matmul {n}x{n}x{n} f32", kiln_s, torch_s)
