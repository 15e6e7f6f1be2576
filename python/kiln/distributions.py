"""jittor.distributions: probability distributions with sampling, log
densities, entropy and KL divergences, as PyTorch's torch.distributions
computes them (Jittor's module has the same classes). Parameters are Vars
(or numbers); log_prob and entropy are meta-op expressions, so they are lazy
and differentiable; samples are not (no reparameterised rsample except for
Normal and Uniform, whose rsample is differentiable in the parameters)."""
import math

import numpy as np

from ._core import to_var
from ._create import rand, randn
from ._reduce import cumsum, log_softmax
from ._shape import concat

__all__ = ["Categorical", "OneHotCategorical", "Normal", "Uniform", "Geometric",
           "kl_divergence", "simple_presum"]


def _shape(sample_shape):
    if sample_shape is None:
        return ()
    if isinstance(sample_shape, int):
        return (sample_shape,)
    return tuple(int(s) for s in sample_shape)


def simple_presum(x):
    """The running sums of x's last dim with a 0 in front: shape [..., n + 1]
    (the bin edges sampling from probabilities uses)."""
    x = to_var(x)
    return concat([x[..., :1] * 0, cumsum(x, x.ndim - 1)], x.ndim - 1)


def _probs_and_logits(probs, logits, name):
    if (probs is None) == (logits is None):
        raise ValueError(f"{name}: give exactly one of probs and logits")
    if probs is not None:
        probs = to_var(probs)
        probs = probs / probs.sum(probs.ndim - 1, keepdims=True)
        return probs, probs.log()
    logits = to_var(logits)
    logits = log_softmax(logits, logits.ndim - 1)
    return logits.exp(), logits


class Categorical:
    """Class indices 0..n-1 with probabilities over the last dim."""

    def __init__(self, probs=None, logits=None):
        self.probs, self.logits = _probs_and_logits(probs, logits, "Categorical")
        self.n = self.probs.shape[-1]
        self.batch_shape = tuple(self.probs.shape[:-1])

    def sample(self, sample_shape=()):
        """int32 indices of shape sample_shape + batch_shape (inverse CDF of
        one uniform draw each)."""
        shape = _shape(sample_shape) + self.batch_shape
        edges = simple_presum(self.probs.detach())            # [..., n + 1]
        u = rand(*shape, dtype=edges.dtype) if shape else rand(1, dtype=edges.dtype).reshape(())
        # the index of the bin u falls into: how many inner edges lie at or below u
        inner = edges[..., 1:-1] if self.n > 1 else None
        if inner is None:
            return (u * 0).int32()
        return (u.unsqueeze(-1) >= inner).int32().sum(-1).int32()

    def log_prob(self, x):
        return _gather_last(self.logits, to_var(x).int32())

    def entropy(self):
        return -(self.probs * self.logits).sum(-1)


def _gather_last(table, x):
    """table[..., x] for x of shape sample + batch (table: batch + [n])."""
    lead = x.ndim - (table.ndim - 1)
    t = table.broadcast(tuple(x.shape) + (table.shape[-1],), list(range(lead))) if lead else table
    return t.gather(t.ndim - 1, x.unsqueeze(-1)).squeeze(-1)


class OneHotCategorical(Categorical):
    """Categorical whose samples are one-hot vectors over the last dim."""

    def sample(self, sample_shape=()):
        idx = super().sample(sample_shape)
        classes = np.arange(self.n, dtype=np.int32)
        from ._core import array
        return (idx.unsqueeze(-1) == array(classes)).float32()

    def log_prob(self, x):
        x = to_var(x)
        return (x * self.logits).sum(-1)


class Normal:
    """The normal distribution N(mu, sigma^2)."""

    def __init__(self, mu, sigma):
        self.mu, self.sigma = _float(mu), _float(sigma)

    def sample(self, sample_shape=None):
        return self.rsample(sample_shape).detach()

    def rsample(self, sample_shape=None):
        shape = _shape(sample_shape) + tuple(np.broadcast_shapes(self.mu.shape, self.sigma.shape))
        eps = randn(*shape, dtype=self.mu.dtype) if shape else randn(1, dtype=self.mu.dtype).reshape(())
        return self.mu + self.sigma * eps

    def log_prob(self, x):
        x = to_var(x)
        var = self.sigma * self.sigma
        return -((x - self.mu) ** 2) / (2 * var) - self.sigma.log() - math.log(math.sqrt(2 * math.pi))

    def entropy(self):
        return 0.5 + 0.5 * math.log(2 * math.pi) + self.sigma.log()


class Uniform:
    """The uniform distribution on [low, high)."""

    def __init__(self, low, high):
        self.low, self.high = _float(low), _float(high)

    def sample(self, sample_shape=()):
        return self.rsample(sample_shape).detach()

    def rsample(self, sample_shape=()):
        shape = _shape(sample_shape) + tuple(np.broadcast_shapes(self.low.shape, self.high.shape))
        u = rand(*shape, dtype=self.low.dtype) if shape else rand(1, dtype=self.low.dtype).reshape(())
        return self.low + (self.high - self.low) * u

    def log_prob(self, x):
        x = to_var(x)
        inside = (x >= self.low) & (x < self.high)
        return inside.float32().log() - (self.high - self.low).log()

    def entropy(self):
        return (self.high - self.low).log()


class Geometric:
    """The number of failures before the first success, success probability p."""

    def __init__(self, p=None, logits=None):
        if (p is None) == (logits is None):
            raise ValueError("Geometric: give exactly one of p and logits")
        if p is not None:
            self.prob = _float(p)
            self.logits = (self.prob / (1 - self.prob)).log()
        else:
            self.logits = _float(logits)
            self.prob = self.logits.sigmoid()

    def sample(self, sample_shape=()):
        shape = _shape(sample_shape) + tuple(self.prob.shape)
        u = rand(*shape, dtype=self.prob.dtype) if shape else rand(1, dtype=self.prob.dtype).reshape(())
        tiny = float(np.finfo(np.float32).tiny)
        return ((u.clamp(tiny, 1.0).log()) / (1 - self.prob.detach()).log()).floor()

    def log_prob(self, x):
        x = to_var(x)
        return x * (1 - self.prob).log() + self.prob.log()

    def entropy(self):
        p = self.prob
        q = 1 - p
        return -(q * q.log() + p * p.log()) / p


def _float(v):
    v = to_var(v)
    return v if v.dtype.is_float else v.float32()


def kl_divergence(cur_dist, old_dist):
    """KL(cur_dist || old_dist) for two distributions of the same kind."""
    if type(cur_dist) is not type(old_dist):
        raise NotImplementedError(f"kl_divergence: {type(cur_dist).__name__} against "
                                  f"{type(old_dist).__name__} is not supported")
    if isinstance(cur_dist, Normal):
        vr = (cur_dist.sigma / old_dist.sigma) ** 2
        t = ((cur_dist.mu - old_dist.mu) / old_dist.sigma) ** 2
        return 0.5 * (vr + t - 1 - vr.log())
    if isinstance(cur_dist, Categorical):     # and OneHotCategorical
        return (cur_dist.probs * (cur_dist.logits - old_dist.logits)).sum(-1)
    if isinstance(cur_dist, Uniform):
        inside = (old_dist.low <= cur_dist.low) & (cur_dist.high <= old_dist.high)
        ratio = (old_dist.high - old_dist.low) / (cur_dist.high - cur_dist.low)
        return ratio.log() - (inside.float32().log())
    if isinstance(cur_dist, Geometric):
        return -cur_dist.entropy() - (1 - old_dist.prob).log() / cur_dist.prob - old_dist.logits
    raise NotImplementedError(f"kl_divergence: {type(cur_dist).__name__} is not supported")
