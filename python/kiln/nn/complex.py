"""nn.ComplexNumber (Jittor's): complex arrays stored as real Vars whose last
dim holds (real, imaginary). Arithmetic, matrix products, exp, conj, norm
and the 2-d Fourier transform are meta-op expressions on the two parts, so
they are lazy and differentiable."""
import math

import numpy as np

from .._core import Var, array, to_var
from .._reduce import matmul
from .._shape import stack

__all__ = ["ComplexNumber"]


def _parts(other):
    """(real, imag) of a ComplexNumber, a Var or a number."""
    if isinstance(other, ComplexNumber):
        return other.real, other.imag
    if isinstance(other, complex):
        return other.real, other.imag
    return to_var(other) if isinstance(other, Var) else other, 0.0


class ComplexNumber:
    """value: a Var of shape [..., 2]; shape is value's without the last dim."""

    def __init__(self, real, imag=None, is_concat_value=False):
        real = to_var(real)
        if is_concat_value:
            if imag is not None or real.shape[-1] != 2:
                raise ValueError("ComplexNumber: is_concat_value needs one Var whose last dim "
                                 f"is 2 (real, imaginary), got shape {list(real.shape)}")
            self.value = real
        else:
            imag = real * 0 if imag is None else to_var(imag)
            self.value = stack([real, imag], real.ndim)

    # ---- parts and shape ----
    @property
    def real(self):
        return self.value[..., 0]

    @property
    def imag(self):
        return self.value[..., 1]

    @property
    def shape(self):
        return tuple(self.value.shape[:-1])

    @property
    def dtype(self):
        return self.value.dtype

    def numpy(self):
        v = self.value.numpy()
        return v[..., 0] + 1j * v[..., 1]

    def __repr__(self):
        return f"ComplexNumber({self.numpy()!r})"

    # ---- gradients ----
    def stop_grad(self):
        return ComplexNumber(self.value.stop_grad(), is_concat_value=True)

    def detach(self):
        return ComplexNumber(self.value.detach(), is_concat_value=True)

    def start_grad(self):
        self.value.requires_grad = True
        return self

    # ---- shape ops (on the complex dims) ----
    def _dims(self, axes):
        return [a % len(self.shape) for a in axes]

    def reshape(self, shape):
        return ComplexNumber(self.value.reshape(tuple(shape) + (2,)), is_concat_value=True)

    view = reshape

    def unsqueeze(self, dim=0):
        return ComplexNumber(self.value.unsqueeze(dim % (len(self.shape) + 1)), is_concat_value=True)

    def squeeze(self, dim=0):
        return ComplexNumber(self.value.squeeze(dim % len(self.shape)), is_concat_value=True)

    def permute(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (list, tuple)):
            axes = axes[0]
        axes = self._dims(axes) + [len(self.shape)]
        return ComplexNumber(self.value.permute(*axes), is_concat_value=True)

    def transpose(self, *axes):
        if not axes:
            axes = (len(self.shape) - 2, len(self.shape) - 1)
        if len(axes) == 2:
            order = list(range(len(self.shape)))
            a, b = self._dims(axes)
            order[a], order[b] = order[b], order[a]
            return self.permute(*order)
        return self.permute(*axes)

    def broadcast(self, shape, dims=()):
        shape = tuple(shape) + (2,)
        return ComplexNumber(self.value.broadcast(shape, list(dims)), is_concat_value=True)

    def sum(self, dims, keepdims=False):
        dims = [dims] if isinstance(dims, int) else list(dims)
        return ComplexNumber(self.value.sum(self._dims(dims), keepdims), is_concat_value=True)

    def __getitem__(self, index):
        if not isinstance(index, tuple):
            index = (index,)
        return ComplexNumber(self.value[index + (slice(None),)], is_concat_value=True)

    # ---- arithmetic ----
    def __add__(self, other):
        r, i = _parts(other)
        return ComplexNumber(self.real + r, self.imag + i)

    __radd__ = __add__

    def __sub__(self, other):
        r, i = _parts(other)
        return ComplexNumber(self.real - r, self.imag - i)

    def __rsub__(self, other):
        r, i = _parts(other)
        return ComplexNumber(r - self.real, i - self.imag)

    def __neg__(self):
        return ComplexNumber(-self.value, is_concat_value=True)

    def __mul__(self, other):
        r, i = _parts(other)
        a, b = self.real, self.imag
        return ComplexNumber(a * r - b * i, a * i + b * r)

    __rmul__ = __mul__

    def __truediv__(self, other):
        r, i = _parts(other)
        a, b = self.real, self.imag
        den = r * r + i * i
        return ComplexNumber((a * r + b * i) / den, (b * r - a * i) / den)

    def __rtruediv__(self, other):
        r, i = _parts(other)
        a, b = self.real, self.imag
        den = a * a + b * b
        return ComplexNumber((r * a + i * b) / den, (i * a - r * b) / den)

    def __matmul__(self, other):
        return ComplexNumber(*_matmul_parts((self.real, self.imag), _parts(other)))

    def __rmatmul__(self, other):
        return ComplexNumber(*_matmul_parts(_parts(other), (self.real, self.imag)))

    def conj(self):
        return ComplexNumber(self.real, -self.imag)

    def norm(self):
        """|z| element-wise."""
        return (self.real * self.real + self.imag * self.imag).sqrt()

    def exp(self):
        e = self.real.exp()
        return ComplexNumber(e * self.imag.cos(), e * self.imag.sin())

    # ---- Fourier transform ----
    def fft2(self, inverse=False):
        """The 2-d discrete Fourier transform over the last two dims (inverse:
        with e^{+i...} and divided by H*W, numpy.fft.ifft2's scaling), as two
        complex products with the DFT matrices: exact and differentiable,
        O(n^3) rather than an FFT's O(n^2 log n)."""
        if len(self.shape) < 2:
            raise ValueError(f"fft2: needs 2 or more dims, shape is {list(self.shape)}")
        h, w = self.shape[-2:]
        sign = 1.0 if inverse else -1.0
        fh, fw = _dft(h, sign, self.dtype), _dft(w, sign, self.dtype)
        out = fh @ self @ fw        # F_H x F_W (both symmetric)
        return out / float(h * w) if inverse else out

    def ifft2(self):
        return self.fft2(inverse=True)


def _matmul_parts(a, b):
    """(real, imag) of the product of two (real, imag) pairs; an imaginary
    part of 0.0 (a real operand) adds no products."""
    (ar, ai), (br, bi) = a, b
    if isinstance(ai, float):
        return matmul(ar, br), matmul(ar, bi)
    if isinstance(bi, float):
        return matmul(ar, br), matmul(ai, br)
    return matmul(ar, br) - matmul(ai, bi), matmul(ar, bi) + matmul(ai, br)


def _dft(n, sign, dtype):
    k = np.arange(n)
    angle = sign * 2.0 * math.pi * np.outer(k, k) / n
    return ComplexNumber(array(np.cos(angle).astype(str(dtype))), array(np.sin(angle).astype(str(dtype))))
