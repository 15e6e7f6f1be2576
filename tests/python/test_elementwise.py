"""Element-wise ops against NumPy in float64: unary, binary with broadcasting,
where, weak typing of Python scalars, integer ops and powers."""
import math

import numpy as np
import pytest

import kiln as jt
from ktest import check, data, rng

_erf = np.vectorize(math.erf, otypes=[np.float64])

# name: (NumPy reference, (low, high) of the test data)
UNARY = {
    "neg": (np.negative, (-2, 2)),
    "abs": (np.abs, (-2, 2)),
    "exp": (np.exp, (-2, 2)),
    "log": (np.log, (0.1, 3)),
    "sqrt": (np.sqrt, (0.1, 3)),
    "rsqrt": (lambda x: 1 / np.sqrt(x), (0.1, 3)),
    "sin": (np.sin, (-3, 3)),
    "cos": (np.cos, (-3, 3)),
    "tan": (np.tan, (-1.2, 1.2)),
    "asin": (np.arcsin, (-0.9, 0.9)),
    "acos": (np.arccos, (-0.9, 0.9)),
    "atan": (np.arctan, (-3, 3)),
    "sinh": (np.sinh, (-2, 2)),
    "cosh": (np.cosh, (-2, 2)),
    "tanh": (np.tanh, (-2, 2)),
    "asinh": (np.arcsinh, (-2, 2)),
    "acosh": (np.arccosh, (1.1, 3)),
    "atanh": (np.arctanh, (-0.9, 0.9)),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), (-4, 4)),
    "erf": (_erf, (-2, 2)),
    "log2": (np.log2, (0.1, 3)),
    "exp2": (np.exp2, (-2, 2)),
    "log1p": (np.log1p, (-0.9, 3)),
    "expm1": (np.expm1, (-2, 2)),
    "floor": (np.floor, (-3, 3)),
    "ceil": (np.ceil, (-3, 3)),
    "round": (np.round, (-3, 3)),
    "trunc": (np.trunc, (-3, 3)),
    "sign": (np.sign, (-2, 2)),
}

SHAPES = [(), (5,), (3, 4), (2, 3, 4), (0, 3), (2, 1, 3, 1, 2)]


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_float64(name):
    ref, (lo, hi) = UNARY[name]
    r = rng(hash(name) % 1000)
    for shape in SHAPES:
        a = data(r, shape, lo, hi)
        for f in (getattr(jt, name), lambda v: getattr(v, name)()):
            check(f(jt.array(a)), ref(a), rtol=1e-12, atol=1e-12, dtype="float64")


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "sin", "tanh", "sigmoid", "abs", "neg"])
def test_unary_float32(name):
    ref, (lo, hi) = UNARY[name]
    a = data(rng(3), (4, 5), lo, hi, "float32")
    check(getattr(jt, name)(jt.array(a)), ref(a.astype(np.float64)), rtol=1e-5, atol=1e-6,
          dtype="float32")


def test_float32_exp_over_the_whole_range():
    """float32 exp in a kernel (the CPU's own kl_expf, not libm's) against
    float64 from far below the denormals to past overflow: within 3e-7 where
    the result is normal, within two of the smallest denormals below that,
    inf above, NaN kept; exp(0) is exactly 1. sigmoid uses it too."""
    x = np.concatenate([np.linspace(-110, 95, 400001), [0, 1, -1, 88.72, 88.73, -87.33, -103.2, -104.5,
                                                        np.inf, -np.inf, np.nan]]).astype(np.float32)
    got = jt.array(x).exp().numpy().astype(np.float64)
    with np.errstate(over="ignore"):
        want = np.exp(x.astype(np.float64))
    normal = (want >= np.finfo(np.float32).tiny) & (want <= np.finfo(np.float32).max)
    assert np.max(np.abs(got[normal] - want[normal]) / want[normal]) < 3e-7
    small = want < np.finfo(np.float32).tiny
    assert np.max(np.abs(got[small] - want[small])) <= 2 * 1.4013e-45
    assert np.all(np.isinf(got[want > 3.41e38])) and np.isnan(got[-1]) and got[x == 0][0] == 1.0
    s = jt.array(x[:-3]).sigmoid().numpy().astype(np.float64)
    with np.errstate(over="ignore"):
        ref = 1 / (1 + np.exp(-x[:-3].astype(np.float64)))
    np.testing.assert_allclose(s, ref, rtol=5e-7, atol=1e-38)


def test_unary_aliases_and_integers():
    a = np.array([-2, 0, 3], np.int32)
    check(jt.exp(jt.array(a)), np.exp(a), rtol=1e-6, dtype="float32")
    check(jt.floor(jt.array(a)), a, dtype="int32")
    check(jt.abs(jt.array(a)), np.abs(a), dtype="int32")
    check(-jt.array(a), -a, dtype="int32")
    check(jt.arcsin(jt.array([0.5])), np.arcsin([0.5]), rtol=1e-6)
    check(jt.logical_not(jt.array([True, False])), [False, True], dtype="bool")
    check(jt.bitwise_not(jt.array(a)), ~a, dtype="int32")
    check(~jt.array([True, False]), [False, True], dtype="bool")


BINARY = {
    "add": (np.add, (-2, 2)),
    "subtract": (np.subtract, (-2, 2)),
    "multiply": (np.multiply, (-2, 2)),
    "divide": (np.divide, (0.5, 2)),
    "floor_divide": (np.floor_divide, (-5, 5)),
    "mod": (np.mod, (-5, 5)),
    "pow": (np.power, (0.5, 2)),
    "maximum": (np.maximum, (-2, 2)),
    "minimum": (np.minimum, (-2, 2)),
    "arctan2": (np.arctan2, (-2, 2)),
    "less": (np.less, (-2, 2)),
    "less_equal": (np.less_equal, (-2, 2)),
    "greater": (np.greater, (-2, 2)),
    "greater_equal": (np.greater_equal, (-2, 2)),
    "equal": (np.equal, (-2, 2)),
    "not_equal": (np.not_equal, (-2, 2)),
}

PAIRS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((0, 3), (1, 3)),
         ((5,), ()), ((1,), (0,))]


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_float64_broadcasting(name):
    ref, (lo, hi) = BINARY[name]
    r = rng(len(name))
    for sa, sb in PAIRS:
        a, b = data(r, sa, lo, hi), data(r, sb, lo, hi)
        expected = ref(a, b)
        got = getattr(jt, name)(jt.array(a), jt.array(b))
        check(got, expected, rtol=1e-12, atol=1e-12,
              dtype="bool" if expected.dtype == np.bool_ else "float64")


def test_comparisons_with_ties():
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, 3.0, 2.0])
    x, y = jt.array(a), jt.array(b)
    check(x == y, a == b)
    check(x != y, a != b)
    check(x <= y, a <= b)
    check(x >= y, a >= b)
    check(x < y, a < b)
    check(x > y, a > b)
    check(x == 2, a == 2)
    check(2 < x, 2 < a)


def test_operators_and_reflected():
    a, b = data(rng(1), (3, 4), 0.5, 2), data(rng(2), (4,), 0.5, 2)
    x, y = jt.array(a), jt.array(b)
    check(x + y, a + b)
    check(x - y, a - b)
    check(x * y, a * b)
    check(x / y, a / b)
    check(x // y, a // b)
    check(x % y, a % b)
    check(x ** y, a ** b)
    check(2 + x, 2 + a)
    check(2 - x, 2 - a)
    check(3 * x, 3 * a)
    check(1 / x, 1 / a)
    check(7 // x, 7 // a)
    check(5 % x, 5 % a)
    check(2 ** x, 2 ** a)
    check(a + y, a + b)           # NumPy array on the left defers to the Var
    check(np.float64(2) * y, 2 * b)
    check(-x, -a)
    check(abs(x - 1), abs(a - 1))
    check(+x, a)


def test_inplace_rebinds():
    a = data(rng(4), (2, 3), 0.5, 2)
    x = jt.array(a)
    alias = x
    x += 1
    assert x is alias
    x -= 0.5
    x *= 2
    x /= 4
    x **= 2
    check(x, (((a + 1) - 0.5) * 2 / 4) ** 2)
    i = jt.array([5, 7])
    i //= 2
    i %= 2
    check(i, [0, 1])


def test_integer_ops():
    a = np.array([-7, -1, 0, 5, 9], np.int32)
    b = np.array([2, 3, -4, 3, 5], np.int32)
    x, y = jt.array(a), jt.array(b)
    check(x + y, a + b, dtype="int32")
    check(x * y, a * b, dtype="int32")
    check(x // y, a // b, dtype="int32")
    check(x % y, a % b, dtype="int32")
    check(x / y, a / b, rtol=1e-6, dtype="float32")      # true division gives float
    check(jt.divide(x, y), a / b, rtol=1e-6, dtype="float32")
    check(x.divide(2), a / 2, rtol=1e-6, dtype="float32")
    check(jt.maximum(x, y), np.maximum(a, b))
    check(x & y, a & b)
    check(x | y, a | b)
    check(x ^ y, a ^ b)
    s = jt.array(np.array([1, 2, 3], np.int32))
    check(s << 2, np.array([4, 8, 12]))
    check(s >> 1, np.array([0, 1, 1]))
    t, f = jt.array([True, True, False]), jt.array([True, False, False])
    check(t & f, [True, False, False], dtype="bool")
    check(t | f, [True, True, False], dtype="bool")
    check(t ^ f, [False, True, False], dtype="bool")
    check(jt.logical_and(x, y), np.logical_and(a, b), dtype="bool")
    check(jt.logical_or(x, 0), np.logical_or(a, 0), dtype="bool")
    check(jt.logical_xor(x > 0, y > 0), np.logical_xor(a > 0, b > 0))


def test_promotion():
    f32, f64 = jt.array([1.0], "float32"), jt.array([1.0], "float64")
    i8, i16, i32, u8 = (jt.array([1], d) for d in ("int8", "int16", "int32", "uint8"))
    b = jt.array([True])
    assert (f32 + f64).dtype == "float64"
    assert (i32 + f32).dtype == "float64"          # NumPy: int32 with float32 needs float64
    assert (i8 + i16).dtype == "int16"
    assert (u8 + i8).dtype == "int16"
    assert (b + i8).dtype == "int8"
    assert (jt.array([1], "float16") + i8).dtype == "float16"


def test_weak_scalars():
    i = jt.array([1, 2])
    f = jt.array([1.0, 2.0])
    h = jt.array([1.0], "float16")
    d = jt.array([1.0], "float64")
    b = jt.array([True, False])
    assert (i + 1.5).dtype == "float32"
    check(i + 1.5, [2.5, 3.5])
    assert (i + 1).dtype == "int32"
    assert (f * 2).dtype == "float32"
    assert (f * 2.5).dtype == "float32"
    assert (h * 2.5).dtype == "float16"
    assert (d + 1).dtype == "float64"
    assert (b + 1).dtype == "int32"
    assert (b * 1.5).dtype == "float32"
    assert (i + True).dtype == "int32"
    assert (jt.array([1], "int8") + 3).dtype == "int8"
    assert (1.5 - i).dtype == "float32"
    assert (i > 0.5).dtype == "bool"


def test_powers_lower_to_multiplication():
    a = np.array([-1.0, -2.0, 0.5, 3.0])
    x = jt.array(a)
    for n in (0, 1, 2, 3, 5, 8, -1, -2):
        check(x ** n, a ** float(n), rtol=1e-12)
    check(x ** 2.0, a ** 2)
    assert (x ** 2)._op == "multiply"
    check(jt.array([-1.0], "float32") ** 2, [1.0])      # exact, never nan
    check(jt.array([4.0]) ** 0.5, [2.0])
    check(jt.array([4.0]) ** -0.5, [0.5])
    i = jt.array([2, -3])
    check(i ** 3, [8, -27], dtype="int32")
    check(i ** 0, [1, 1], dtype="int32")
    check(jt.pow(jt.array([2.0]), jt.array([3.0])), [8.0])
    check(jt.array([2.0, 4.0]) ** 1.5, np.array([2.0, 4.0]) ** 1.5, rtol=1e-6)


def test_where_and_clamp():
    r = rng(7)
    a, b = data(r, (3, 4)), data(r, (4,))
    c = a > 0
    check(jt.where(jt.array(c), jt.array(a), jt.array(b)), np.where(c, a, b))
    check(jt.where(jt.array(a) > 0, jt.array(a), 0.0), np.where(c, a, 0.0))
    check(jt.where(jt.array([1, 0, 2]), 1, -1), [1, -1, 1])
    check(jt.clamp(jt.array(a), -0.5, 0.5), np.clip(a, -0.5, 0.5))
    check(jt.array(a).clamp(min_v=0), np.clip(a, 0, None))
    check(jt.array(a).clamp(max=0.1), np.clip(a, None, 0.1))


def test_float16_and_mixed_precision():
    a = data(rng(8), (16,), -2, 2, "float16")
    x = jt.array(a)
    check(x * 2 + 1, (a * np.float16(2) + np.float16(1)), rtol=1e-3, dtype="float16")
    # Jittor's rule: exp of a half var is stored in float32 (tests/python/test_half.py)
    check(jt.exp(x), np.exp(a.astype(np.float32)), rtol=1e-6, dtype="float32")
    with jt.flag_scope(amp_level=3):
        check(jt.exp(x), np.exp(a.astype(np.float32)), rtol=2e-3, dtype="float16")


# ---- Python integers keep their digits (issue: ints became doubles) ----

def test_python_ints_keep_every_digit():
    big = 2**53 + 1                       # not a double
    x = jt.array(np.array([0, 1], dtype="int64"))
    np.testing.assert_array_equal((x + big).numpy(), np.array([big, big + 1], dtype="int64"))
    np.testing.assert_array_equal(jt.full((2,), 2**63 - 1, "int64").numpy(), [2**63 - 1] * 2)
    np.testing.assert_array_equal(jt.full((1,), -2**63, "int64").numpy(), [-2**63])
    assert jt.full((1,), 2**40).dtype == "int64"          # too big for the int32 default
    assert (jt.array([True]) + 2**40).dtype == "int64"
    np.testing.assert_array_equal((x * 3).numpy(), [0, 3])


@pytest.mark.parametrize("dtype,value", [("int32", 2**40), ("int32", -2**31 - 1), ("uint8", 256),
                                         ("uint8", -1), ("int8", 128), ("int16", 2**15),
                                         ("int64", 2**63)])
def test_python_ints_out_of_a_dtypes_range_raise(dtype, value):
    x = jt.array(np.array([1], dtype=dtype))
    with pytest.raises(OverflowError, match=str(value)):
        (x + value).numpy()
    with pytest.raises(OverflowError):
        jt.full((1,), value, dtype)


def test_values_a_dtype_cannot_hold_are_refused():
    with pytest.raises(OverflowError, match="does not fit int64"):
        jt.array(np.array([2**63], dtype=np.uint64))
    np.testing.assert_array_equal(jt.array(np.array([2**63 - 1], dtype=np.uint64)).numpy(),
                                  [2**63 - 1])
    with pytest.raises(ValueError, match="NaN"):
        jt.full((1,), float("nan"), "int32")
    with pytest.raises(OverflowError):
        jt.full((1,), 1e30, "int64")
    # floats still take any Python int, rounded
    assert jt.full((1,), 2**100, "float64").item() == float(2**100)
