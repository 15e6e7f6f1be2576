"""kiln's dtype objects: they compare equal to their names ('float32') and to
NumPy dtypes, and calling one converts data (``jt.float32(x)``), as in Jittor."""
import numpy as np

from . import _C

__all__ = ["dtype", "as_dtype", "DTYPES"]

_ALIASES = {
    "float": "float32", "half": "float16", "double": "float64", "int": "int32",
    "long": "int64", "bool_": "bool", "uint": "uint8", "byte": "uint8", "bf16": "bfloat16",
}


class dtype:
    """One of kiln's nine element types."""

    __slots__ = ("name", "code", "itemsize", "is_float", "is_int", "is_bool", "np")

    def __init__(self, name, code):
        self.name = name
        self.code = code
        if name == "bfloat16":
            # NumPy has no bfloat16: its values travel as float32 (numpy(),
            # np.asarray), which holds each of them exactly
            self.np = np.dtype("float32")
            self.itemsize = 2
            self.is_float = True
        else:
            self.np = np.dtype(name)
            self.itemsize = self.np.itemsize
            self.is_float = self.np.kind == "f"
        self.is_bool = name == "bool"
        self.is_int = self.np.kind in "iu" and not self.is_float

    def __eq__(self, other):
        if isinstance(other, dtype):
            return self is other
        try:
            return as_dtype(other) is self
        except (TypeError, ValueError):
            return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return self.name

    __str__ = __repr__

    def __reduce__(self):
        return (as_dtype, (self.name,))

    def __call__(self, x):
        """``jt.float32(x)``: x (data or Var) as a Var of this dtype."""
        from ._core import array
        return array(x, dtype=self)


DTYPES = [dtype(n, i) for i, n in enumerate(_C.names("dtype"))]
_BY_NAME = {d.name: d for d in DTYPES}
_BY_NAME.update({a: _BY_NAME[n] for a, n in _ALIASES.items()})
_PY_TYPES = {float: "float32", int: "int32", bool: "bool"}


def as_dtype(d):
    """A kiln dtype from a dtype, a name, a NumPy dtype or a Python type."""
    if isinstance(d, dtype):
        return d
    if isinstance(d, str):
        r = _BY_NAME.get(d)
        if r is None:
            raise TypeError(f"unknown dtype '{d}' (expected one of "
                            f"{', '.join(x.name for x in DTYPES)})")
        return r
    if d in _PY_TYPES:
        return _BY_NAME[_PY_TYPES[d]]
    try:
        nd = np.dtype(d)
    except TypeError:
        raise TypeError(f"cannot interpret {d!r} as a dtype") from None
    r = _BY_NAME.get(nd.name)
    if r is None:
        raise TypeError(f"dtype {nd.name} is not supported by kiln")
    return r
