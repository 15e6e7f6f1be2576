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
    # amp_reg chooses half-precision dtypes (tests/python/test_half.py); float32 work is unchanged
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
    # a device without a gemm library (the CUDA emulator) runs the product as kernels
    assert any("library gemm" in n for n in names) or jt._C.device() != "cpu"
    assert any("exp" in n for n in names)
    assert any(n.startswith("add") for n in names)
    times = [float(r[total]) for r in rep[1:]]
    assert all(t > 0 for t in times) and times == sorted(times, reverse=True)
    assert not jt.flags.profiler_enable
    del pending
    with jt.profile_scope(print_report=False) as rep:
        pass
    assert rep == [rep[0]]   # nothing ran


def test_profiler_start_stop_report():
    a = jt.random((64, 64))
    before = a * 3               # queued before start: not part of the profile
    jt.profiler.start(2, 10)
    assert jt.flags.profiler_enable
    (a.exp() + 1).sum().sync()
    jt.profiler.stop()
    assert not jt.flags.profiler_enable
    rows = jt.profiler.report()
    assert rows[0][0] == "Name" and len(rows) >= 2
    assert any("exp" in r[0] for r in rows[1:]) and not any("multiply" in r[0] for r in rows[1:])
    assert jt.profiler.report() == rows                  # report keeps the records
    assert jt.profiler.report_and_clear() == rows
    assert jt.profiler.report() == [rows[0]]
    before.sync()
    with jt.flag_scope(compile_options={"FLAGS: -O3": 1}):   # accepted, without effect
        assert jt.flags.compile_options == {"FLAGS: -O3": 1}
    assert jt.flags.compile_options == {}


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
                     ("reduce_minimum", np.min)):
        np.testing.assert_allclose(getattr(jt, name)(v, 1).numpy(), fn(x, 1), rtol=1e-12)
        np.testing.assert_allclose(getattr(v, name)((0, 2), True).numpy(), fn(x, (0, 2), keepdims=True),
                                   rtol=1e-12)
    # every jt.reduce_<op> is NumPy's <op>.reduce (Jittor's programs rely on it)
    names = [n[len("reduce_"):] for n in dir(jt) if n.startswith("reduce_")]
    assert len(names) == 10
    ints = np.arange(24, dtype=np.int32).reshape(2, 3, 4) % 7
    for op in names:
        np.testing.assert_array_equal(getattr(jt, "reduce_" + op)(jt.array(ints), 1, True).numpy(),
                                      getattr(np, op).reduce(ints, 1, keepdims=True), err_msg=op)
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
    assert msg.endswith("[3,] op=array") and ",float32," in msg and ":s1:b12," in msg


def test_set_seed_and_clean():
    jt.set_seed(7)
    first = jt.random((5,)).numpy()
    jt.set_seed(7)
    np.testing.assert_array_equal(jt.random((5,)).numpy(), first)
    jt.clean()


def test_erfinv_inverts_erf_with_its_gradient():
    import math
    y = np.linspace(-0.999, 0.999, 41)
    x = jt.erfinv(jt.array(y)).numpy()
    np.testing.assert_allclose([math.erf(v) for v in x], y, rtol=1e-13, atol=1e-15)
    x32 = jt.erfinv(jt.array(y.astype(np.float32))).numpy()
    assert x32.dtype == np.float32
    np.testing.assert_allclose(x32, x, rtol=2e-5, atol=1e-6)
    got = jt.erfinv(jt.array([1.0, -1.0, 1.5, 0.0])).numpy()
    assert got[0] == np.inf and got[1] == -np.inf and np.isnan(got[2]) and got[3] == 0
    a = jt.array(y)
    g = jt.grad(jt.erfinv(a).sum(), a).numpy()
    np.testing.assert_allclose(g, np.sqrt(np.pi) / 2 * np.exp(x * x), rtol=1e-12)
    h = 1e-7
    fd = (jt.erfinv(jt.array(y + h)).numpy() - jt.erfinv(jt.array(y - h)).numpy()) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-5)


def test_safe_clip_clips_values_and_passes_gradients():
    a = jt.array([-1.0, 0, 0.4, 1, 2, 3])
    b = a.safe_clip(0.1, 0.5)
    np.testing.assert_allclose(b.numpy(), [0.1, 0.1, 0.4, 0.5, 0.5, 0.5], rtol=1e-7)
    np.testing.assert_array_equal(jt.grad((b * 3).sum(), a).numpy(), [3.0] * 6)
    inf = jt.array(np.array([np.inf, -np.inf, 1.0], np.float16))
    np.testing.assert_array_equal(jt.safe_clip(inf).numpy(), np.array([65504, -65504, 1], np.float16))


def test_rounding_to_int_and_reindex_var():
    x = jt.array([1.5, -1.5, 2.2, -2.7])
    assert x.floor_int().dtype == "int32"
    np.testing.assert_array_equal(x.floor_int().numpy(), [1, -2, 2, -3])
    np.testing.assert_array_equal(x.ceil_int().numpy(), [2, -1, 3, -2])
    np.testing.assert_array_equal(x.round_int().numpy(), [2, -2, 2, -3])
    a0 = np.arange(12.0).reshape(3, 4)
    a = jt.array(a0)
    iy, ix = jt.array([[2, 0], [1, 5]]), jt.array([[3, 0], [1.9, 1]])   # 1.9 truncates; 5 overflows
    got = a.reindex_var([iy, ix], overflow_value=-1)
    np.testing.assert_array_equal(got.numpy(), [[11, 0], [5, -1]])
    np.testing.assert_array_equal(a.reindex([iy, ix]).numpy(), [[11, 0], [5, 0]])
    sel = a.reindex_var(jt.where(a > 6.5))
    np.testing.assert_array_equal(sel.numpy(), a0[a0 > 6.5])
    g = jt.grad((sel * sel).sum(), a).numpy()
    np.testing.assert_array_equal(g, np.where(a0 > 6.5, 2 * a0, 0))
    with pytest.raises(ValueError, match="one per dim"):
        a.reindex_var([iy])
    with pytest.raises(ValueError, match="must agree"):
        a.reindex_var([iy, jt.array([1, 2])])
    # float extras of reindex are truncated as indices too
    e = a.reindex([2], ["@e0(i0)", "0"], extras=[jt.array([1.7, 2.2])])
    np.testing.assert_array_equal(e.numpy(), [4, 8])


def test_dtype_limits_and_fetch():
    for name in ("float16", "float32", "float64"):
        assert jt.finfo(name).eps == np.finfo(name).eps and jt.finfo(name).max == np.finfo(name).max
        assert jt.finfo(getattr(jt, name)).tiny == np.finfo(name).tiny
    assert (jt.iinfo("int8").min, jt.iinfo(jt.int64).max) == (-128, 2**63 - 1)
    with pytest.raises(TypeError, match="not a float dtype"):
        jt.finfo("int32")
    got = []
    jt.fetch(1, jt.array([1, 2]) * 2, lambda k, v: got.append((k, v)))
    assert got[0][0] == 1 and isinstance(got[0][1], np.ndarray) and got[0][1].tolist() == [2, 4]


def test_jittor_shape_and_operator_rules():
    a = jt.array(np.array([0, 1, 0, 1], bool))
    b = jt.array(np.array([0, 1, 1, 0], bool))
    np.testing.assert_array_equal((a - b).numpy(), [False, False, True, True])   # Jittor: xor
    assert jt.array([]).reshape(0, -1).shape == (0, 0)
    assert jt.transpose(jt.ones(5, 3), (0, 1)).shape == (5, 3)      # a permutation
    assert jt.transpose(jt.ones(5, 3), 0, 1).shape == (3, 5)        # two dims: a swap
    assert jt.ones(4, 5, 6).fuse_transpose((1, 2, 0)).shape == (5, 6, 4)
    x = jt.array(np.arange(3.0).reshape(3, 1))
    np.testing.assert_array_equal(jt.broadcast(x, [3]).numpy(), np.broadcast_to(x.numpy(), (3, 3)))
    np.testing.assert_array_equal(x.broadcast_var(jt.ones(2, 1, 4)).numpy(),
                                  np.broadcast_to(x.numpy(), (2, 3, 4)))
    assert x.sync(True, False) is x


def test_liveness_counts_follow_the_graph():
    import gc
    gc.collect()
    base = jt.liveness_info()
    x = jt.random([2, 3])
    assert x.peek() == "float32[2,3,]"
    assert jt.number_of_hold_vars() == base["hold_vars"] + 1
    y = (x * 2).exp()                        # pending: x held, y held, two ops
    info = jt.liveness_info()
    assert info["hold_vars"] == base["hold_vars"] + 2 and info["lived_ops"] >= base["lived_ops"] + 2
    del x, y
    assert jt.liveness_info() == base
    # a training loop leaks nothing: the counts repeat from step to step
    model = jt.nn.Sequential(jt.nn.Linear(4, 8), jt.nn.ReLU(), jt.nn.Linear(8, 1))
    opt = jt.optim.SGD(model.parameters(), 0.1, momentum=0.9)
    data = jt.array(np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32))
    seen = []
    for _ in range(5):
        loss = (model(data) ** 2).mean()
        opt.step(loss)
        seen.append(jt.liveness_info())
    assert seen[2] == seen[3] == seen[4]
    with pytest.raises(TypeError, match="only float vars have gradients"):
        jt.grad(loss, jt.array([1, 2]))
    with pytest.raises(TypeError, match="only a float output"):
        jt.grad(jt.array([1, 2]) * 2, data)


def test_optimizer_group_grads_and_opt_grad():
    a = jt.ones(2)
    opt = jt.optim.SGD([a], 0.1)
    assert opt.param_groups[0]["grads"][0].numpy().tolist() == [0.0, 0.0]
    opt.backward(a * a)
    np.testing.assert_allclose(a.opt_grad(opt).numpy(), [2.0, 2.0])
    opt.clip_grad_norm(0.01, 2)
    np.testing.assert_allclose(float(opt.param_groups[0]["grads"][0].norm().item()), 0.01, rtol=1e-5)
    assert "grads" not in opt.state_dict()["param_groups"][0]
    with pytest.raises(ValueError, match="not a parameter"):
        opt.find_grad(jt.ones(2))


def test_module_views_and_sequential_functions():
    m = jt.Module()
    m.__setattr__("x", 1)
    assert m.__getattr__("x") == 1
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        m.nope
    m.a, m.b = jt.nn.Linear(2, 2), jt.nn.ReLU()
    m.w = jt.ones(3)
    assert list(m._modules) == ["a", "b"] and m._modules["a"] is m.a
    assert list(m._parameters) == ["w"] and m._parameters["w"] is m.w
    seq = jt.nn.Sequential(lambda x: x + 1, jt.nn.ReLU(), lambda x: x * 2)
    assert seq.keys() == [0, 1, 2] and len(list(seq)) == 3 and len(seq.parameters()) == 0
    np.testing.assert_array_equal(seq(jt.array([-3.0, 1.0])).numpy(), [0.0, 4.0])
    with pytest.raises(TypeError, match="must be a Module or a function"):
        jt.nn.Sequential(3)


def test_setitem_op_is_functional_and_reindex_counts_are_checked():
    a0 = np.arange(6.0)
    a, b = jt.array(a0), jt.array([10.0, 20.0])
    c = a.setitem(slice(2, 4), b)
    np.testing.assert_array_equal(a.numpy(), a0)                   # a unchanged
    np.testing.assert_array_equal(c.numpy(), [0, 1, 10, 20, 4, 5])
    mask = jt.array(np.arange(1.0, 7.0))
    da, db = jt.grad((c * mask).sum(), [a, b])
    np.testing.assert_array_equal(da.numpy(), [1, 2, 0, 0, 5, 6])
    np.testing.assert_array_equal(db.numpy(), [3, 4])
    with pytest.raises(ValueError, match="one per output dim"):
        jt.random([3]).reindex_reduce("add", [3], ["i0", "i0"])
    with pytest.raises(ValueError, match="one per input dim"):
        jt.random([3]).reindex([3], ["i0", "i0"])


def test_base_optimizer_takes_plain_gradient_steps():
    p = jt.array([1.0, 2.0])
    opt = jt.optim.Optimizer([p], 0.25)
    opt.step((p * p).sum())
    np.testing.assert_allclose(p.numpy(), [0.5, 1.0])


def test_broadcast_with_new_dims_keeps_x_sizes_and_index_var():
    a = jt.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    rows = jt.array([1, 2]).broadcast([1, 3], dims=[1])        # 1: x's size (2)
    assert rows.numpy().tolist() == [[1, 1, 1], [2, 2, 2]]
    cols = rows.index_var(1)
    assert cols.numpy().tolist() == [[0, 1, 2], [0, 1, 2]]
    assert a.reindex_var([rows, cols]).numpy().tolist() == [[4, 5, 6], [7, 8, 9]]
    i0, i1 = a.index_var()
    assert i0.numpy().tolist() == [[0, 0, 0], [1, 1, 1], [2, 2, 2]] and i1.shape == (3, 3)


def test_torch_imports_after_kiln_without_a_fix():
    """jt.dirty_fix_pytorch_runtime_error is a documented no-op: kiln's
    libraries are loaded locally, so torch imports and runs next to it."""
    import subprocess
    import sys
    code = ("import kiln as jt; assert jt.dirty_fix_pytorch_runtime_error() is None; "
            "import torch; import numpy as np; "
            "a = np.arange(6.0).reshape(2, 3); "
            "assert np.allclose(torch.tensor(a).exp().numpy(), jt.array(a).exp().numpy())")
    try:
        import torch  # noqa: F401
    except ImportError:
        pytest.skip("torch is not installed")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_searchsorted_unique_normal_and_plateau_scheduler():
    s = jt.array([[1, 3, 5, 7, 9], [2, 4, 6, 8, 10]])
    v = jt.array([[3, 6, 9], [3, 6, 9]])
    for right in (False, True):
        want = [np.searchsorted(s.numpy()[i], v.numpy()[i], side="right" if right else "left")
                for i in range(2)]
        np.testing.assert_array_equal(jt.searchsorted(s, v, right=right).numpy(), want)
    np.testing.assert_array_equal(jt.searchsorted(jt.array([1, 3, 5, 7, 9]), v).numpy(),
                                  [[1, 3, 4], [1, 3, 4]])
    a = np.array([[1, 3], [2, 3], [1, 3], [2, 3]])
    vals, inv, cnt = jt.unique(jt.array(a), True, True, 0)
    wv, wi, wc = np.unique(a, return_inverse=True, return_counts=True, axis=0)
    np.testing.assert_array_equal(vals.numpy(), wv)
    np.testing.assert_array_equal(inv.numpy(), wi.reshape(-1))
    np.testing.assert_array_equal(cnt.numpy(), wc)
    np.testing.assert_array_equal(jt.unique(jt.array([3, 1, 3, 2])).numpy(), [1, 2, 3])
    jt.set_seed(1)
    r = jt.normal(1.0, 0.1, (200, 200)).numpy()
    assert abs(r.mean() - 1.0) < 0.01 and abs(r.std() - 0.1) < 0.01
    r = jt.normal(jt.arange(1, 1001), 1)
    assert r.dtype == "float32" and abs(float((r - jt.arange(1, 1001)).mean().item())) < 0.2
    with pytest.raises(ValueError, match="give size"):
        jt.normal(0.0, 1.0)
    p = jt.array([1.0])
    opt = jt.optim.SGD([p], 1.0)
    sched = jt.lr_scheduler.ReduceLROnPlateau(opt, patience=2, factor=0.5)
    for metric in (5, 4, 4, 4, 4, 3, 3, 3, 3):
        sched.step(metric)
    # no improvement for 3 steps after 4, then again after 3: halved twice
    assert opt.lr == 0.25


def test_misc_diagonal_against_numpy():
    x0 = np.arange(4 * 5 * 6, dtype=np.float64).reshape(4, 5, 6)
    x = jt.array(x0)
    for off, d1, d2 in ((0, 1, 2), (-1, 1, 2), (2, 0, 2), (-3, 2, 0), (-9, 1, 2)):
        np.testing.assert_array_equal(jt.misc.diagonal(x, off, dim1=d1, dim2=d2).numpy(),
                                      np.diagonal(x0, off, d1, d2))
    g = jt.grad(jt.misc.diagonal(x, 1, 1, 2).sum(), x).numpy()
    want = np.zeros_like(x0)
    for i in range(4):
        for k in range(5):
            if k + 1 < 6:
                want[i, k, k + 1] = 1
    np.testing.assert_array_equal(g, want)
    with pytest.raises(ValueError, match="both"):
        jt.misc.diagonal(x, 0, 1, 1)


def test_print_var_slice_describes_the_index_as_read():
    def described(index):
        with jt.log_capture_scope() as logs:
            jt.core._print_var_slice(index)
        return logs[0]["msg"]
    assert described(3) == "[3,]"
    assert described((slice(None), slice(1, None, 2), None, ...)) == "[::,1::2,-,...,]"
    assert described(([[0], [1]], -2, np.array([True, False]))) == "[int32[2,1,],-2,bool[2,],]"
    assert described((jt.array(np.arange(3, dtype="int64")), 0)) == "[int64[3,],0,]"
    with pytest.raises(IndexError):
        jt.core._print_var_slice(1.5)


def test_uncertain_shape_of_dynamic_results_is_known():
    a, = jt.where(jt.array([0, 1, 0, 1]))
    assert a.uncertain_shape == [2] and a.numpy().tolist() == [1, 3]
    b = jt.code([-5], "int32", [], cpu_src="out0->set_shape({3}); for (int i=0;i<3;i++) @out0(i)=i;")
    assert b.uncertain_shape == [3]


def _var_lines(name):
    return [n for n in jt.dump_all_graphs().nodes_info if n.startswith("Var") and f",{name}," in n]


def test_dump_all_graphs_lists_every_var_with_its_op():
    jt.clean()
    x = jt.array(np.ones((2, 3), np.float32)).name("x")
    y = (x * 2).exp().name("y")
    graphs = jt.dump_all_graphs()
    ys = [k for k, n in enumerate(graphs.nodes_info) if ",y," in n]
    assert len(ys) == 1 and graphs.nodes_info[ys[0]].endswith(",0)[2,3,]")       # pending: no bytes
    assert ":s0:b0," in graphs.nodes_info[ys[0]]
    op = graphs.inputs[ys[0]][0]
    assert graphs.nodes_info[op].startswith("Op(") and "exp->" in graphs.nodes_info[op]
    (line,) = _var_lines("x")
    assert line.startswith(f"Var({x._id}:1:1:i0:o1:s1:b24,float32,x,")   # held once, read by one op
    y.sync()
    (line,) = _var_lines("y")
    assert ":s1:b24,float32,y," in line and line.endswith(")[2,3,]") and not line.endswith(",0)[2,3,]")
    del x, y
    jt.gc()
    assert not _var_lines("x") and not _var_lines("y")


def test_dump_shows_names_given_and_shared_buffers():
    jt.clean()
    a = jt.random((3, 4)).name("a")
    b = a.reshape(12).name("b")
    b.mean().sync()
    a = (a + 1).name("new_a")     # the first a lives on as b's input, with its name
    a.sync()
    buffers = {}
    for n in jt.dump_all_graphs().nodes_info:
        if n.startswith("Var"):
            fields = n.split(")")[0].split(",")
            buffers[fields[-2]] = fields[-1]
    assert buffers["a"] == buffers["b"] != "0"       # a reshape is a view of its input
    assert buffers["new_a"] not in ("0", buffers["a"])


def test_stop_fuse_stores_the_var_for_its_consumers():
    x = jt.array(np.arange(6, dtype=np.float32))
    before = jt.counters()["kernels_launched"]
    fused = ((x * 2) + 1).sum()
    fused.sync()
    one = jt.counters()["kernels_launched"] - before
    mid = (x * 2).stop_fuse().name("mid")
    split = (mid + 1).sum()
    split.sync()
    assert jt.counters()["kernels_launched"] - before - one == one + 1
    assert split.item() == fused.item() == 36.0
    (line,) = _var_lines("mid")
    assert ":s1:b24," in line


def test_ternary_out_hint_is_where_with_the_condition_stored():
    r = np.random.default_rng(3)
    a, b = (jt.array(r.random(8).astype(np.float32)) for _ in range(2))
    jt.clean()
    c = jt.ternary_out_hint(a < b, a, b)
    np.testing.assert_array_equal(c.numpy(), np.where(a.numpy() < b.numpy(), a.numpy(), b.numpy()))
    da, db = jt.grad(c.sum(), [a, b])
    np.testing.assert_array_equal(da.numpy(), (a.numpy() < b.numpy()).astype(np.float32))
    np.testing.assert_array_equal(da.numpy() + db.numpy(), np.ones(8, np.float32))
    def masks():
        return [n for n in jt.dump_all_graphs().nodes_info if n.startswith("Var") and ",bool," in n]
    (line,) = masks()
    assert ":s1:b8," in line                             # stored, 1 byte per element
    del c, da, db
    jt.gc()
    assert not masks()
    with jt.no_grad():                                   # no backward: nothing to store
        d = jt.ternary_out_hint((a > b).out_hint(), a, 0.0)
        d.sync()
    assert all(n.endswith(",0)[8,]") for n in masks())


def _grid_reference(x, nrow, padding, pad_value):
    n, c, h, w = x.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    out = np.full((c, rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value, x.dtype)
    for k in range(n):
        y0 = padding + (k // cols) * (h + padding)
        x0 = padding + (k % cols) * (w + padding)
        out[:, y0:y0 + h, x0:x0 + w] = x[k]
    return out


def test_make_grid_tiles_images_like_torchvision():
    x = np.random.default_rng(4).random((5, 3, 4, 6)).astype(np.float32)
    for nrow, padding, pad_value in ((3, 2, 0.0), (8, 0, 0.5), (2, 1, 1.0)):
        got = jt.make_grid(jt.array(x), nrow=nrow, padding=padding, pad_value=pad_value)
        np.testing.assert_array_equal(got.numpy(), _grid_reference(x, nrow, padding, pad_value))
    gray = x[:, :1]
    np.testing.assert_array_equal(jt.misc.make_grid(jt.array(gray), nrow=5).numpy(),
                                  _grid_reference(np.repeat(gray, 3, 1), 5, 2, 0.0))
    norm = jt.make_grid(jt.array(x * 4 - 1), normalize=True, padding=0, nrow=5).numpy()
    assert abs(norm.min()) < 1e-6 and abs(norm.max() - 1) < 1e-6
    ranged = jt.make_grid(jt.array(x), normalize=True, range=(0, 2), padding=0, nrow=5).numpy()
    np.testing.assert_allclose(ranged, _grid_reference(x, 5, 0, 0.0) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="expected images"):
        jt.make_grid(jt.zeros((1, 1, 1, 1, 1)))
