"""jt.mkl_ops (Jittor's direct oneDNN calls) against the plain convolution
and matrix product and against NumPy; both layouts."""
import numpy as np
import pytest

import kiln as jt
from ktest import check, data, rng

pytestmark = pytest.mark.skipif(jt.mkl_ops is None, reason="oneDNN is not available")


def conv_ref(x, w, s, p):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    oh, ow = (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1
    y = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * s:i * s + kh, j * s:j * s + kw]
            y[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return y


def test_mkl_conv_in_both_layouts_matches_numpy():
    r = rng(0)
    x, w = data(r, (2, 3, 9, 8)), data(r, (4, 3, 3, 3))
    want = conv_ref(x, w, 2, 1)
    calls = jt.counters()["library_calls"]
    check(jt.mkl_ops.mkl_conv(jt.array(x), jt.array(w), 2, 2, 1, 1), want, rtol=1e-10)
    assert jt.counters()["library_calls"] > calls        # oneDNN ran it
    y = jt.mkl_ops.mkl_conv(jt.array(x.transpose(0, 2, 3, 1)), jt.array(w.transpose(2, 3, 1, 0)),
                            2, 2, 1, 1, xformat="acdb", wformat="hwio", yformat="acdb")
    check(y, want.transpose(0, 2, 3, 1), rtol=1e-10)


def test_mkl_conv_backward_matches_autograd():
    r = rng(1)
    x, w = jt.array(data(r, (2, 3, 7, 7))), jt.array(data(r, (4, 3, 3, 3)))
    y = jt.nn.conv2d(x, w, None, 1, 1)
    dy = jt.array(data(r, y.shape))
    dx, dw = jt.grad((y * dy).sum(), [x, w])
    check(jt.mkl_ops.mkl_conv_backward_x(w, dy, 7, 7, 1, 1, 1, 1), dx.numpy(), rtol=1e-10)
    check(jt.mkl_ops.mkl_conv_backward_w(x, dy, 3, 3, 1, 1, 1, 1), dw.numpy(), rtol=1e-10)
    with pytest.raises(ValueError, match="dy has shape"):
        jt.mkl_ops.mkl_conv_backward_x(w, dy, 9, 9, 1, 1, 1, 1)


def test_mkl_matmul_and_bad_formats():
    r = rng(2)
    a, b = data(r, (3, 5)), data(r, (4, 5))
    check(jt.mkl_ops.mkl_matmul(jt.array(a), jt.array(b), trans_b=True), a @ b.T, rtol=1e-12)
    check(jt.mkl_ops.mkl_matmul(jt.array(a.T), jt.array(b.T), True, False), a @ b.T, rtol=1e-12)
    with pytest.raises(ValueError, match="format 'nchw'"):
        jt.mkl_ops.mkl_conv(jt.zeros((1, 1, 3, 3)), jt.zeros((1, 1, 1, 1)), 1, 1, 0, 0, xformat="nchw")
    with pytest.raises(ValueError, match="expected matrices"):
        jt.mkl_ops.mkl_matmul(jt.zeros((2, 2, 2)), jt.zeros((2, 2)))
