"""Movement ops: reshape, transpose, broadcast, concat, split, flip, built on
the reindex / broadcast / reshape meta-ops, plus the reindex wrappers themselves."""
import numpy as np

from . import _C
from ._core import Var, binary, cast, out, to_var
from ._dtype import DTYPES

__all__ = [
    "reindex", "reindex_reduce", "broadcast", "broadcast_var", "expand", "reshape", "flatten",
    "squeeze", "unsqueeze", "permute", "transpose", "concat", "stack", "split", "chunk", "flip",
    "norm_dim", "norm_dims", "shape_arg",
]


def norm_dim(dim, ndim, op="op"):
    """dim in [-ndim, ndim) as a non-negative int, else IndexError."""
    d = int(dim)
    if not -max(ndim, 1) <= d < max(ndim, 1):
        raise IndexError(f"{op}: dim {dim} is out of range for a var of {ndim} dims")
    return d % max(ndim, 1)


def norm_dims(dims, ndim, op="op"):
    """A sorted tuple of distinct non-negative dims; None or () means all."""
    if dims is None:
        return tuple(range(ndim))
    if isinstance(dims, (int, np.integer)):
        dims = (dims,)
    out_dims = sorted({norm_dim(d, ndim, op) for d in dims})
    return tuple(out_dims) if out_dims or ndim == 0 else tuple(range(ndim))


def shape_arg(shape):
    """Accepts f(2, 3), f((2, 3)), f([2, 3]) and a var's shape."""
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = shape[0]
    if isinstance(shape, Var):
        shape = shape.shape
    return tuple(int(s) for s in shape)


# ---- the meta-ops ----

def _index_extras(extras):
    """Extras are read as indices: float ones are truncated, as C converts them."""
    extras = [to_var(e) for e in extras]
    return [e if not e.dtype.is_float else e.astype("int64") for e in extras]


def reindex(x, shape, indexes=None, overflow_value=0, overflow_conditions=(), extras=()):
    """Reindex Operator: out[i0, ...] = x[indexes...], or overflow_value out of bounds (Jittor's
    reindex). Given a list of index Vars instead of a shape (x.reindex([iy, ix])),
    it is reindex_var: out[i...] = x[iy[i...], ix[i...]]."""
    x = to_var(x)
    if indexes is None and isinstance(shape, (list, tuple)) and shape and \
            all(isinstance(v, Var) for v in shape):
        from ._special import reindex_var
        return reindex_var(x, shape, overflow_value, overflow_conditions)
    if indexes is None:
        raise TypeError("reindex: expected (shape, indexes) or a list of index Vars")
    if isinstance(shape, Var):
        shape = shape.shape
    if len(indexes) != x.ndim:
        raise ValueError(f"reindex: {len(indexes)} index expressions for an input of {x.ndim} dims "
                         f"(shape {x.shape}); one per input dim is needed")
    extras = _index_extras(extras)
    return out(_C.reindex(x, tuple(shape), list(indexes), float(overflow_value),
                          list(overflow_conditions), extras), x, *extras)


def reindex_reduce(x, op, shape, indexes, overflow_conditions=(), extras=()):
    """Scatter: out[indexes(i)] op= x[i] (Jittor's reindex_reduce)."""
    x = to_var(x)
    if isinstance(shape, Var):
        shape = shape.shape
    if len(indexes) != len(shape):
        raise ValueError(f"reindex_reduce: {len(indexes)} index expressions for an output of "
                         f"{len(shape)} dims (shape {tuple(shape)}); one per output dim is needed")
    extras = _index_extras(extras)
    return out(_C.reindex_reduce(x, op, tuple(shape), list(indexes),
                                 list(overflow_conditions), extras), x, *extras)


def broadcast(x, shape, dims=()):
    """x broadcast to shape (or to a var's shape); dims lists the output dims
    that are new, otherwise x is right-aligned as in NumPy."""
    x = to_var(x)
    if isinstance(shape, Var):
        shape = shape.shape
    shape = tuple(int(s) for s in shape)
    if shape == x.shape and not dims:
        return x
    if not dims:
        # Jittor's broadcast: the NumPy broadcast of both shapes (x may have
        # more dims, or sizes where shape has 1s); an impossible pair is
        # left for the core to refuse with its message
        try:
            shape = tuple(np.broadcast_shapes(x.shape, shape))
        except ValueError:
            pass
    ndim = len(shape)
    dims = [norm_dim(d, ndim, "broadcast") for d in dims]
    if dims and len(shape) - len(dims) == x.ndim:
        # the dims x keeps: a 1 in shape takes x's size (Jittor's
        # index0.broadcast([1, 3], dims=[1]) of a (2,) var is (2, 3))
        kept = [d for d in range(ndim) if d not in dims]
        shape = tuple(x.shape[kept.index(d)] if d in kept and shape[d] == 1 else shape[d]
                      for d in range(ndim))
    return out(_C.broadcast_to(x, shape, dims), x)


def broadcast_var(x, y):
    return broadcast(x, y.shape)


def expand(x, *shape):
    """PyTorch's expand: -1 keeps that dim."""
    shape = list(shape_arg(shape))
    xs = to_var(x).shape
    off = len(shape) - len(xs)
    for i, s in enumerate(shape):
        if s == -1:
            shape[i] = xs[i - off]
    return broadcast(x, shape)


def reshape(x, *shape):
    x = to_var(x)
    shape = shape_arg(shape)
    if shape == x.shape:
        return x
    return out(_C.reshape(x, shape), x)


def flatten(x, start_dim=0, end_dim=-1):
    x = to_var(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = norm_dim(start_dim, x.ndim, "flatten"), norm_dim(end_dim, x.ndim, "flatten")
    if s > e:
        return x
    shape = x.shape
    return reshape(x, shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:])


def squeeze(x, dim=None):
    x = to_var(x)
    if dim is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    dims = norm_dims(dim, x.ndim, "squeeze")
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if not (i in dims and s == 1)))


def unsqueeze(x, dim):
    x = to_var(x)
    d = norm_dim(dim, x.ndim + 1, "unsqueeze")
    s = x.shape
    return reshape(x, s[:d] + (1,) + s[d:])


def permute(x, *dims):
    x = to_var(x)
    nd = x.ndim
    if len(dims) == 1 and not isinstance(dims[0], (int, np.integer)):
        dims = tuple(dims[0])
    if not dims:
        dims = tuple(range(nd - 1, -1, -1))
    perm = [norm_dim(d, nd, "permute") for d in dims]
    if sorted(perm) != list(range(nd)):
        raise ValueError(f"permute: {tuple(dims)} is not a permutation of the {nd} dims "
                         f"of a var of shape {x.shape}")
    if perm == list(range(nd)):
        return x
    shape = tuple(x.shape[p] for p in perm)
    return reindex(x, shape, [f"i{perm.index(d)}" for d in range(nd)])


def transpose(x, *dims):
    """Jittor's transpose: no dims reverses them, two dims swap them,
    otherwise dims is a permutation."""
    x = to_var(x)
    if len(dims) == 1 and not isinstance(dims[0], (int, np.integer)):
        dims = tuple(dims[0])       # a permutation, even of two dims
    elif len(dims) == 2:
        perm = list(range(x.ndim))
        a, b = norm_dim(dims[0], x.ndim, "transpose"), norm_dim(dims[1], x.ndim, "transpose")
        perm[a], perm[b] = perm[b], perm[a]
        dims = perm
    return permute(x, *dims)


def _common(xs, op):
    xs = [to_var(x) for x in xs]
    if not xs:
        raise ValueError(f"{op}: expected at least one var")
    code = xs[0]._dtype_code
    for x in xs[1:]:
        code = _C.promote(code, x._dtype_code)
    return [cast(x, DTYPES[code]) for x in xs]


def concat(xs, dim=0):
    """Joins vars along an existing dim: each is reindexed into the result's
    shape (zeros outside its own range) and the pieces are added."""
    xs = _common(xs, "concat")
    first = xs[0]
    if first.ndim == 0:
        raise ValueError("concat: zero-dimensional vars cannot be concatenated")
    nd = first.ndim
    dim = norm_dim(dim, nd, "concat")
    for x in xs[1:]:
        if x.ndim != nd or any(a != b for i, (a, b) in enumerate(zip(x.shape, first.shape))
                               if i != dim):
            raise ValueError(f"concat: shapes {[tuple(v.shape) for v in xs]} differ outside "
                             f"dim {dim}")
    if len(xs) == 1:
        return first
    shape = list(first.shape)
    shape[dim] = sum(x.shape[dim] for x in xs)
    is_bool = first.dtype.is_bool
    result, off = None, 0
    for x in xs:
        n = x.shape[dim]
        if n == 0:
            continue
        idx = [f"i{d}" if d != dim or off == 0 else f"i{d}-{off}" for d in range(nd)]
        piece = reindex(x, shape, idx)
        if result is None:
            result = piece
        else:
            result = binary(result, piece, "logical_or" if is_bool else "add")
        off += n
    if result is None:
        return out(_C.full(tuple(shape), 0.0, first._dtype_code))
    return result


def stack(xs, dim=0):
    xs = [to_var(x) for x in xs]
    if not xs:
        raise ValueError("stack: expected at least one var")
    for x in xs[1:]:
        if x.shape != xs[0].shape:
            raise ValueError(f"stack: all shapes must be equal, got {[v.shape for v in xs]}")
    d = norm_dim(dim, xs[0].ndim + 1, "stack")
    return concat([unsqueeze(x, d) for x in xs], d)


def split(x, split_size_or_sections, dim=0):
    """Pieces of split_size (an int) or of the listed sizes along dim."""
    x = to_var(x)
    dim = norm_dim(dim, x.ndim, "split")
    n = x.shape[dim]
    if isinstance(split_size_or_sections, (int, np.integer)):
        step = int(split_size_or_sections)
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, n - s) for s in range(0, n, step)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} do not add up to {n} (dim {dim} of "
                             f"shape {x.shape})")
    pieces, start = [], 0
    for s in sizes:
        index = (slice(None),) * dim + (slice(start, start + s),)
        pieces.append(x[index])
        start += s
    return pieces


def chunk(x, chunks, dim=0):
    x = to_var(x)
    n = x.shape[norm_dim(dim, x.ndim, "chunk")]
    return split(x, max(1, -(-n // int(chunks))), dim)


def flip(x, dims=(0,)):
    x = to_var(x)
    dims = norm_dims(dims, x.ndim, "flip")
    idx = [f"{x.shape[d] - 1}-i{d}" if d in dims else f"i{d}" for d in range(x.ndim)]
    return reindex(x, x.shape, idx)
