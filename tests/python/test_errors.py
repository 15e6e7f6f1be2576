"""Errors are raised when an op is built, with the Python exception that fits
(ValueError, TypeError, IndexError), naming the op and the shapes or dtypes."""
import sys
import traceback

import numpy as np
import pytest

import kiln as jt


def _raised_at(exc_info, marker):
    """The innermost traceback frame in this file is the line holding marker."""
    frames = [f for f in traceback.extract_tb(exc_info.tb) if f.filename == __file__]
    return marker in frames[-1].line


def test_shape_errors_name_op_and_shapes():
    a, b = jt.zeros(2, 3), jt.zeros(4)
    with pytest.raises(ValueError, match=r"add.*\(2, 3\).*\(4,\)") as e:
        a + b  # build-marker
    assert _raised_at(e, "build-marker")
    with pytest.raises(ValueError, match=r"where.*\(2, 3\)"):
        jt.where(a > 0, a, b)
    with pytest.raises(ValueError, match="reshape"):
        a.reshape(7)
    with pytest.raises(ValueError, match="broadcast"):
        a.broadcast((3, 3))
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\)"):
        jt.matmul(a, a)
    with pytest.raises(ValueError, match="concat"):
        jt.concat([a, b])


def test_errors_are_raised_before_anything_runs():
    x = jt.array([1.0, 2.0])
    y = x * 2                       # pending
    with pytest.raises(ValueError):
        y + jt.zeros(3)
    np.testing.assert_array_equal(y.numpy(), [2.0, 4.0])   # the graph is still usable


def test_dtype_errors():
    f = jt.array([1.5])
    with pytest.raises(TypeError, match="bitwise_and.*float32"):
        f & f
    with pytest.raises(TypeError, match="left_shift"):
        f << 1
    with pytest.raises(TypeError, match="bitwise_not"):
        ~f
    with pytest.raises(TypeError, match="dtype"):
        jt.zeros(2, dtype="complex64")
    with pytest.raises(TypeError, match="random"):
        jt.random((2,), dtype="int32")
    # float extras are truncated as indices (Jittor): test_jittor_api


def test_index_errors():
    x = jt.zeros(2, 3)
    with pytest.raises(IndexError, match="out of bounds"):
        x[2]
    with pytest.raises(IndexError, match="dim 5"):
        x.sum(5)
    with pytest.raises(IndexError):
        x.transpose(0, 4)


def test_value_errors_of_arguments():
    with pytest.raises(ValueError, match="negative"):
        jt.zeros(2, -1)
    with pytest.raises(ValueError, match="index expression"):
        jt.zeros(2).reindex([2], ["i0+"])
    with pytest.raises(ValueError):
        jt.zeros((1,) * 9)
    with pytest.raises(ValueError, match="item"):
        jt.zeros(2).item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(jt.zeros(2))


def test_no_crash_on_uninitialised_var():
    v = jt._C.Var()
    with pytest.raises(ValueError, match="uninitialised"):
        v.shape
    with pytest.raises(ValueError, match="uninitialised"):
        memoryview(v)
    with pytest.raises(TypeError):
        jt._C.unary(3, "exp")
    assert sys.getrefcount(v) >= 2


def test_huge_index_expressions_are_refused_not_crashing():
    """A 40000-term expression once overflowed the C stack of its walkers."""
    x = jt.random((4,))
    with pytest.raises(ValueError, match="nested too deeply"):
        jt.reindex(x, (4,), ["+".join(["i0"] * 40000)])
    with pytest.raises(ValueError, match="overflow"):
        jt.reindex(x, (4,), ["i0+9223372036854775807*2"])
    np.testing.assert_array_equal(jt.reindex(x, (4,), ["3-i0"]).numpy(), x.numpy()[::-1])
