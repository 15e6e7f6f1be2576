"""The CUDA backend on a GPU (src/backend/cuda/device.c): each kernel form
against NumPy (float64), on the device. Skipped without one; run first by
scripts/gpu_check.sh, where a failure here explains the later ones."""
import numpy as np
import pytest

import kiln as jt
from kiln import _C
from ktest import cuda_device_missing, on_device

NO_DEVICE = cuda_device_missing()
pytestmark = pytest.mark.skipif(NO_DEVICE is not None, reason=f"no CUDA device: {NO_DEVICE}")


@pytest.fixture
def on_gpu():
    before = _C.device()
    jt.flags.use_cuda = 1
    yield
    _C.set_device(before)


def close(var, want, rtol=1e-6, atol=1e-6):
    np.testing.assert_allclose(var.numpy().astype(np.float64), np.asarray(want, np.float64), rtol=rtol, atol=atol)


def test_vars_live_on_the_device_and_round_trip(on_gpu):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = jt.array(a)
    assert jt.flags.use_cuda == 1
    np.testing.assert_array_equal(x.numpy(), a)


def test_copies_through_the_staging_slots_keep_their_values(on_gpu):
    # more copies than slots, each queued behind kernels still running, so a
    # slot refilled before its copy was read would show; the last one is
    # larger than a slot may be (from pageable memory)
    r = np.random.default_rng(3)
    arrays = [r.standard_normal(n).astype(np.float32) for n in (10, 300000, 5, 2000000, 17, 70, 999, 1 << 16)]
    arrays.append(r.standard_normal(20_000_000).astype(np.float32))
    w = jt.array(r.standard_normal((4096, 4096)).astype(np.float32))
    sums = []
    for a in arrays:
        busy = (w @ w).sum()
        busy.sync()           # queued, not waited for: the copy below goes in behind it
        x = jt.array(a)
        sums.append(((x * 2).exp() * 0 + x).sum())
        sums[-1].sync()
    for a, s in zip(arrays, sums):
        np.testing.assert_allclose(s.item(), a.astype(np.float64).sum(), rtol=1e-4, atol=1e-3)


def test_elementwise_chain(on_gpu):
    r = np.random.default_rng(0)
    a = r.standard_normal((1000, 37)).astype(np.float32)
    x = jt.array(a)
    close((x * 2 + 1).exp() * x, (np.exp(a.astype(np.float64) * 2 + 1) * a), rtol=1e-5)
    close(x[::3, 5:20].sigmoid(), 1 / (1 + np.exp(-a[::3, 5:20].astype(np.float64))), rtol=1e-5)


@pytest.mark.parametrize("shape,dims", [((4096, 4096), 1), ((4096, 4096), 0), ((1 << 22,), 0), ((7, 3, 50), (0, 2)),
                                        ((100000, 3), 0), ((3, 100000), 1)])
@pytest.mark.parametrize("op", ["sum", "max", "min", "mean"])
def test_reductions_by_thread_block_and_split_blocks(on_gpu, shape, dims, op):
    r = np.random.default_rng(1)
    a = r.standard_normal(shape).astype(np.float32)
    got = getattr(jt.array(a), op)(dims)
    want = getattr(a.astype(np.float64), op)(axis=dims)
    close(got, want, rtol=1e-5, atol=1e-4)
    # deterministic: the same sum twice is bitwise the same
    np.testing.assert_array_equal(got.numpy(), getattr(jt.array(a), op)(dims).numpy())


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "float16", "bool"])
@pytest.mark.parametrize("op", ["add", "maximum", "minimum", "multiply"])
def test_scatters_atomic_and_disjoint(on_gpu, dtype, op):
    r = np.random.default_rng(2)
    a = (r.random(3000) * 3).astype(dtype) if dtype != "bool" else r.random(3000) < 0.5
    x = jt.array(a)
    got = x.reindex_reduce(op, [7], ["i0 % 7"])
    fold = {"add": np.add, "maximum": np.maximum, "minimum": np.minimum, "multiply": np.multiply}[op]
    want = fold.reduce(a.astype(np.float64).reshape(-1, 7), axis=0) if op != "multiply" else None
    if want is not None and dtype != "bool":
        close(got, want, rtol=2e-3 if dtype == "float16" else 1e-6, atol=1e-3)


def test_index_errors_are_reported_from_the_device(on_gpu):
    x = jt.array(np.arange(10, dtype=np.float32))
    with pytest.raises(IndexError):
        x[jt.array([1, 12])].numpy()
    np.testing.assert_array_equal(x[jt.array([1, 9])].numpy(), [1, 9])  # and the next kernel is fine


def test_random_numbers_match_the_cpu():
    """Philox, the same helpers on both backends: a seed draws the same numbers."""
    jt.flags.use_cuda = 0
    jt.set_global_seed(5)
    cpu = jt.rand(1000).numpy()
    jt.flags.use_cuda = 1
    try:
        jt.set_global_seed(5)
        gpu = jt.rand(1000).numpy()
    finally:
        jt.flags.use_cuda = 0
    np.testing.assert_array_equal(cpu, gpu)


def test_training_step_matches_the_cpu():
    r = np.random.default_rng(3)
    w0 = r.standard_normal((20, 5)).astype(np.float32)
    xs = r.standard_normal((64, 20)).astype(np.float32)
    results = []
    for cuda in (0, 1):
        jt.flags.use_cuda = cuda
        try:
            w = jt.array(w0)
            loss = (jt.array(xs) @ w).relu().sum()
            g = jt.grad(loss, w)
            results.append(g.numpy())
        finally:
            jt.flags.use_cuda = 0
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-4)


def test_memory_is_counted_and_trimmed(on_gpu):
    x = jt.array(np.ones((1024, 1024), np.float32))
    (x * 2).numpy()
    c = jt.counters()
    assert c["bytes_in_use"] >= 4 << 20
    del x
    jt.gc()


@pytest.mark.parametrize("ta,tb", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_matrix_products_run_with_cublas(ta, tb):
    r = np.random.default_rng(4)
    a = r.standard_normal((3, 40, 70) if not ta else (3, 70, 40)).astype(np.float32)
    b = r.standard_normal((70, 50) if not tb else (50, 70)).astype(np.float32)
    calls = jt.counters()["library_calls"]

    def prod(x, y):
        return (x.transpose(0, 2, 1) if ta else x) @ (y.transpose() if tb else y)
    gpu = on_device("cuda", prod, a, b)[0]
    assert jt.counters()["library_calls"] > calls  # cuBLAS, not a generated kernel
    want = np.matmul(a.transpose(0, 2, 1) if ta else a, b.T if tb else b)
    np.testing.assert_allclose(gpu, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("groups,stride,padding,dilation", [(1, 1, 1, 1), (2, 2, 0, 1), (4, 1, 2, 2)])
def test_convolutions_and_their_gradients_run_with_cudnn(groups, stride, padding, dilation):
    r = np.random.default_rng(5)
    x = r.standard_normal((2, 8, 13, 11)).astype(np.float32)
    w = r.standard_normal((12, 8 // groups, 3, 3)).astype(np.float32)

    def conv_and_grads(xv, wv):
        y = jt.nn.conv2d(xv, wv, stride=stride, padding=padding, dilation=dilation, groups=groups)
        gx, gw = jt.grad((y * y).sum(), [xv, wv])
        return [y, gx, gw]
    calls = jt.counters()["library_calls"]
    gpu = on_device("cuda", conv_and_grads, x, w)
    assert jt.counters()["library_calls"] >= calls + 3  # forward, backward data, backward weights
    cpu = on_device("cpu", conv_and_grads, x, w)
    for g, c in zip(gpu, cpu):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-3)
