"""Element-wise ops as functions (jt.exp, jt.maximum, ...) and Var's number
protocol; integer powers lower to multiplications."""
import numbers

from . import _C
from ._core import Var, binary, binary_op, cast, is_scalar, operands, out, rebind, to_float, to_var, unary
from ._amp import white_dtype
from ._dtype import as_dtype

_UNARY_TRAITS = _C.op_traits("unary")          # include/kiln_ops.def
_FLOAT_UNARY = {n for n, t in _UNARY_TRAITS.items() if "float_math" in t}
_INT_IDENTITY = {n for n, t in _UNARY_TRAITS.items() if "int_identity" in t}


def _make_unary(name):
    float_only = name in _FLOAT_UNARY

    def op(x):
        x = to_var(x)
        if name in _INT_IDENTITY and not x.dtype.is_float:
            return x
        if name == "bitwise_not" and x.dtype.is_bool:
            return unary(x, "logical_not")
        if x.dtype.itemsize == 2 and x.dtype.is_float and white_dtype(x.dtype, name):
            x = astype(x, white_dtype(x.dtype, name))
        return unary(x, name, float_only)
    op.__name__ = name
    op.__doc__ = f"Element-wise {name}."
    return op


UNARY = {n: _make_unary(n) for n in _C.names("unary")}


def _make_binary(name):
    op = binary_op(name)
    op.__name__ = name
    op.__doc__ = f"Element-wise {name} (broadcasting)."
    return op


BINARY = {n: _make_binary(n) for n in _C.names("binary")}


def divide(a, b):
    """True division: integer operands give float32."""
    a, b = operands(a, b)
    return binary(to_float(a), to_float(b), "divide")


def arctan2(y, x):
    y, x = operands(y, x)
    return binary(to_float(y), to_float(x), "arctan2")


def _logical(name):
    def op(a, b):
        return binary(cast(a, "bool"), cast(b, "bool"), name)
    op.__name__ = name
    return op


def _int_power(x, n):
    """x ** n for an integer n by repeated squaring: exact, and (-1)**2 == 1."""
    if n == 0:
        return out(_C.full(x.shape, 1.0, x.dtype.code))
    if n < 0:
        return divide(1, _int_power(to_float(x), -n))
    result, base = None, x
    while n:
        if n & 1:
            result = base if result is None else result * base
        n >>= 1
        if n:
            base = base * base
    return result


def pow(x, y):
    """x ** y; integer exponents (also 2.0) become multiplications."""
    for v in (x, y):
        if isinstance(v, Var) and v.dtype.itemsize == 2 and v.dtype.is_float and white_dtype(v.dtype, "pow"):
            return pow(astype(x, "float32") if isinstance(x, Var) else x,
                       astype(y, "float32") if isinstance(y, Var) else y)
    if isinstance(x, Var) and is_scalar(y) and not isinstance(y, bool):
        if isinstance(y, numbers.Integral):
            return _int_power(x, int(y))
        y = float(y)
        if y.is_integer() and abs(y) <= 64:
            return _int_power(to_float(x), int(y))
        if y == 0.5:
            return unary(x, "sqrt", True)
        if y == -0.5:
            return unary(x, "rsqrt", True)
    return binary(x, y, "pow")


def clamp(x, min_v=None, max_v=None, *, min=None, max=None):
    """x limited to [min_v, max_v] (either may be None)."""
    lo = min_v if min_v is not None else min
    hi = max_v if max_v is not None else max
    x = to_var(x)
    if lo is not None:
        x = binary(x, lo, "maximum")
    if hi is not None:
        x = binary(x, hi, "minimum")
    return x


def _invert(x):
    return unary(x, "logical_not" if x.dtype.is_bool else "bitwise_not")


def _eq(a, b):
    return False if b is None else binary(a, b, "equal")


def _ne(a, b):
    return True if b is None else binary(a, b, "not_equal")


def _reflect(f):
    return lambda a, b: f(b, a)


def _inplace(f):
    def op(self, other):
        return rebind(self, f(self, other))
    return op


def install_number_protocol(matmul):
    """Var's operators: arithmetic, reflected, in-place, comparisons."""
    B = BINARY
    arith = {
        "add": B["add"], "sub": B["subtract"], "mul": B["multiply"], "truediv": divide,
        "floordiv": B["floor_divide"], "mod": B["mod"], "pow": pow, "matmul": matmul,
        "and": B["bitwise_and"], "or": B["bitwise_or"], "xor": B["bitwise_xor"],
        "lshift": B["left_shift"], "rshift": B["right_shift"],
    }
    for name, f in arith.items():
        setattr(Var, f"__{name}__", f)
        setattr(Var, f"__r{name}__", _reflect(f))
        setattr(Var, f"__i{name}__", _inplace(f))
    for name, op in (("lt", "less"), ("le", "less_equal"), ("gt", "greater"),
                     ("ge", "greater_equal")):
        setattr(Var, f"__{name}__", B[op])
    Var.__eq__ = _eq
    Var.__ne__ = _ne
    Var.__neg__ = UNARY["neg"]
    Var.__pos__ = lambda x: x
    Var.__abs__ = UNARY["abs"]
    Var.__invert__ = _invert


def astype(x, dtype):
    return cast(x, as_dtype(dtype))


logical_and = _logical("logical_and")
logical_or = _logical("logical_or")
logical_xor = _logical("logical_xor")
# the functions jt.divide, jt.pow, ... are the ones with Python's typing rules
BINARY.update(divide=divide, arctan2=arctan2, pow=pow, logical_and=logical_and,
              logical_or=logical_or, logical_xor=logical_xor)


def isnan(x):
    """Element-wise: x is NaN (always False for integers)."""
    x = to_var(x)
    return binary(x, x, "not_equal")


def isinf(x):
    """Element-wise: x is +inf or -inf."""
    x = to_var(x)
    if not x.dtype.is_float:
        return binary(x, x, "not_equal")   # all False
    return binary(unary(x, "abs"), float("inf"), "equal")


def isfinite(x):
    """Element-wise: x is neither NaN nor infinite."""
    x = to_var(x)
    if not x.dtype.is_float:
        return binary(x, x, "equal")       # all True
    return binary(unary(x, "abs"), float("inf"), "less")   # NaN compares False


def unary_by_name(x, op):
    """Jittor's jt.unary(x, op): the element-wise op named op ('exp', 'abs', ...)."""
    try:
        return UNARY[op](x)
    except KeyError:
        raise ValueError(f"unary: unknown op {op!r} (known: {', '.join(sorted(UNARY))})") from None


def binary_by_name(a, b, op):
    """Jittor's jt.binary(a, b, op): the element-wise op named op ('add', 'maximum', ...)."""
    fn = BINARY.get(op) or BINARY.get({"sub": "subtract", "mul": "multiply", "div": "divide"}.get(op, ""))
    if fn is None:
        raise ValueError(f"binary: unknown op {op!r} (known: {', '.join(sorted(BINARY))})")
    return fn(a, b)


__all__ = ["UNARY", "BINARY", "divide", "arctan2", "pow", "clamp", "astype",
           "logical_and", "logical_or", "logical_xor", "install_number_protocol", "isnan", "isinf",
           "isfinite", "unary_by_name", "binary_by_name"]
