"""Reductions and what is composed from them: sum/mean/max/..., argmax, var/std,
cumsum, argsort/sort/topk (ranks by broadcast comparison), softmax, matmul."""
import builtins

import numpy as np

from . import _C
from ._amp import reduce_dtype
from ._core import binary, cast, out, to_float, to_var, where
from ._shape import broadcast, flatten, norm_dim, norm_dims, reindex, reindex_reduce, reshape, squeeze

__all__ = [
    "reduce", "sum", "mean", "max", "min", "prod", "any", "all", "argmax", "argmin", "var",
    "std", "norm", "cumsum", "cumprod", "argsort", "sort", "topk", "softmax", "log_softmax",
    "logsumexp", "matmul", "bmm", "index", "arg_reduce", "REDUCE_FUNCTIONS",
]


def index(shape, dim=None, dtype="int32"):
    """Index Operator (Jittor's index op): out[i0, ...] = i_dim; all dims as
    a tuple when dim is None."""
    shape = tuple(int(s) for s in shape)
    if dim is None:
        return tuple(index(shape, d, dtype) for d in range(len(shape)))
    from ._dtype import as_dtype
    return out(_C.index(shape, norm_dim(dim, len(shape), "index"), as_dtype(dtype).code))


def reduce(x, op, dim=None, keepdims=False, *, dims=None, keepdim=False):
    """x reduced with op ('sum', 'max', ...) over dims (None or () means all)."""
    x = to_var(x)
    axes = norm_dims(dims if dims is not None else dim, x.ndim, op)
    if op in ("max", "min", "maximum", "minimum") and builtins.any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"{op}: zero-size reduction over dims {axes} of shape {x.shape} "
                         "has no identity")
    if op in ("any", "all"):
        x = cast(x, "bool")
    elif x.dtype.itemsize == 2 and x.dtype.is_float:
        wide = reduce_dtype(x.dtype, op)
        if wide is not None:
            x = cast(x, wide)
    return out(_C.reduce(x, op, axes, bool(keepdims or keepdim)), x)


def _reducer(op):
    def f(x, dim=None, keepdims=False, *, dims=None, keepdim=False):
        return reduce(x, op, dim, keepdims, dims=dims, keepdim=keepdim)
    f.__name__ = op
    f.__doc__ = f"{op} over dims (None means all), keeping them with keepdims."
    return f


sum = _reducer("sum")
mean = _reducer("mean")
max = _reducer("max")
min = _reducer("min")
prod = _reducer("prod")
any = _reducer("any")
all = _reducer("all")


def _arg(x, dim, keepdims, op):
    x = to_var(x)
    if dim is None:
        x, dim = flatten(x), 0
    d = norm_dim(dim, x.ndim, "arg" + op)
    n = x.shape[d]
    m = reduce(x, op, d, True)                      # the values: run only if read
    values = m if keepdims else squeeze(m, d)
    if n <= 4096 or x.numel() >= 64 * n:
        # one scan per row for the first extreme's position (NaN counts as
        # one, as in NumPy), rows in parallel
        return reduce(x, "arg" + op, d, keepdims), values
    # few long rows: a scan each would leave cores idle; two reductions
    # that each run in parallel over the row instead (the values' one too)
    hit = binary(x, m, "equal")
    if x.dtype.is_float:
        hit = binary(hit, binary(x, x, "not_equal"), "logical_or")
    first = reduce(where(hit, index(x.shape, d), n), "min", d, keepdims)
    return first, values


def argmax(x, dim=None, keepdims=False, *, keepdim=False):
    """(indices, values) of the maxima along dim, as Jittor returns them."""
    return _arg(x, dim, keepdims or keepdim, "max")


def argmin(x, dim=None, keepdims=False, *, keepdim=False):
    """(indices, values) of the minima along dim."""
    return _arg(x, dim, keepdims or keepdim, "min")


def arg_reduce(x, op, dim, keepdims):
    """Jittor's jt.arg_reduce(x, 'max'|'min', dim, keepdims): (indices, values)."""
    if op not in ("max", "min"):
        raise ValueError(f"arg_reduce: op must be 'max' or 'min', got {op!r}")
    return _arg(x, dim, keepdims, op)


def _named_reducer(op, jittor_name):
    def fn(x, dims=None, keepdims=False):
        return reduce(x, op, dims, keepdims)
    fn.__name__ = jittor_name
    fn.__doc__ = f"Jittor's jt.{jittor_name}(x, dims=None, keepdims=False): a {op} reduce."
    return fn


# Jittor's reduce_<op> functions, named by the binary op they fold with, which
# is also NumPy's ufunc (jt.reduce_add(a, d) is np.add.reduce(a, d)); the mean,
# having no binary op, is jt.mean only, as in Jittor
REDUCE_FUNCTIONS = {f"reduce_{name}": _named_reducer(op, f"reduce_{name}") for name, op in (
    ("add", "sum"), ("multiply", "prod"), ("maximum", "max"), ("minimum", "min"),
    ("logical_and", "all"), ("logical_or", "any"), ("logical_xor", "logical_xor"),
    ("bitwise_and", "bitwise_and"), ("bitwise_or", "bitwise_or"), ("bitwise_xor", "bitwise_xor"))}


def var(x, dim=None, keepdims=False, unbiased=True, *, dims=None, keepdim=False):
    """The variance over dims; unbiased (divided by n - 1) by default, as
    PyTorch's and Jittor's (unbiased=False divides by n)."""
    x = to_float(to_var(x))
    axes = norm_dims(dims if dims is not None else dim, x.ndim, "var")
    n = int(np.prod([x.shape[a] for a in axes]))
    d = x - reduce(x, "mean", axes, True)
    return reduce(d * d, "sum", axes, keepdims or keepdim) / builtins.max(n - int(unbiased), 0)


def std(x, dim=None, keepdims=False, unbiased=True, *, dims=None, keepdim=False):
    """The standard deviation: sqrt(var), unbiased by default."""
    return var(x, dim, keepdims, unbiased, dims=dims, keepdim=keepdim).sqrt()


def norm(x, p=2, dim=-1, keepdims=False, *, keepdim=False):
    x = to_var(x)
    kd = keepdims or keepdim
    if p == 1:
        return reduce(abs(x), "sum", dim, kd)
    if p == 2:
        return reduce(x * x, "sum", dim, kd).sqrt()
    return reduce(abs(x) ** p, "sum", dim, kd) ** (1.0 / p)


def _pairwise(x, d, which):
    """x seen on shape[:d] + (n, n) + shape[d+1:]: 'i' repeats it along the
    new last-of-pair dim, 'j' along the first."""
    nd = x.ndim
    n = x.shape[d]
    shape = x.shape[:d] + (n, n) + x.shape[d + 1:]
    src = d if which == "i" else d + 1
    idx = [f"i{k}" if k < d else f"i{src}" if k == d else f"i{k + 1}" for k in range(nd)]
    return shape, idx


def _scan(x, dim, op, identity):
    x = to_var(x)
    if x.ndim == 0:
        return x
    d = norm_dim(dim, x.ndim, "cum" + op)
    shape, idx = _pairwise(x, d, "j")
    # y[..., i, j, ...] = x[..., j, ...] for j <= i, else the identity
    y = reindex(x, shape, idx, identity, [f"i{d + 1}>i{d}"])
    return reduce(y, op, d + 1)


def cumsum(x, dim=-1):
    return _scan(x, dim, "sum", 0)


def cumprod(x, dim=-1):
    return _scan(x, dim, "prod", 1)


def argsort(x, dim=-1, descending=False):
    """Argsort Operator: (indices, values) sorting x along dim, stably (Jittor's order)."""
    x = to_var(x)
    if x.ndim == 0:
        return out(_C.full((), 0.0, "int32")), x
    d = norm_dim(dim, x.ndim, "argsort")
    shape, ia = _pairwise(x, d, "i")
    _, ib = _pairwise(x, d, "j")
    a, b = reindex(x, shape, ia), reindex(x, shape, ib)
    before = binary(b, a, "greater" if descending else "less")
    same = binary(b, a, "equal")
    if x.dtype.is_float:
        # NaN sorts as the largest value (NumPy, PyTorch): last ascending, first descending
        nan_a, nan_b = binary(a, a, "not_equal"), binary(b, b, "not_equal")
        first, second = (nan_b, nan_a) if descending else (nan_a, nan_b)
        before = binary(before, binary(first, second.logical_not(), "logical_and"), "logical_or")
        same = binary(same, binary(nan_a, nan_b, "logical_and"), "logical_or")
    tie = binary(same, binary(index(shape, d + 1), index(shape, d), "less"), "logical_and")
    rank = reduce(binary(before, tie, "logical_or"), "sum", d + 1)
    every = ",".join(f"i{k}" for k in range(x.ndim))
    scatter = [f"@e0({every})" if k == d else f"i{k}" for k in range(x.ndim)]
    indices = reindex_reduce(index(x.shape, d), "add", x.shape, scatter, (), [rank])
    gather = [f"@e0({every})" if k == d else f"i{k}" for k in range(x.ndim)]
    values = reindex(x, x.shape, gather, 0, (), [indices])
    return indices, values


def sort(x, dim=-1, descending=False):
    """(values, indices), as PyTorch's sort."""
    indices, values = argsort(x, dim, descending)
    return values, indices


def topk(x, k, dim=-1, largest=True, sorted=True):
    """(values, indices) of the k largest (or smallest) along dim (always sorted)."""
    x = to_var(x)
    d = norm_dim(-1 if dim is None else dim, x.ndim, "topk")
    if not 0 <= k <= x.shape[d]:
        raise ValueError(f"topk: k={k} is out of range for dim {d} of shape {x.shape}")
    indices, values = argsort(x, d, largest)
    sl = (slice(None),) * d + (slice(0, k),)
    return values[sl], indices[sl]


def softmax(x, dim=-1):
    x = to_float(to_var(x))
    e = (x - reduce(x, "max", dim, True)).exp()
    return e / reduce(e, "sum", dim, True)


def log_softmax(x, dim=-1):
    x = to_float(to_var(x))
    a = x - reduce(x, "max", dim, True)
    return a - reduce(a.exp(), "sum", dim, True).log()


def logsumexp(x, dim=None, keepdims=False):
    x = to_float(to_var(x))
    m = reduce(x, "max", dim, True).stop_grad()
    r = reduce((x - m).exp(), "sum", dim, True).log() + m
    return r if keepdims else squeeze(r, norm_dims(dim, x.ndim, "logsumexp") or None)


def matmul(a, b):
    """NumPy's matmul from broadcast, multiply and sum (the pattern the core
    may recognise as a matrix product): batches broadcast, 1-d operands are vectors."""
    a, b = to_var(a), to_var(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must not be scalars, got shapes {a.shape} and "
                         f"{b.shape}")
    va, vb = a.ndim == 1, b.ndim == 1
    if va:
        a = reshape(a, (1, a.shape[0]))
    if vb:
        b = reshape(b, (b.shape[0], 1))
    (n, k), (k2, m) = a.shape[-2:], b.shape[-2:]
    if k != k2:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match: "
                         f"{k} (dim -1) != {k2} (dim -2)")
    try:
        batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    except ValueError:
        raise ValueError(f"matmul: batch dims of shapes {a.shape} and {b.shape} do not "
                         "broadcast") from None
    nb = len(batch)
    a = reshape(a, (1,) * (nb + 2 - a.ndim) + a.shape)
    b = reshape(b, (1,) * (nb + 2 - b.ndim) + b.shape)
    shape = batch + (n, k, m)
    prod_ = broadcast(a, shape, [nb + 2]) * broadcast(b, shape, [nb])
    r = reduce(prod_, "sum", nb + 1)
    if r._dtype_code != prod_._dtype_code:      # integer sums widen; matmul keeps the type
        r = cast(r, prod_.dtype)
    if va and vb:
        return reshape(r, batch)
    if va:
        return reshape(r, batch + (m,))
    if vb:
        return reshape(r, batch + (n,))
    return r


def bmm(a, b):
    a, b = to_var(a), to_var(b)
    if a.ndim != 3 or b.ndim != 3:
        raise ValueError(f"bmm: expected two 3-d vars, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)
