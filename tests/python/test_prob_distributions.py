"""jt.distributions against torch.distributions: log densities, entropies
and KL divergences to 1e-5 on the same parameters, gradients of log_prob
against central differences, and sample statistics."""
import numpy as np
import pytest

import kiln as jt
from ktest import check_grad, rng

torch = pytest.importorskip("torch")
D = jt.distributions
TD = torch.distributions


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a.numpy(), np.float64), b.detach().numpy(), rtol=tol, atol=tol)


def test_normal_and_uniform_match_torch():
    r = rng(0)
    mu, sigma, x = r.normal(size=5), r.uniform(0.5, 2, 5), r.normal(size=5)
    n, tn = D.Normal(jt.array(mu), jt.array(sigma)), TD.Normal(torch.tensor(mu), torch.tensor(sigma))
    close(n.log_prob(jt.array(x)), tn.log_prob(torch.tensor(x)))
    close(n.entropy(), tn.entropy())
    n2 = D.Normal(jt.array(mu + 1), jt.array(sigma * 2))
    close(D.kl_divergence(n, n2), TD.kl_divergence(tn, TD.Normal(torch.tensor(mu + 1), torch.tensor(sigma * 2))))
    lo, hi = r.uniform(-2, 0, 4), r.uniform(1, 3, 4)
    u, tu = D.Uniform(jt.array(lo), jt.array(hi)), TD.Uniform(torch.tensor(lo), torch.tensor(hi))
    xs = r.uniform(-1, 1, 4)
    close(u.log_prob(jt.array(xs)), tu.log_prob(torch.tensor(xs)))
    close(u.entropy(), tu.entropy())
    wide = (lo - 1, hi + 1)
    close(D.kl_divergence(u, D.Uniform(jt.array(wide[0]), jt.array(wide[1]))),
          TD.kl_divergence(tu, TD.Uniform(torch.tensor(wide[0]), torch.tensor(wide[1]))))


def test_categorical_and_geometric_match_torch():
    r = rng(1)
    logits = r.normal(size=(3, 6))
    c, tc = D.Categorical(logits=jt.array(logits)), TD.Categorical(logits=torch.tensor(logits))
    x = r.integers(0, 6, (4, 3))
    close(c.log_prob(jt.array(x)), tc.log_prob(torch.tensor(x)))
    close(c.entropy(), tc.entropy())
    probs = r.uniform(0.1, 1, (3, 6))
    cp, tcp = D.Categorical(probs=jt.array(probs)), TD.Categorical(probs=torch.tensor(probs))
    close(D.kl_divergence(c, cp), TD.kl_divergence(tc, tcp))
    oh = D.OneHotCategorical(logits=jt.array(logits))
    onehot = np.eye(6)[x[0]]
    close(oh.log_prob(jt.array(onehot)),
          TD.OneHotCategorical(logits=torch.tensor(logits)).log_prob(torch.tensor(onehot)))
    p = r.uniform(0.1, 0.9, 5)
    g, tg = D.Geometric(jt.array(p)), TD.Geometric(torch.tensor(p))
    k = r.integers(0, 6, 5).astype(np.float64)
    close(g.log_prob(jt.array(k)), tg.log_prob(torch.tensor(k)))
    close(g.entropy(), tg.entropy())
    q = r.uniform(0.1, 0.9, 5)
    close(D.kl_divergence(g, D.Geometric(jt.array(q))), TD.kl_divergence(tg, TD.Geometric(torch.tensor(q))))


def test_samples_follow_the_distribution():
    jt.set_seed(3)
    c = D.Categorical(probs=jt.array([0.1, 0.2, 0.7]))
    s = c.sample((20000,)).numpy()
    assert s.dtype == np.int32 and s.shape == (20000,)
    np.testing.assert_allclose(np.bincount(s, minlength=3) / 20000, [0.1, 0.2, 0.7], atol=0.015)
    oh = D.OneHotCategorical(probs=jt.array([[0.5, 0.5], [1.0, 0.0]])).sample((100,)).numpy()
    assert oh.shape == (100, 2, 2) and (oh.sum(-1) == 1).all() and (oh[:, 1, 0] == 1).all()
    n = D.Normal(jt.array(2.0), jt.array(0.5)).sample((20000,)).numpy()
    assert abs(n.mean() - 2) < 0.02 and abs(n.std() - 0.5) < 0.02
    u = D.Uniform(jt.array(-1.0), jt.array(3.0)).sample((20000,)).numpy()
    assert u.min() >= -1 and u.max() < 3 and abs(u.mean() - 1) < 0.05
    g = D.Geometric(jt.array(0.25)).sample((20000,)).numpy()
    assert g.min() >= 0 and abs(g.mean() - 3.0) < 0.15          # (1 - p) / p
    np.testing.assert_array_equal(D.simple_presum(jt.array([[1.0, 2.0, 3.0]])).numpy(), [[0, 1, 3, 6]])


def test_log_prob_gradients_and_rsample():
    r = rng(2)
    x = jt.array(r.normal(size=4))
    check_grad(lambda mu, s: D.Normal(mu, s).log_prob(x), r.normal(size=4), r.uniform(0.5, 2, 4))
    check_grad(lambda lg: D.Categorical(logits=lg).log_prob(jt.array([0, 2, 1])), r.normal(size=(3, 4)))
    mu = jt.array(np.zeros(3))
    assert jt.grad(D.Normal(mu, 1.0).rsample((5,)).sum(), mu).numpy().tolist() == [5, 5, 5]
    with pytest.raises(ValueError, match="exactly one of probs and logits"):
        D.Categorical()
