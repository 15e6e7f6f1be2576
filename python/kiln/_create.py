"""Creation ops: zeros/ones/full and their *_like forms, random numbers,
arange/linspace/eye, and seeding."""
import random as _pyrandom

import numpy as np

from . import _C
from ._core import Var, cast, out, to_var
from ._amp import creation_dtype
from ._dtype import as_dtype
from ._reduce import index
from ._shape import shape_arg

__all__ = [
    "zeros", "ones", "full", "zeros_like", "ones_like", "full_like", "empty", "rand", "randn",
    "randint", "random", "rand_like", "randn_like", "randint_like", "arange", "linspace",
    "eye", "seed", "set_global_seed",
]


def _dtype_of_value(value):
    if isinstance(value, (bool, np.bool_)):
        return as_dtype("bool")
    if isinstance(value, (int, np.integer)):
        return as_dtype("int32" if -2**31 <= int(value) < 2**31 else "int64")
    return as_dtype("float32")


def full(shape, val, dtype=None):
    dt = as_dtype(dtype) if dtype is not None else _dtype_of_value(val)
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    if isinstance(val, Var):
        val = val.item()
    if isinstance(val, (bool, np.bool_)):
        val = int(val)
    return out(_C.full(tuple(shape), val, dt.code))


def _shape_and_dtype(args, dtype):
    """PyTorch's f(2, 3) and Jittor's f(shape, dtype) (jt.ones(10, 'int32')):
    a trailing positional that is not a size is the dtype."""
    if len(args) > 1 and not isinstance(args[-1], (int, np.integer, list, tuple, Var)):
        if dtype is not None:
            raise TypeError("the dtype was given twice (positionally and as dtype=)")
        args, dtype = args[:-1], args[-1]
    return shape_arg(args), "float32" if dtype is None else dtype


def zeros(*shape, dtype=None):
    shape, dtype = _shape_and_dtype(shape, dtype)
    return full(shape, 0, dtype)


def ones(*shape, dtype=None):
    shape, dtype = _shape_and_dtype(shape, dtype)
    return full(shape, 1, dtype)


empty = zeros


def full_like(x, val, dtype=None):
    x = to_var(x)
    return full(x.shape, val, dtype if dtype is not None else x.dtype)


def zeros_like(x, dtype=None):
    return full_like(x, 0, dtype)


def ones_like(x, dtype=None):
    return full_like(x, 1, dtype)


def random(shape, dtype="float32", type="uniform"):
    """Jittor's random: uniform in [0, 1) or standard normal."""
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    dt = creation_dtype(as_dtype(dtype))
    if not dt.is_float:
        raise TypeError(f"random: dtype must be a float type, got {dt}")
    a, b = (0.0, 1.0)
    return out(_C.random(tuple(int(s) for s in shape), dt.code, type, a, b))


def _random(shape, dtype, kind, a, b, requires_grad):
    dt = creation_dtype(as_dtype(dtype))
    v = out(_C.random(shape_arg(shape), dt.code, kind, a, b))
    if requires_grad:
        v.requires_grad = True
    return v


def rand(*shape, dtype="float32", requires_grad=False):
    return _random(shape, dtype, "uniform", 0.0, 1.0, requires_grad)


def randn(*shape, dtype="float32", requires_grad=False):
    return _random(shape, dtype, "normal", 0.0, 1.0, requires_grad)


def normal(mean, std, size=None, dtype="float32"):
    """Normal samples (jt.normal, torch.normal): mean and std are numbers or
    Vars (broadcast together); size gives the shape when both are numbers."""
    mean_var, std_var = isinstance(mean, Var), isinstance(std, Var)
    if size is None:
        if not (mean_var or std_var):
            raise ValueError("normal: give size, or mean or std as a Var")
        shape = np.broadcast_shapes(*(v.shape for v in (mean, std) if isinstance(v, Var)))
    else:
        shape = shape_arg((size,) if isinstance(size, (int, np.integer)) else size)
    if mean_var and mean.dtype.is_float:
        dtype = mean.dtype
    elif mean_var:
        mean = cast(mean, dtype)          # integer means: samples in dtype
    if std_var and not std.dtype.is_float:
        std = cast(std, dtype)
    z = _random(shape, dtype, "normal", 0.0, 1.0, False)
    return z * std + mean


def randint(low, high=None, shape=(1,), dtype="int32"):
    """Integers uniform in [low, high) (or [0, low) when high is None)."""
    if high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    u = out(_C.random(tuple(int(s) for s in shape), "float64", "uniform", float(low), float(high)))
    return cast((u.floor()).minimum(high - 1), dtype)


def rand_like(x, dtype=None):
    x = to_var(x)
    return rand(x.shape, dtype=dtype or x.dtype)


def randn_like(x, dtype=None):
    x = to_var(x)
    return randn(x.shape, dtype=dtype or x.dtype)


def randint_like(x, low, high=None):
    x = to_var(x)
    return randint(low, high, x.shape, x.dtype)


def arange(start=0, end=None, step=1, dtype=None):
    """start, start+step, ... below end; int32 for integer arguments, else float32."""
    if end is None:
        start, end = 0, start
    for v in (start, end, step):
        if isinstance(v, Var):
            raise TypeError("arange: start, end and step must be Python numbers")
    if step == 0:
        raise ValueError("arange: step must not be zero")
    n = max(0, int(np.ceil((end - start) / step)))
    ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    dt = as_dtype(dtype) if dtype is not None else as_dtype("int32" if ints else "float32")
    i = index((n,), 0, "int32" if ints and n < 2**31 else "float64")
    if ints and not dt.is_float:
        return cast(i * step + start, dt)
    return cast(cast(i, "float64") * float(step) + float(start), dt)


def linspace(start, end, steps, dtype="float32"):
    steps = int(steps)
    if steps == 1:
        return full((1,), start, dtype)
    i = cast(index((steps,), 0), "float64")
    delta = (float(end) - float(start)) / (steps - 1)
    return cast(i * delta + float(start), dtype)


def eye(n, m=None, dtype="float32"):
    m = n if m is None else m
    r, c = index((n, m))
    return cast(r == c, dtype)


def seed(s):
    """Seeds kiln's random numbers (and NumPy's and Python's, as Jittor does)."""
    s = int(s)
    _C.seed(s)
    np.random.seed(s % 2**32)
    _pyrandom.seed(s)


set_global_seed = seed
