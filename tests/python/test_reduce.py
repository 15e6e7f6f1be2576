"""Reductions and what is composed from them, against NumPy: sum/mean/max/...,
argmax, var/std, cumsum, argsort/topk, softmax, matmul."""
import numpy as np
import pytest

import kiln as jt
from ktest import check, data, rng

REDUCERS = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod}
DIMS = [None, 0, -1, (0, 2), (-1, 1), (0, 1, 2), ()]


@pytest.mark.parametrize("name", sorted(REDUCERS))
def test_reduce_dims_keepdims(name):
    ref = REDUCERS[name]
    a = data(rng(len(name)), (2, 3, 4), 0.5, 1.5)
    x = jt.array(a)
    for dims in DIMS:
        np_axis = None if dims in (None, ()) else dims
        for keep in (False, True):
            expected = ref(a, axis=np_axis, keepdims=keep)
            check(getattr(x, name)(dims, keepdims=keep), expected, rtol=1e-12)
            check(getattr(jt, name)(x, dims=dims, keepdims=keep), expected, rtol=1e-12)
    check(getattr(x, name)(dim=1, keepdim=True), ref(a, axis=1, keepdims=True), rtol=1e-12)


def test_reduce_rank0_and_empty():
    s = jt.array(2.5)
    check(s.sum(), 2.5)
    check(s.max(), 2.5)
    e = jt.array(np.zeros((0, 3)))
    check(e.sum(), 0.0)
    check(e.sum(0), np.zeros(3))
    check(e.prod(0), np.ones(3))
    check(e.sum(1), np.zeros(0))
    assert np.isnan(e.mean().item())
    with pytest.raises(ValueError):
        e.max(0)
    check(jt.array(np.zeros((2, 0))).max(0), np.zeros(0))


def test_reduce_dtypes():
    b = jt.array([[True, False], [True, True]])
    check(b.sum(), 3, dtype="int64")          # NumPy's integer sums
    check(b.prod(), 0, dtype="int64")
    check(b.any(1), [True, True])
    check(b.all(1), [False, True])
    check(jt.all(b), False)
    check(jt.any(jt.array([0, 0, 2])), True)
    i = jt.array(np.array([[1, 5], [7, -2]], np.int32))
    check(i.sum(0), [8, 3], dtype="int64")
    check(i.max(), 7, dtype="int32")
    check(i.mean(), 2.75, dtype="float32")
    check(jt.array([1.0, 2.0], "float32").sum(), 3.0, dtype="float32")


def test_argmax_argmin():
    a = data(rng(3), (3, 5))
    x = jt.array(a)
    for dim in (0, 1, -1):
        idx, val = x.argmax(dim)
        check(idx, a.argmax(dim), dtype="int32")
        check(val, a.max(dim))
        idx, val = jt.argmin(x, dim, keepdims=True)
        check(idx, np.expand_dims(a.argmin(dim), dim))
        check(val, a.min(dim, keepdims=True))
    ties = jt.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    check(ties.argmax(1)[0], [1, 0])                     # the first maximum, as NumPy
    check(x.argmax()[0], a.argmax())


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int32", "int8", "uint8", "bool"])
def test_arg_reduce_op_every_dtype(dtype):
    """The argmax / argmin reduce ops against NumPy: rows, columns (a kept
    innermost dim), small windows, long rows (every variant of the kernel),
    ties resolved to the first."""
    r = rng(11)
    for shape, dim in (((6, 9), 1), ((6, 9), 0), ((40, 3, 2), 1), ((3, 5000), 1), ((70000, 2), 0)):
        a = r.integers(0, 4, shape).astype(dtype)     # few values: many ties
        x = jt.array(a)
        check(jt.reduce(x, "argmax", dim), a.argmax(dim), dtype="int32")
        check(jt.reduce(x, "argmin", dim, keepdims=True), np.expand_dims(a.argmin(dim), dim), dtype="int32")


def test_arg_reduce_over_several_dims_gives_the_row_major_position():
    a = data(rng(12), (3, 4, 5, 2))
    x = jt.array(a)
    got = jt.reduce(x, "argmax", (1, 3))             # position over (4, 2), row-major
    want = a.transpose(0, 2, 1, 3).reshape(3, 5, 8).argmax(-1)
    check(got, want, dtype="int32")
    check(jt.reduce(x, "argmin", (0, 1, 2, 3)), a.argmin())


def test_arg_reduce_nan_and_extremes():
    nan, inf = np.nan, np.inf
    a = np.array([[1, nan, 3, nan], [-inf, -inf, -inf, -inf], [inf, 2, inf, 1], [0, -0.0, 0, 5]], np.float32)
    x = jt.array(a)
    check(x.argmax(1)[0], np.argmax(a, 1))              # the first NaN counts as the maximum
    check(x.argmin(1)[0], np.argmin(a, 1))              # and as the minimum
    check(jt.reduce(jt.array(a.astype(np.float64)), "argmax", 1), np.argmax(a, 1))
    long = np.zeros(50000, np.float32)                   # few long rows: jt.argmax's other form
    long[[7, 30000]] = 2.0
    long[[9, 40000]] = np.nan if a.size else 0
    check(jt.argmax(jt.array(long))[0], np.argmax(long))
    long[[9, 40000]] = -3.0
    check(jt.array(long).argmin()[0], np.argmin(long))
    check(jt.array(long).argmax()[0], np.argmax(long))
    with pytest.raises(ValueError, match="zero-size"):
        jt.reduce(jt.zeros((3, 0)), "argmax", 1)
    with pytest.raises(ValueError):
        jt.reindex_reduce(jt.zeros(3), "argmax", (3,), ["i0"])


def test_var_std_norm():
    a = data(rng(4), (3, 4))
    x = jt.array(a)
    check(x.var(unbiased=False), a.var(), rtol=1e-12)
    check(x.var(1, unbiased=False), a.var(1), rtol=1e-12)
    check(x.var(0, keepdims=True, unbiased=True), a.var(0, keepdims=True, ddof=1), rtol=1e-12)
    check(jt.std(x, 1, unbiased=False), a.std(1), rtol=1e-12)
    check(x.std(unbiased=True), a.std(ddof=1), rtol=1e-12)
    check(x.norm(), np.linalg.norm(a, axis=-1), rtol=1e-12)
    check(x.norm(1, 0), np.abs(a).sum(0), rtol=1e-12)


def test_cumsum_cumprod():
    a = data(rng(5), (3, 6), 0.5, 1.5)
    x = jt.array(a)
    for dim in (0, 1, -1):
        check(x.cumsum(dim), np.cumsum(a, dim), rtol=1e-12)
        check(jt.cumprod(x, dim), np.cumprod(a, dim), rtol=1e-12)
    check(jt.cumsum(jt.array([True, True, False])), [1, 2, 2])
    check(jt.cumsum(jt.array(np.zeros((0,)))), np.zeros(0))


def test_argsort_sort_topk():
    r = rng(6)
    a = data(r, (4, 7))
    x = jt.array(a)
    for dim in (0, 1, -1):
        idx, val = jt.argsort(x, dim)
        check(idx, np.argsort(a, dim, kind="stable"), dtype="int32")
        check(val, np.sort(a, dim))
        idx, val = x.argsort(dim, descending=True)
        check(idx, np.argsort(-a, dim, kind="stable"))
        check(val, -np.sort(-a, dim))
    ties = jt.array([3, 1, 2, 1, 3])
    check(jt.argsort(ties)[0], np.argsort([3, 1, 2, 1, 3], kind="stable"))
    check(jt.argsort(ties, descending=True)[0], [0, 4, 2, 1, 3])
    v, i = jt.sort(x, 1)
    check(v, np.sort(a, 1))
    v, i = jt.topk(x, 3)
    check(v, -np.sort(-a, 1)[:, :3])
    check(i, np.argsort(-a, 1, kind="stable")[:, :3])
    check(jt.topk(x, 1, dim=None)[0], a.max(1, keepdims=True))
    v, i = x.topk(2, dim=0, largest=False)
    check(v, np.sort(a, 0)[:2])
    with pytest.raises(ValueError):
        jt.topk(x, 8)


def test_softmax_family():
    a = data(rng(7), (3, 5), -30, 30)
    x = jt.array(a)
    e = np.exp(a - a.max(-1, keepdims=True))
    ref = e / e.sum(-1, keepdims=True)
    check(jt.softmax(x), ref, rtol=1e-12)
    check(jt.nn.softmax(x, dim=0), np.exp(a - a.max(0)) / np.exp(a - a.max(0)).sum(0),
          rtol=1e-12)
    check(jt.nn.log_softmax(x, 1), np.log(ref), rtol=1e-12, atol=1e-12)
    big = jt.array([1000.0, 1000.0], "float32")           # stable where exp overflows
    check(jt.softmax(big), [0.5, 0.5])
    check(jt.logsumexp(x, 1), np.log(np.exp(a).sum(1)), rtol=1e-12)


@pytest.mark.parametrize("scale", [1, 10, 100])
def test_softmax_kernel_against_float64(scale):
    """float32 softmax / log-softmax run as kiln's own kernel (its own
    exponential for arguments <= 0): within float32's rounding of x - max
    and a few more of the float64 result, on rows and on a middle dim, with terms down to exp's
    underflow (exactly 0 below ~1e-38, as the float64 result rounds)."""
    a = (rng(21).standard_normal((33, 517)) * scale).astype(np.float32)
    a64 = a.astype(np.float64)
    for dim, x, x64 in ((1, a, a64), (0, a, a64)):
        e = np.exp(x64 - x64.max(dim, keepdims=True))
        ref = e / e.sum(dim, keepdims=True)
        got = jt.nn.softmax(jt.array(x), dim).numpy().astype(np.float64)
        normal = ref > 1e-37
        # float32's x - max is off by up to |x - max| * 2^-24: exp's relative error follows
        bound = 5e-7 + 1.2e-7 * np.abs(x64 - x64.max(dim, keepdims=True))
        assert np.all(np.abs(got - ref)[normal] / ref[normal] <= bound[normal])
        assert np.max(np.abs(got - ref)[~normal], initial=0) < 1e-37
        lg = jt.nn.log_softmax(jt.array(x), dim).numpy().astype(np.float64)
        want = (x64 - x64.max(dim, keepdims=True)) - np.log(e.sum(dim, keepdims=True))
        np.testing.assert_allclose(lg, want, rtol=2e-6, atol=1e-5)
    special = np.array([[0, -np.inf, 1, 2], [np.nan, 0, 1, 2], [np.inf, 0, 1, 2], [-88, -87, 0, -200]], np.float32)
    got = jt.nn.softmax(jt.array(special), 1).numpy()
    with np.errstate(invalid="ignore"):                                 # inf - inf
        e = np.exp(special.astype(np.float64) - special.astype(np.float64).max(1, keepdims=True))
        want = e / e.sum(1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-37)       # -inf gives 0, NaN and inf rows NaN


MATMUL = [((3, 4), (4, 5)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
          ((2, 1, 3, 4), (5, 4, 2)), ((3, 4), (2, 4, 1)), ((0, 4), (4, 3)), ((3, 0), (0, 2))]


@pytest.mark.parametrize("sa,sb", MATMUL, ids=repr)
def test_matmul(sa, sb):
    r = rng(8)
    a, b = data(r, sa), data(r, sb)
    check(jt.matmul(jt.array(a), jt.array(b)), np.matmul(a, b), rtol=1e-12, atol=1e-12)
    check(jt.array(a) @ jt.array(b), a @ b, rtol=1e-12, atol=1e-12)


def test_matmul_errors_and_bmm():
    r = rng(9)
    a, b = data(r, (2, 3, 4)), data(r, (2, 4, 5))
    check(jt.bmm(jt.array(a), jt.array(b)), a @ b, rtol=1e-12)
    check(jt.array(a.astype(np.float32)) @ jt.array(b), a.astype(np.float32) @ b, rtol=1e-6)
    ia, ib = (a * 3).astype(np.int32), (b * 3).astype(np.int32)
    check(jt.array(ia) @ jt.array(ib), ia @ ib, dtype="int32")
    with pytest.raises(ValueError, match="matmul"):
        jt.matmul(jt.array(a), jt.array(a))
    with pytest.raises(ValueError):
        jt.matmul(jt.array(2.0), jt.array(b))
    with pytest.raises(ValueError):
        jt.bmm(jt.array(a[0]), jt.array(b[0]))


# ---- NaN orders as NumPy does (issue: repeated / out-of-range indices) ----

def _with_nans(shape, seed, dtype="float32"):
    r = np.random.default_rng(seed)
    a = r.standard_normal(shape).astype(dtype)
    a[r.random(shape) < 0.3] = np.nan
    a.flat[0] = np.inf
    return a


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_argsort_and_sort_put_nan_last(dtype):
    a = _with_nans((5, 9), 1, dtype)
    for dim in (0, 1, -1):
        idx, vals = jt.argsort(jt.array(a), dim)
        want = np.argsort(a, axis=dim, kind="stable")
        np.testing.assert_array_equal(idx.numpy(), want)
        np.testing.assert_array_equal(vals.numpy(), np.sort(a, axis=dim))
        v2, i2 = jt.sort(jt.array(a), dim)
        np.testing.assert_array_equal(i2.numpy(), want)


def test_descending_sort_and_topk_put_nan_first():
    a = _with_nans((4, 7), 2)
    idx, vals = jt.argsort(jt.array(a), 1, descending=True)
    # NaN is the largest value (PyTorch's convention), ties keep their order
    want = np.array([np.lexsort((np.where(np.isnan(r), 0, -r), ~np.isnan(r))) for r in a])
    np.testing.assert_array_equal(idx.numpy(), want)
    for row in idx.numpy():
        assert sorted(row) == list(range(7))   # a permutation: no repeats, none out of range
    values, indices = jt.topk(jt.array(a), 3, 1)
    np.testing.assert_array_equal(indices.numpy(), want[:, :3])


@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_argmax_returns_the_first_nan(op):
    a = _with_nans((6, 8), 3)
    a[2] = [1, 2, np.nan, 4, np.nan, 0, 1, 1]
    a[3] = np.arange(8)                     # a row without NaN
    for dim in (0, 1):
        got, values = getattr(jt, op)(jt.array(a), dim)
        np.testing.assert_array_equal(got.numpy(), getattr(np, op)(a, axis=dim))
    flat, _ = getattr(jt, op)(jt.array(a))
    assert flat.item() == getattr(np, op)(a)


@pytest.mark.parametrize("op", ["bitwise_and", "bitwise_or", "bitwise_xor", "logical_xor"])
def test_bitwise_and_xor_reductions_against_numpy(op):
    a = np.random.default_rng(5).integers(-50, 100, (2, 3, 4, 5)).astype(np.int32)
    fn = getattr(jt, "reduce_" + op)
    for dims, keep in (((), False), ((1,), True), ((0, 2), False), ((3,), True)):
        want = getattr(np, op).reduce(a, dims if dims else None, keepdims=keep)
        got = fn(a, dims, keepdims=keep).numpy()
        assert got.shape == np.shape(want)
        np.testing.assert_array_equal(got.astype(np.int64), np.asarray(want).astype(np.int64))
    b = np.array([True, False, True, True])
    np.testing.assert_array_equal(fn(b, 0).numpy(), getattr(np, op).reduce(b))
    # the scatter form
    x = np.array([1, 2, 4, 8, 16, 3], np.int32)
    got = jt.array(x).reindex_reduce(op, [2], ["i0 % 2"]).numpy()
    want = [getattr(np, op).reduce(x[0::2]), getattr(np, op).reduce(x[1::2])]
    np.testing.assert_array_equal(got.astype(np.int64), np.asarray(want).astype(np.int64))
    if op != "logical_xor":
        with pytest.raises(TypeError, match="integer or bool input needed"):
            fn(jt.ones(3), 0)


def test_var_and_std_are_unbiased_by_default():
    a = np.random.default_rng(2).standard_normal((5, 7))
    x = jt.array(a)
    np.testing.assert_allclose(x.var().numpy(), a.var(ddof=1), rtol=1e-12)
    np.testing.assert_allclose(x.std(dim=0).numpy(), a.std(0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(x.std(1, unbiased=False).numpy(), a.std(1), rtol=1e-12)
