"""jt.mkl_ops: Jittor's direct calls of the oneDNN (formerly MKL-DNN)
convolution and matrix product. In kiln they are the ordinary ops, whose
pattern passes hand convolutions to oneDNN and matrix products to BLAS or
oneDNN, so they are lazy, fuse with their neighbours and have gradients. As
in Jittor, `jt.mkl_ops` is None where the library is not available
(`available()` says which).

Layouts: xformat/yformat "abcd" (NCHW) or "acdb" (NHWC); wformat "oihw" or
"hwio"."""
from . import _C
from ._autograd import grad
from ._core import to_var
from ._create import zeros
from ._reduce import matmul

__all__ = ["available", "mkl_conv", "mkl_conv_backward_x", "mkl_conv_backward_w", "mkl_matmul"]

_ACTIVATIONS = {"abcd": (0, 1, 2, 3), "acdb": (0, 3, 1, 2)}    # to NCHW
_WEIGHTS = {"oihw": (0, 1, 2, 3), "hwio": (3, 2, 0, 1)}        # to OIHW


def available():
    """Whether oneDNN was found (and not disabled): the calls then reach it."""
    return bool(_C.has_library("dnnl"))


def _to_nchw(v, fmt, table, what):
    if fmt not in table:
        raise ValueError(f"mkl_ops: {what} format {fmt!r} is not one of {sorted(table)}")
    v = to_var(v)
    if v.ndim != 4:
        raise ValueError(f"mkl_ops: {what} must have 4 dims, got shape {list(v.shape)}")
    return v.permute(*table[fmt]) if table[fmt] != (0, 1, 2, 3) else v


def _from_nchw(v, fmt, table):
    perm = table[fmt]
    if perm == (0, 1, 2, 3):
        return v
    back = [perm.index(d) for d in range(4)]
    return v.permute(*back)


def _conv(x, w, stride, padding, dilation, groups):
    from .nn.modules.conv import conv2d
    return conv2d(x, w, None, stride, padding, dilation, groups)


def mkl_conv(x, w, strideh, stridew, paddingh, paddingw, dilationh=1, dilationw=1, groups=1,
             xformat="abcd", wformat="oihw", yformat="abcd"):
    """The 2-d convolution (cross-correlation) of x by w, without bias."""
    xn = _to_nchw(x, xformat, _ACTIVATIONS, "x")
    wn = _to_nchw(w, wformat, _WEIGHTS, "w")
    y = _conv(xn, wn, (strideh, stridew), (paddingh, paddingw), (dilationh, dilationw), groups)
    return _from_nchw(y, yformat, _ACTIVATIONS)


def mkl_conv_backward_x(w, dy, height, width, strideh, stridew, paddingh, paddingw,
                        dilationh=1, dilationw=1, groups=1, xformat="abcd", wformat="oihw",
                        yformat="abcd"):
    """The gradient of mkl_conv with respect to an input of height x width, given dy."""
    wn = _to_nchw(w, wformat, _WEIGHTS, "w")
    dyn = _to_nchw(dy, yformat, _ACTIVATIONS, "dy")
    x = zeros((dyn.shape[0], wn.shape[1] * groups, height, width), dyn.dtype)
    y = _conv(x, wn, (strideh, stridew), (paddingh, paddingw), (dilationh, dilationw), groups)
    if tuple(y.shape) != tuple(dyn.shape):
        raise ValueError(f"mkl_conv_backward_x: dy has shape {list(dyn.shape)}, the convolution "
                         f"of a {height}x{width} input gives {list(y.shape)}")
    return _from_nchw(grad((y * dyn).sum(), x), xformat, _ACTIVATIONS)


def mkl_conv_backward_w(x, dy, kh, kw, strideh, stridew, paddingh, paddingw, dilationh=1,
                        dilationw=1, groups=1, xformat="abcd", wformat="oihw", yformat="abcd"):
    """The gradient of mkl_conv with respect to a kh x kw weight, given x and dy."""
    xn = _to_nchw(x, xformat, _ACTIVATIONS, "x")
    dyn = _to_nchw(dy, yformat, _ACTIVATIONS, "dy")
    w = zeros((dyn.shape[1], xn.shape[1] // groups, kh, kw), xn.dtype)
    y = _conv(xn, w, (strideh, stridew), (paddingh, paddingw), (dilationh, dilationw), groups)
    if tuple(y.shape) != tuple(dyn.shape):
        raise ValueError(f"mkl_conv_backward_w: dy has shape {list(dyn.shape)}, the convolution "
                         f"gives {list(y.shape)}")
    return _from_nchw(grad((y * dyn).sum(), w), wformat, _WEIGHTS)


def mkl_matmul(a, b, trans_a=False, trans_b=False):
    """a @ b of two matrices, either transposed first."""
    a, b = to_var(a), to_var(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"mkl_matmul: expected matrices, got shapes {list(a.shape)} and "
                         f"{list(b.shape)}")
    return matmul(a.transpose() if trans_a else a, b.transpose() if trans_b else b)
