"""The meta-operators through Jittor's API: reindex (windows, padding, gathers
with extras), reindex_reduce (scatters), broadcast with dims, reduce by name."""
import numpy as np
import pytest

import kiln as jt
from ktest import check, data, rng


def test_reindex_sliding_windows():
    a = data(rng(), (2, 5, 6))
    x = jt.array(a)
    w = x.reindex([2, 3, 4, 3, 3], ["i0", "i1+i3", "i2+i4"])
    expected = np.lib.stride_tricks.sliding_window_view(a, (3, 3), axis=(1, 2))
    check(w, expected)


def test_reindex_padding_and_conditions():
    a = data(rng(1), (3, 4))
    x = jt.array(a)
    padded = x.reindex([5, 6], ["i0-1", "i1-1"], overflow_value=-9)
    check(padded, np.pad(a, 1, constant_values=-9))
    upper = x.reindex([3, 4], ["i0", "i1"], overflow_conditions=["i1<i0"])
    check(upper, np.triu(a))
    check(jt.reindex(x, [4], ["i0%3", "i0"]), a[np.arange(4) % 3, np.arange(4)])
    check(x.reindex([3], ["i0", "i0*2>3?3:i0*2"]), a[[0, 1, 2], [0, 2, 3]])
    check(x.reindex([2, 2], ["min(i0+i1,2)", "max(i1-i0,0)"]),
          a[np.minimum(np.add.outer([0, 1], [0, 1]), 2),
            np.maximum(np.subtract.outer([0, 1], [0, 1]).T, 0)])


def test_reindex_extras_gather():
    a = data(rng(2), (5, 3))
    idx = np.array([4, 0, 2, 2], np.int32)
    x = jt.array(a)
    check(x.reindex([4, 3], ["@e0(i0)", "i1"], extras=[jt.array(idx)]), a[idx])
    cols = np.array([[0, 2, 1], [1, 1, 0]], np.int64)
    got = x.reindex([2, 3], ["i0", "@e0(i0,i1)"], extras=[jt.array(cols)])
    check(got, a[np.arange(2)[:, None], cols])


def test_reindex_reduce_scatter():
    r = rng(3)
    vals = data(r, (6,))
    idx = np.array([0, 2, 2, 1, 0, 2], np.int32)
    v = jt.array(vals)
    for op, ufunc, ident in (("add", np.add, 0.0), ("maximum", np.maximum, -np.inf),
                             ("minimum", np.minimum, np.inf), ("multiply", np.multiply, 1.0)):
        expected = np.full(4, ident)
        ufunc.at(expected, idx, vals)
        got = v.reindex_reduce(op, [4], ["@e0(i0)"], extras=[jt.array(idx)])
        check(got, expected)
    # pooling-style sum of 2x2 blocks, skipping a condition
    a = data(r, (4, 4))
    pooled = jt.array(a).reindex_reduce("add", [2, 2], ["i0/2", "i1/2"])
    check(pooled, a.reshape(2, 2, 2, 2).sum((1, 3)))
    diag_free = jt.array(a).reindex_reduce("add", [4], ["i0"], overflow_conditions=["i0==i1"])
    check(diag_free, a.sum(1) - np.diag(a))
    with_dims = jt.reindex_reduce(jt.array(a), "sum", [4], ["i1"])
    check(with_dims, a.sum(0))


def test_broadcast_multiply_sum_is_matmul():
    r = rng(4)
    a, b = data(r, (3, 4)), data(r, (4, 5))
    x, y = jt.array(a), jt.array(b)
    prod = x.broadcast([3, 4, 5], [2]) * y.broadcast([3, 4, 5], [0])
    check(prod.sum(1), a @ b, rtol=1e-12)


def test_reduce_by_name():
    a = data(rng(5), (3, 4))
    x = jt.array(a)
    check(x.reduce("add", 1), a.sum(1))
    check(x.reduce("maximum", [0]), a.max(0))
    check(jt.reduce(x, "sum", dims=[0, 1], keepdims=True), a.sum(keepdims=True))
    check(x.reduce("mean", -1), a.mean(-1))


def test_meta_op_errors():
    x = jt.array(data(rng(), (3, 4)))
    with pytest.raises(ValueError, match="i0\\+\\+"):
        x.reindex([3], ["i0++", "i1"])
    with pytest.raises(ValueError):
        x.reindex([3], ["i0"])                          # one index per dim of x
    with pytest.raises(ValueError):
        x.reindex([3, 4], ["i0", "i7"])                # i7 is not an output index
    with pytest.raises(ValueError):
        x.reduce("bogus", 0)
    with pytest.raises(IndexError):
        x.sum(2)


def test_reindex_of_a_reshaped_costly_chain():
    """A reindex stores its costly input (computed once, not per window read);
    when that input is a reshape, the reshape's own input must be stored too
    (a fusion bug once left it uncomputed: 'reshape input not computed')."""
    a = rng(3).random((4, 6)).astype(np.float32)

    def build():  # only the result stays held: the chain and reshape are fusable
        chain = jt.array(a)
        for k in range(6):
            chain = (chain * 1.5 + k).exp().log() - 0.5
        win = chain.reshape((2, 12)).reindex([2, 10, 3], ["i0", "i1+i2"])
        return win.sum(2) + win.max(2)

    want = a.astype(np.float64)
    for k in range(6):
        want = np.log(np.exp(want * 1.5 + k)) - 0.5
    w = want.reshape(2, 12)
    ref = np.stack([w[:, i:i + 3] for i in range(10)], 1)
    np.testing.assert_allclose(build().numpy(), ref.sum(2) + ref.max(2), rtol=1e-4)
