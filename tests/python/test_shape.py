"""Movement ops and indexing against NumPy: reshape, transpose, broadcast,
concat/stack/split, and __getitem__ / __setitem__ in all NumPy's forms."""
import numpy as np
import pytest

import kiln as jt
from ktest import check, data, rng


def test_reshape_view_flatten():
    a = data(rng(), (2, 3, 4))
    x = jt.array(a)
    check(x.reshape(6, 4), a.reshape(6, 4))
    check(x.reshape((4, -1)), a.reshape(4, -1))
    check(jt.reshape(x, [24]), a.reshape(24))
    check(x.view(3, 8), a.reshape(3, 8))
    check(x.flatten(), a.reshape(-1))
    check(x.flatten(1), a.reshape(2, 12))
    check(jt.flatten(x, 0, 1), a.reshape(6, 4))
    check(jt.array(2.0).flatten(), [2.0])
    check(jt.array([3.0]).reshape(()), np.float64(3.0))
    with pytest.raises(ValueError):
        x.reshape(5, 5)


def test_reshape_chains_of_pending_vars():
    a = data(rng(1), (2, 3))
    x = jt.array(a)
    check((x * 2).reshape(3, 2).reshape(6), (a * 2).reshape(6))
    check((x + 1).unsqueeze(0).flatten(), (a + 1).reshape(-1))
    check((x * 3).reshape(6).detach(), (a * 3).reshape(6))
    check((x - 1).detach().detach(), a - 1)


def test_squeeze_unsqueeze():
    a = data(rng(), (1, 3, 1, 2))
    x = jt.array(a)
    check(x.squeeze(), a.squeeze())
    check(x.squeeze(0), a.squeeze(0))
    check(x.squeeze(-2), a.squeeze(-2))
    check(x.squeeze(1), a)                    # not of size 1: unchanged, as in PyTorch
    check(x.unsqueeze(0), a[None])
    check(x.unsqueeze(-1), a[..., None])
    check(jt.unsqueeze(jt.array(1.0), 0), [1.0])


def test_transpose_permute():
    a = data(rng(), (2, 3, 4))
    x = jt.array(a)
    check(x.transpose(), a.transpose())
    check(x.transpose(0, 2), a.swapaxes(0, 2))
    check(x.transpose(-1, -2), a.swapaxes(-1, -2))
    check(x.permute(1, 2, 0), a.transpose(1, 2, 0))
    check(jt.permute(x, (2, 0, 1)), a.transpose(2, 0, 1))
    check(jt.transpose(x, [1, 0, 2]), a.transpose(1, 0, 2))
    check(jt.array(data(rng(), (3, 5))).T, data(rng(), (3, 5)).T)
    with pytest.raises(ValueError):
        x.permute(0, 0, 1)


def test_broadcast_expand():
    a = data(rng(), (3, 1))
    x = jt.array(a)
    check(x.broadcast((2, 3, 4)), np.broadcast_to(a, (2, 3, 4)))
    check(jt.broadcast(x, jt.zeros(3, 5)), np.broadcast_to(a, (3, 5)))
    check(x.broadcast_var(jt.zeros(2, 3, 2)), np.broadcast_to(a, (2, 3, 2)))
    check(x.expand(3, 6), np.broadcast_to(a, (3, 6)))
    check(x.expand(2, -1, 4), np.broadcast_to(a, (2, 3, 4)))
    # Jittor's broadcast with dims: the listed output dims are new
    v = jt.array([1.0, 2.0, 3.0])
    check(v.broadcast([3, 2], [1]), np.array([[1, 1], [2, 2], [3, 3.0]]))
    check(v.broadcast([2, 3], [0]), np.array([[1, 2, 3], [1, 2, 3.0]]))
    with pytest.raises(ValueError):
        jt.array(data(rng(), (3,))).broadcast((2, 4))


def test_concat_stack():
    r = rng(2)
    a, b, c = data(r, (2, 3)), data(r, (4, 3)), data(r, (0, 3))
    check(jt.concat([jt.array(a), jt.array(b), jt.array(c)]), np.concatenate([a, b, c]))
    d = data(r, (2, 5))
    check(jt.concat([jt.array(a), jt.array(d)], dim=-1), np.concatenate([a, d], -1))
    check(jt.cat([jt.array(a)], 0), a)
    check(jt.concat([jt.array([True]), jt.array([False, True])]), [True, False, True])
    check(jt.concat([jt.array([1]), jt.array([2.5])]), [1.0, 2.5])
    check(jt.stack([jt.array(a), jt.array(a * 2)]), np.stack([a, a * 2]))
    check(jt.stack([jt.array(a), jt.array(a * 2)], -1), np.stack([a, a * 2], -1))
    check(jt.stack([jt.array(1.0), jt.array(2.0)]), [1.0, 2.0])
    with pytest.raises(ValueError):
        jt.concat([jt.array(a), jt.array(d)])
    with pytest.raises(ValueError):
        jt.stack([jt.array(a), jt.array(b)])


def test_split_chunk_flip():
    a = data(rng(3), (7, 4))
    x = jt.array(a)
    parts = x.split(3)
    assert [p.shape for p in parts] == [(3, 4), (3, 4), (1, 4)]
    check(parts[2], a[6:])
    parts = jt.split(x, [2, 5], dim=0)
    check(parts[1], a[2:])
    with pytest.raises(ValueError):
        x.split([2, 2])
    chunks = x.chunk(2, dim=1)
    assert len(chunks) == 2
    check(chunks[1], a[:, 2:])
    check(x.flip(0), a[::-1])
    check(x.flip((0, 1)), a[::-1, ::-1])
    check(jt.flip(x, -1), a[:, ::-1])


GETITEM = [
    (1,), (-1,), (slice(None),), (slice(1, 3),), (slice(None, None, 2),), (slice(None, None, -1),),
    (slice(-2, None),), (slice(3, 0, -2),), (slice(5, 1),), (0, 1), (-1, slice(None), 2),
    (Ellipsis, 1), (None,), (slice(None), None, 1), (None, Ellipsis, None), (1, Ellipsis),
    (slice(1, 2), slice(None, None, 3), slice(None, None, -1)), (Ellipsis,), (0, 0, 0),
]


@pytest.mark.parametrize("index", GETITEM, ids=repr)
def test_getitem_basic(index):
    a = data(rng(4), (4, 3, 5))
    check(jt.array(a)[index], a[index])


ADVANCED = [
    ([0, 2],), ([[0, 1], [3, 2]],), ([0, -1], [1, 2]), (slice(None), [2, 0]),
    ([1, 2], slice(None), [0, 4]), (slice(None), [0, 1], [4, 3]), (0, slice(None), [1, 2]),
    (1, [0, 2]), (Ellipsis, [4, 0, 4]), ([[0], [3]], [1, 2]), (None, [1, 0]), ([], ),
    (np.array([True, False, True, True]),), (np.array([[True, False, True]] * 4),),
]


@pytest.mark.parametrize("index", ADVANCED, ids=repr)
def test_getitem_advanced(index):
    a = data(rng(5), (4, 3, 5))
    check(jt.array(a)[index], a[index])


def test_getitem_var_indices():
    a = data(rng(6), (5, 3))
    x = jt.array(a)
    check(x[jt.array([4, 0, -1])], a[[4, 0, -1]])
    check(x[jt.array([[1, 2]]), jt.array([0, 2])], a[[[1, 2]], [0, 2]])
    check(x[x > 0], a[a > 0])
    check(x[jt.array(2)], a[2])
    check(x[:, 1][jt.array(a[:, 1] > 0)], a[:, 1][a[:, 1] > 0])
    check(jt.array(3.0)[None], [3.0])
    check(jt.array(3.0)[...], np.float64(3.0))


def test_getitem_errors():
    x = jt.array(data(rng(), (3, 4)))
    with pytest.raises(IndexError):
        x[3]
    with pytest.raises(IndexError):
        x[0, -5]
    with pytest.raises(IndexError):
        x[0, 0, 0]
    with pytest.raises(IndexError):
        x[[0, 3]]
    with pytest.raises(IndexError):
        x[..., ...]
    with pytest.raises(IndexError):
        x[jt.array([0.5])]
    with pytest.raises(IndexError):
        x[[0, 1], [0, 1, 2]]


SETITEM = [
    ((1,), 5.0), ((slice(None), 2), -1.0), ((slice(None, None, 2), slice(1, 3)), "block"),
    ((slice(None, None, -2),), "row"), ((Ellipsis, 0), 7.0), ((0, 1), 9.0),
    (([0, 2], [1, 3]), "pair"), ((slice(None), [3, 0]), "cols"), ((np.array([True, False, True]),), 2.0),
    ((slice(3, 0, -2), slice(None, None, 3)), "block2"), ((None, 1), 4.0),
]


@pytest.mark.parametrize("index,value", SETITEM, ids=repr)
def test_setitem(index, value):
    r = rng(8)
    a = data(r, (3, 4))
    expected = a.copy()
    shape = expected[index].shape
    v = data(r, shape) if isinstance(value, str) else value
    expected[index] = v
    x = jt.array(a)
    alias = x
    x[index] = jt.array(v) if isinstance(value, str) else v
    assert x is alias
    check(x, expected)


def test_setitem_forms():
    a = data(rng(9), (3, 4))
    x = jt.array(a)
    x[x > 0] = 0.0                    # boolean var mask, scalar value: no sync
    e = a.copy()
    e[e > 0] = 0.0
    check(x, e)
    y = jt.array(a)
    y[1:, :] = jt.array([1.0, 2.0, 3.0, 4.0])       # broadcasting value
    e = a.copy()
    e[1:, :] = [1, 2, 3, 4]
    check(y, e)
    z = jt.array(np.arange(6, dtype=np.int32))
    z[jt.array([1, -1])] = 1.9          # cast to the var's dtype
    check(z, [0, 1, 2, 3, 4, 1], dtype="int32")
    b = jt.array([True, False, True])
    b[1] = True
    check(b, [True, True, True])
    with pytest.raises(ValueError):
        y[0] = jt.array([1.0, 2.0])


def test_nested_index_assignment_chain():
    x = jt.zeros(4, 4)
    for i in range(4):
        x[i, i] = float(i + 1)
    check(x, np.diag([1.0, 2.0, 3.0, 4.0]))
