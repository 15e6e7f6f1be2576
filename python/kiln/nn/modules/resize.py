"""Padding, resampling and rearranging, all reindex: pad (constant, reflect,
replicate, circular); interpolate/Upsample/resize/Resize: nearest,
nearest-exact, linear/bilinear/trilinear and bicubic (one separable pass per
spatial dim, source positions and weights computed on the host as PyTorch
does and read through reindex extras) and area (adaptive average pooling);
affine_grid and grid_sample (positions computed on the device from the grid,
so gradients reach both the input, through the gathering reindex, and the
grid, through the interpolation weights); pixel_shuffle/PixelShuffle, and the
pad layers ZeroPad2d, ConstantPad1d/2d, ReflectionPad1d/2d,
ReplicationPad1d/2d."""
import itertools
import math

import numpy as np

from .pooling import _adaptive
from ..._core import array, to_var, where
from ..module import Module
from ..._shape import reindex

__all__ = ["pad", "interpolate", "upsample", "resize", "affine_grid", "grid_sample",
           "pixel_shuffle", "pixel_unshuffle", "Upsample", "UpsamplingNearest2d",
           "UpsamplingBilinear2d", "Resize", "PixelShuffle", "PixelUnshuffle", "ZeroPad2d",
           "ConstantPad1d", "ConstantPad2d", "ReflectionPad1d", "ReflectionPad2d",
           "ReplicationPad1d", "ReplicationPad2d"]

_INTERP_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "bicubic",
                 "area")
_CUBIC_A = -0.75     # PyTorch's (and Jittor's) cubic convolution coefficient


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
            raise ValueError(f"interpolate: size {size} does not match the {nd} spatial dims "
                             f"of input of shape {x.shape}")
        if any(int(s) <= 0 for s in size):
            raise ValueError(f"interpolate: size {size} must be positive")
        return [int(s) for s in size], [None] * nd
    if scale_factor is None:
        raise ValueError("interpolate: give either size or scale_factor")
    sf = (scale_factor,) * nd if not isinstance(scale_factor, (list, tuple)) \
        else tuple(scale_factor)
    if len(sf) != nd:
        raise ValueError(f"interpolate: scale_factor {sf} does not match the {nd} spatial dims "
                         f"of input of shape {x.shape}")
    outs = [int(math.floor(n * f)) for n, f in zip(sp, sf)]
    if any(o <= 0 for o in outs):
        raise ValueError(f"interpolate: scale_factor {sf} leaves input of shape {x.shape} "
                         f"with output size {tuple(outs)}")
    return outs, list(sf)


def _host_float(dtype):
    """The precision PyTorch computes positions and weights in: double for
    float64 inputs, float otherwise."""
    return np.float64 if dtype.name == "float64" else np.float32


def _scale(n_in, n_out, sf, align_corners, fdt=np.float32):
    """PyTorch's area_pixel_compute_scale, in fdt as its CPU kernels."""
    if align_corners:
        return fdt((n_in - 1) / (n_out - 1)) if n_out > 1 else fdt(0)
    return fdt(1.0 / sf) if sf is not None else fdt(n_in / n_out)


def _nearest_index(n_in, n_out, sf, exact=False, align_corners=False):
    """Source index per output index. nearest: floor(dst * scale), PyTorch's
    legacy rule; nearest-exact: floor((dst + 0.5) * scale), pixel centres;
    align_corners (Jittor's resize, which PyTorch refuses for nearest):
    floor(dst * (n_in - 1) / (n_out - 1))."""
    dst = np.arange(n_out, dtype=np.float32)
    if align_corners:
        src = dst * _scale(n_in, n_out, sf, True)
    else:
        scale = np.float32(1.0 / sf) if sf is not None else np.float32(n_in / n_out)
        src = (dst + np.float32(0.5)) * scale if exact else dst * scale
    return np.minimum(np.floor(src).astype(np.int64), n_in - 1).astype(np.int32)


def _linear_weights(n_in, n_out, sf, align_corners, fdt=np.float32):
    scale = _scale(n_in, n_out, sf, align_corners, fdt)
    dst = np.arange(n_out, dtype=fdt)
    if align_corners:
        src = dst * scale
    else:
        src = np.maximum(scale * (dst + fdt(0.5)) - fdt(0.5), fdt(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = (src - i0).astype(fdt)
    return i0.astype(np.int32), i1.astype(np.int32), lam


def _cubic_coefficients(t, a=_CUBIC_A):
    """The four cubic-convolution weights of the taps at floor - 1 .. floor + 2
    for fractional offset t (PyTorch's get_cubic_upsample_coefficients). Works
    on NumPy arrays and on Vars."""
    def near(d):    # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):     # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _cubic_weights(n_in, n_out, sf, align_corners, fdt):
    """Per output index: the four clamped tap indices and their weights. The
    source position is not clamped at 0 (PyTorch's cubic=True); taps past the
    border repeat the edge (upsample_get_value_bounded)."""
    scale = _scale(n_in, n_out, sf, align_corners, fdt)
    dst = np.arange(n_out, dtype=fdt)
    src = dst * scale if align_corners else scale * (dst + fdt(0.5)) - fdt(0.5)
    base = np.floor(src)
    t = np.clip(src - base, fdt(0), fdt(1)).astype(fdt)
    taps = [np.clip(base.astype(np.int64) - 1 + k, 0, n_in - 1).astype(np.int32)
            for k in range(4)]
    return taps, [w.astype(fdt) for w in _cubic_coefficients(t)]


def _along(y, d, n_out, taps, weights=None):
    """sum_k y[..., taps[k][o], ...] * weights[k][o] along dim d: one
    resampling pass of a separable interpolation (no weights: a plain read)."""
    shp = list(y.shape)
    shp[d] = n_out
    idx = [f"i{k}" for k in range(y.ndim)]
    idx[d] = f"@e0(i{d})"
    wshape = [1] * y.ndim
    wshape[d] = n_out
    out = None
    for tap, w in zip(taps, weights or [None] * len(taps)):
        v = reindex(y, shp, idx, 0, (), [array(tap)])
        if w is not None:
            v = v * array(w.reshape(wshape), dtype=y.dtype)
        out = v if out is None else out + v
    return out


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None):
    """PyTorch's F.interpolate over the trailing spatial dims (1, 2 or 3 after
    N, C): nearest, nearest-exact, linear/bilinear/trilinear, bicubic (4-d
    input), area (adaptive average pooling)."""
    x = to_var(x)
    nd = x.ndim - 2
    if nd < 1:
        raise ValueError(f"interpolate: expected (N, C, ...) input, got shape {x.shape}")
    if mode not in _INTERP_MODES:
        raise ValueError(f"interpolate: unsupported mode {mode!r} (expected one of "
                         f"{', '.join(_INTERP_MODES)})")
    if not x.dtype.is_float:
        x = x.float32()
    outs, sfs = _out_sizes(x, nd, size, scale_factor)
    if recompute_scale_factor:
        sfs = [None] * nd
    sp = x.shape[2:]
    ac = bool(align_corners)
    if mode in ("nearest", "nearest-exact"):
        if ac and mode == "nearest-exact":
            raise ValueError("interpolate: align_corners=True is not defined for mode "
                             "'nearest-exact'")
        # one reindex for all dims: each reads its source index from a host table
        extras = [array(_nearest_index(n, o, f, mode == "nearest-exact", ac))
                  for n, o, f in zip(sp, outs, sfs)]
        idx = ["i0", "i1"] + [f"@e{j}(i{2 + j})" for j in range(nd)]
        return reindex(x, x.shape[:2] + tuple(outs), idx, 0, (), extras)
    if mode == "area":
        if ac:
            raise ValueError("interpolate: align_corners=True is not defined for mode 'area'")
        return _adaptive(x, outs, nd, "avg", "interpolate")
    fdt = _host_float(x.dtype)
    if mode == "bicubic":
        if nd != 2:
            raise ValueError(f"interpolate: mode 'bicubic' expects a 4-d (N, C, H, W) input, "
                             f"got shape {x.shape}")
        y = x
        for j in range(nd):
            taps, weights = _cubic_weights(sp[j], outs[j], sfs[j], ac, fdt)
            y = _along(y, 2 + j, outs[j], taps, weights)
        return y
    y = x
    # separable: resample one spatial dim at a time, a + (b - a) * lambda as PyTorch
    for j in range(nd):
        d = 2 + j
        i0, i1, lam = _linear_weights(sp[j], outs[j], sfs[j], ac, fdt)
        a = _along(y, d, outs[j], [i0])
        b = _along(y, d, outs[j], [i1])
        wshape = [1] * y.ndim
        wshape[d] = outs[j]
        y = a + (b - a) * array(lam.reshape(wshape), dtype=y.dtype)
    return y


upsample = interpolate


def resize(x, size, mode="nearest", align_corners=False, tf_mode=False):
    """Jittor's nn.resize: x (N, C, H, W) to size (an int or (H, W)); the
    modes of interpolate, with PyTorch's numerics."""
    if tf_mode:
        raise ValueError("resize: tf_mode=True (TensorFlow's half-pixel rule) is not "
                         "supported; use align_corners")
    return interpolate(x, size=size, mode=mode, align_corners=align_corners)


# ---- affine_grid / grid_sample (PyTorch's semantics) ----

def _linspace_from_neg_one(n, align_corners, fdt):
    """The normalised coordinates of n pixels: their centres for
    align_corners=False, the corner pixels at -1 and 1 otherwise."""
    if n <= 1:
        return np.zeros(max(n, 1), fdt)
    r = np.linspace(-1.0, 1.0, n)
    if not align_corners:
        r = r * (n - 1) / n
    return r.astype(fdt)


def affine_grid(theta, size, align_corners=None):
    """PyTorch's F.affine_grid: theta (N, 2, 3) and size (N, C, H, W) give the
    sampling grid (N, H, W, 2) of (x, y) positions; theta (N, 3, 4) and size
    (N, C, D, H, W) give (N, D, H, W, 3) of (x, y, z). Differentiable in theta."""
    theta = to_var(theta)
    size = tuple(int(s) for s in size)
    if len(size) not in (4, 5):
        raise ValueError(f"affine_grid: size must be (N, C, H, W) or (N, C, D, H, W), "
                         f"got {size}")
    nd = len(size) - 2
    if any(s <= 0 for s in size):
        raise ValueError(f"affine_grid: size {size} must be positive")
    if not theta.dtype.is_float:
        raise TypeError(f"affine_grid: theta must be a float var, got {theta.dtype}")
    if theta.shape != (size[0], nd, nd + 1):
        raise ValueError(f"affine_grid: size {size} needs theta of shape "
                         f"({size[0]}, {nd}, {nd + 1}), got {theta.shape}")
    fdt = _host_float(theta.dtype)
    sp = size[2:]
    # base[..., k]: x (along W), y (along H), z (along D), then 1
    axes = [_linspace_from_neg_one(n, bool(align_corners), fdt) for n in sp]
    mesh = np.meshgrid(*axes, indexing="ij")
    base = np.stack(mesh[::-1] + [np.ones(sp, fdt)], axis=-1)
    P = int(math.prod(sp))
    base = array(base.reshape((1, P, 1, nd + 1)), dtype=theta.dtype)
    grid = (base * theta.reshape((size[0], 1, nd, nd + 1))).sum(3)
    return grid.reshape((size[0],) + sp + (nd,))


def _unnormalize(c, n, align_corners):
    """grid value in [-1, 1] to a pixel position."""
    if align_corners:
        return (c + 1) * ((n - 1) / 2)
    return ((c + 1) * n - 1) / 2


def _clip(c, n):
    """Clamped to [0, n - 1]; as PyTorch, a position on or past the border gets
    no gradient (so where, not min/max, which would share it on ties)."""
    c = where(c <= 0, 0.0, c)
    return where(c >= n - 1, float(n - 1), c)


def _reflect(c, twice_low, twice_high):
    """PyTorch's reflect_coordinates: c folded into [twice_low/2, twice_high/2]."""
    if twice_low == twice_high:
        return c * 0
    low, span = twice_low / 2, (twice_high - twice_low) / 2
    c = (c - low).abs()
    flips = (c / span).floor()
    extra = c - flips * span                # fmod: c >= 0 here
    even = (flips - (flips / 2).floor() * 2) == 0
    return where(even, extra + low, span - extra + low)


def _pad_coordinate(c, n, padding_mode, align_corners):
    if padding_mode == "border":
        return _clip(c, n)
    if padding_mode == "reflection":
        c = _reflect(c, 0, 2 * (n - 1)) if align_corners else _reflect(c, -1, 2 * n - 1)
        return _clip(c, n)
    return c


def _tap_index(c, n):
    """An integer tap position as an index var; positions far outside are
    clamped to just outside (still out of range, so they read zero) to keep the
    integer conversion in range."""
    return c.clamp(-2, n + 1).astype("int32")


def _gather(x, out_sp, taps):
    """x[n, c, taps[0][n, o...], taps[1][n, o...], ...] for every channel:
    (N, C, *out_sp), zero where a tap is out of range."""
    N, C = x.shape[:2]
    loop = ",".join(["i0"] + [f"i{2 + j}" for j in range(len(out_sp))])
    exprs = ["i0", "i1"] + [f"@e{k}({loop})" for k in range(len(taps))]
    return reindex(x, (N, C) + tuple(out_sp), exprs, 0, (), taps)


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    """PyTorch's F.grid_sample: input (N, C, H, W) sampled at grid (N, H_out,
    W_out, 2) of normalised (x, y) positions, or (N, C, D, H, W) at (N, D_out,
    H_out, W_out, 3) of (x, y, z). mode: bilinear (trilinear for 5-d), nearest,
    bicubic (4-d); padding_mode: zeros, border, reflection. Differentiable in
    input and grid (nearest: input only)."""
    x, grid = to_var(input), to_var(grid)
    if x.ndim not in (4, 5):
        raise ValueError(f"grid_sample: expected a 4-d (N, C, H, W) or 5-d (N, C, D, H, W) "
                         f"input, got shape {x.shape}")
    nd = x.ndim - 2
    N = x.shape[0]
    if grid.ndim != x.ndim or grid.shape[0] != N or grid.shape[-1] != nd:
        want = "(N, D_out, H_out, W_out, 3)" if nd == 3 else "(N, H_out, W_out, 2)"
        raise ValueError(f"grid_sample: grid of shape {grid.shape} does not fit input of "
                         f"shape {x.shape}: expected {want} with N={N}")
    if mode not in ("bilinear", "nearest", "bicubic"):
        raise ValueError(f"grid_sample: unsupported mode {mode!r} (expected 'bilinear', "
                         "'nearest' or 'bicubic')")
    if mode == "bicubic" and nd != 2:
        raise ValueError(f"grid_sample: mode 'bicubic' needs a 4-d input, got shape {x.shape}")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(f"grid_sample: unsupported padding_mode {padding_mode!r} (expected "
                         "'zeros', 'border' or 'reflection')")
    ac = bool(align_corners)
    if not x.dtype.is_float:
        x = x.float32()
    if grid.dtype != x.dtype:
        grid = grid.astype(x.dtype)
    sp, out_sp = x.shape[2:], grid.shape[1:-1]
    # per input dim (D, H, W order): its position in pixels; grid's last axis is (x, y, z)
    raw = [_unnormalize(grid[..., nd - 1 - j], sp[j], ac) for j in range(nd)]

    if mode == "bicubic":
        # the 16 taps around floor(position); each tap position is padded on its own
        bases = [c.floor() for c in raw]
        coefs = [_cubic_coefficients(c - b) for c, b in zip(raw, bases)]
        out = None
        for ky, kx in itertools.product(range(4), repeat=2):
            taps = [_pad_coordinate(b + (k - 1), n, padding_mode, ac)
                    for b, k, n in zip(bases, (ky, kx), sp)]
            v = _gather(x, out_sp, [_tap_index(t, n) for t, n in zip(taps, sp)])
            w = (coefs[0][ky] * coefs[1][kx]).unsqueeze(1)
            out = v * w if out is None else out + v * w
        return out

    pos = [_pad_coordinate(c, n, padding_mode, ac) for c, n in zip(raw, sp)]
    if mode == "nearest":
        # round half to even, as nearbyint; the read carries no gradient to grid
        return _gather(x, out_sp, [_tap_index(c.round(), n) for c, n in zip(pos, sp)])
    # (tri/bi)linear: the 2**nd corners of each position's cell
    lows = [c.floor() for c in pos]
    out = None
    for corner in itertools.product((0, 1), repeat=nd):
        w = None
        taps = []
        for c, lo, n, hi in zip(pos, lows, sp, corner):
            wj = (c - lo) if hi else (lo + 1 - c)
            w = wj if w is None else w * wj
            taps.append(_tap_index(lo + hi, n))
        v = _gather(x, out_sp, taps) * w.unsqueeze(1)
        out = v if out is None else out + v
    return out


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


class Resize(Module):
    """Jittor's nn.Resize: resize(x, size, mode, align_corners)."""

    def __init__(self, size, mode="nearest", align_corners=False):
        super().__init__()
        if mode not in _INTERP_MODES:
            raise ValueError(f"Resize: unsupported mode {mode!r} (expected one of "
                             f"{', '.join(_INTERP_MODES)})")
        self.size, self.mode, self.align_corners = size, mode, align_corners

    def execute(self, x):
        return resize(x, self.size, self.mode, self.align_corners)

    def extra_repr(self):
        return f"size={self.size}, mode={self.mode!r}, align_corners={self.align_corners}"


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
