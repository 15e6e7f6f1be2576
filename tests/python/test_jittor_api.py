"""Jittor's API names kiln offers with Jittor's semantics: flags, the
profiler, element-wise predicates, where(cond), reduce_<op>, arg_reduce,
jt.ops, Var.shape equal to lists, and the small Var methods."""
import numpy as np
import pytest

import kiln as jt
from kiln import LOG


def test_flags_programs_set_are_kept_and_documented():
    for name, value in (("amp_reg", 6), ("amp_level", 3), ("log_vprefix", "op.cc=100"),
                        ("use_tensorcore", 1), ("auto_mixed_precision_level", 2)):
        with jt.flag_scope(**{name: value}):
            assert getattr(jt.flags, name) == value
        assert getattr(type(jt.flags), name).__doc__
    assert jt.flags.amp_reg == 0
    assert jt.flags.cache_path == jt.flags.cache_dir
    with pytest.raises(AttributeError):
        jt.flags.not_a_flag = 1
    # amp_reg changes nothing kiln computes
    a = np.random.rand(10).astype(np.float32)
    with jt.flag_scope(amp_reg=2 | 4 | 8 | 16):
        got = (jt.array(a) * 3).exp().numpy()
    np.testing.assert_array_equal(got, (jt.array(a) * 3).exp().numpy())


def test_auto_convert_64_to_32():
    f64, i64 = np.ones(3), np.arange(3, dtype=np.int64)
    assert jt.array(f64).dtype == "float64" and jt.array(i64).dtype == "int64"
    with jt.flag_scope(auto_convert_64_to_32=1):
        assert jt.array(f64).dtype == "float32" and jt.array(i64).dtype == "int32"
        assert jt.array(f64, "float64").dtype == "float64"   # an explicit dtype wins


def test_log_silent_keeps_capturing(capsys):
    with jt.log_capture_scope(log_silent=1) as logs:
        LOG.w("quiet warning")
    assert [r["msg"] for r in logs] == ["quiet warning"]
    assert "quiet warning" not in capsys.readouterr().err


def test_profile_scope_reports_the_blocks_kernels():
    a = jt.random((256, 256))
    a.sync()
    with jt.profile_scope(10, 100, print_report=False) as rep:
        (a.exp() * 2).sum().sync()
        jt.matmul(a, a).sync()
        pending = a + 1          # left pending: run and counted inside the block
    assert rep[0][:4] == ["Name", "FileName", "Count", "TotalTime"]
    total = rep[0].index("TotalTime")
    names = [r[0] for r in rep[1:]]
    assert any("library gemm" in n for n in names) and any("exp" in n for n in names)
    assert any(n.startswith("add") for n in names)
    times = [float(r[total]) for r in rep[1:]]
    assert all(t > 0 for t in times) and times == sorted(times, reverse=True)
    assert not jt.flags.profiler_enable
    del pending
    with jt.profile_scope(print_report=False) as rep:
        pass
    assert rep == [rep[0]]   # nothing ran


def test_predicates_against_numpy():
    x = np.array([1.0, np.nan, np.inf, -np.inf, 0.0, -2.5])
    for name in ("isnan", "isinf", "isfinite"):
        for dt in ("float32", "float64"):
            got = getattr(jt, name)(jt.array(x.astype(dt)))
            assert got.dtype == "bool"
            np.testing.assert_array_equal(got.numpy(), getattr(np, name)(x), err_msg=name)
        ints = jt.array(np.arange(3, dtype=np.int32))
        np.testing.assert_array_equal(getattr(ints, name)().numpy(), getattr(np, name)(np.arange(3)))


def test_where_with_one_argument_and_nonzero():
    c = np.array([[0, 3, 0], [1, 0, 2]])
    got = jt.where(jt.array(c))
    assert len(got) == 2 and all(g.dtype == "int32" for g in got)
    for g, w in zip(got, np.nonzero(c)):
        np.testing.assert_array_equal(g.numpy(), w)
    a, = jt.where([1, 0, 1])
    np.testing.assert_array_equal(a.numpy(), [0, 2])
    np.testing.assert_array_equal(jt.nonzero(jt.array(c)).numpy(), np.argwhere(c))
    assert jt.nonzero(jt.zeros((2, 2))).shape == (0, 2)
    with pytest.raises(TypeError, match="cond alone"):
        jt.where(jt.array(c), 1)


def test_ops_by_name():
    np.testing.assert_array_equal(jt.binary(1, 2, "maximum").numpy(), 2)
    np.testing.assert_array_equal(jt.binary([[1, 2]], [[3, 4]], "add").numpy(), [[4, 6]])
    np.testing.assert_allclose(jt.unary(jt.array([0.0, 1.0]), "exp").numpy(), np.exp([0, 1]), rtol=1e-6)
    np.testing.assert_array_equal(jt.ops.add(jt.ones(2), 1).numpy(), [2, 2])
    np.testing.assert_array_equal(jt.ternary(jt.array([True, False]), 1.0, 2.0).numpy(), [1, 2])
    with pytest.raises(ValueError, match="unknown op"):
        jt.binary(1, 2, "frobnicate")
    with pytest.raises(AttributeError, match="no op"):
        jt.ops.frobnicate


def test_reduce_functions_against_numpy():
    x = np.random.RandomState(0).rand(3, 4, 5)
    v = jt.array(x)
    for name, fn in (("reduce_add", np.sum), ("reduce_multiply", np.prod), ("reduce_maximum", np.max),
                     ("reduce_minimum", np.min), ("reduce_mean", np.mean)):
        np.testing.assert_allclose(getattr(jt, name)(v, 1).numpy(), fn(x, 1), rtol=1e-12)
        np.testing.assert_allclose(getattr(v, name)((0, 2), True).numpy(), fn(x, (0, 2), keepdims=True),
                                   rtol=1e-12)
    b = x > 0.5
    np.testing.assert_array_equal(jt.reduce_logical_or(jt.array(b), 2).numpy(), b.any(2))
    idx, val = jt.arg_reduce(v, "max", 2, False)
    np.testing.assert_array_equal(idx.numpy(), x.argmax(2))
    np.testing.assert_array_equal(val.numpy(), x.max(2))
    idx, val = v.arg_reduce("min", 0, True)
    assert idx.shape == (1, 4, 5)
    np.testing.assert_array_equal(idx.numpy()[0], x.argmin(0))
    with pytest.raises(ValueError, match="'max' or 'min'"):
        jt.arg_reduce(v, "sum", 0, False)


def test_shape_equals_tuple_and_list():
    s = jt.ones((2, 3)).shape
    assert s == (2, 3) and s == [2, 3] and [2, 3] == s and s != [3, 2] and s != (2,)
    assert hash(s) == hash((2, 3)) and isinstance(s, tuple)
    assert s + (4,) == (2, 3, 4) and s[1:] == (3,) and s.numel() == 6
    assert {s: 1}[(2, 3)] == 1


def test_small_var_methods():
    a = jt.array([1.0, 2.0, 3.0])
    b = a.copy()
    assert b is not a
    np.testing.assert_array_equal(b.numpy(), a.numpy())
    assert a.cast("int32").dtype == "int32"
    np.testing.assert_array_equal(a.fetch_sync(), [1, 2, 3])
    got = jt.fetch_sync([a, a * 2])
    np.testing.assert_array_equal(got[1], [2, 4, 6])
    np.testing.assert_array_equal(a.sqr().numpy(), [1, 4, 9])
    msg = a.debug_msg()
    assert "shape=[3]" in msg and "float32" in msg


def test_set_seed_and_clean():
    jt.set_seed(7)
    first = jt.random((5,)).numpy()
    jt.set_seed(7)
    np.testing.assert_array_equal(jt.random((5,)).numpy(), first)
    jt.clean()
