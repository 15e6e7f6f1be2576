"""Pooling from meta-ops: windows by reindex ([..., *out, *kernel]; reads
outside the input give -inf for max, 0 for average), then a max or sum reduce.
Max pooling picks the first maximum of each window (as PyTorch and Jittor do):
its value, its gradient (one element per window, even on ties) and, with
return_indices, its flat index into each input plane. Average divisors
(count_include_pad, ceil_mode) are constants computed on the host. Adaptive
pools use windows of varying size: a reindex over the largest window with an
overflow condition. Unpooling scatters values back to their indices
(reindex_reduce). Layers: MaxPool1d/2d/3d, AvgPool1d/2d/3d,
AdaptiveAvgPool1d/2d, AdaptiveMaxPool1d/2d, MaxUnpool1d/2d/3d, Jittor's Pool
and Pool3d."""
import itertools
import math

import numpy as np

from .conv import _tuple
from ..._core import array, checked_index, grad_mode, to_var, where
from ..._reduce import index, reduce
from ..._function import _attach
from ..module import Module
from ..._shape import reindex, reindex_reduce

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
           "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
           "adaptive_max_pool1d", "adaptive_max_pool2d", "pool", "pool3d", "max_unpool1d",
           "max_unpool2d", "max_unpool3d", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d",
           "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
           "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "MaxUnpool1d",
           "MaxUnpool2d", "MaxUnpool3d", "Pool", "Pool3d"]


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
    idx = _window_exprs(lead, stride, dil, pad)
    win = reindex(x, shape, idx, fill)
    return win, lead, sp, outs, idx


def _window_exprs(lead, stride, dil, pad):
    """The index expressions of the windows [lead, *out, *kernel] into the
    input: out * stride + kernel * dilation - pad per window dim."""
    nd = len(stride)
    idx = [f"i{k}" for k in range(lead)]
    for j in range(nd):
        e = f"i{lead + j}" if stride[j] == 1 else f"i{lead + j}*{stride[j]}"
        kk = f"i{lead + nd + j}" if dil[j] == 1 else f"i{lead + nd + j}*{dil[j]}"
        e = f"{e}+{kk}"
        if pad[j]:
            e = f"{e}-{pad[j]}"
        idx.append(e)
    return idx


def _first_max(win, lead, nd, sp, idx, conds=(), return_indices=False):
    """The max over the trailing nd window dims of win ([lead, *out, *kernel])
    that PyTorch's and Jittor's max pooling compute: the first maximum of each
    window (NaN counts as the maximum), whose gradient goes to that one element
    even on ties (a plain max reduce would share it among the tied ones).
    With return_indices, also its flat index into each input plane (int64):
    idx/conds are the expressions win was read with, re-read from a host
    table of plane offsets. The kernel dims stay separate (a reshape of win
    would materialise the windows: measured 4x slower)."""
    kdims = list(range(lead + nd, lead + 2 * nd))
    ks = win.shape[lead + nd:]
    if not return_indices and not grad_mode.get():
        return win.max(kdims)   # no gradient to route: ties do not matter
    # each window position's row-major rank within its window
    rank = None
    for j, d in enumerate(kdims):
        term = index(win.shape, d) * int(math.prod(ks[j + 1:]))
        rank = term if rank is None else rank + term
    first = reduce(win, "argmax", kdims, keepdims=True)  # NaN counts as the maximum
    pick = rank == first
    y = where(pick, win, 0.0).sum(kdims)              # exactly the picked value
    if not return_indices:
        return y
    plane = array(np.arange(int(math.prod(sp)), dtype=np.int64).reshape((1,) * lead + sp))
    offsets = reindex(plane, win.shape, ["0"] * lead + list(idx[lead:]), -1, conds)
    return y, where(pick, offsets, 0).sum(kdims)


def _padded_extent(ks, st, outs):
    """Per window dim, the span the windows read: the input with its padding
    (and ceil_mode's overhang)."""
    return [(o - 1) * s + k for k, s, o in zip(ks, st, outs)]


def _plane_positions(pos, lead, ks, st, outs):
    """Per window ([lead, *outs]): the position in the padded input plane
    (row-major over _padded_extent) of its element at window rank pos.
    Row-major order in a window is row-major order in the plane, so the
    first maximum's rank gives the first maximum's position."""
    nd = len(ks)
    ext = _padded_extent(ks, st, outs)
    flat = None
    for j in range(nd):
        inner = int(math.prod(ks[j + 1:]))
        k = pos // inner if inner > 1 else pos
        if j:
            k = k % ks[j]
        term = (index(pos.shape, lead + j, dtype="int32") * st[j] + k) * int(math.prod(ext[j + 1:]))
        flat = term if flat is None else flat + term
    return flat


def _rank_coords(lead, nd, ks):
    """Index expressions of the kernel coordinates, per window dim, of the
    window position whose row-major rank is extra 0 (read at the window's
    own indexes i0..i<lead+nd-1>)."""
    at = "@e0(" + ",".join(f"i{d}" for d in range(lead + nd)) + ")"
    coords = []
    for j in range(nd):
        inner = int(math.prod(ks[j + 1:]))
        k = at if inner == 1 else f"{at}/{inner}"
        coords.append(k if j == 0 else f"({k})%{ks[j]}")
    return coords


def _scatter_by_plane(pos, dout, x_shape, lead, ks, st, pad):
    """dx of max pooling (dense windows) on the CPU: each window adds its
    dout at its first maximum (pos, its rank in the window), a scatter whose
    lead dims (batch, channel) write disjoint planes, so the planes run in
    parallel and each plane's windows in turn, with no atomics. Overlapping
    windows: ~6x faster here than _gather_to_input's visits, which suit a
    GPU's threads better; tiling windows (2x2 stride 2): it visits each
    window once where the gather visits every input position with divisions
    (the digits CNN's step 1.0 -> 0.89 ms). A maximum in the padding has no
    input position and is dropped."""
    exprs = [f"i{d}" for d in range(lead)]
    for j, k in enumerate(_rank_coords(lead, len(ks), ks)):
        e = f"i{lead + j}" if st[j] == 1 else f"i{lead + j}*{st[j]}"
        e = f"{e}+{k}" if not pad[j] else f"{e}+{k}-{pad[j]}"
        exprs.append(e)
    return reindex_reduce(dout, "add", x_shape, exprs, extras=[pos])


def _gather_to_input(first_pos, dout, x_shape, lead, ks, st, pad, outs):
    """dx of max pooling with overlapping windows (dilation 1) as a gather by
    window position, no scatter and no atomics: each input position visits
    the few windows that cover it (ceil(k/s) per dim: 4 for 3x3 stride 2)
    and takes a window's dout where that window's first maximum
    (first_pos, _plane_positions) is this position; a maximum in the
    padding has no input position and its gradient is dropped. The visits
    are unrolled into one element-wise kernel over x's shape."""
    nd = len(ks)
    ext = _padded_extent(ks, st, outs)
    own = None
    for j in range(nd):
        term = (index(x_shape, lead + j, dtype="int32") + pad[j]) * int(math.prod(ext[j + 1:]))
        own = term if own is None else own + term
    dx = None
    for visit in itertools.product(*[range(-(-k // s)) for k, s in zip(ks, st)]):
        outer = [f"((i{lead + j}+{pad[j]})/{st[j]}-{t})" for j, t in enumerate(visit)]
        conds = ["||".join(f"{o}<0||{o}>={outs[j]}||i{lead + j}+{pad[j]}-{o}*{st[j]}>={ks[j]}"
                           for j, o in enumerate(outer))]
        read = [f"i{d}" for d in range(lead)] + outer
        share = where(reindex(first_pos, x_shape, read, -1, conds) == own,
                      reindex(dout, x_shape, read, 0.0, conds), 0.0)
        dx = share if dx is None else dx + share
    return dx


def _padded(x, lead, ks, st, pad, outs):
    """x with -inf around it as far as the windows read (_padded_extent),
    stored, and the windows' index expressions into it. On the CPU a window
    kernel whose reads can leave x keeps every load under a bounds check
    and runs scalar; over the padded copy none can, the checks fold away
    and it vectorises (ResNet's stem: the argmax 9.3 -> 2.1 ms, for a 3.4 ms
    copy). The copy feeds the forward only: the gradient still goes to x
    (the windows' ranks are the same)."""
    nd = len(ks)
    shape = x.shape[:lead] + tuple(_padded_extent(ks, st, outs))
    exprs = [f"i{d}" for d in range(lead)] + [f"i{lead + j}-{p}" if p else f"i{lead + j}" for j, p in enumerate(pad)]
    padded = reindex(x, shape, exprs, float("-inf"))
    padded.stop_fuse()
    return padded, _window_exprs(lead, st, (1,) * nd, (0,) * nd)


def _window_value(win, pos, lead, nd):
    """win's element at each window's rank pos (row-major over win's
    trailing nd kernel dims): one gather, fused with win's own reads."""
    exprs = [f"i{d}" for d in range(lead + nd)] + _rank_coords(lead, nd, win.shape[lead + nd:])
    return reindex(win, win.shape[:lead + nd], exprs, float("-inf"), extras=[pos])


def _max_first_grad(x, win, lead, nd, idx, conds=(), tiling=None, geometry=None):
    """The max over win's trailing nd window dims, whose gradient goes to
    the first maximum of each window only (PyTorch's and Jittor's rule; a
    max reduce's own gradient would share it among tied elements). Without
    a gradient: one fused reindex + max-reduce kernel. With one: an argmax
    reduce finds each window's first maximum (its row-major rank; NaN counts
    as the maximum, as max returns it) and the max is read there; dout goes
    there through the adjoint of the windows' reindex: on a device that
    scatters by plane (the CPU) with dense windows (geometry, dilation 1)
    _scatter_by_plane; elsewhere a gather when the windows tile x (tiling:
    the (stride, pad) per window dim, stride == kernel, dilation 1: one map
    kernel), a gather over the windows covering each input position when
    they overlap (geometry: _gather_to_input), else (dilated windows) a
    scatter-add (reindex_reduce). The gathers need no atomics. win was read
    from x with the index expressions idx (and conds); geometry: (kernel,
    stride, padding, output sizes) when the windows are dense (dilation 1)."""
    kdims = list(range(lead + nd, lead + 2 * nd))
    x = to_var(x)
    if not grad_mode.get() or not x.requires_grad:
        return win.max(kdims)
    ks = win.shape[lead + nd:]
    wshape = win.shape
    src, read = x.detach(), list(idx)
    padded = geometry is not None and any(geometry[2]) and x._scatters_planes
    if padded:
        src, read = _padded(src, lead, *geometry)
    w = reindex(src, wshape, read, float("-inf"), list(conds))
    pos = reduce(w, "argmax", kdims)
    # the value at the first maximum is the maximum (NaN where one is NaN):
    # over the padded copy a reduce, which vectorises, beats a gather at pos
    y = w.max(kdims) if padded else _window_value(w, pos, lead, nd)

    def rule(douts):
        dout = douts[0]
        if geometry is not None and dout._scatters_planes:   # the device's choice: the CPU's, not a GPU's
            return [_scatter_by_plane(pos, dout, x.shape, lead, *geometry[:3])]
        if geometry is not None and tiling is None:
            ks_, st_, _, outs_ = geometry
            first_pos = _plane_positions(pos, lead, ks_, st_, outs_)
            return [_gather_to_input(first_pos, dout, x.shape, lead, *geometry)]
        rank = None      # each position's row-major rank in its window, small ints
        for j, d in enumerate(kdims):
            term = index(wshape, d, dtype="int32") * int(math.prod(ks[j + 1:]))
            rank = term if rank is None else rank + term
        keep = [f"i{d}" for d in range(lead + nd)]
        pick = rank == pos.reindex(wshape, keep)
        dwin = where(pick, dout.reindex(wshape, keep), 0.0)
        if tiling is not None:
            exprs = [f"i{d}" for d in range(lead)]
            at = [f"(i{lead + j}+{p})" if p else f"i{lead + j}" for j, (s, p) in enumerate(tiling)]
            exprs += [f"{a}/{s}" for a, (s, _) in zip(at, tiling)]
            exprs += [f"{a}%{s}" for a, (s, _) in zip(at, tiling)]
            return [reindex(dwin, x.shape, exprs, 0.0)]
        return [reindex_reduce(dwin, "add", x.shape, list(idx), list(conds))]

    return _attach([y], [x], rule)[0]


def _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, nd, name,
              return_indices=False):
    ks = _tuple(kernel_size, nd, f"{name}: kernel_size")
    st = ks if stride is None or stride == [] else _tuple(stride, nd, f"{name}: stride")
    dil = 1 if dilation is None else dilation          # Jittor's default is None
    pad = _tuple(padding, nd, f"{name}: padding")
    dil = _tuple(dil, nd, f"{name}: dilation")
    win, lead, sp, outs, idx = _windows(x, nd, ks, st, pad, dil, ceil_mode, float("-inf"), name)
    if return_indices:
        return _first_max(win, lead, nd, sp, idx, (), return_indices)
    tiling = geometry = None
    if all(d == 1 for d in dil):
        geometry = (tuple(ks), tuple(st), tuple(pad), tuple(outs))
        if tuple(st) == tuple(ks):
            tiling = tuple((int(s), int(p)) for s, p in zip(st, pad))
    return _max_first_grad(x, win, lead, nd, idx, (), tiling, geometry)


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
    win, lead, sp, outs, _ = _windows(x, nd, ks, st, pad, (1,) * nd, ceil_mode, 0.0, name)
    s = win.sum(list(range(lead + nd, lead + 2 * nd)))
    if divisor_override:
        return s / float(divisor_override)
    div = _avg_divisor(sp, outs, ks, st, pad, count_include_pad)
    if np.all(div == div.flat[0]):
        return s / float(div.flat[0])
    return s / array(div, dtype=s.dtype)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """With return_indices: (values, int64 indices into each input row), as PyTorch."""
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, 1, "max_pool1d",
                     bool(return_indices))


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """With return_indices: (values, int64 indices into each flattened H*W plane)."""
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, 2, "max_pool2d",
                     bool(return_indices))


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """With return_indices: (values, int64 indices into each flattened D*H*W volume)."""
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, 3, "max_pool3d",
                     bool(return_indices))


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


def _pool_nd(x, kernel_size, op, padding, stride, ceil_mode, count_include_pad, dilation,
             return_indices, nd, name):
    """Jittor's pool/pool3d: op 'maximum'/'max' or 'mean'/'avg'."""
    if op in ("maximum", "max"):
        return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, nd, name,
                         bool(return_indices))
    if op in ("mean", "avg", "average"):
        if return_indices:
            raise ValueError(f"{name}: return_indices=True needs op='maximum', got op={op!r}")
        return _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad, None,
                         nd, name)
    raise ValueError(f"{name}: unsupported op {op!r} (expected 'maximum' or 'mean')")


def pool(x, kernel_size, op="maximum", padding=0, stride=None, ceil_mode=False,
         count_include_pad=True, dilation=1, return_indices=False):
    """Jittor's nn.pool: op 'maximum'/'max' or 'mean'/'avg', 2-d."""
    return _pool_nd(x, kernel_size, op, padding, stride, ceil_mode, count_include_pad,
                    dilation, return_indices, 2, "pool")


def pool3d(x, kernel_size, op="maximum", padding=0, stride=None, ceil_mode=False,
           count_include_pad=True, dilation=1, return_indices=False):
    """Jittor's nn.pool3d: pool over the last three dims."""
    return _pool_nd(x, kernel_size, op, padding, stride, ceil_mode, count_include_pad,
                    dilation, return_indices, 3, "pool3d")


# ---- unpooling ----

def _max_unpool(x, indices, kernel_size, stride, padding, output_size, nd, name):
    """Scatters each value to its flat index in an (N, C, *out) result, zeros
    elsewhere. Values that share an index are added (Jittor's MaxUnpool2d;
    PyTorch keeps one of them); an index outside the result is an IndexError
    (off with jt.flags.check_indices = 0, which drops them)."""
    x, indices = to_var(x), to_var(indices)
    if x.ndim not in (nd + 1, nd + 2):
        raise ValueError(f"{name}: expected a {nd + 1}-d or {nd + 2}-d input, got shape "
                         f"{x.shape}")
    if indices.shape != x.shape:
        raise ValueError(f"{name}: indices of shape {indices.shape} must match the input's "
                         f"shape {x.shape}")
    if not (indices.dtype.is_int):
        raise TypeError(f"{name}: indices must be an integer var, got {indices.dtype}")
    ks = _tuple(kernel_size, nd, f"{name}: kernel_size", minimum=1)
    st = ks if stride is None else _tuple(stride, nd, f"{name}: stride", minimum=1)
    pad = _tuple(padding, nd, f"{name}: padding", minimum=0)
    sp = x.shape[x.ndim - nd:]
    if output_size is None:
        outs = tuple((n - 1) * s - 2 * p + k for n, s, p, k in zip(sp, st, pad, ks))
    else:
        given = tuple(int(v) for v in output_size)
        if len(given) < nd:
            raise ValueError(f"{name}: output_size {tuple(output_size)} needs at least {nd} "
                             "values")
        outs = given[-nd:]         # (H, W) or a whole shape, as input.shape
    if any(o <= 0 for o in outs):
        raise ValueError(f"{name}: output size {outs} must be positive (input shape "
                         f"{x.shape}, kernel {ks}, stride {st}, padding {pad})")
    lead = x.shape[:x.ndim - nd]
    size = int(math.prod(outs))
    # an index outside the result raises when computed (PyTorch's check), not dropped
    indices = checked_index(indices, 0, size, f"{name} indices (output size {outs})")
    loop = ",".join(f"i{d}" for d in range(x.ndim))
    exprs = [f"i{d}" for d in range(len(lead))] + [f"@e0({loop})"]
    y = reindex_reduce(x, "add", lead + (size,), exprs, (), [indices])
    return y.reshape(lead + outs)


def max_unpool1d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool(x, indices, kernel_size, stride, padding, output_size, 1, "max_unpool1d")


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of max_pool2d(..., return_indices=True)."""
    return _max_unpool(x, indices, kernel_size, stride, padding, output_size, 2, "max_unpool2d")


def max_unpool3d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool(x, indices, kernel_size, stride, padding, output_size, 3, "max_unpool3d")


# ---- adaptive ----

def _adaptive(x, output_size, nd, op, name, return_indices=False):
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
    if any(o <= 0 for o in outs):
        raise ValueError(f"{name}: output_size {tuple(outs)} must be positive")
    if all(n % o == 0 for n, o in zip(sp, outs)):
        ks = tuple(n // o for n, o in zip(sp, outs))
        if op == "max":
            return _max_pool(x, ks, ks, 0, 1, False, nd, name, return_indices)
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
        if return_indices:
            return _first_max(win, lead, nd, sp, idx, ["||".join(conds)], return_indices)
        return _max_first_grad(x, win, lead, nd, idx, ["||".join(conds)])
    return win.sum(dims) / array(div, dtype=x.dtype)


def adaptive_avg_pool1d(x, output_size):
    return _adaptive(x, output_size, 1, "avg", "adaptive_avg_pool1d")


def adaptive_avg_pool2d(x, output_size):
    return _adaptive(x, output_size, 2, "avg", "adaptive_avg_pool2d")


def adaptive_avg_pool3d(x, output_size):
    return _adaptive(x, output_size, 3, "avg", "adaptive_avg_pool3d")


def adaptive_max_pool1d(x, output_size, return_indices=False):
    return _adaptive(x, output_size, 1, "max", "adaptive_max_pool1d", bool(return_indices))


def adaptive_max_pool2d(x, output_size, return_indices=False):
    return _adaptive(x, output_size, 2, "max", "adaptive_max_pool2d", bool(return_indices))


# ---- layers ----

class _MaxPoolNd(Module):
    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode
        self.return_indices = bool(return_indices)

    def execute(self, x):
        return _max_pool(x, self.kernel_size, self.stride, self.padding, self.dilation,
                         self.ceil_mode, self._nd, type(self).__name__, self.return_indices)

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
    """Jittor's nn.Pool: op='maximum' (max) or 'mean' (average); with
    return_indices (max only) it returns (values, indices) as MaxPool2d."""
    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=None, return_indices=None,
                 ceil_mode=False, count_include_pad=True, op="maximum"):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation = 1 if dilation is None else dilation
        self.ceil_mode, self.count_include_pad, self.op = ceil_mode, count_include_pad, op
        self.return_indices = bool(return_indices)
        if self.return_indices and op not in ("maximum", "max"):
            raise ValueError(f"{type(self).__name__}: return_indices=True needs op='maximum', "
                             f"got op={op!r}")

    def execute(self, x):
        return _pool_nd(x, self.kernel_size, self.op, self.padding, self.stride, self.ceil_mode,
                        self.count_include_pad, self.dilation, self.return_indices, self._nd,
                        type(self).__name__)


class Pool3d(Pool):
    """Jittor's nn.Pool3d: Pool over the last three dims."""
    _nd = 3


class _MaxUnpoolNd(Module):
    """PyTorch's MaxUnpool1d/2d/3d (and Jittor's MaxUnpool2d/3d): call with
    (values, indices, output_size=None); output_size may be a whole shape."""
    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def execute(self, x, indices, output_size=None):
        return _max_unpool(x, indices, self.kernel_size, self.stride, self.padding, output_size,
                           self._nd, type(self).__name__)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd):
    _nd = 1


class MaxUnpool2d(_MaxUnpoolNd):
    _nd = 2


class MaxUnpool3d(_MaxUnpoolNd):
    _nd = 3


class _Adaptive(Module):
    _nd, _op = 2, "avg"

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size = output_size
        self.return_indices = bool(return_indices)
        if self.return_indices and self._op != "max":
            raise ValueError(f"{type(self).__name__}: return_indices is only for max pooling")

    def execute(self, x):
        return _adaptive(x, self.output_size, self._nd, self._op, type(self).__name__,
                         self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_Adaptive):
    _nd, _op = 1, "avg"


class AdaptiveAvgPool2d(_Adaptive):
    _nd, _op = 2, "avg"


class AdaptiveAvgPool3d(_Adaptive):
    _nd, _op = 3, "avg"


class AdaptiveMaxPool1d(_Adaptive):
    _nd, _op = 1, "max"


class AdaptiveMaxPool2d(_Adaptive):
    _nd, _op = 2, "max"

