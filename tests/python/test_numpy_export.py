"""Var.numpy(): always a writable array of the value that nothing else
sees; a temporary's memory (`f(x).numpy()`) is handed over instead of copied,
and everything any other handle, alias or pending op can read is copied."""
import gc

import numpy as np
import pytest

import kiln as jt


def in_use():
    return jt.counters()["bytes_in_use"]


@pytest.mark.skipif(jt._C.device() != "cpu", reason="a device's memory reaches NumPy as a host copy")
def test_a_temporary_hands_its_memory_over():
    x = jt.array(np.arange(1 << 16, dtype=np.float32))
    base = in_use()
    a = (x * 2).numpy()
    assert a.flags.writeable and a.flags.c_contiguous and a.dtype == np.float32
    np.testing.assert_array_equal(a, np.arange(1 << 16) * 2)
    # the array holds kiln's buffer (no copy) until it goes
    assert in_use() - base >= a.nbytes
    a[:] = -1
    np.testing.assert_array_equal(x.numpy()[:3], [0, 1, 2])
    del a
    gc.collect()
    assert in_use() - base < (1 << 16) * 4


@pytest.mark.parametrize("dtype", ["bool", "int8", "uint8", "int16", "int32", "int64", "float16",
                                   "float32", "float64"])
def test_every_dtype_comes_back_with_its_shape(dtype):
    src = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    x = jt.array(src)
    got = (x + jt.zeros_like(x)).numpy() if dtype != "bool" else (x | False).numpy()
    assert got.dtype == np.dtype(dtype) and got.shape == (2, 3, 4)
    np.testing.assert_array_equal(got, src)
    copy = x.numpy()   # held: a copy
    copy[...] = 0
    np.testing.assert_array_equal(x.numpy(), src)


def test_what_others_can_read_is_copied():
    x = jt.array(np.ones(8, np.float32))
    y = x * 3
    y.sync()
    a = y.numpy()          # y is held: a copy
    a[0] = 100
    assert y.numpy()[0] == 3
    r = x.reshape((2, 4))  # an alias of x's buffer
    b = r.numpy()
    b[0, 0] = 100
    assert x.numpy()[0] == 1
    z = x * 4
    w = z + 1              # z is read by a pending op
    c = z.numpy()
    c[0] = 100
    assert w.numpy()[0] == 5
    d = jt.array(np.ones(8, np.float32)).numpy()  # a leaf the user never held
    d[0] = 7
    assert d[0] == 7


def test_a_handed_over_array_outlives_the_var_and_the_caches():
    arrays = [(jt.array(np.full(1000, float(i), np.float32)) + 1).numpy() for i in range(20)]
    jt.gc()
    gc.collect()
    more = [(jt.ones(1000) * 5).numpy() for _ in range(20)]   # the allocator reuses freely
    for i, a in enumerate(arrays):
        assert (a == i + 1).all()
    assert all((m == 5).all() for m in more)


def test_empty_and_scalar_vars():
    assert (jt.zeros((0, 3)) + 1).numpy().shape == (0, 3)
    s = (jt.array(2.0) * 3).numpy()
    assert s.shape == () and s == 6.0
    assert (jt.array(2.0) * 3).item() == 6.0
