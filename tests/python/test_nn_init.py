"""kiln.init: PyTorch's fan and gain computations, the distributions of the
in-place initialisers, Jittor's constructors, and reproducibility under jt.seed."""
import math

import numpy as np
import pytest

import kiln as jt
from kiln import init


@pytest.mark.parametrize("shape", [(7, 5), (8, 4, 3, 3), (6, 2, 5), (3, 4, 2, 2, 2)])
def test_fans_match_torch(shape):
    t = pytest.importorskip("torch")
    want = t.nn.init._calculate_fan_in_and_fan_out(t.empty(shape))
    assert init.calculate_fan_in_and_fan_out(jt.zeros(shape)) == want
    assert init.calculate_fan_in_and_fan_out(shape) == want


def test_gains_match_torch():
    t = pytest.importorskip("torch")
    for nl, p in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                  ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)]:
        assert init.calculate_gain(nl, p) == pytest.approx(t.nn.init.calculate_gain(nl, p))
    with pytest.raises(ValueError):
        init.calculate_gain("swishy")
    with pytest.raises(ValueError):
        init.calculate_fan_in_and_fan_out(jt.zeros(3))


def stats(v):
    a = v.numpy().astype(np.float64)
    return a.min(), a.max(), a.mean(), a.std()


def test_uniform_families():
    jt.seed(0)
    w = jt.zeros((256, 128, 3))
    bound = math.sqrt(6 / (128 * 3 + 256 * 3))
    lo, hi, mean, std = stats(init.xavier_uniform_(w))
    assert -bound <= lo and hi <= bound and abs(std - bound / math.sqrt(3)) < 0.02 * bound
    gain = math.sqrt(2.0)
    bound = gain * math.sqrt(3 / (128 * 3))
    lo, hi, _, std = stats(init.kaiming_uniform_(w, nonlinearity="relu"))
    assert -bound <= lo and hi <= bound and abs(std - bound / math.sqrt(3)) < 0.02 * bound
    lo, hi, _, _ = stats(init.uniform_(w, -0.5, 2.0))
    assert -0.5 <= lo < -0.49 and 1.99 < hi <= 2.0


def test_normal_families():
    jt.seed(1)
    w = jt.zeros((300, 200))
    _, _, mean, std = stats(init.xavier_normal_(w, gain=2.0))
    assert abs(mean) < 0.01 and abs(std - 2 * math.sqrt(2 / 500)) < 0.003
    _, _, mean, std = stats(init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"))
    assert abs(std - math.sqrt(2 / 300)) < 0.002
    _, _, mean, std = stats(init.normal_(w, 3.0, 0.5))
    assert abs(mean - 3) < 0.01 and abs(std - 0.5) < 0.01
    lo, hi, mean, _ = stats(init.trunc_normal_(w, 0.0, 1.0, -0.5, 1.5))
    assert -0.5 <= lo and hi <= 1.5 and mean > 0.1


def test_constants_and_in_place():
    w = jt.zeros((2, 3))
    w.requires_grad = True
    assert init.constant_(w, 1.5) is w
    np.testing.assert_array_equal(w.numpy(), 1.5)
    assert w.requires_grad                        # still a trainable leaf
    np.testing.assert_array_equal(init.zeros_(w).numpy(), 0)
    np.testing.assert_array_equal(init.ones_(w).numpy(), 1)
    np.testing.assert_array_equal(init.eye_(jt.zeros((2, 3))).numpy(), np.eye(2, 3))
    loss = (w * 2).sum()
    np.testing.assert_array_equal(jt.grad(loss, w).numpy(), 2)


def test_jittor_constructors():
    jt.seed(2)
    assert init.constant((2, 2), "float32", 3.0).numpy().tolist() == [[3, 3], [3, 3]]
    assert init.zero(3).numpy().tolist() == [0, 0, 0]
    assert init.one((2,), "float64").dtype == "float64"
    g = init.gauss((1000,), "float32", 1.0, 2.0).numpy()
    assert abs(g.mean() - 1) < 0.2 and abs(g.std() - 2) < 0.2
    u = init.uniform((1000,), "float32", 2, 3).numpy()
    assert u.min() >= 2 and u.max() < 3
    b = math.sqrt(3 / 40)
    iu = init.invariant_uniform((10, 40)).numpy()
    assert np.abs(iu).max() <= b
    rg = init.relu_invariant_gauss((200, 100)).numpy()
    assert abs(rg.std() - math.sqrt(2 / 100)) < 0.01
    assert init.kaiming_uniform((4, 5)).shape == (4, 5)
    assert init.xavier_gauss((4, 5)).shape == (4, 5)


def test_reproducible():
    jt.seed(7)
    a = init.kaiming_normal_(jt.zeros((5, 5))).numpy()
    jt.seed(7)
    b = init.kaiming_normal_(jt.zeros((5, 5))).numpy()
    np.testing.assert_array_equal(a, b)
    assert jt.init is init
