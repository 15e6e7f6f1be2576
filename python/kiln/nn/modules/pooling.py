"""Pooling from meta-ops: windows by reindex ([..., *out, *kernel]; reads
outside the input give -inf for max, 0 for average), then a max or sum reduce.
Average divisors (count_include_pad, ceil_mode) are constants computed on the
host. Adaptive pools use windows of varying size: a reindex over the largest
window with an overflow condition. Layers: MaxPool1d/2d/3d, AvgPool1d/2d/3d,
AdaptiveAvgPool1d/2d, AdaptiveMaxPool1d/2d, Jittor's Pool."""
import numpy as np

from .conv import _tuple
from ..._core import array, to_var
from ..module import Module
from ..._shape import reindex

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
           "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d",
           "adaptive_max_pool2d", "pool", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d",
           "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
           "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "Pool"]


def _out_size(n, k, s, p, d, ceil_mode):
    """PyTorch's pooling output size (a window must start inside the input or
    the left padding)."""
    span = n + 2 * p - d * (k - 1) - 1
    o = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (o - 1) * s >= n + p:
        o -= 1
    return o


def _windows(x, nd, ks, stride, pad, dil, ceil_mode, fill, name):
    x = to_var(x)
    if x.ndim < nd + 1:
        raise ValueError(f"{name}: expected at least {nd + 1} dims, got shape {x.shape}")
    if not x.dtype.is_float:
        x = x.float32()
    lead = x.ndim - nd
    sp = x.shape[lead:]
    for what, v, least in (("kernel_size", ks, 1), ("stride", stride, 1), ("padding", pad, 0),
                           ("dilation", dil, 1)):
        if any(a < least for a in v):
            raise ValueError(f"{name}: {what} must be {'positive' if least else 'at least 0'}, "
                             f"got {tuple(v)}")
    for j in range(nd):
        if pad[j] * 2 > ks[j]:
            raise ValueError(f"{name}: padding {pad} must be at most half the kernel size {ks}")
    outs = [_out_size(sp[j], ks[j], stride[j], pad[j], dil[j], ceil_mode) for j in range(nd)]
    if any(o <= 0 for o in outs):
        raise ValueError(f"{name}: input of shape {x.shape} is too small for kernel {ks}")
    shape = x.shape[:lead] + tuple(outs) + tuple(ks)
    idx = [f"i{k}" for k in range(lead)]
    for j in range(nd):
        e = f"i{lead + j}" if stride[j] == 1 else f"i{lead + j}*{stride[j]}"
        kk = f"i{lead + nd + j}" if dil[j] == 1 else f"i{lead + nd + j}*{dil[j]}"
        e = f"{e}+{kk}"
        if pad[j]:
            e = f"{e}-{pad[j]}"
        idx.append(e)
    win = reindex(x, shape, idx, fill)
    return win, lead, sp, outs


def _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, nd, name):
    ks = _tuple(kernel_size, nd)
    st = ks if stride is None or stride == [] else _tuple(stride, nd)
    win, lead, _, _ = _windows(x, nd, ks, st, _tuple(padding, nd), _tuple(dilation, nd),
                               ceil_mode, float("-inf"), name)
    return win.max(list(range(lead + nd, lead + 2 * nd)))


def _avg_divisor(sp, outs, ks, st, pad, count_include_pad):
    """Per output position: the number of elements averaged (PyTorch's rule)."""
    div = np.ones((), np.float64)
    for n, o, k, s, p in zip(sp, outs, ks, st, pad):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        size = end - start
        if not count_include_pad:
            size = np.minimum(end, n) - np.maximum(start, 0)
        div = np.multiply.outer(div, size.astype(np.float64))
    return div


def _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
              nd, name):
    ks = _tuple(kernel_size, nd)
    st = ks if stride is None or stride == [] else _tuple(stride, nd)
    pad = _tuple(padding, nd)
    win, lead, sp, outs = _windows(x, nd, ks, st, pad, (1,) * nd, ceil_mode, 0.0, name)
    s = win.sum(list(range(lead + nd, lead + 2 * nd)))
    if divisor_override:
        return s / float(divisor_override)
    div = _avg_divisor(sp, outs, ks, st, pad, count_include_pad)
    if np.all(div == div.flat[0]):
        return s / float(div.flat[0])
    return s / array(div, dtype=s.dtype)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    _no_indices(return_indices)
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, 1, "max_pool1d")


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    _no_indices(return_indices)
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, 2, "max_pool2d")


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    _no_indices(return_indices)
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, 3, "max_pool3d")


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1,
                     "avg_pool1d")


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, 2, "avg_pool2d")


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, 3, "avg_pool3d")


def _no_indices(flag):
    if flag:
        raise NotImplementedError("max pooling with return_indices=True is not supported yet")


def pool(x, kernel_size, op="maximum", padding=0, stride=None, ceil_mode=False,
         count_include_pad=True, dilation=1):
    """Jittor's nn.pool: op 'maximum'/'max' or 'mean'/'avg', 2-d."""
    if op in ("maximum", "max"):
        return max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)
    if op in ("mean", "avg", "average"):
        return avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad)
    raise ValueError(f"pool: unsupported op {op!r} (expected 'maximum' or 'mean')")


# ---- adaptive ----

def _adaptive(x, output_size, nd, op, name):
    x = to_var(x)
    if x.ndim < nd + 1:
        raise ValueError(f"{name}: expected at least {nd + 1} dims, got shape {x.shape}")
    if not x.dtype.is_float:
        x = x.float32()
    lead = x.ndim - nd
    sp = x.shape[lead:]
    if not isinstance(output_size, (list, tuple)):
        output_size = (output_size,) * nd
    outs = [sp[j] if o is None else int(o) for j, o in enumerate(output_size)]
    if all(n % o == 0 for n, o in zip(sp, outs)):
        ks = tuple(n // o for n, o in zip(sp, outs))
        if op == "max":
            return _max_pool(x, ks, ks, 0, 1, False, nd, name)
        return _avg_pool(x, ks, ks, 0, False, True, None, nd, name)
    kmax, idx, conds, div = [], [f"i{k}" for k in range(lead)], [], np.ones((), np.float64)
    for j, (n, o) in enumerate(zip(sp, outs)):
        starts = (np.arange(o) * n) // o
        ends = -((-(np.arange(o) + 1) * n) // o)
        kmax.append(int((ends - starts).max()))
        oi, ki = f"i{lead + j}", f"i{lead + nd + j}"
        start = f"({oi}*{n})/{o}"
        end = f"(({oi}+1)*{n}+{o - 1})/{o}"
        idx.append(f"{start}+{ki}")
        conds.append(f"({ki}>={end}-{start})")
        div = np.multiply.outer(div, (ends - starts).astype(np.float64))
    shape = x.shape[:lead] + tuple(outs) + tuple(kmax)
    fill = float("-inf") if op == "max" else 0.0
    win = reindex(x, shape, idx, fill, ["||".join(conds)])
    dims = list(range(lead + nd, lead + 2 * nd))
    if op == "max":
        return win.max(dims)
    return win.sum(dims) / array(div, dtype=x.dtype)


def adaptive_avg_pool1d(x, output_size):
    return _adaptive(x, output_size, 1, "avg", "adaptive_avg_pool1d")


def adaptive_avg_pool2d(x, output_size):
    return _adaptive(x, output_size, 2, "avg", "adaptive_avg_pool2d")


def adaptive_max_pool1d(x, output_size, return_indices=False):
    _no_indices(return_indices)
    return _adaptive(x, output_size, 1, "max", "adaptive_max_pool1d")


def adaptive_max_pool2d(x, output_size, return_indices=False):
    _no_indices(return_indices)
    return _adaptive(x, output_size, 2, "max", "adaptive_max_pool2d")


# ---- layers ----

class _MaxPoolNd(Module):
    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        _no_indices(return_indices)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def execute(self, x):
        return _max_pool(x, self.kernel_size, self.stride, self.padding, self.dilation,
                         self.ceil_mode, self._nd, type(self).__name__)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    _nd = 1


class MaxPool2d(_MaxPoolNd):
    _nd = 2


class MaxPool3d(_MaxPoolNd):
    _nd = 3


class _AvgPoolNd(Module):
    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def execute(self, x):
        return _avg_pool(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                         self.count_include_pad, self.divisor_override, self._nd,
                         type(self).__name__)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    _nd = 1


class AvgPool2d(_AvgPoolNd):
    _nd = 2


class AvgPool3d(_AvgPoolNd):
    _nd = 3


class Pool(Module):
    """Jittor's nn.Pool: op='maximum' (max) or 'mean' (average)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=None, return_indices=None,
                 ceil_mode=False, count_include_pad=True, op="maximum"):
        super().__init__()
        _no_indices(return_indices)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation = 1 if dilation is None else dilation
        self.ceil_mode, self.count_include_pad, self.op = ceil_mode, count_include_pad, op

    def execute(self, x):
        return pool(x, self.kernel_size, self.op, self.padding, self.stride, self.ceil_mode,
                    self.count_include_pad, self.dilation)


class _Adaptive(Module):
    _nd, _op = 2, "avg"

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        _no_indices(return_indices)
        self.output_size = output_size

    def execute(self, x):
        return _adaptive(x, self.output_size, self._nd, self._op, type(self).__name__)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_Adaptive):
    _nd, _op = 1, "avg"


class AdaptiveAvgPool2d(_Adaptive):
    _nd, _op = 2, "avg"


class AdaptiveMaxPool1d(_Adaptive):
    _nd, _op = 1, "max"


class AdaptiveMaxPool2d(_Adaptive):
    _nd, _op = 2, "max"

