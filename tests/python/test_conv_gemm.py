"""The im2col convolution (python/kiln/nn/modules/conv_gemm.py) against PyTorch's conv2d,
forward and both gradients, across groups, strides, padding and dilation, and
proof that its products went to BLAS."""
import numpy as np
import pytest

import kiln as jt
from kiln.nn.modules.conv_gemm import conv_im2col

torch = pytest.importorskip("torch")

CASES = [  # N, C, H, W, O, groups, kernel, stride, padding, dilation
    (2, 4, 7, 6, 6, 1, 3, 1, 1, 1),
    (2, 4, 7, 6, 6, 2, 3, 1, 1, 1),
    (2, 6, 9, 9, 6, 6, 3, 2, 1, 1),
    (1, 3, 8, 8, 4, 1, 3, 1, 0, 2),
    (3, 8, 5, 5, 8, 4, 1, 1, 0, 1),
    (1, 2, 6, 11, 3, 1, 2, 3, 2, 1),
]


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_matches_torch(case):
    N, C, H, W, O, G, k, s, p, d = case
    r = np.random.RandomState(sum(case))
    x, w = r.randn(N, C, H, W), r.randn(O, C // G, k, k)
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    yt = torch.nn.functional.conv2d(xt, wt, stride=s, padding=p, dilation=d, groups=G)
    (yt * yt).sum().backward()
    xv, wv = jt.array(x), jt.array(w)
    y = conv_im2col(xv, wv, (s, s), [(p, p), (p, p)], (d, d), tuple(yt.shape[2:]), G)
    gx, gw = jt.grad((y * y).sum(), [xv, wv])
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gx.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw.numpy(), wt.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_products_use_blas():
    x, w = jt.randn(2, 4, 6, 6), jt.randn(5, 4, 3, 3)
    before = jt.counters()["library_calls"]
    y = conv_im2col(x, w, (1, 1), [(1, 1), (1, 1)], (1, 1), (6, 6))
    jt.sync(jt.grad((y * y).sum(), [x, w]) + [y])
    # forward, input gradient and weight gradient: three matrix products
    assert jt.counters()["library_calls"] - before == 3
