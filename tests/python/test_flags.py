"""jt.flags, flag_scope, LOG and log_capture_scope, make_module, counters, sync_all, gc, display_memory_info."""
import numpy as np
import pytest

import kiln as jt
from ktest import check


def test_lazy_execution_flag():
    x = jt.array([1.0, 2.0])
    assert jt.flags.lazy_execution == 1
    y = x * 2
    assert not y.is_computed
    jt.flags.lazy_execution = 0
    try:
        z = x * 3 + 1
        assert z.is_computed
        check(z, [4.0, 7.0])
    finally:
        jt.flags.lazy_execution = 1
    assert not (x * 5).is_computed


def test_use_cuda_is_a_clear_error():
    """Without a device kiln can run on, use_cuda = 1 says what is missing:
    the driver's library, a device, or (with both) the device runtime."""
    assert jt.flags.use_cuda == 0
    with pytest.raises(RuntimeError, match=r"use_cuda: .*(libcuda\.so\.1|CUDA device)"):
        jt.flags.use_cuda = 1
    jt.flags.use_cuda = 0
    assert jt.flags.use_cuda == 0


def test_log_level_prints_kernels(capfd):
    x = jt.array([1.0, 2.0, 3.0])
    old = jt.flags.log_level
    jt.flags.log_level = 2
    try:
        assert jt.flags.log_level == 2
        (x * 7.0 - 2.0).exp().numpy()
    finally:
        jt.flags.log_level = old
    out, err = capfd.readouterr()
    assert "kiln" in out + err
    jt.flags.log_level = 0
    (x * 11.0).numpy()
    out, err = capfd.readouterr()
    assert "kiln" not in out + err


def test_counters_and_memory_info(capsys):
    c = jt.counters()
    for key in ("kernels_compiled", "cache_hits_memory", "cache_hits_disk", "kernels_launched",
                "bytes_allocated", "bytes_in_use", "bytes_cached", "peak_bytes_in_use",
                "vars_alive"):
        assert isinstance(c[key], int) and c[key] >= 0
    before = c["kernels_launched"]
    (jt.array([1.0]) + 1).sync()
    assert jt.counters()["kernels_launched"] == before + 1
    info = jt.display_memory_info()
    assert "vars alive" in capsys.readouterr().out
    assert info["peak_bytes_in_use"] >= info["bytes_in_use"]


def test_vars_are_freed():
    jt.gc()
    base = jt.counters()["vars_alive"]
    xs = [jt.array(np.ones(100)) * i for i in range(10)]
    assert jt.counters()["vars_alive"] >= base + 10
    del xs
    jt.gc()
    assert jt.counters()["vars_alive"] <= base


def test_sync_all():
    x = jt.array([1.0, 2.0])
    a, b = x + 1, x * 2
    jt.sync_all()
    assert a.is_computed and b.is_computed
    check(a, [2.0, 3.0])
    c = jt.sync([x - 1])[0]
    assert c.is_computed


def test_flags_repr_and_unknown_flag():
    assert "lazy_execution" in repr(jt.flags)
    with pytest.raises(AttributeError):
        jt.flags.no_such_flag = 1
    assert isinstance(jt.flags.cache_dir, str)


def test_sync_all_computes_vars_rebound_in_place():
    """sync_all asks the core for every pending var a handle holds, so a Var
    updated in place (its value rebound to a new pending var) is computed too."""
    x = jt.array([1.0, 2.0])
    p = jt.array([0.0, 0.0])
    p.update(x * 3)
    q = jt.array([5.0])
    q += 1
    jt.sync_all()
    assert p.is_computed and q.is_computed
    check(p, [3.0, 6.0])
    check(q, [6.0])


def test_flag_scope_sets_and_restores():
    before = (jt.flags.log_v, jt.flags.lazy_execution)
    with jt.flag_scope(log_v=7, lazy_execution=0):
        assert (jt.flags.log_v, jt.flags.lazy_execution) == (7, 0)
    assert (jt.flags.log_v, jt.flags.lazy_execution) == before
    with pytest.raises(ZeroDivisionError):
        with jt.flag_scope(log_v=5):
            1 / 0
    assert jt.flags.log_v == before[0]   # restored when the block raises


def test_flag_scope_as_decorator():
    @jt.flag_scope(log_v=3)
    def inside():
        return jt.flags.log_v
    assert inside() == 3 and inside() == 3
    assert jt.flags.log_v != 3


def test_flag_scope_refuses_unknown_flags_and_keeps_state_on_failure():
    with pytest.raises(AttributeError, match="asdasd"):
        jt.flag_scope(asdasd=1)
    before = jt.flags.log_v
    with pytest.raises(RuntimeError, match="CUDA"):
        with jt.flag_scope(log_v=9, use_cuda=1):   # no GPU backend: use_cuda refuses 1
            pass
    assert jt.flags.log_v == before
    assert jt.has_cuda == jt.compiler.has_cuda == int(jt._C.cuda_device_count() > 0)


def test_log_levels_and_capture():
    with jt.log_capture_scope(log_v=1) as logs:
        jt.LOG.v("shown at 1")
        jt.LOG.vv("hidden below 10")
        jt.LOG.i("info")
        jt.LOG.w("warning")
        jt.LOG.e("error")
    assert [(r["level"], r["verbose"], r["msg"]) for r in logs] == [
        ("i", 1, "shown at 1"), ("i", 0, "info"), ("w", 0, "warning"), ("e", 0, "error")]
    assert all(r["name"] == "test_flags.py" and r["lineno"] > 0 for r in logs)
    with jt.log_capture_scope() as logs:
        jt.LOG.i("a")
        assert [r["msg"] for r in jt.LOG.log_capture_read()] == ["a"]
        assert jt.LOG.log_capture_read() == []
    assert jt.LOG.log_capture_read() == []   # no scope open


def test_make_module():
    Scale = jt.make_module(lambda x, k, bias=0.0: x * k + bias)
    m = Scale(3.0, bias=1.0)
    assert isinstance(m, jt.Module)
    np.testing.assert_allclose(m(jt.array([1.0, 2.0])).numpy(), [4.0, 7.0])
    with pytest.raises(TypeError, match="1 input"):
        m(jt.array([1.0]), jt.array([2.0]))
    Relu = jt.make_module(jt.nn.relu)
    assert Relu.__name__ == "relu"
    np.testing.assert_allclose(Relu()(jt.array([-1.0, 2.0])).numpy(), [0.0, 2.0])


def test_compile_extern_names_no_op_libraries():
    # kiln's libraries are reached through the core's patterns, not op modules
    from kiln import compile_extern
    assert compile_extern.cublas_ops is None and compile_extern.cudnn_ops is None
    assert compile_extern.cub_ops is None and compile_extern.mkl_ops is None and not compile_extern.has_mkl
