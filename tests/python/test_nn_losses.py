"""Losses against PyTorch (forward and gradient, float64, every reduction),
the Jittor names, and finite differences for cross entropy."""
import numpy as np
import pytest

import kiln as jt
from kiln import nn
from ktest import check_grad
from nnref import torch

R = np.random.default_rng(0)
REDUCTIONS = ["mean", "sum", "none"]


def both(fn, tfn, inputs, int_inputs=(), rtol=1e-7, atol=1e-9, **kw):
    """fn(*inputs, **kw) against tfn; gradients with respect to float inputs[0]."""
    t = torch()
    xs = [jt.array(a) for a in inputs]
    xs[0].requires_grad = True
    txs = [t.from_numpy(np.ascontiguousarray(a)) for a in inputs]
    txs[0].requires_grad_(True)
    got = fn(*xs, **kw)
    want = tfn(*txs, **kw)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=rtol, atol=atol)
    r = R.uniform(0.5, 1.5, size=tuple(want.shape))
    (want * t.from_numpy(r)).sum().backward()
    g = jt.grad((got * jt.array(r)).sum(), xs[0])
    np.testing.assert_allclose(g.numpy(), txs[0].grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses(reduction):
    F = torch().nn.functional
    x, y = R.standard_normal((4, 5)), R.standard_normal((4, 5)) * 2
    both(nn.mse_loss, F.mse_loss, [x, y], reduction=reduction)
    both(nn.l1_loss, F.l1_loss, [x, y], reduction=reduction)
    both(nn.smooth_l1_loss, F.smooth_l1_loss, [x, y], reduction=reduction)
    both(nn.smooth_l1_loss, F.smooth_l1_loss, [x, y], reduction=reduction, beta=0.5)
    both(nn.huber_loss, F.huber_loss, [x, y], reduction=reduction, delta=0.7)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_losses(reduction):
    F = torch().nn.functional
    p = R.uniform(0.01, 0.99, (3, 4))
    t = (R.random((3, 4)) < 0.5).astype(np.float64)
    w = R.uniform(0.5, 2, (3, 4))
    both(nn.binary_cross_entropy, F.binary_cross_entropy, [p, t], reduction=reduction)
    both(nn.binary_cross_entropy, F.binary_cross_entropy, [p, t, w], reduction=reduction)
    x = R.standard_normal((3, 4)) * 5
    both(nn.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, [x, t],
         reduction=reduction)
    pw = R.uniform(0.5, 2, (4,))
    tt = torch()
    got = nn.binary_cross_entropy_with_logits(jt.array(x), jt.array(t), pos_weight=jt.array(pw),
                                             reduction=reduction)
    want = F.binary_cross_entropy_with_logits(tt.from_numpy(x), tt.from_numpy(t),
                                              pos_weight=tt.from_numpy(pw), reduction=reduction)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-7)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kw", [dict(), dict(ignore_index=1), dict(label_smoothing=0.1),
                                dict(weight=True), dict(weight=True, ignore_index=2),
                                dict(weight=True, label_smoothing=0.2, ignore_index=0)])
def test_cross_entropy(reduction, kw):
    t = torch()
    x = R.standard_normal((6, 4)) * 3
    y = np.array([0, 1, 2, 3, 1, 2])
    kw = dict(kw)
    w = R.uniform(0.5, 2, 4)
    jkw, tkw = dict(kw), dict(kw)
    if kw.get("weight"):
        jkw["weight"], tkw["weight"] = jt.array(w), t.from_numpy(w)
    both(lambda a, b, **k: nn.cross_entropy(a, b, **jkw, **k),
         lambda a, b, **k: t.nn.functional.cross_entropy(a, b, **tkw, **k), [x, y],
         reduction=reduction)


def test_cross_entropy_spatial_and_probabilities():
    t = torch()
    F = t.nn.functional
    x = R.standard_normal((2, 3, 4, 5))
    y = R.integers(0, 3, (2, 4, 5))
    for reduction in REDUCTIONS:
        both(nn.cross_entropy, F.cross_entropy, [x, y], reduction=reduction)
    probs = R.uniform(0, 1, (5, 4))
    probs /= probs.sum(1, keepdims=True)
    for reduction in REDUCTIONS:
        both(nn.cross_entropy, F.cross_entropy, [R.standard_normal((5, 4)), probs],
             reduction=reduction)
        both(nn.cross_entropy, F.cross_entropy, [R.standard_normal((5, 4)), probs],
             reduction=reduction, label_smoothing=0.1)


@pytest.mark.filterwarnings("ignore:reduction")
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_and_kl(reduction):
    F = torch().nn.functional
    logp = np.log(R.dirichlet(np.ones(5), 4))
    y = np.array([4, 0, 2, 2])
    both(nn.nll_loss, F.nll_loss, [logp, y], reduction=reduction)
    both(nn.nll_loss, F.nll_loss, [logp, y], reduction=reduction, ignore_index=2)
    target = R.dirichlet(np.ones(5), 4)
    target[0, 1] = 0
    both(nn.kl_div, F.kl_div, [logp, target], reduction=reduction)
    both(nn.kl_div, F.kl_div, [logp, np.log(R.dirichlet(np.ones(5), 4))], reduction=reduction,
         log_target=True)


def test_kl_batchmean():
    F = torch().nn.functional
    logp = np.log(R.dirichlet(np.ones(3), 4))
    target = R.dirichlet(np.ones(3), 4)
    both(nn.kl_div, F.kl_div, [logp, target], reduction="batchmean")


def test_loss_modules():
    t = torch()
    x = R.standard_normal((6, 4))
    y = np.array([0, 3, 2, 1, 1, 0])
    pairs = [(nn.CrossEntropyLoss(), t.nn.CrossEntropyLoss()),
             (nn.CrossEntropyLoss(label_smoothing=0.05, reduction="sum"),
              t.nn.CrossEntropyLoss(label_smoothing=0.05, reduction="sum")),
             (nn.CrossEntropyLoss(ignore_index=3), t.nn.CrossEntropyLoss(ignore_index=3))]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours(jt.array(x), jt.array(y)).numpy(),
                                   theirs(t.from_numpy(x), t.from_numpy(y)).numpy(), rtol=1e-7)
    w = R.uniform(0.5, 2, 4)
    ce = nn.CrossEntropyLoss(weight=jt.array(w))
    assert list(ce.parameters()) == [] and "weight" in ce.state_dict()
    np.testing.assert_allclose(ce(jt.array(x), jt.array(y)).numpy(),
                               t.nn.CrossEntropyLoss(weight=t.from_numpy(w))(
                                   t.from_numpy(x), t.from_numpy(y)).numpy(), rtol=1e-7)
    p, q = R.uniform(0.1, 0.9, 5), (R.random(5) < 0.5) * 1.0
    for ours, theirs in [(nn.MSELoss(), t.nn.MSELoss()), (nn.L1Loss(), t.nn.L1Loss()),
                         (nn.SmoothL1Loss(), t.nn.SmoothL1Loss()), (nn.BCELoss(), t.nn.BCELoss()),
                         (nn.BCEWithLogitsLoss(), t.nn.BCEWithLogitsLoss()),
                         (nn.KLDivLoss(reduction="sum"), t.nn.KLDivLoss(reduction="sum"))]:
        np.testing.assert_allclose(ours(jt.array(p), jt.array(q)).numpy(),
                                   theirs(t.from_numpy(p), t.from_numpy(q)).numpy(), rtol=1e-7)
    nl = nn.NLLLoss()
    logp = np.log(R.dirichlet(np.ones(4), 6))
    np.testing.assert_allclose(nl(jt.array(logp), jt.array(y)).numpy(),
                               t.nn.NLLLoss()(t.from_numpy(logp), t.from_numpy(y)).numpy())


def test_jittor_names():
    x = R.standard_normal((5, 3))
    y = np.array([0, 2, 1, 1, 0])
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    want = -logp[np.arange(5), y].mean()
    np.testing.assert_allclose(nn.cross_entropy_loss(jt.array(x), jt.array(y)).numpy(), want,
                               rtol=1e-10)
    np.testing.assert_allclose(nn.mse_loss(jt.array(x), jt.array(x * 0)).numpy(),
                               (x * x).mean(), rtol=1e-12)
    p = 1 / (1 + np.exp(-x))
    t = np.ones_like(x)
    np.testing.assert_allclose(nn.bce_loss(jt.array(p), jt.array(t)).numpy(),
                               -np.log(p).mean(), rtol=1e-10)
    # float32 logits with int32 / int64 labels
    for dt in (np.int32, np.int64):
        v = nn.cross_entropy_loss(jt.array(x.astype(np.float32)), jt.array(y.astype(dt)))
        assert v.dtype == "float32" and abs(v.item() - want) < 1e-5


def test_cross_entropy_finite_differences():
    y = jt.array(np.array([1, 0, 2]))
    check_grad(lambda x: nn.cross_entropy(x, y, label_smoothing=0.1), R.standard_normal((3, 4)))


def test_loss_errors():
    with pytest.raises(ValueError, match="reduction"):
        nn.mse_loss(jt.ones(3), jt.ones(3), reduction="avg")
    with pytest.raises(ValueError, match="target"):
        nn.mse_loss(jt.ones(3), jt.ones(4))
    with pytest.raises(ValueError, match="target"):
        nn.cross_entropy(jt.ones((4, 3)), jt.array([0, 1]))
