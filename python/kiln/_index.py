"""Var[...] and Var[...] = v, NumPy's indexing rules on reindex: ints, slices,
None, Ellipsis, integer arrays (gathered through reindex extras) and boolean
masks; gather and scatter along one dim (PyTorch's and Jittor's)."""
import numbers

import numpy as np

from . import _C
from ._core import Var, cast, checked_index, is_scalar, out, rebind, to_var, where
from ._reduce import index
from ._shape import broadcast, norm_dim, reindex, reindex_reduce, reshape

__all__ = ["getitem", "setitem", "gather", "scatter"]


class _Plan:
    """How an index maps the result's positions to x's: one expression per dim
    of x, the result's shape, and for basic indexes what each dim of x got."""

    def __init__(self):
        self.shape = []      # the result's shape
        self.exprs = []      # per dim of x: its index as an expression of the result's i<j>
        self.extras = []     # integer vars read by @e<k>(...)
        self.basic = []      # per dim of x: ("int", k) or ("slice", start, step, j)
        self.advanced = False


def _as_host_index(it):
    a = np.asarray(it)
    if a.dtype == np.bool_:
        return a
    if a.size == 0 and a.dtype.kind == "f":
        return a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise IndexError(f"arrays used as indices must be of integer or boolean type, "
                         f"got {a.dtype}")
    return a.astype(np.int64)


def _normalize_items(idx):
    """The index as a list of int, slice, None, Ellipsis, host int/bool arrays
    and integer vars (boolean vars become host masks: this syncs them)."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    items = []
    for it in idx:
        if it is None or it is Ellipsis or isinstance(it, slice):
            items.append(it)
        elif isinstance(it, (bool, np.bool_)):
            raise IndexError("a boolean scalar is not a supported index")
        elif isinstance(it, numbers.Integral):
            items.append(int(it))
        elif isinstance(it, Var):
            if it.dtype.is_bool:
                items.append(it.numpy())
            elif it.dtype.is_int:
                items.append(it)
            else:
                raise IndexError(f"vars used as indices must be of integer or boolean type, "
                                 f"got {it.dtype}")
        elif isinstance(it, (list, tuple, np.ndarray)):
            items.append(_as_host_index(it))
        else:
            raise IndexError(f"unsupported index {it!r} of type {type(it).__name__}")
    for it in items:
        if _is_mask(it) and it.ndim == 0:
            raise IndexError("a 0-d boolean mask is not a supported index")
    return items


def _is_mask(it):
    return isinstance(it, np.ndarray) and it.dtype == np.bool_


def _expand_masks(items, shape):
    """Boolean masks become the integer arrays of their true positions, each
    checked against the dims it covers (NumPy's rule: same shape)."""
    flat, d = [], 0
    for it in items:
        if _is_mask(it):
            cover = tuple(shape[d:d + it.ndim])
            if it.shape != cover:
                k = next((j for j in range(it.ndim) if j >= len(cover) or it.shape[j] != cover[j]), 0)
                size = cover[k] if k < len(cover) else 0
                raise IndexError(f"boolean index did not match the indexed var along dim {d + k}: "
                                 f"the dim has size {size}, the mask {it.shape[k]} (mask of shape "
                                 f"{it.shape} at dim {d} of a var of shape {tuple(shape)})")
            flat.extend(np.nonzero(it))
            d += it.ndim
        else:
            flat.append(it)
            d += it is not None
    return flat


def _is_array(it):
    return isinstance(it, (np.ndarray, Var))


def plan_index(x, idx):
    shape = x.shape
    nd = len(shape)
    items = _normalize_items(idx)
    used = sum(it.ndim if _is_mask(it) else 1 for it in items if it is not None and it is not Ellipsis)
    if used > nd:
        raise IndexError(f"too many indices for a var of shape {shape}: {used} were given")
    n_ell = sum(1 for it in items if it is Ellipsis)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    # NumPy puts the broadcast dims of advanced indexes (arrays, and ints
    # beside them) where they stand if they are adjacent, else first; an
    # ellipsis between them separates them even when it stands for no dim
    adv_pos = [i for i, it in enumerate(items) if _is_array(it) or isinstance(it, int)]
    adjacent = adv_pos == list(range(adv_pos[0], adv_pos[-1] + 1)) if adv_pos else True
    fill = [slice(None)] * (nd - used)
    if n_ell:
        e = next(i for i, it in enumerate(items) if it is Ellipsis)
        items = items[:e] + fill + items[e + 1:]
    else:
        items = items + fill
    items = _expand_masks(items, shape)

    p = _Plan()
    arrays = [it for it in items if _is_array(it)]
    p.advanced = bool(arrays)
    bshape = ()
    if arrays:
        try:
            bshape = tuple(np.broadcast_shapes(*[tuple(a.shape) for a in arrays]))
        except ValueError:
            raise IndexError("shape mismatch: indexing arrays could not be broadcast together "
                             f"with shapes {[tuple(a.shape) for a in arrays]}") from None
        b_start = None if adjacent else 0
        if b_start == 0:
            p.shape.extend(bshape)

    d = 0
    for i, it in enumerate(items):
        if it is None:
            p.shape.append(1)
            continue
        n = shape[d]
        if isinstance(it, int):
            k = it + n if it < 0 else it
            if not 0 <= k < n:
                raise IndexError(f"index {it} is out of bounds for dim {d} with size {n}")
            p.exprs.append(str(k))
            p.basic.append(("int", k))
        elif isinstance(it, slice):
            start, stop, step = it.indices(n)
            length = len(range(start, stop, step))
            j = len(p.shape)
            p.shape.append(length)
            e = f"i{j}" if abs(step) == 1 else f"i{j}*{abs(step)}"
            if step < 0:
                p.exprs.append(f"{start}-{e}")
            else:
                p.exprs.append(e if start == 0 else f"{start}+{e}")
            p.basic.append(("slice", start, step, j))
        else:
            if b_start is None:
                b_start = len(p.shape)
                p.shape.extend(bshape)
            p.exprs.append(_array_expr(p, it, n, d, bshape, b_start, shape))
        d += 1
    return p


def _array_expr(p, a, n, d, bshape, b_start, shape):
    """The expression reading index array a (right-aligned in the broadcast shape)."""
    checked = isinstance(a, np.ndarray)
    if not checked:  # a var: its values are known at the sync
        a = checked_index(a, -n, n, f"getitem on dim {d} of shape {tuple(shape)}")
    if checked:
        a = np.where(a < 0, a + n, a)
        bad = (a < 0) | (a >= n)
        if bad.any():
            raise IndexError(f"index {int(np.asarray(a)[bad].flat[0])} is out of bounds for "
                             f"dim {d} with size {n}")
        a = _C.from_buffer(a.astype(np.int32 if n < 2**31 else np.int64, order="C"))
    if a.ndim == 0:
        a = out(_C.reshape(a, (1,)), a)
    k = len(p.extras)
    p.extras.append(a)
    r = a.ndim
    args = []
    for t, s in enumerate(a.shape):
        bd = len(bshape) - r + t
        args.append("0" if s == 1 and (bd < 0 or bshape[bd] != 1) else f"i{b_start + bd}")
    load = f"@e{k}({','.join(args)})"
    return load if checked else f"({load}<0?{load}+{n}:{load})"


def getitem(x, idx):
    """x[idx]. A basic index (ints, slices, None, ...) gives a view as in NumPy:
    writing into it (x[1][2] = v) writes through to x (Var._view_of)."""
    x = to_var(x)
    p = plan_index(x, idx)
    if not p.advanced and tuple(p.shape) == x.shape and \
            all(e == f"i{d}" for d, e in enumerate(p.exprs)):
        y = x.clone()
    else:
        y = reindex(x, p.shape, p.exprs, 0, (), p.extras)
    if not p.advanced:
        y._view_of = (x, idx)
    return y


def setitem(x, idx, v):
    """x[idx] = v: rebinds x to a new var (the graph is functional); with
    repeated integer-array targets the last value wins, as in NumPy."""
    if isinstance(idx, Var) and idx.dtype.is_bool and idx.shape == x.shape and \
            (is_scalar(v) or to_var(v)._numel == 1):
        # a mask shaped like x and one value: a where, no sync to count the mask
        one = cast(reshape(to_var(v), ()), x.dtype)
        return _write_through(rebind(x, where(idx, one, x)))
    p = plan_index(x, idx)
    v = cast(to_var(v), x.dtype)
    try:
        vb = broadcast(v, p.shape)
    except ValueError:
        raise ValueError(f"setitem: value of shape {v.shape} cannot be broadcast to the "
                         f"indexed shape {tuple(p.shape)} of a var of shape {x.shape}") from None
    if p.advanced:
        # scatter each value's position, keeping the last writer of every
        # target as NumPy does, then gather the values from those positions
        n = int(np.prod(p.shape))
        pos = reshape(index((n,), 0, "int32"), p.shape)
        writer = reindex_reduce(pos, "maximum", x.shape, p.exprs, (), p.extras)
        every = ",".join(f"i{d}" for d in range(x.ndim))
        vals = reindex(reshape(vb, (n,)), x.shape, [f"@e0({every})"], 0, (), [writer])
        mask = writer >= 0
    else:
        exprs, conds = _gather_exprs(p)
        vals = reindex(vb, x.shape, exprs, 0, conds)
        ones = out(_C.full(tuple(p.shape), 1.0, "bool"))
        mask = reindex(ones, x.shape, exprs, 0, conds)
    return _write_through(rebind(x, where(mask, vals, x)))


def _write_through(x):
    """A view's new value goes back into what it views (and so on up a chain
    of views: a[1][2][0] = v)."""
    viewed = getattr(x, "_view_of", None)
    if viewed is not None:
        setitem(viewed[0], viewed[1], x)
    return x


def _gather_exprs(p):
    """For basic indexes: the inverse mapping, from x's positions to the
    value's, with the condition that excludes positions not selected."""
    exprs = ["0"] * len(p.shape)
    conds = []
    for d, info in enumerate(p.basic):
        if info[0] == "int":
            conds.append(f"i{d}!={info[1]}")
            continue
        _, start, step, j = info
        if step > 0:
            off = f"i{d}-{start}" if start else f"i{d}"
            if start:
                conds.append(f"i{d}<{start}")
        else:
            off = f"{start}-i{d}"
            conds.append(f"i{d}>{start}")
        s = abs(step)
        exprs[j] = off if s == 1 else f"({off})/{s}"
        if s != 1:
            conds.append(f"({off})%{s}!=0")
    return exprs, (["||".join(f"({c})" for c in conds)] if conds else [])


# ---- gather / scatter along one dim ----

def _along(x, dim, index, name):
    """dim normalised, index checked against x's shape; the per-dim index
    expressions over index's positions (dim's read from the index var)."""
    x, index = to_var(x), to_var(index)
    dim = norm_dim(dim, x.ndim, name)
    if index.dtype.is_float or index.dtype == "bool":
        raise TypeError(f"{name}: index must be an integer var, got {index.dtype}")
    if index.ndim != x.ndim:
        raise ValueError(f"{name}: index of shape {index.shape} must have as many dims as the "
                         f"input of shape {x.shape}")
    for d in range(x.ndim):
        if d != dim and index.shape[d] > x.shape[d]:
            raise ValueError(f"{name}: index of shape {index.shape} is larger than the input of "
                             f"shape {x.shape} in dim {d}")
    here = ",".join(f"i{d}" for d in range(x.ndim))
    exprs = [f"@e0({here})" if d == dim else f"i{d}" for d in range(x.ndim)]
    checked = checked_index(index, 0, x.shape[dim], f"{name} on dim {dim} of shape {x.shape}")
    return x, dim, index, exprs, checked


def gather(x, dim, index):
    """out[i][j][k] = x[index[i][j][k]][j][k] for dim 0 (likewise for the
    others); out has index's shape. An index outside x raises IndexError at
    the sync."""
    x, dim, index, exprs, checked = _along(x, dim, index, "gather")
    return reindex(x, index.shape, exprs, extras=[checked])


def scatter(x, dim, index, src, reduce="void"):
    """x with x[index[i][j][k]][j][k] = src[i][j][k] for dim 0 (likewise for
    the others), over index's positions; reduce "add" or "multiply" combines
    instead. src is a var at least as large as index, or a number. Where an
    index repeats without a reduce, the largest value lands (PyTorch leaves
    it unspecified)."""
    x, dim, index, exprs, checked = _along(x, dim, index, "scatter")
    if is_scalar(src):
        src = broadcast(cast(to_var(src), x.dtype), index.shape)
    else:
        src = to_var(src)
        if src.ndim != x.ndim or any(i > s for i, s in zip(index.shape, src.shape)):
            raise ValueError(f"scatter: src of shape {src.shape} must cover the index of shape "
                             f"{index.shape}")
        if src.shape != index.shape:
            src = reindex(src, index.shape, [f"i{d}" for d in range(src.ndim)])
        src = cast(src, x.dtype)
    if reduce in ("add", "sum"):
        return x + reindex_reduce(src, "add", x.shape, exprs, extras=[checked])
    if reduce in ("multiply", "mul", "prod"):
        return x * reindex_reduce(src, "multiply", x.shape, exprs, extras=[checked])
    if reduce not in ("void", None, "none"):
        raise ValueError(f"scatter: reduce must be 'void', 'add' or 'multiply', got {reduce!r}")
    ones = broadcast(cast(to_var(1), "int32"), index.shape)
    hit = reindex_reduce(ones, "maximum", x.shape, exprs, extras=[checked]) > 0
    return where(hit, reindex_reduce(src, "maximum", x.shape, exprs, extras=[checked]), x)
