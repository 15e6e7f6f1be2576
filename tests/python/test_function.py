"""jt.Function (custom forward/backward in Python) and jt.numpy_code, against
NumPy float64 and finite differences."""
import gc

import numpy as np
import pytest

import kiln as jt

R = np.random.default_rng(7)


def fd_grad(f, x, eps=1e-6):
    """Central finite differences of the scalar f at the float64 array x."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


class Cube(jt.Function):
    """x**3 with its gradient written by hand."""

    def execute(self, x):
        self.x = x
        return x * x * x

    def grad(self, dout):
        return dout * 3 * self.x * self.x


class MulAdd(jt.Function):
    """Two outputs (a*b, a+b) and a non-Var argument passed through."""

    def execute(self, a, b, scale):
        self.a, self.b, self.scale = a, b, scale
        return a * b * scale, a + b

    def grad(self, dprod, dsum):
        return dprod * self.b * self.scale + dsum, dprod * self.a * self.scale + dsum, None


def test_function_value_and_gradient_match_finite_differences():
    x0 = R.standard_normal((3, 4))
    x = jt.array(x0)
    w0 = R.standard_normal((3, 4))
    y = (Cube.apply(x) * jt.array(w0)).sum()
    np.testing.assert_allclose(Cube()(x).numpy(), x0 ** 3, rtol=1e-12)
    want = fd_grad(lambda v: (v ** 3 * w0).sum(), x0)
    np.testing.assert_allclose(jt.grad(y, x).numpy(), want, rtol=1e-6, atol=1e-8)


def test_the_rule_replaces_the_graph_of_execute():
    """A deliberately 'wrong' rule shows it is the rule, not execute's graph,
    that differentiates."""
    class Tripled(jt.Function):
        def execute(self, x):
            return x * 1.0

        def grad(self, dout):
            return dout * 3

    x = jt.array([1.0, 2.0])
    np.testing.assert_array_equal(jt.grad(Tripled.apply(x).sum(), x).numpy(), [3.0, 3.0])


def test_two_outputs_each_get_their_share():
    a0, b0 = R.standard_normal(5), R.standard_normal(5)
    a, b = jt.array(a0), jt.array(b0)
    p, s = MulAdd.apply(a, b, 2.0)
    np.testing.assert_allclose(p.numpy(), a0 * b0 * 2, rtol=1e-12)
    np.testing.assert_allclose(s.numpy(), a0 + b0, rtol=1e-12)
    loss = (p * 5 + s * s).sum()
    ga, gb = jt.grad(loss, [a, b])
    np.testing.assert_allclose(ga.numpy(), 10 * b0 + 2 * (a0 + b0), rtol=1e-12)
    np.testing.assert_allclose(gb.numpy(), 10 * a0 + 2 * (a0 + b0), rtol=1e-12)
    # one output alone: the other's gradient is zero
    np.testing.assert_allclose(jt.grad(p.sum(), a).numpy(), 2 * b0, rtol=1e-12)


def test_gradient_after_the_output_was_computed():
    x = jt.array([1.0, -2.0, 0.5])
    y = Cube.apply(x)
    y.sync()
    _ = y.numpy()
    np.testing.assert_allclose(jt.grad(y.sum(), x).numpy(), 3 * np.array([1.0, 4.0, 0.25]))


def test_stop_grad_inputs_get_nothing_and_rule_errors_surface():
    x = jt.array([1.0, 2.0])
    cut = x.detach()
    np.testing.assert_array_equal(jt.grad(Cube.apply(cut).sum(), x).numpy(), [0.0, 0.0])

    class Raises(jt.Function):
        def execute(self, x):
            return x * 2

        def grad(self, dout):
            raise KeyError("from the rule")

    with pytest.raises(KeyError, match="from the rule"):
        jt.grad(Raises.apply(x).sum(), x)

    class WrongShape(jt.Function):
        def execute(self, x):
            return x * 2

        def grad(self, dout):
            return jt.ones(5)

    with pytest.raises(ValueError, match=r"input 0 has shape \(5\), the input \(2\)"):
        jt.grad(WrongShape.apply(x).sum(), x)

    class Nested(jt.Function):
        def execute(self, x):
            self.x = x
            return x * 2

        def grad(self, dout):
            z = jt.array([1.0, 2.0])
            return jt.grad((z * dout).sum(), z)

    with pytest.raises(ValueError, match="inside a custom gradient rule"):
        jt.grad(Nested.apply(x).sum(), x)


def test_a_rule_may_compute_values():
    """A rule that reads values (numpy()) syncs while the gradient is being
    built; the walk keeps what it reached alive."""
    class Clipped(jt.Function):
        def execute(self, x):
            self.x = x
            return x * 2

        def grad(self, dout):
            limit = float(np.abs(dout.numpy()).max())
            return (dout * 2).clamp(-limit, limit)

    x = jt.array([1.0, 2.0, 3.0])
    h = x * x
    y = Clipped.apply(h) * jt.array([1.0, 0.25, 0.5])
    g = jt.grad(y.sum(), x)
    np.testing.assert_allclose(g.numpy(), np.array([1.0, 0.5, 1.0]) * 2 * np.array([1, 2, 3]))


def test_functions_in_a_loop_keep_memory_flat():
    x = jt.array(R.standard_normal(64).astype(np.float32))

    def step():
        y = Cube.apply(x)
        g = jt.grad(y.sum(), x)
        g.numpy()

    for _ in range(3):
        step()
    gc.collect()
    before = jt.counters()["vars_alive"]
    for _ in range(20):
        step()
    gc.collect()
    assert jt.counters()["vars_alive"] == before


def test_numpy_code_forward_and_gradients():
    def forward(np_, data):
        a, b = data["inputs"]
        c, d = data["outputs"]
        np_.multiply(a, b, out=c)
        np_.subtract(a, b, out=d)

    def grad_a(np_, data):
        a, b = data["inputs"]
        out = data["outputs"][0]
        np_.copyto(out, data["dout"] * (b if data["out_index"] == 0 else 1.0))

    def grad_b(np_, data):
        a, b = data["inputs"]
        out = data["outputs"][0]
        np_.copyto(out, data["dout"] * (a if data["out_index"] == 0 else -1.0))

    a0, b0 = R.standard_normal(6), R.standard_normal(6)
    a, b = jt.array(a0), jt.array(b0)
    c, d = jt.numpy_code([a.shape, a.shape], [a.dtype, a.dtype], [a, b], forward, [grad_a, grad_b])
    np.testing.assert_allclose(c.numpy(), a0 * b0)
    np.testing.assert_allclose(d.numpy(), a0 - b0)
    ga, gb = jt.grad((c * 3 + d * d).sum(), [a, b])
    np.testing.assert_allclose(ga.numpy(), 3 * b0 + 2 * (a0 - b0), rtol=1e-12)
    np.testing.assert_allclose(gb.numpy(), 3 * a0 - 2 * (a0 - b0), rtol=1e-12)


def test_numpy_code_single_output_without_backward_is_constant():
    def forward(np_, data):
        np_.sqrt(data["inputs"][0], out=data["outputs"][0])

    x = jt.array([4.0, 9.0])
    y = jt.numpy_code(x.shape, x.dtype, [x], forward)
    np.testing.assert_array_equal(y.numpy(), [2.0, 3.0])
    np.testing.assert_array_equal(jt.grad(y.sum(), x).numpy(), [0.0, 0.0])
    with pytest.raises(ValueError, match="2 output shapes but 1 dtypes"):
        jt.numpy_code([x.shape, x.shape], [x.dtype], [x], forward)


def test_positional_dtype_in_creation():
    assert jt.ones(10, "int32").dtype == "int32"
    assert jt.zeros((2, 3), jt.float64).shape == (2, 3)
    assert jt.zeros(2, 3).dtype == "float32"
    with pytest.raises(TypeError, match="dtype was given twice"):
        jt.ones(3, "int32", dtype="float32")


def test_a_rules_results_are_not_kept_after_the_gradient():
    """dout of (y*y).sum() reads y itself; a rule's results kept past the
    grad call would hold y's node through its own rule (a cycle Python cannot
    collect) and every step would leak."""
    x = jt.array(R.standard_normal(16))

    def step():
        y = Cube.apply(x)
        jt.grad((y * y).sum(), x).numpy()

    for _ in range(3):
        step()
    gc.collect()
    before = jt.liveness_info()
    for _ in range(10):
        step()
    gc.collect()
    assert jt.liveness_info() == before
