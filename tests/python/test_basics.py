"""Vars, dtypes, creation, NumPy interop and the Var protocol (repr, len, bool...)."""
import array as pyarray
import pickle

import numpy as np
import pytest

import kiln as jt
from ktest import check, data, rng


def test_array_from_numpy_keeps_dtype():
    r = rng()
    for dt in ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"):
        a = data(r, (3, 4), dtype=dt)
        v = jt.array(a)
        assert v.dtype == dt and v.dtype == getattr(jt, dt if dt != "bool" else "bool")
        assert v.shape == (3, 4) and v.ndim == 2 and v.numel() == 12
        np.testing.assert_array_equal(v.numpy(), a)


def test_python_defaults_are_jittors():
    assert jt.array(1.5).dtype == "float32"
    assert jt.array([1.0, 2.0]).dtype == jt.float32
    assert jt.array(3).dtype == "int32"
    assert jt.array([[1, 2], [3, 4]]).dtype == "int32"
    assert jt.array(True).dtype == "bool"
    assert jt.array(np.float64(2.0)).dtype == "float64"
    assert jt.array([1, 2], dtype="float64").dtype == "float64"
    assert jt.array([0.1], "float64").numpy()[0] == 0.1   # no detour through float32


def test_rank0_and_empty():
    s = jt.array(2.5)
    assert s.shape == () and s.ndim == 0 and s.numel() == 1 and s.item() == 2.5
    e = jt.array(np.zeros((0, 3)))
    assert e.shape == (0, 3) and e.numel() == 0
    assert e.numpy().shape == (0, 3)
    check(e + 1, np.zeros((0, 3)) + 1)


def test_other_sources():
    check(jt.array(pyarray.array("d", [1.0, 2.0])), [1.0, 2.0], dtype="float64")
    check(jt.array(memoryview(np.arange(4, dtype=np.int16))), np.arange(4), dtype="int16")
    check(jt.array(np.arange(12.0).reshape(3, 4)[:, ::2]), np.arange(12.0).reshape(3, 4)[:, ::2])
    check(jt.array(np.arange(3, dtype=np.uint32)), np.arange(3))
    check(jt.array(np.arange(3, dtype=">f8")), np.arange(3.0))
    v = jt.array([1.0, 2.0])
    w = jt.array(v)
    assert w is not v
    check(w, [1.0, 2.0])
    check(jt.array([jt.array([1.0, 2.0]), jt.array([3.0, 4.0])]), [[1, 2], [3, 4]])
    check(jt.Var([1, 2, 3]), [1, 2, 3], dtype="int32")
    check(jt.float32(np.arange(3)), [0, 1, 2], dtype="float32")


def test_unsupported_inputs():
    with pytest.raises(TypeError):
        jt.array(np.array([1 + 2j]))
    with pytest.raises(TypeError):
        jt.array(np.array(["a"]))
    with pytest.raises(ValueError):
        jt.array(np.zeros((1,) * 9))


def test_zero_copy_buffer_export():
    v = (jt.array(np.arange(6.0).reshape(2, 3)) * 2).sync()
    a = np.asarray(v)
    b = np.asarray(v)
    assert a.shape == (2, 3) and a.dtype == np.float64
    assert a.ctypes.data == b.ctypes.data      # both views of the var's own memory
    assert not a.flags.writeable
    m = memoryview(v)
    assert m.format == "d" and m.shape == (2, 3) and m.readonly
    np.testing.assert_array_equal(v.data, a)
    c = v.numpy()
    assert c.flags.writeable and c.ctypes.data != a.ctypes.data
    # a view outlives a rebinding of its var
    v += 1
    np.testing.assert_array_equal(a, np.arange(6.0).reshape(2, 3) * 2)
    np.testing.assert_array_equal(v.numpy(), a + 1)


def test_buffer_of_rank0_bool_half():
    assert np.asarray(jt.array(3.0)).shape == ()
    assert np.asarray(jt.array([True, False])).dtype == np.bool_
    assert np.asarray(jt.array([1.5], "float16")).dtype == np.float16


def test_dtype_objects():
    assert jt.float32 == "float32" and "float32" == jt.float32
    assert jt.float32 != "float64" and jt.float32 != jt.float64
    assert jt.float32 == np.float32 and jt.int64 == np.dtype("int64")
    assert jt.float == jt.float32 and jt.int == jt.int32 and jt.double == jt.float64
    assert str(jt.float16) == "float16" and hash(jt.int8) == hash("int8")
    assert {jt.float32: 1}["float32"] == 1
    assert jt.as_dtype("half") is jt.float16
    with pytest.raises(TypeError):
        jt.as_dtype("complex64")


def test_casts():
    x = jt.array([1.7, -2.2, 0.0])
    check(x.int32(), [1, -2, 0], dtype="int32")
    check(x.astype("int64"), [1, -2, 0], dtype="int64")
    check(x.bool(), [True, True, False], dtype="bool")
    check(x.float64(), np.array([1.7, -2.2, 0.0], np.float32), dtype="float64")
    check(x.int(), [1, -2, 0], dtype="int32")
    check(x.half(), np.float16([1.7, -2.2, 0.0]), rtol=1e-3, dtype="float16")
    check(jt.array([1, 2]).float(), [1.0, 2.0], dtype="float32")


def test_creation():
    check(jt.zeros(2, 3), np.zeros((2, 3)), dtype="float32")
    check(jt.zeros((2, 3), dtype="int32"), np.zeros((2, 3)), dtype="int32")
    check(jt.ones([4]), np.ones(4))
    check(jt.full((2, 2), 7), np.full((2, 2), 7), dtype="int32")
    check(jt.full((2,), 0.5), [0.5, 0.5], dtype="float32")
    x = jt.array(np.ones((2, 5), np.float64))
    check(jt.zeros_like(x), np.zeros((2, 5)), dtype="float64")
    check(jt.ones_like(x), np.ones((2, 5)), dtype="float64")
    check(jt.full_like(x, 3, dtype="int8"), np.full((2, 5), 3), dtype="int8")
    check(jt.arange(5), np.arange(5), dtype="int32")
    check(jt.arange(2, 11, 3), np.arange(2, 11, 3))
    check(jt.arange(0, 1, 0.1), np.arange(0, 1, 0.1), rtol=1e-6, dtype="float32")
    check(jt.arange(5, 0, -2), [5, 3, 1])
    check(jt.arange(3, dtype="float64"), [0.0, 1.0, 2.0], dtype="float64")
    check(jt.linspace(-1, 1, 5), np.linspace(-1, 1, 5))
    check(jt.linspace(0, 1, 1), [0.0])
    check(jt.eye(3), np.eye(3))
    check(jt.eye(2, 3, dtype="int32"), np.eye(2, 3), dtype="int32")
    i0, i1 = jt.index((2, 3))
    check(i0, [[0, 0, 0], [1, 1, 1]])
    check(jt.index((2, 3), 1), [[0, 1, 2], [0, 1, 2]])


def test_random():
    jt.seed(5)
    u = jt.rand(2000)
    n = jt.randn(2000, dtype="float64")
    assert u.dtype == "float32" and n.dtype == "float64"
    a = u.numpy()
    assert a.min() >= 0 and a.max() < 1 and abs(a.mean() - 0.5) < 0.05
    b = n.numpy()
    assert abs(b.mean()) < 0.1 and abs(b.std() - 1) < 0.1
    r = jt.random((3, 4))
    assert r.shape == (3, 4) and r.dtype == "float32"
    g = jt.random((1000,), type="normal").numpy()
    assert abs(g.std() - 1) < 0.15
    i = jt.randint(3, 7, shape=(1000,)).numpy()
    assert i.dtype == np.int32 and i.min() == 3 and i.max() == 6
    assert jt.randint(4, shape=(50,)).numpy().max() < 4
    assert jt.rand_like(u).shape == u.shape and jt.randn_like(n).dtype == "float64"
    # same seed, same numbers
    jt.seed(11)
    first = jt.rand(5).numpy()
    jt.seed(11)
    np.testing.assert_array_equal(jt.rand(5).numpy(), first)
    with pytest.raises(ValueError):
        jt.randint(5, 5)


def test_var_protocol():
    x = jt.array([[1.0, 2.0], [3.0, 4.0]])
    assert len(x) == 2
    rows = list(x)
    assert len(rows) == 2
    check(rows[1], [3.0, 4.0])
    assert bool(jt.array([1])) and not bool(jt.array(0.0))
    with pytest.raises(ValueError):
        bool(x)
    with pytest.raises(ValueError):
        x.item()
    with pytest.raises(TypeError):
        len(jt.array(1.0))
    assert float(jt.array(2.5)) == 2.5 and int(jt.array([7])) == 7
    assert [10, 20, 30][jt.array(1)] == 20
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert x.size() == (2, 2) and x.size(1) == 2
    r = repr(x)
    assert r.startswith("jt.Var(") and "dtype=float32" in r and "3." in r
    assert "2.5" in repr(jt.array(2.5))
    assert (x == None) is False and (x != None) is True   # noqa: E711
    y = pickle.loads(pickle.dumps(x))
    check(y, x.numpy())


def test_name_and_ids():
    x = jt.array([1.0])
    assert x.name("weight") is x and x.name() == "weight"
    y = x * 2
    assert isinstance(y.name(), str)
    assert x.is_computed


def test_sync_and_data():
    x = jt.array([1.0, 2.0])
    y = x * 3
    assert not y.is_computed
    assert y.sync() is y and y.is_computed
    z = x + 1
    w = x - 1
    jt.sync([z, w])
    assert z.is_computed and w.is_computed
    check(z, [2.0, 3.0])


def test_assign_update_clone():
    x = jt.array([1.0, 2.0])
    x.assign(jt.array([5, 6]))
    check(x, [5.0, 6.0], dtype="float32")
    x.update(x * 2)
    check(x, [10.0, 12.0])
    c = x.clone()
    c += 1
    check(x, [10.0, 12.0])
    check(c, [11.0, 13.0])
    x.data = np.array([0.5, 0.25])
    check(x, [0.5, 0.25], dtype="float32")
