"""Autograd: every differentiable op against central differences in float64,
second order, backward()/.grad, no_grad/stop_grad, and the fused kernel count."""
import numpy as np
import pytest

import kiln as jt
from ktest import check, check_grad, data, rng

UNARY_DOMAINS = {
    "neg": (-2, 2), "abs": (0.2, 2), "exp": (-2, 2), "log": (0.2, 3), "sqrt": (0.2, 3),
    "rsqrt": (0.2, 3), "sin": (-3, 3), "cos": (-3, 3), "tan": (-1.2, 1.2), "asin": (-0.8, 0.8),
    "acos": (-0.8, 0.8), "atan": (-3, 3), "sinh": (-2, 2), "cosh": (-2, 2), "tanh": (-2, 2),
    "asinh": (-2, 2), "acosh": (1.2, 3), "atanh": (-0.8, 0.8), "sigmoid": (-4, 4),
    "erf": (-2, 2), "log2": (0.2, 3), "exp2": (-2, 2), "log1p": (-0.8, 3), "expm1": (-2, 2),
}


@pytest.mark.parametrize("name", sorted(UNARY_DOMAINS))
def test_unary_grad(name):
    lo, hi = UNARY_DOMAINS[name]
    check_grad(getattr(jt, name), data(rng(len(name)), (2, 3), lo, hi))


@pytest.mark.parametrize("name", ["floor", "ceil", "round", "trunc", "sign"])
def test_piecewise_constant_grads_are_zero(name):
    x = jt.array(data(rng(), (5,), 0.1, 0.4))
    check(jt.grad(getattr(jt, name)(x).sum(), x), np.zeros(5))


BINARY_DOMAINS = {
    "add": (-2, 2, -2, 2), "subtract": (-2, 2, -2, 2), "multiply": (-2, 2, -2, 2),
    "divide": (-2, 2, 0.5, 2), "pow": (0.5, 2, -1.5, 1.5), "maximum": (-2, 2, -2, 2),
    "minimum": (-2, 2, -2, 2), "arctan2": (-2, 2, 0.3, 2), "mod": (0.1, 0.9, 1.2, 2),
}


@pytest.mark.parametrize("name", sorted(BINARY_DOMAINS))
@pytest.mark.parametrize("shapes", [((2, 3), (2, 3)), ((3, 4), (4,)), ((2, 1, 3), (3, 1)),
                                    ((), (3,))], ids=repr)
def test_binary_grad(name, shapes):
    la, ha, lb, hb = BINARY_DOMAINS[name]
    r = rng(len(name))
    check_grad(getattr(jt, name), data(r, shapes[0], la, ha), data(r, shapes[1], lb, hb))


def test_elementwise_composites_grad():
    r = rng(1)
    a, b = data(r, (3, 4)), data(r, (3, 4))
    cond = a > 0
    check_grad(lambda x, y: jt.where(jt.array(cond), x, y), a, b)
    check_grad(lambda x: jt.clamp(x, -0.5, 0.7), a)
    check_grad(lambda x: x ** 3, a)
    check_grad(lambda x: x ** -2, data(r, (4,), 0.5, 2))
    check_grad(lambda x: x ** 2.5, data(r, (4,), 0.5, 2))
    check_grad(lambda x: 2 ** x, a)
    check_grad(lambda x: 1 / (1 + jt.exp(-x)), a)
    check_grad(lambda x: x.float64() * 2, a)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "gelu", "silu", "sigmoid", "tanh", "elu",
                                  "softplus", "relu6"])
def test_activation_grad(name):
    a = data(rng(2), (3, 5), -3, 8 if name == "relu6" else 3)
    a[np.abs(a) < 0.05] = 0.3                  # away from kinks
    a[np.abs(a - 6) < 0.05] = 5.5
    check_grad(getattr(jt.nn, name), a)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "prod"])
def test_reduce_grad(name):
    a = data(rng(3), (2, 3, 4), 0.5, 1.5)
    for dims, keep in ((None, False), (1, False), ((0, 2), True), (-1, True)):
        check_grad(lambda x: getattr(x, name)(dims, keepdims=keep), a)


def test_statistics_grad():
    a = data(rng(4), (3, 4))
    check_grad(lambda x: x.var(1), a)
    check_grad(lambda x: x.std(0, unbiased=True), a)
    check_grad(lambda x: x.norm(), a)
    check_grad(lambda x: jt.softmax(x, 1), a)
    check_grad(lambda x: jt.nn.log_softmax(x, 0), a)
    check_grad(lambda x: jt.logsumexp(x, 1), a)
    check_grad(lambda x: x.cumsum(1), a)
    check_grad(lambda x: jt.cumprod(x, 0), data(rng(5), (3, 4), 0.5, 1.5))
    check_grad(lambda x: jt.nn.mse_loss(x, jt.array(a * 0.5)), a)


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 2)), ((4,), (4, 3)), ((3, 4), (4,)), ((4,), (4,)),
                                   ((2, 3, 4), (4, 2)), ((2, 1, 2, 3), (3, 3, 2))], ids=repr)
def test_matmul_grad(sa, sb):
    r = rng(6)
    check_grad(jt.matmul, data(r, sa), data(r, sb))


def test_meta_op_grads():
    r = rng(7)
    a = data(r, (3, 4))
    check_grad(lambda x: x.reindex([2, 3, 2, 2], ["i0+i2", "i1+i3"]), a)
    check_grad(lambda x: x.reindex([5, 6], ["i0-1", "i1-1"], overflow_value=2.0), a)
    idx = jt.array(np.array([2, 0, 2, 1], np.int32))
    check_grad(lambda x: x.reindex([4, 4], ["@e0(i0)", "i1"], extras=[idx]), a)
    check_grad(lambda x: x.reindex_reduce("add", [2, 4], ["i0%2", "i1"]), a)
    check_grad(lambda x: x.reindex_reduce("maximum", [2], ["i1/2"]), a)
    check_grad(lambda x: x.reindex_reduce("minimum", [3], ["i0"]), a)
    check_grad(lambda x: x.reindex_reduce("multiply", [2, 2], ["i0%2", "i1/2"]),
               data(r, (3, 4), 0.5, 1.5))
    check_grad(lambda x: x.broadcast([2, 3, 4]), a)
    check_grad(lambda x: x[:, 1].broadcast([3, 5], [1]), a)
    check_grad(lambda x: x.reduce("add", 0), a)


def test_movement_grads():
    r = rng(8)
    a, b = data(r, (3, 4)), data(r, (2, 4))
    check_grad(lambda x: x.reshape(2, 6), a)
    check_grad(lambda x: x.transpose(), a)
    check_grad(lambda x: x.unsqueeze(1).permute(2, 0, 1), a)
    check_grad(lambda x: x.flatten().squeeze(), a)
    check_grad(lambda x, y: jt.concat([x, y, x], 0), a, b)
    check_grad(lambda x, y: jt.stack([x[:2], y], 1), a, b)
    check_grad(lambda x: x.split(3, 1)[1], a)
    check_grad(lambda x: x.flip(1), a)
    check_grad(lambda x: x.expand(2, 3, 4), a)


def test_indexing_grads():
    r = rng(9)
    a = data(r, (4, 5))
    check_grad(lambda x: x[1:3, ::-2], a)
    check_grad(lambda x: x[None, -1, 2:], a)
    check_grad(lambda x: x[[0, 2, 2], [1, 1, 4]], a)          # duplicates accumulate
    check_grad(lambda x: x[:, [3, 0]], a)
    check_grad(lambda x: x[np.array([True, False, True, True])], a)
    v = data(r, (2, 5))

    def set_rows(x, val):
        y = x * 1
        y[1:3] = val
        return y * x
    check_grad(set_rows, a, v)

    def set_points(x, val):
        y = x + 0
        y[[0, 3], [1, 2]] = val
        return y
    check_grad(set_points, a, data(r, (2,)))


def test_sorting_grads():
    a = data(rng(10), (3, 5))
    check_grad(lambda x: jt.topk(x, 2)[0], a)
    check_grad(lambda x: jt.sort(x, 0)[0], a)
    check_grad(lambda x: x.argmax(1)[1], a)


def test_second_order():
    a = data(rng(11), (5,), -1.5, 1.5)
    x = jt.array(a, requires_grad=True)     # graphs from x stay differentiable after a sync
    y = (x ** 3 + jt.sin(x) * x).sum()
    g = jt.grad(y, x)
    check(g, 3 * a ** 2 + np.cos(a) * a + np.sin(a), rtol=1e-10)
    h = jt.grad(g.sum(), x)
    check(h, 6 * a - np.sin(a) * a + 2 * np.cos(a), rtol=1e-10)
    # mixed second derivatives: d/dw of (d/dx sum(exp(w*x)))
    w = jt.array(np.array([0.5, -0.3, 0.8, 1.1, -0.7]))
    gx = jt.grad(jt.exp(w * x).sum(), x)
    gw = jt.grad((gx * gx).sum(), w)
    e = np.exp(w.numpy() * a)
    gx_np = w.numpy() * e
    check(gw, 2 * gx_np * (e + w.numpy() * a * e), rtol=1e-10)


def test_second_order_without_sync():
    a = data(rng(14), (4,), -1.5, 1.5)
    x = jt.array(a)
    g = jt.grad((jt.exp(x) * x).sum(), x)
    h = jt.grad(g.sum(), x)
    check(h, np.exp(a) * (a + 2), rtol=1e-10)


def test_grad_after_sync_of_the_loss():
    w = jt.array(data(rng(15), (3,)), requires_grad=True)
    h = jt.exp(w) * 2
    loss = (h * w).sum()
    loss.item()                                  # computed: its graph stays because of w
    h.sync()
    check(jt.grad(loss, w), (jt.exp(w) * 2 * (w + 1)).numpy(), rtol=1e-12)
    loss.backward()
    check(w.grad, (jt.exp(w) * 2 * (w + 1)).numpy(), rtol=1e-12)


def test_grad_api_forms():
    x = jt.array([1.0, 2.0])
    y = jt.array([3.0, 4.0])
    loss = (x * y).sum()
    gx = jt.grad(loss, x)
    assert isinstance(gx, jt.Var)
    check(gx, [3.0, 4.0])
    gx, gy = jt.grad(loss, [x, y])
    check(gy, [1.0, 2.0])
    check(jt.grad(loss, (y,))[0], [1.0, 2.0])
    unrelated = jt.array([5.0])
    check(jt.grad(loss, [unrelated])[0], [0.0])
    check(jt.grad(x * y, x), [3.0, 4.0])                 # non-scalar: sum
    check(jt.grad(x * y, x, grad_output=jt.array([1.0, -1.0])), [3.0, -4.0])
    i = jt.array([1, 2])
    with pytest.raises(TypeError, match="only float vars have gradients"):   # Jittor refuses
        jt.grad((x * i).sum(), i)
    with pytest.raises(TypeError):
        jt.grad(loss, [np.zeros(2)])


def test_requires_grad_defaults():
    assert jt.array([1.0]).requires_grad
    assert not jt.array([1]).requires_grad
    x = jt.array([1.0, 2.0])
    d = x.detach()
    assert not d.requires_grad
    s = (x * 2).stop_grad()
    assert not s.requires_grad and s.is_stop_grad()
    check(jt.grad((s * x).sum(), x), [2.0, 4.0])         # no path through s
    check(jt.grad((s * s).sum(), s), [0.0, 0.0])         # stop_grad'ed targets get zeros
    x.requires_grad = False
    check(jt.grad((x * x).sum(), x), [0.0, 0.0])


def test_stop_grad_and_no_grad():
    x = jt.array([1.0, 2.0, 3.0])
    y = (x * x).detach() * x
    check(jt.grad(y.sum(), x), [1.0, 4.0, 9.0])
    check(jt.grad((jt.stop_grad(x * x) * x).sum(), x), [1.0, 4.0, 9.0])
    with jt.no_grad():
        assert not jt.is_grad_enabled()
        t = x * 3
        assert not t.requires_grad
    assert jt.is_grad_enabled()
    check(jt.grad((t * x).sum(), x), [3.0, 6.0, 9.0])

    @jt.no_grad()
    def frozen(v):
        return v * v
    check(jt.grad((frozen(x) + x).sum(), x), [1.0, 1.0, 1.0])
    with jt.no_grad():
        with jt.enable_grad():
            u = x * x
    check(jt.grad(u.sum(), x), [2.0, 4.0, 6.0])
    jt.flags.no_grad = 1
    try:
        assert not (x * 2).requires_grad
    finally:
        jt.flags.no_grad = 0


def test_backward_fills_and_accumulates_grad():
    w = jt.array([1.0, -2.0], requires_grad=True)
    b = jt.array([0.5]).requires_grad_()
    x = jt.array([3.0, 4.0])                 # not marked: gets no .grad
    loss = ((w * x).sum() + b) ** 2
    loss.backward()
    s = 1 * 3 - 2 * 4 + 0.5
    check(w.grad, 2 * s * np.array([3.0, 4.0]))
    check(b.grad, [2 * s])
    assert x.grad is None
    loss2 = (w * w).sum()
    loss2.backward()                          # accumulates
    check(w.grad, 2 * s * np.array([3.0, 4.0]) + 2 * np.array([1.0, -2.0]))
    w.grad = None
    (w * 3).sum().backward()
    check(w.grad, [3.0, 3.0])
    with pytest.raises(RuntimeError, match="requires_grad"):
        (x * 2).sum().backward()


def test_backward_training_loop_keeps_leaves():
    """PyTorch-style SGD: in-place updates under no_grad keep parameters leaves."""
    r = rng(12)
    xs = data(r, (32, 3))
    true_w = np.array([[1.0], [-2.0], [0.5]])
    ys = xs @ true_w
    w = jt.zeros(3, 1, dtype="float64")
    w.requires_grad = True
    x, y = jt.array(xs), jt.array(ys)
    first = None
    for _ in range(100):
        loss = ((x @ w - y) ** 2).mean()
        w.grad = None
        loss.backward()
        with jt.no_grad():
            w -= 0.2 * w.grad
        first = first if first is not None else loss.item()
    assert w.requires_grad
    assert loss.item() < first * 1e-3
    np.testing.assert_allclose(w.numpy(), true_w, atol=1e-2)


def test_backward_create_graph_second_order():
    x = jt.array([2.0])
    x.requires_grad = True
    (x ** 3).sum().backward(create_graph=True)
    g = x.grad
    check(g, [12.0])
    x.grad = None
    g.sum().backward()
    check(x.grad, [12.0])                     # d/dx 3x^2 = 6x


def test_gradient_kernel_count():
    """loss and its gradient, synced together, fuse into at most two kernels."""
    x = jt.array(data(rng(13), (64,), -1, 1, "float32"))
    loss = ((x * 2 + 1).exp() * x).sum()
    g = jt.grad(loss, x)
    before = jt.counters()["kernels_launched"]
    jt.sync([loss, g])
    launched = jt.counters()["kernels_launched"] - before
    assert launched <= 2, f"{launched} kernels"
    a = x.numpy().astype(np.float64)
    check(loss, (np.exp(2 * a + 1) * a).sum(), rtol=1e-5)
    check(g, np.exp(2 * a + 1) * (2 * a + 1), rtol=1e-5)


def _train_steps(steps, pytorch_style):
    r = rng(16)
    w1 = jt.array(r.uniform(-1, 1, (1, 8)), "float32")
    w2 = jt.array(r.uniform(-1, 1, (8, 1)), "float32")
    ps = [w1, w2]
    if pytorch_style:
        for p in ps:
            p.requires_grad = True
    counts = []
    for _ in range(steps):
        x = jt.array(r.random((16, 1)), "float32")
        loss = ((jt.nn.sigmoid(x @ w1) @ w2 - x * x) ** 2).mean()
        if pytorch_style:
            loss.item()                       # the loss is read before backward
            for p in ps:
                p.grad = None
            loss.backward()
            with jt.no_grad():
                for p in ps:
                    p -= 0.1 * p.grad
        else:
            for p, g in zip(ps, jt.grad(loss, ps)):
                p -= g * 0.1
        jt.sync(ps + [loss])
        c = jt.counters()
        counts.append((c["vars_alive"], c["bytes_in_use"]))
    return counts


@pytest.mark.parametrize("pytorch_style", [False, True])
def test_training_memory_is_flat(pytorch_style):
    """Parameters updated in place stay fresh leaves: nothing accumulates."""
    counts = _train_steps(60, pytorch_style)
    assert counts[-1][0] <= counts[10][0], f"vars alive grew: {counts[10]} -> {counts[-1]}"
    assert counts[-1][1] <= counts[10][1], f"bytes in use grew: {counts[10]} -> {counts[-1]}"


@pytest.mark.parametrize("x_shape,shape,idx", [
    ((2, 3, 7, 2), (2, 3, 3, 2, 2), ["i0", "i1", "i2*2+i3-1", "i4"]),  # 2-wide windows, stride 2, pad 1
    ((4, 6, 3), (3, 2, 3, 3), ["i0", "i1*3+i2", "i3"]),                # space-to-depth style tiling
    ((5, 4), (4, 5), ["i1", "i0"]),                                     # a transpose
], ids=repr)
def test_reindex_reading_each_element_once_has_a_gather_gradient(x_shape, shape, idx):
    """A reindex that reads every element of x at most once (transposes,
    non-overlapping windows, tilings, with padding and leftover elements)
    differentiates to a gather, not a scatter; the gradient matches central
    differences."""
    a = data(rng(21), x_shape)

    def f(x):
        return x.reindex(list(shape), idx, overflow_value=0.0)

    check_grad(f, a)
    x = jt.array(a)
    g = jt.grad((f(x) * jt.array(data(rng(22), shape))).sum(), x)
    assert g._op == "reindex", g._op


def test_max_pool_without_overlap_backward_is_a_plane_scatter_on_the_cpu():
    """max_pool2d(2) over a fused ReLU (a column the windows do not cover):
    on the CPU its gradient is the scatter by plane (one reindex_reduce, a
    visit per window; a device that gathers gets one map kernel, see
    test_cuda_emulated.py), and matches central differences."""
    a = data(rng(23), (2, 3, 6, 7))
    check_grad(lambda x: jt.nn.max_pool2d(x.maximum(0.1 * x), 2), a, rtol=1e-4, atol=1e-6)
    x = jt.array(a)
    y = jt.nn.max_pool2d(x, 2)
    g = jt.grad((y * y).sum(), x)
    # (the suite on a device that gathers, KILN_TEST_DEVICE: its one map kernel)
    assert g._op == ("reindex_reduce" if x._scatters_planes else "reindex"), g._op


def test_grad_through_values_already_computed():
    """Jittor's rule: every float var not behind a stop_grad keeps the graph
    that made it, so jt.grad works after the output (and intermediates) were
    computed, with no input marked first; an input y never depended on gets
    zeros, and a stop_grad still cuts."""
    x = jt.array([1.0, 2.0, 3.0])
    h = x * x
    h.sync()
    y = (h * 2).sum()
    y.sync()
    check(jt.grad(y, x), [4.0, 8.0, 12.0])
    check(jt.grad(y, h), [2.0, 2.0, 2.0])
    cut = (x.detach() * x).sum()
    cut.sync()
    check(jt.grad(cut, x), [1.0, 2.0, 3.0])
    with jt.no_grad():
        n = (x * x).sum()
    check(jt.grad(n, x), [0.0, 0.0, 0.0])
    z = jt.array([5.0])
    check(jt.grad((x * 3).sum(), z), [0.0])


def test_detach_of_an_updated_parameter_cuts_the_gradient():
    """An in-place update leaves the parameter a stop_grad op; its detach()
    must still be a cut, not the same var the gradient is taken for."""
    v = jt.array(np.array([[3.0, 4.0]]))
    v.requires_grad = True
    v.update(v.detach() * 1.0)
    a = jt.array(np.array([[1.0, 2.0]]))
    check(jt.grad((v * v.detach() * a).sum(), v), [[3.0, 8.0]])
