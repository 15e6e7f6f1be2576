"""Normalisation layers: BatchNorm1d/2d/3d (running statistics with PyTorch's
momentum rule, eval mode, num_batches_tracked), LayerNorm, GroupNorm,
InstanceNorm1d/2d, and the functional forms. Running statistics are buffers,
updated with Var.update (no gradient path)."""
import numpy as np

from ... import distributed
from ..._core import array, grad_mode, to_var
from ..module import Module, update_state
from ... import init as _init
from ..._function import _attach
__all__ = ["batch_norm", "layer_norm", "group_norm", "instance_norm", "BatchNorm1d",
           "BatchNorm2d", "BatchNorm3d", "BatchNorm", "SyncBatchNorm", "LayerNorm", "GroupNorm",
           "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LocalResponseNorm"]


def _channel_shape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _affine(y, x, weight, bias):
    if weight is not None:
        y = y * to_var(weight).reshape(_channel_shape(x))
    if bias is not None:
        y = y + to_var(bias).reshape(_channel_shape(x))
    return y


def _global_stats(x, dims):
    """Mean, biased variance and element count per channel over every rank's
    batch: the sums of x and of x*x and the count, all-reduced in one call
    (whose gradient flows back to every rank's x)."""
    C = x.shape[1]
    count = array(np.array([x.numel() // C], dtype=np.float64)).astype(x.dtype)
    flat = distributed.mpi_all_reduce_many([x.sum(dims), (x * x).sum(dims), count], "add")
    n = flat[2 * C:]
    mean = flat[:C] / n
    var = flat[C:2 * C] / n - mean * mean
    shape = _channel_shape(x)
    return mean.reshape(shape), var.reshape(shape), n


def _per_channel(x, scale, shift):
    """x * scale + shift with (C,) vectors along x's dim 1."""
    shape = _channel_shape(x)
    return x * scale.reshape(shape) + shift.reshape(shape)


def _eval_scale_shift(running_mean, running_var, weight, bias, eps):
    """Eval-mode batch norm as x * scale + shift, per channel."""
    scale = (to_var(running_var) + eps).rsqrt()
    if weight is not None:
        scale = scale * weight
    shift = -to_var(running_mean) * scale
    if bias is not None:
        shift = shift + bias
    return scale, shift


def _shift_of(x):
    """Per channel, a value near its mean, cheaply: the mean of ~8 rows
    spread over the batch (~4 samples, ~2 rows each along dim 2), or of 16
    samples spread over a 2-d (N, C) input; kept dims, so it broadcasts
    against x. Spread over the batch and the rows, it stays near the mean
    where one sample's border is not (a first row of zero padding, say),
    and reads little of x (1/56 of ResNet's 8x64x56x56, 1/7 at 7x7)."""
    if x.ndim == 2:
        return x[::max(1, x.shape[0] // 16)].mean(0, keepdims=True)
    rows = x[::max(1, x.shape[0] // 4), :, ::max(1, x.shape[2] // 2)]
    return rows.mean([0] + list(range(2, x.ndim)), keepdims=True)


def _shifted_stats(x, dims):
    """The mean and biased variance over dims in one pass over x: the sums
    of d = x - k and of d * d, which the core computes in one kernel, with k
    a per-channel shift near the mean (_shift_of), so that the difference
    s2 / n - (s1 / n)^2 does not cancel as it would for data far from 0
    (the shifted-data algorithm; the sums accumulate in double over float
    blocks). Keepdims results."""
    n = x.numel() // x.shape[1]
    k = _shift_of(x)
    d = x - k
    dm = d.sum(dims, keepdims=True) * (1.0 / n)
    var = ((d * d).sum(dims, keepdims=True) * (1.0 / n) - dm * dm).maximum(0.0)
    return k + dm, var


def _batch_norm_train(x, dims, weight, bias, eps):
    """Training-mode batch norm over dims with its gradient written out:
    y = xhat * w + b, xhat = (x - mean) * rstd, and for an output gradient
    dy, with sums over dims and n elements per channel,
        db = sum(dy), dw = sum(dy * xhat),
        dx = w * rstd * (dy - (db + xhat * dw) / n),
    two reductions and one element-wise pass (the meta-op derivation of the
    same graph takes five of each; the two sums share one pass, as the
    core folds sibling sums). The statistics are the batch's (biased
    variance) from one pass as well (_shifted_stats). Inside the gradient,
    the mean and rstd are the forward's values carrying their own exact
    derivatives in x (d mean = d / n, d rstd = -rstd^3 (x - mean) d / n),
    so a gradient of the gradient is exact and costs nothing unless asked.
    Returns y and the (keepdims) mean and variance."""
    xd = x.detach()
    mean, var = _shifted_stats(xd, dims)
    xc = xd - mean
    rstd = (var + eps).rsqrt()
    shape = _channel_shape(x)
    w = None if weight is None else to_var(weight).reshape(shape)
    y = _affine(xc * rstd, x, None if weight is None else to_var(weight).detach(),
                None if bias is None else to_var(bias).detach())
    n = x.numel() // x.shape[1]
    inputs = [x] + [p for p in (weight, bias) if p is not None]
    mean_x = _attach([mean], [x], lambda d: [(d[0] * (1.0 / n)).broadcast(x.shape)])[0]
    rstd_x = _attach([rstd], [x], lambda d: [-(d[0] * rstd ** 3) * (x - mean_x) * (1.0 / n)])[0]

    def rule(douts):
        dy = douts[0]
        mean, rstd = mean_x, rstd_x
        xhat = (x - mean) * rstd
        db = dy.sum(dims, keepdims=True)
        dw = (dy * xhat).sum(dims, keepdims=True)
        scale = rstd if w is None else rstd * w
        dx = scale * (dy - (db + xhat * dw) * (1.0 / n))
        grads = [dx]
        if weight is not None:
            grads.append(dw.reshape(to_var(weight).shape))
        if bias is not None:
            grads.append(db.reshape(to_var(bias).shape))
        return grads
    return _attach([y], inputs, rule)[0], mean, var


def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, num_batches_tracked=None, sync=False):
    """PyTorch's F.batch_norm. In training the batch statistics normalise x and,
    when given, running_mean/running_var are updated in place:
    r = (1 - momentum) * r + momentum * batch statistic (unbiased variance).
    momentum=None means a cumulative average over num_batches_tracked batches.
    sync under mpirun: the statistics are those of every rank's batch together."""
    x = to_var(x)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected at least 2 dims (N, C, ...), got {x.shape}")
    if not x.dtype.is_float:
        x = x.float32()
    C = x.shape[1]
    dims = [0] + list(range(2, x.ndim))
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: eval mode needs running_mean and running_var")
        return _per_channel(x, *_eval_scale_shift(running_mean, running_var, weight, bias, eps))
    n = x.numel() // C
    if n <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input of shape {x.shape}")
    if sync and distributed.world_size > 1:
        mean, var, n = _global_stats(x, dims)
        y = _affine((x - mean) * (var + eps).rsqrt(), x, weight, bias)
    else:
        y, mean, var = _batch_norm_train(x, dims, weight, bias, eps)
    if running_mean is not None and running_var is not None:
        if momentum is None:
            count = int(num_batches_tracked.item()) if num_batches_tracked is not None else 1
            m = 1.0 / max(count, 1)
        else:
            m = float(momentum)
        bm = mean.detach().reshape((C,))
        bv = var.detach().reshape((C,)) * (n / (n - 1))
        update_state(running_mean, running_mean * (1 - m) + bm * m)
        update_state(running_var, running_var * (1 - m) + bv * m)
    return y


def _init_state(m, num_features, eps, momentum, affine, track_running_stats, dtype, register_absent):
    """The affine parameters and running statistics batch and instance norm
    share (PyTorch's names); register_absent adds None buffers when not tracking."""
    m.num_features, m.eps, m.momentum = num_features, eps, momentum
    m.affine, m.track_running_stats = affine, track_running_stats
    if affine:
        m.weight = _init.one((num_features,), dtype)
        m.bias = _init.zero((num_features,), dtype)
    else:
        m.weight = m.bias = None
    if track_running_stats:
        m.register_buffer("running_mean", _init.zero((num_features,), dtype))
        m.register_buffer("running_var", _init.one((num_features,), dtype))
        m.register_buffer("num_batches_tracked", _init.zero((), "int64"))
    elif register_absent:
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            m.register_buffer(name, None)


class _BatchNorm(Module):
    _dims = None

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, is_train=True, sync=True, dtype="float32"):
        super().__init__()
        # Jittor's is_train=False: made in eval mode (running statistics),
        # until train() is called, as Jittor's train() sets is_train
        if not is_train:
            self.__dict__["training"] = False
        self.sync = sync
        _init_state(self, num_features, eps, momentum, affine, track_running_stats, dtype,
                    register_absent=True)

    def _check(self, x):
        if self._dims is not None and x.ndim not in self._dims:
            raise ValueError(f"{type(self).__name__}: expected a {' or '.join(map(str, self._dims))}"
                             f"-d input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected {self.num_features} channels "
                             f"(dim 1), got input of shape {x.shape}")

    def execute(self, x):
        x = to_var(x)
        self._check(x)
        use_batch = self.training or not self.track_running_stats
        if self.training and self.track_running_stats:
            update_state(self.num_batches_tracked, self.num_batches_tracked + 1)
        track = self.training and self.track_running_stats
        if not use_batch and not grad_mode.get():
            return self._folded(x)
        return batch_norm(x, self.running_mean if track or not use_batch else None,
                          self.running_var if track or not use_batch else None,
                          self.weight, self.bias, use_batch, self.momentum, self.eps,
                          self.num_batches_tracked, sync=self.sync)

    def _folded(self, x):
        """Inference under no_grad: x * scale + shift with the per-channel
        scale and shift kept between calls while the statistics and
        parameters are the same vars (an update or load_state_dict makes new
        ones) and eps the same, so they are computed once, not per call (a
        ResNet-50 forward: 162 -> 58 kernels)."""
        if not x.dtype.is_float:
            x = x.float32()
        vecs = (self.running_mean, self.running_var, self.weight, self.bias)
        key = tuple(None if v is None else to_var(v)._id for v in vecs) + (self.eps,)
        kept = self.__dict__.get("_folded_state")
        if kept is None or kept[0] != key:
            kept = (key, *_eval_scale_shift(*vecs, self.eps))
            self.__dict__["_folded_state"] = kept
        return _per_channel(x, kept[1], kept[2])

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    _dims = (4,)


class BatchNorm3d(_BatchNorm):
    _dims = (5,)


BatchNorm = BatchNorm2d


class SyncBatchNorm(_BatchNorm):
    """PyTorch's nn.SyncBatchNorm: batch norm over any (N, C, ...) input whose
    statistics, under mpirun, are those of every rank's batch together."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, process_group=None, dtype="float32"):
        del process_group
        super().__init__(num_features, eps, momentum, affine, track_running_stats, sync=True,
                         dtype=dtype)

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """Turns on sync in every batch norm of module (kept in place); returns it."""
        del process_group
        for m in module.modules():
            if isinstance(m, _BatchNorm):
                m.sync = True
        return module


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    x = to_var(x)
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if tuple(x.shape[x.ndim - k:]) != normalized_shape:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end with the "
                         f"normalized shape {normalized_shape}")
    dims = list(range(x.ndim - k, x.ndim))
    mean = x.mean(dims, keepdims=True)
    xc = x - mean
    y = xc * ((xc * xc).mean(dims, keepdims=True) + eps).rsqrt()
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype="float32"):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = _init.one(self.normalized_shape, dtype)
            self.bias = _init.zero(self.normalized_shape, dtype) if bias else None
        else:
            self.weight = self.bias = None

    def execute(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, " \
               f"elementwise_affine={self.elementwise_affine}"


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    x = to_var(x)
    N, C = x.shape[:2]
    if C % num_groups:
        raise ValueError(f"group_norm: {num_groups} groups do not divide {C} channels")
    g = x.reshape((N, num_groups, -1))
    mean = g.mean(2, keepdims=True)
    gc = g - mean
    y = (gc * ((gc * gc).mean(2, keepdims=True) + eps).rsqrt()).reshape(x.shape)
    return _affine(y, x, weight, bias)


class GroupNorm(Module):
    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, is_train=True,
                 dtype="float32"):
        # Jittor's is_train changes nothing here: group statistics come from
        # each sample, in training and evaluation alike
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: {num_groups} groups do not divide {num_channels} "
                             "channels")
        self.num_groups, self.num_channels, self.eps, self.affine = (num_groups, num_channels,
                                                                     eps, affine)
        if affine:
            self.weight = _init.one((num_channels,), dtype)
            self.bias = _init.zero((num_channels,), dtype)
        else:
            self.weight = self.bias = None

    def execute(self, x):
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


def instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    x = to_var(x)
    dims = list(range(2, x.ndim))
    if not use_input_stats:
        shape = _channel_shape(x)
        y = (x - to_var(running_mean).reshape(shape)) * \
            (to_var(running_var).reshape(shape) + eps).rsqrt()
        return _affine(y, x, weight, bias)
    mean = x.mean(dims, keepdims=True)
    xc = x - mean
    var = (xc * xc).mean(dims, keepdims=True)
    if running_mean is not None and running_var is not None:
        n = int(np.prod(x.shape[2:]))
        m = float(momentum)
        bm = mean.detach().mean(0).reshape((x.shape[1],))
        bv = (var.detach() * (n / max(n - 1, 1))).mean(0).reshape((x.shape[1],))
        update_state(running_mean, running_mean * (1 - m) + bm * m)
        update_state(running_var, running_var * (1 - m) + bv * m)
    return _affine(xc * (var + eps).rsqrt(), x, weight, bias)


class _InstanceNorm(Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False, is_train=True, sync=True, dtype="float32"):
        super().__init__()
        # is_train=False makes the layer in eval mode, as for batch norm; it
        # matters only with track_running_stats (otherwise statistics are
        # always the sample's own). sync: instance statistics never span ranks.
        if not is_train:
            self.__dict__["training"] = False
        _init_state(self, num_features, eps, momentum, affine, track_running_stats, dtype,
                    register_absent=False)

    def execute(self, x):
        x = to_var(x)
        track = self.track_running_stats
        use_input = self.training or not track
        if track and self.training:
            update_state(self.num_batches_tracked, self.num_batches_tracked + 1)
        return instance_norm(x, self.running_mean if track else None,
                             self.running_var if track else None, self.weight, self.bias,
                             use_input, self.momentum, self.eps)


class InstanceNorm1d(_InstanceNorm):
    pass


class InstanceNorm2d(_InstanceNorm):
    pass


class InstanceNorm3d(_InstanceNorm):
    pass


class LocalResponseNorm(Module):
    """PyTorch's LRN across channels: x / (k + alpha/n * sum of squares)^beta."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def execute(self, x):
        x = to_var(x)
        lo = self.size // 2
        shape = x.shape + (self.size,)
        nd = x.ndim
        idx = ["i0", f"i1+i{nd}-{lo}"] + [f"i{d}" for d in range(2, nd)]
        sq = (x * x).reindex(shape, idx).sum(nd)
        return x / (sq * (self.alpha / self.size) + self.k) ** self.beta
