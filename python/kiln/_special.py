"""Functions Jittor has beyond the meta-ops' element-wise set: erfinv,
safe_clip, the *_int roundings, reindex by index vars (reindex_var),
finfo/iinfo and fetch."""
import math

import numpy as np

from ._core import Var, to_var, where
from ._dtype import as_dtype
from ._function import Function
from ._ops import BINARY, UNARY, astype, clamp
from ._shape import reindex

__all__ = ["erfinv", "safe_clip", "floor_int", "ceil_int", "round_int", "reindex_var",
           "finfo", "iinfo", "fetch"]


def _float(x):
    x = to_var(x)
    return x if x.dtype.is_float else astype(x, "float32")


def _erfinv_value(x):
    """erfinv by Giles' approximation ("Approximating the erfinv function",
    2010; about 1e-7 relative) refined by two Newton steps on erf(y) = x,
    which bring it to the dtype's precision. |x| = 1 gives +-inf, |x| > 1 NaN."""
    w = -UNARY["log"]((1 - x) * (1 + x))
    near = w - 2.5
    p = 2.81022636e-08
    for c in (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
              -0.00417768164, 0.246640727, 1.50140941):
        p = c + p * near
    tail = UNARY["sqrt"](clamp(w, 5.0)) - 3.0
    q = -0.000200214257
    for c in (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
              0.00943887047, 1.00167406, 2.83297682):
        q = c + q * tail
    y = where(w < 5.0, p, q) * x
    slope = 2.0 / math.sqrt(math.pi)
    for _ in range(2):
        y = y - (UNARY["erf"](y) - x) / (slope * UNARY["exp"](-y * y))
    edge = UNARY["abs"](x) == 1.0
    return where(edge, x * math.inf, y)


class _Erfinv(Function):
    def execute(self, x):
        self.y = _erfinv_value(x)
        return self.y

    def grad(self, dout):
        # d erfinv(x)/dx = sqrt(pi)/2 * exp(erfinv(x)^2)
        return dout * (math.sqrt(math.pi) / 2) * UNARY["exp"](self.y * self.y)


def erfinv(x):
    """The inverse error function, element-wise (float32 for integer input)."""
    return _Erfinv.apply(_float(x))


class _PassThrough(Function):
    """A clip whose gradient is the identity (a straight-through estimator)."""

    def execute(self, x, lo, hi):
        return clamp(x, lo, hi)

    def grad(self, dout):
        return dout, None, None


def safe_clip(x, left=None, right=None):
    """x clipped to [left, right] (by default the dtype's finite range, so
    infinities become its largest values), with the gradient of the
    identity: gradients pass the clip unchanged (Jittor's safe_clip)."""
    x = to_var(x)
    if x.dtype.is_float:
        info = finfo(x.dtype)
        left = float(info.min) if left is None else left
        right = float(info.max) if right is None else right
    return _PassThrough.apply(x, left, right)


def floor_int(x):
    """floor(x) as int32 (Jittor)."""
    return astype(UNARY["floor"](to_var(x)), "int32")


def ceil_int(x):
    """ceil(x) as int32 (Jittor)."""
    return astype(UNARY["ceil"](to_var(x)), "int32")


def round_int(x):
    """round(x) (halves away from zero) as int32 (Jittor)."""
    return astype(UNARY["round"](to_var(x)), "int32")


def reindex_var(x, indexes, overflow_value=0, overflow_conditions=()):
    """out[i...] = x[indexes[0][i...], indexes[1][i...], ...]: one integer
    Var per dim of x (floats are truncated), all of the output's shape (Jittor's reindex_var, e.g.
    x.reindex_var(jt.where(mask)) gathers the selected elements). Positions
    out of x's bounds give overflow_value."""
    x = to_var(x)
    idx = [to_var(i) for i in indexes]
    if len(idx) != x.ndim:
        raise ValueError(f"reindex_var: {len(idx)} index vars for a var of {x.ndim} dims "
                         f"(shape {x.shape}); one per dim is needed")
    shape = idx[0].shape
    for k, i in enumerate(idx):
        if i.shape != shape:
            raise ValueError(f"reindex_var: index var {k} has shape {i.shape}, index var 0 {shape}; "
                             "they must agree (it is the output's shape)")
        if not (i.dtype.is_int or i.dtype.is_bool or i.dtype.is_float):
            raise TypeError(f"reindex_var: index var {k} must be a number var, got {i.dtype}")
    # float positions are truncated, as Jittor's C++ index conversion does
    idx = [i.astype("int64") if i.dtype.is_float else i for i in idx]
    loop = ",".join(f"i{d}" for d in range(len(shape)))
    exprs = [f"@e{k}({loop})" for k in range(len(idx))]
    return reindex(x, shape, exprs, overflow_value, overflow_conditions, idx)


class finfo:
    """Machine limits of a float dtype (NumPy's finfo fields: bits, eps, max,
    min, tiny, resolution, ...)."""

    def __init__(self, dtype):
        d = as_dtype(dtype)
        if not d.is_float:
            raise TypeError(f"finfo: {d} is not a float dtype (use iinfo)")
        if d.name == "bfloat16":
            self._bfloat16()
            return
        info = np.finfo(d.np)
        for name in ("bits", "eps", "max", "min", "tiny", "resolution", "nexp", "nmant", "iexp",
                     "precision", "machep", "negep", "minexp", "maxexp", "epsneg", "smallest_normal"):
            setattr(self, name, getattr(info, name))
        self.dtype = d

    def _bfloat16(self):
        """float32's exponent with 7 stored mantissa bits (NumPy lacks the type)."""
        self.bits, self.nexp, self.iexp, self.nmant = 16, 8, 8, 7
        self.eps = 2.0 ** -7
        self.epsneg = 2.0 ** -8
        self.machep, self.negep, self.minexp, self.maxexp = -7, -8, -126, 128
        self.max = float((2 - 2.0 ** -7) * 2.0 ** 127)
        self.min = -self.max
        self.tiny = self.smallest_normal = 2.0 ** -126
        self.precision, self.resolution = 2, 0.01

    def __repr__(self):
        return f"finfo(dtype={self.dtype}, eps={self.eps}, min={self.min}, max={self.max})"


class iinfo:
    """Limits of an integer dtype: bits, min, max."""

    def __init__(self, dtype):
        d = as_dtype(dtype)
        if not (d.is_int or d.is_bool):
            raise TypeError(f"iinfo: {d} is not an integer dtype (use finfo)")
        info = np.iinfo(d.np) if d.is_int else np.iinfo(np.uint8)
        self.bits, self.min, self.max = (1, 0, 1) if d.is_bool else (info.bits, int(info.min), int(info.max))
        self.dtype = d

    def __repr__(self):
        return f"iinfo(dtype={self.dtype}, min={self.min}, max={self.max})"


def fetch(*args):
    """fetch(a, b, ..., func): calls func with the arguments, Vars as NumPy
    arrays (Jittor calls it once they are computed; kiln computes them now)."""
    if not args or not callable(args[-1]):
        raise TypeError("fetch: the last argument must be the function to call")
    *values, func = args
    vars_ = [v for v in values if isinstance(v, Var)]
    if vars_:
        from ._flags import sync
        sync(vars_)
    func(*[v.numpy() if isinstance(v, Var) else v for v in values])
