"""A 3x3 convolution, N=8, 64->64 channels, 56x56, padding 1 (a ResNet-18
layer): forward, and forward+backward. Both frameworks get the same weights."""
import numpy as np

from _harness import jt, median_time, report, torch

rng = np.random.RandomState(0)
x_np = rng.randn(8, 64, 56, 56).astype(np.float32)
w_np = (rng.randn(64, 64, 3, 3) * 0.05).astype(np.float32)
x, w = jt.array(x_np), jt.array(w_np)


def kiln_fwd():
    return jt.nn.conv2d(x, w, padding=1).sync()


def kiln_train():
    y = jt.nn.conv2d(x, w, padding=1)
    loss = (y * y).mean()
    jt.sync(jt.grad(loss, [x, w]) + [loss])


got = jt.nn.conv2d(x, w, padding=1).numpy()
torch_fwd_s = torch_train_s = None
if torch is not None:
    xt = torch.from_numpy(x_np).requires_grad_()
    wt = torch.from_numpy(w_np).requires_grad_()
    want = torch.nn.functional.conv2d(xt, wt, padding=1).detach().numpy()
    assert np.allclose(got, want, rtol=1e-3, atol=1e-3), np.abs(got - want).max()

    def torch_fwd():
        with torch.no_grad():
            torch.nn.functional.conv2d(xt, wt, padding=1)

    def torch_train():
        y = torch.nn.functional.conv2d(xt, wt, padding=1)
        (y * y).mean().backward()

    torch_fwd_s = median_time(torch_fwd, repeat=10)
    torch_train_s = median_time(torch_train, repeat=10)
report("conv 3x3 8x64x56x56 forward", median_time(kiln_fwd, repeat=10), torch_fwd_s)
report("conv 3x3 8x64x56x56 fwd+bwd", median_time(kiln_train, repeat=10), torch_train_s)
