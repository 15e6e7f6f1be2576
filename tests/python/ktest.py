"""Shared helpers of kiln's Python tests: random shapes and data, comparison
with NumPy, and central-difference gradient checks."""
import numpy as np

import kiln as jt


def rng(seed=0):
    return np.random.default_rng(seed)


def data(r, shape, low=-2.0, high=2.0, dtype="float64"):
    """Random values of a shape; ints in [low, high) for integer dtypes."""
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        return r.integers(int(low), int(high), size=shape).astype(dt)
    if dt.kind == "b":
        return r.random(shape) < 0.5
    return r.uniform(low, high, size=shape).astype(dt)


def check(var, expected, rtol=1e-6, atol=1e-8, dtype=None):
    """var matches expected in shape, values (and dtype when given)."""
    assert isinstance(var, jt.Var), f"expected a Var, got {type(var).__name__}"
    got = var.numpy()
    expected = np.asarray(expected)
    assert got.shape == expected.shape, f"shape {got.shape} != expected {expected.shape}"
    if dtype is not None:
        assert var.dtype == dtype, f"dtype {var.dtype} != expected {dtype}"
    if expected.dtype.kind in "biu" and got.dtype.kind in "biu":
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64),
                                   rtol=rtol, atol=atol, equal_nan=True)


def numeric_grads(loss_of, arrays, eps=1e-6):
    """Central differences of the scalar loss_of(list of arrays) for each array."""
    grads = []
    for k, a in enumerate(arrays):
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            plus = [b.copy() for b in arrays]
            minus = [b.copy() for b in arrays]
            plus[k][i] += eps
            minus[k][i] -= eps
            g[i] = (loss_of(plus) - loss_of(minus)) / (2 * eps)
        grads.append(g)
    return grads


def check_grad(f, *arrays, eps=1e-6, rtol=1e-5, atol=1e-7, seed=1):
    """jt.grad of sum(f(*vars) * w) (w random, fixed) against central
    differences, in float64, with respect to every input."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    out_shape = f(*[jt.array(a) for a in arrays]).shape
    w = rng(seed).uniform(0.5, 1.5, size=out_shape)

    def loss_of(arrs):
        return float((f(*[jt.array(a) for a in arrs]) * jt.array(w)).sum().item())

    xs = [jt.array(a) for a in arrays]
    loss = (f(*xs) * jt.array(w)).sum()
    analytic = jt.grad(loss, xs)
    numeric = numeric_grads(loss_of, arrays, eps)
    for k, (ga, gn) in enumerate(zip(analytic, numeric)):
        assert ga.shape == arrays[k].shape, f"grad {k}: shape {ga.shape} != {arrays[k].shape}"
        np.testing.assert_allclose(ga.numpy(), gn, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {k}")


def on_device(device, fn, *arrays):
    """fn of the arrays as Vars made on device ("cpu", "cuda", "cuda-emulate"),
    its result (a Var or a list of them) read back with numpy()."""
    from kiln import _C
    before = _C.device()
    _C.set_device(device)
    try:
        out = fn(*[jt.array(a) for a in arrays])
        return [o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]
    finally:
        _C.set_device(before)


def cuda_device_missing():
    """Why there is no CUDA device to run on (None: there is one)."""
    from kiln import _C
    before = _C.device()
    try:
        jt.flags.use_cuda = 1
    except RuntimeError as e:
        return str(e)
    finally:
        _C.set_device(before)
    return None
