"""nn.ComplexNumber against NumPy's complex arithmetic, with gradients."""
import numpy as np
import pytest

import kiln as jt
from ktest import check_grad, rng

C = jt.nn.ComplexNumber


def cplx(r, shape):
    return r.normal(size=shape) + 1j * r.normal(size=shape)


def of(z):
    return C(jt.array(z.real), jt.array(z.imag))


def close(c, z, tol=1e-9):
    np.testing.assert_allclose(c.numpy(), z, rtol=tol, atol=tol)


def test_arithmetic_matches_numpy():
    r = rng(0)
    a, b = cplx(r, (3, 4)), cplx(r, (3, 4))
    A, B = of(a), of(b)
    close(A + B, a + b)
    close(A - B, a - b)
    close(A * B, a * b)
    close(A / B, a / b)
    close(-A, -a)
    close(A * 2.5, a * 2.5)
    close(2.0 - A, 2.0 - a)
    close(1.0 / A, 1.0 / a)
    close(A + jt.array(b.real), a + b.real)
    close(A.conj(), a.conj())
    close(A.exp(), np.exp(a))
    np.testing.assert_allclose(A.norm().numpy(), np.abs(a), rtol=1e-12)
    m = cplx(r, (4, 2))
    close(A @ of(m), a @ m)
    close(A @ jt.array(m.real), a @ m.real)
    assert A.shape == (3, 4) and A.value.shape == (3, 4, 2)


def test_shape_ops_and_indexing():
    r = rng(1)
    a = cplx(r, (2, 3, 4))
    A = of(a)
    close(A.permute(2, 0, 1), a.transpose(2, 0, 1))
    close(A.transpose(), a.transpose(0, 2, 1))
    close(A.reshape((6, 4)), a.reshape(6, 4))
    close(A.sum(1), a.sum(1))
    close(A.unsqueeze(0), a[None])
    close(A[1], a[1])
    close(A[..., 2], a[..., 2])
    close(A.broadcast((5, 2, 3, 4), [0]), np.broadcast_to(a, (5, 2, 3, 4)))
    close(C(jt.array(np.stack([a.real, a.imag], -1)), is_concat_value=True), a)
    with pytest.raises(ValueError, match="last dim"):
        C(jt.array(a.real), is_concat_value=True)


def test_fft2_matches_numpy_and_has_gradients():
    r = rng(2)
    a = cplx(r, (2, 5, 6))
    close(of(a).fft2(), np.fft.fft2(a), tol=1e-9)
    close(of(a).ifft2(), np.fft.ifft2(a), tol=1e-9)
    close(of(a).fft2().ifft2(), a, tol=1e-9)
    check_grad(lambda re, im: C(re, im).fft2().norm(), a.real, a.imag)
    check_grad(lambda re, im: (C(re, im) * C(im, re)).exp().real, a.real[0], a.imag[0])
