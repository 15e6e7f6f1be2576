"""Padding, resampling and rearranging, all reindex: pad (constant, reflect,
replicate, circular), interpolate/Upsample (nearest; linear/bilinear with or
without align_corners, source positions computed on the host as PyTorch does
and read through reindex extras), pixel_shuffle/PixelShuffle, and the pad
layers ZeroPad2d, ConstantPad1d/2d, ReflectionPad1d/2d, ReplicationPad1d/2d."""
import math

import numpy as np

from ..._core import array, to_var
from ..module import Module
from ..._shape import reindex

__all__ = ["pad", "interpolate", "upsample", "resize", "pixel_shuffle", "pixel_unshuffle",
           "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle",
           "PixelUnshuffle", "ZeroPad2d", "ConstantPad1d", "ConstantPad2d", "ReflectionPad1d",
           "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d"]


def pad(x, pad, mode="constant", value=0.0):
    """PyTorch's F.pad: pad = (left, right) for the last dim, then the one
    before, ...; negative amounts crop."""
    x = to_var(x)
    pad = [int(p) for p in pad]
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: expected pairs for at most {x.ndim} dims, got {tuple(pad)}")
    k = len(pad) // 2
    shape, idx = list(x.shape), [f"i{d}" for d in range(x.ndim)]
    for j in range(k):
        d = x.ndim - 1 - j
        lo, hi = pad[2 * j], pad[2 * j + 1]
        n = x.shape[d]
        shape[d] = n + lo + hi
        if shape[d] <= 0:
            raise ValueError(f"pad: padding {tuple(pad)} leaves dim {d} of shape {x.shape} "
                             "empty")
        src = f"i{d}" if lo == 0 else f"(i{d}-{lo})" if lo > 0 else f"(i{d}+{-lo})"
        if mode == "constant":
            idx[d] = src
        elif mode == "reflect":
            if max(lo, hi) >= n:
                raise ValueError(f"pad: reflect padding {max(lo, hi)} must be smaller than "
                                 f"the dim's size {n}")
            idx[d] = f"({src}<0?-{src}:({src}>={n}?{2 * n - 2}-{src}:{src}))"
        elif mode == "replicate":
            idx[d] = f"min(max({src},0),{n - 1})"
        elif mode == "circular":
            idx[d] = f"(({src})%{n}+{n})%{n}"
        else:
            raise ValueError(f"pad: unknown mode {mode!r} (constant, reflect, replicate, "
                             "circular)")
    return reindex(x, shape, idx, float(value) if mode == "constant" else 0.0)


def _out_sizes(x, nd, size, scale_factor):
    sp = x.shape[x.ndim - nd:]
    if size is not None:
        size = (size,) * nd if isinstance(size, (int, np.integer)) else tuple(size)
        if len(size) != nd:
            raise ValueError(f"interpolate: size {size} does not match {nd} spatial dims")
        return [int(s) for s in size], [None] * nd
    if scale_factor is None:
        raise ValueError("interpolate: give either size or scale_factor")
    sf = (scale_factor,) * nd if not isinstance(scale_factor, (list, tuple)) \
        else tuple(scale_factor)
    return [int(math.floor(n * f)) for n, f in zip(sp, sf)], list(sf)


def _scale(n_in, n_out, sf, align_corners):
    """PyTorch's area_pixel_compute_scale, in float32 as its CPU kernels."""
    if align_corners:
        return np.float32((n_in - 1) / (n_out - 1)) if n_out > 1 else np.float32(0)
    return np.float32(1.0 / sf) if sf is not None else np.float32(n_in / n_out)


def _nearest_index(n_in, n_out, sf):
    scale = np.float32(1.0 / sf) if sf is not None else np.float32(n_in / n_out)
    src = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(src, n_in - 1).astype(np.int32)


def _linear_weights(n_in, n_out, sf, align_corners):
    scale = _scale(n_in, n_out, sf, align_corners)
    dst = np.arange(n_out, dtype=np.float32)
    if align_corners:
        src = dst * scale
    else:
        src = np.maximum(scale * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = (src - i0).astype(np.float32)
    return i0.astype(np.int32), i1.astype(np.int32), lam


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None):
    """Resizes the trailing spatial dims (1, 2 or 3 after N, C)."""
    x = to_var(x)
    nd = x.ndim - 2
    if nd < 1:
        raise ValueError(f"interpolate: expected (N, C, ...) input, got shape {x.shape}")
    if not x.dtype.is_float:
        x = x.float32()
    outs, sfs = _out_sizes(x, nd, size, scale_factor)
    if recompute_scale_factor:
        sfs = [None] * nd
    sp = x.shape[2:]
    shape = x.shape[:2] + tuple(outs)
    if mode == "nearest":
        extras = [array(_nearest_index(n, o, f)) for n, o, f in zip(sp, outs, sfs)]
        idx = ["i0", "i1"] + [f"@e{j}(i{2 + j})" for j in range(nd)]
        return reindex(x, shape, idx, 0, (), extras)
    if mode not in ("linear", "bilinear", "trilinear"):
        raise ValueError(f"interpolate: unsupported mode {mode!r} (nearest, linear, bilinear, "
                         "trilinear)")
    ac = bool(align_corners)
    y = x
    # separable: resample one spatial dim at a time
    for j in range(nd):
        d = 2 + j
        i0, i1, lam = _linear_weights(sp[j], outs[j], sfs[j], ac)
        shp = list(y.shape)
        shp[d] = outs[j]
        idx = [f"i{k}" for k in range(y.ndim)]
        idx[d] = f"@e0(i{d})"
        a = reindex(y, shp, idx, 0, (), [array(i0)])
        b = reindex(y, shp, idx, 0, (), [array(i1)])
        wshape = [1] * y.ndim
        wshape[d] = outs[j]
        w = array(lam.reshape(wshape), dtype=y.dtype)
        y = a + (b - a) * w
    return y


upsample = interpolate


def resize(x, size, mode="nearest", align_corners=False):
    """Jittor's nn.resize."""
    return interpolate(x, size=size, mode=mode, align_corners=align_corners)


class Upsample(Module):
    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None):
        super().__init__()
        self.size, self.scale_factor = size, scale_factor
        self.mode, self.align_corners = mode, align_corners

    def execute(self, x):
        return interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)

    def extra_repr(self):
        return f"size={self.size}, scale_factor={self.scale_factor}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, "nearest")


class UpsamplingBilinear2d(Upsample):
    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, "bilinear", True)


def pixel_shuffle(x, upscale_factor):
    """(N, C*r*r, H, W) -> (N, C, H*r, W*r)."""
    x = to_var(x)
    r = int(upscale_factor)
    N, C, H, W = x.shape[-4:] if x.ndim >= 4 else (None,) * 4
    if x.ndim != 4 or C % (r * r):
        raise ValueError(f"pixel_shuffle: expected (N, C*{r}*{r}, H, W), got {x.shape}")
    c = C // (r * r)
    return reindex(x, (N, c, H * r, W * r),
                   ["i0", f"i1*{r * r}+(i2%{r})*{r}+i3%{r}", f"i2/{r}", f"i3/{r}"])


def pixel_unshuffle(x, downscale_factor):
    """(N, C, H*r, W*r) -> (N, C*r*r, H, W)."""
    x = to_var(x)
    r = int(downscale_factor)
    if x.ndim != 4 or x.shape[2] % r or x.shape[3] % r:
        raise ValueError(f"pixel_unshuffle: expected (N, C, H*{r}, W*{r}), got {x.shape}")
    N, C, H, W = x.shape
    rr = r * r
    return reindex(x, (N, C * rr, H // r, W // r),
                   ["i0", f"i1/{rr}", f"i2*{r}+(i1%{rr})/{r}", f"i3*{r}+i1%{r}"])


class PixelShuffle(Module):
    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = upscale_factor

    def execute(self, x):
        return pixel_shuffle(x, self.upscale_factor)


class PixelUnshuffle(Module):
    def __init__(self, downscale_factor):
        super().__init__()
        self.downscale_factor = downscale_factor

    def execute(self, x):
        return pixel_unshuffle(x, self.downscale_factor)


class _PadNd(Module):
    _nd, _mode = 2, "constant"

    def __init__(self, padding, value=0.0):
        super().__init__()
        if isinstance(padding, (int, np.integer)):
            padding = (int(padding),) * (2 * self._nd)
        self.padding, self.value = tuple(padding), value

    def execute(self, x):
        return pad(x, self.padding, self._mode, self.value)

    def extra_repr(self):
        return f"padding={self.padding}"


class ZeroPad2d(_PadNd):
    def __init__(self, padding):
        super().__init__(padding, 0.0)


class ConstantPad1d(_PadNd):
    _nd = 1


class ConstantPad2d(_PadNd):
    _nd = 2


class ReflectionPad1d(_PadNd):
    _nd, _mode = 1, "reflect"


class ReflectionPad2d(_PadNd):
    _nd, _mode = 2, "reflect"


class ReplicationPad1d(_PadNd):
    _nd, _mode = 1, "replicate"


class ReplicationPad2d(_PadNd):
    _nd, _mode = 2, "replicate"
