"""The CUDA renderer's kernels, run (src/backend/cuda/emulate.c): on the
"cuda-emulate" device the CUDA source NVRTC compiles is compiled for the
host, each block an OpenMP team of 256 threads, so its indexing, warp
reductions, block splits and atomics are checked against the CPU backend
(and NumPy) on a machine without a GPU. Launches use at most 8 blocks, so
each reduction form is reached by the shapes below: a thread per output
(many outputs or short ranges), a block per output, and several blocks per
output combined by the last to finish."""
import numpy as np
import pytest

import kiln as jt
from kiln import _C
from ktest import on_device


@pytest.fixture
def emulated():
    before = _C.device()
    _C.set_device("cuda-emulate")
    yield
    _C.set_device(before)


def same(fn, *arrays, rtol=1e-5, atol=1e-6):
    """fn on the emulated GPU gives the CPU backend's values."""
    want, got = on_device("cpu", fn, *arrays), on_device("cuda-emulate", fn, *arrays)
    for w, g in zip(want, got):
        assert g.dtype == w.dtype and g.shape == w.shape
        if w.dtype.kind in "biu":
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol)


r = np.random.default_rng(0)


def test_vars_live_on_the_emulated_device(emulated):
    x = jt.array(np.arange(6, dtype=np.float32))
    assert _C.device() == "cuda-emulate"
    np.testing.assert_array_equal((x * 2).numpy(), np.arange(6) * 2)


def test_elementwise_with_and_without_loop_indexes():
    a = r.standard_normal((37, 29)).astype(np.float32)
    same(lambda x: ((x * 2 + 1).exp() * x, x.transpose() + 1, x[::3, 2:20].sigmoid(), x[:, None, :] * x[None, :5]), a)


@pytest.mark.parametrize("shape,dims", [
    ((10000,), None),        # one output: blocks split the range
    ((3, 4000), 1),          # few outputs: blocks split each
    ((100, 300), 1),         # a block per output
    ((600, 40), 1),          # many outputs: a thread each
    ((50, 20), 1),           # short rows: a thread each
    ((300, 70), 0),          # columns
    ((6, 50, 30), (0, 2)),   # reduced dims apart
])
@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "prod"])
def test_reductions_in_every_form(shape, dims, op):
    a = r.uniform(0.9, 1.1, shape).astype(np.float32)
    same(lambda x: getattr(x, op)() if dims is None else getattr(x, op)(dims), a, rtol=1e-5)


def test_empty_reductions():
    same(lambda x: (x.sum(1), x.mean(0)), np.zeros((0, 100), np.float32))   # no outputs (a kernel of no blocks' work)
    same(lambda x: (x.sum(1), x.prod(1)), np.zeros((3, 0), np.float32))      # empty ranges: the identities


def test_reductions_of_other_dtypes_and_nan():
    a = r.integers(-5, 6, (40, 300)).astype(np.int32)
    same(lambda x: (x.sum(1), x.max(0), (x > 0).any(1), (x > -4).all(), x.int64().sum()), a)
    b = r.standard_normal((8, 500)).astype(np.float64)
    b[3, 7] = np.nan
    same(lambda x: (x.max(1), x.min(), x.sum(1), x.argmax(1)[0]), b)


def test_softmax_kernel_rows_and_columns():
    a = r.standard_normal((7, 300, 3)).astype(np.float32)
    a[2, 5, 1] = np.nan                                   # that column is NaN, as on the CPU
    same(lambda x: (jt.nn.softmax(x, 1), jt.nn.log_softmax(x, 2), jt.nn.softmax(x.reshape(63, 100), 1)), a,
         rtol=1e-5, atol=1e-7)


def test_layer_norm_kernel():
    """Layer norm's own kernel (no_grad): a block per row, with and without
    the weight and bias, rows longer and shorter than a block."""
    a = (r.standard_normal((5, 700)) * 2 + 1).astype(np.float32)
    w, b = r.standard_normal(700).astype(np.float32), r.standard_normal(700).astype(np.float32)

    def norms(x, w, b):
        with jt.no_grad():
            return (jt.nn.layer_norm(x, 700, w, b), jt.nn.layer_norm(x, 700, w),
                    jt.nn.layer_norm(x.reshape(50, 70), 70))
    same(norms, a, w, b, rtol=1e-5, atol=1e-5)


def test_arg_reductions_ties_nan_and_windows():
    a = r.integers(0, 3, (30, 4, 6)).astype(np.float32)     # ties everywhere
    a[2, 1, 3] = a[5, 0, 0] = np.nan
    same(lambda x: (jt.reduce(x, "argmax", 2), jt.reduce(x, "argmin", (0, 2)), jt.reduce(x.int32(), "argmax", 0)), a)
    img = r.standard_normal((2, 3, 8, 8)).astype(np.float32)
    same(lambda x: jt.grad((jt.nn.max_pool2d(x, 2) * x[:, :, :4, :4]).sum(), x), img)   # the pool's argmax and gather


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "float16"])
@pytest.mark.parametrize("op", ["add", "multiply", "maximum", "minimum"])
def test_scatters_atomic_partial_and_disjoint(dtype, op):
    a = r.uniform(0.5, 1.5, (12, 5, 40)).astype(dtype) if "float" in dtype else r.integers(1, 3, (12, 5, 40)).astype(dtype)
    # a float16 target rounds after every update, in whichever order they land
    rtol, atol = (2e-2, 2e-3) if dtype == "float16" else (1e-5, 1e-6)
    same(lambda x: (x.reshape(2400).reindex_reduce(op, [7], ["i0 % 7"]),      # atomic
                    x.reindex_reduce(op, [3, 40], ["i0 % 3", "i2"]),            # parallel over i2
                    x.reindex_reduce(op, [12, 5], ["i0", "i1"])), a, rtol=rtol, atol=atol)  # disjoint


def test_scatter_of_bools_and_small_ints():
    a = r.random((30, 8)) < 0.5
    same(lambda x: (x.reshape(240).reindex_reduce("add", [5], ["i0 % 5"]),
                    x.int8().reshape(240).reindex_reduce("maximum", [5], ["i0 % 5"])), a)


def test_gathers_index_checks_and_setitem(emulated):
    x = jt.array(np.arange(20, dtype=np.float32))
    np.testing.assert_array_equal(x[jt.array([3, 19, 0])].numpy(), [3, 19, 0])
    with pytest.raises(IndexError):
        x[jt.array([1, 25])].numpy()
    y = jt.zeros(10)
    y[2:5] = 7.0
    np.testing.assert_array_equal(y.numpy(), [0, 0, 7, 7, 7, 0, 0, 0, 0, 0])


def test_random_numbers_match_the_cpu():
    def draw():
        jt.set_global_seed(11)
        return [jt.rand(500), jt.randn(300, dtype="float64")]
    same(lambda: draw())


def test_half_precision_and_bfloat16():
    a = r.standard_normal((64, 33)).astype(np.float32)
    same(lambda x: (x.float16() * 3, (x.float16() + 1).sum(1), x.bfloat16().exp(), x.bfloat16().max(0)), a,
         rtol=1e-2, atol=1e-2)


def test_a_training_step_matches_the_cpu():
    w0 = r.standard_normal((20, 6)).astype(np.float32)
    xs = r.standard_normal((32, 20)).astype(np.float32)

    def step(w, x):
        loss = jt.nn.cross_entropy_loss(x @ w, jt.array(np.arange(32) % 6))
        return [loss, jt.grad(loss, w)]
    same(step, w0, xs, rtol=1e-4, atol=1e-5)


def test_code_ops_run_on_the_host_with_the_devices_data(emulated):
    """jt.code's C source runs on the host: inputs come through host copies,
    outputs go back to the device, and device kernels use them (and the
    gradient kernel) as usual."""
    a = np.arange(6, dtype=np.float32)
    x = jt.array(a)
    y = jt.code(x.shape, x.dtype, [x], cpu_src="for (int i = 0; i < in0_shape0; i++) @out(i) = @in0(i) * @in0(i);",
                cpu_grad_src=["for (int i = 0; i < in0_shape0; i++) @out(i) = @dout(i) * @in0(i) * 2;"])
    np.testing.assert_array_equal((y + 1).numpy(), a * a + 1)
    np.testing.assert_array_equal(jt.grad(y.sum(), x).numpy(), 2 * a)


@pytest.mark.parametrize("shape,dims", [
    ((10000,), 0),           # one output: blocks split the range
    ((3, 4000), 1),          # few outputs: blocks split each
    ((100, 300), 1),         # a block per output
    ((600, 40), 1),          # many outputs: a thread each
    ((300, 70), 0),          # columns
    ((6, 50, 30), (0, 2)),   # a batch norm's: reduced dims apart
])
def test_sibling_sums_in_every_form(shape, dims):
    """A sum and a sum of squares synced together are one kernel with two
    outputs (src/opt/siblings.c) in each reduction form, as on the CPU."""
    a = r.uniform(2, 4, shape).astype(np.float32)
    got = {}
    for device in ("cpu", "cuda-emulate"):
        before = _C.device()
        _C.set_device(device)
        try:
            x = jt.array(a)
            sums = [x.sum(dims), (x * x).sum(dims)]
            launched = jt.counters()["kernels_launched"]
            jt.sync(sums)
            assert jt.counters()["kernels_launched"] - launched == 1, device
            got[device] = [s.numpy() for s in sums]
        finally:
            _C.set_device(before)
    a64 = a.astype(np.float64)
    for g in got.values():
        np.testing.assert_allclose(g[0], a64.sum(dims), rtol=1e-6)
        np.testing.assert_allclose(g[1], (a64 * a64).sum(dims), rtol=1e-6)


@pytest.mark.parametrize("shape", [(5000,), (37, 29)])
def test_map_siblings_share_a_loop(shape):
    """An optimiser's step (a new momentum, and the parameter reading it)
    synced together is one kernel with two outputs, as on the CPU."""
    p0, g0, m0 = (r.standard_normal(shape).astype(np.float32) for _ in range(3))
    for device in ("cpu", "cuda-emulate"):
        before = _C.device()
        _C.set_device(device)
        try:
            p, g, m = jt.array(p0), jt.array(g0), jt.array(m0)
            m2 = m * 0.9 + g
            p2 = p - m2 * 0.01
            launched = jt.counters()["kernels_launched"]
            jt.sync([p2, m2])
            assert jt.counters()["kernels_launched"] - launched == 1, device
            want_m = m0 * np.float32(0.9) + g0
            np.testing.assert_allclose(m2.numpy(), want_m, rtol=1e-6, atol=1e-6)   # fma or not
            np.testing.assert_allclose(p2.numpy(), p0 - want_m * np.float32(0.01), rtol=1e-6, atol=1e-6)
        finally:
            _C.set_device(before)


def test_grouped_launches_run_the_cuda_group_form():
    """Updates of several parameters of one structure (any sizes, one over
    the 8 blocks' reach and one of a single element) launch as one kernel,
    the CUDA group form (a grid-stride loop over the members' elements end
    to end, each element's member found by a binary search), with each
    member's own scalars; the values are the CPU's."""
    shapes = [(3000,), (7, 5), (1,), (40, 33, 2)]
    params = [r.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [r.standard_normal(s).astype(np.float32) for s in shapes]
    results = {}
    for device in ("cpu", "cuda-emulate"):
        before = _C.device()
        _C.set_device(device)
        try:
            ps, gs = [jt.array(p) for p in params], [jt.array(g) for g in grads]
            new = [p - g * (0.01 * (i + 1)) for i, (p, g) in enumerate(zip(ps, gs))]
            launched, grouped = jt.counters()["kernels_launched"], jt.counters()["launches_grouped"]
            jt.sync(new)
            assert jt.counters()["kernels_launched"] - launched == 1, device
            assert jt.counters()["launches_grouped"] - grouped == len(shapes), device
            results[device] = [n.numpy() for n in new]
        finally:
            _C.set_device(before)
    for i, (p, g) in enumerate(zip(params, grads)):
        want = p - g * np.float32(0.01 * (i + 1))
        np.testing.assert_allclose(results["cpu"][i], want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(results["cuda-emulate"][i], want, rtol=1e-6, atol=1e-6)
