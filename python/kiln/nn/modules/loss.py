"""Loss functions and loss layers, PyTorch's definitions and reductions
('mean', 'sum', 'none'): MSE, L1, SmoothL1, Huber, BCE, BCEWithLogits,
CrossEntropy (class indices with ignore_index, class weights and label
smoothing, or class probabilities), NLL, KLDiv; plus Jittor's names
(cross_entropy_loss, mse_loss, bce_loss, l1_loss, nll_loss)."""
from ..._core import cast, checked_index, to_float, to_var, where
from ..module import Module
from ..._reduce import log_softmax
from ..._shape import reindex

__all__ = [
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "bce_loss", "cross_entropy", "cross_entropy_loss",
    "nll_loss", "kl_div", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss",
    "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss", "KLDivLoss",
]


def _reduce(loss, reduction, name):
    if reduction == "mean" or reduction == "elementwise_mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none" or reduction is None:
        return loss
    raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _pair(input, target, name):
    input, target = to_float(to_var(input)), to_var(target)
    if not target.dtype.is_float:
        target = cast(target, input.dtype)
    if input.shape != target.shape:
        try:
            target = target.broadcast(input.shape)
        except ValueError:
            raise ValueError(f"{name}: target of shape {target.shape} does not match input of "
                             f"shape {input.shape}") from None
    return input, target


def mse_loss(input, target, reduction="mean"):
    x, t = _pair(input, target, "mse_loss")
    d = x - t
    return _reduce(d * d, reduction, "mse_loss")


def l1_loss(input, target, reduction="mean"):
    x, t = _pair(input, target, "l1_loss")
    return _reduce((x - t).abs(), reduction, "l1_loss")


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    x, t = _pair(input, target, "smooth_l1_loss")
    d = (x - t).abs()
    if beta == 0:
        return _reduce(d, reduction, "smooth_l1_loss")
    loss = where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta)
    return _reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(input, target, reduction="mean", delta=1.0):
    x, t = _pair(input, target, "huber_loss")
    d = (x - t).abs()
    loss = where(d < delta, d * d * 0.5, (d - 0.5 * delta) * delta)
    return _reduce(loss, reduction, "huber_loss")


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-(t log x + (1 - t) log(1 - x)), logs clamped at -100 as in PyTorch."""
    x, t = _pair(input, target, "binary_cross_entropy")
    loss = -(t * x.log().maximum(-100) + (1 - t) * (1 - x).log().maximum(-100))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction="mean", pos_weight=None):
    """The stable form: (1 - t) x + (1 + (pw - 1) t) (log(1 + e^-|x|) + max(-x, 0))."""
    del size_average, reduce
    x, t = _pair(input, target, "binary_cross_entropy_with_logits")
    softplus_neg = ((-x.abs()).exp() + 1).log() + (-x).maximum(0)
    if pos_weight is not None:
        lw = (to_var(pos_weight) - 1) * t + 1
        loss = (1 - t) * x + lw * softplus_neg
    else:
        loss = (1 - t) * x + softplus_neg
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def bce_loss(output, target, weight=None, size_average=True):
    """Jittor's bce_loss (on probabilities)."""
    return binary_cross_entropy(output, target, weight, "mean" if size_average else "sum")


def _flatten_classes(x, name):
    """(N, C, d1, ...) -> (N*d1*..., C) and the shape of the per-element loss."""
    if x.ndim == 1:
        return x.reshape((1, x.shape[0])), ()
    if x.ndim == 2:
        return x, (x.shape[0],)
    perm = [0] + list(range(2, x.ndim)) + [1]
    elem = (x.shape[0],) + tuple(x.shape[2:])
    return x.permute(perm).reshape((-1, x.shape[1])), elem


def _gather_class(logp, target):
    """logp[i, target[i]] (0 where target is out of range)."""
    return reindex(logp, (logp.shape[0],), ["i0", "@e0(i0)"], 0, (), [target])


def _nll(logp, target, weight, ignore_index, reduction, label_smoothing, elem_shape, name):
    """The loss from log-probabilities logp (M, C) and class indices target (M,)."""
    M, C = logp.shape
    target = to_var(target)
    if target.dtype.is_float:
        target = cast(target, "int32")
    if tuple(target.shape) != tuple(elem_shape) and target.numel() != M:
        raise ValueError(f"{name}: target of shape {target.shape} does not match input with "
                         f"{M} elements of shape {elem_shape} ({C} classes)")
    target = target.reshape((M,))
    keep = None
    if ignore_index is not None:
        ignored = target == ignore_index
        keep = cast(ignored.logical_not(), logp.dtype)
        target = where(ignored, 0, target)
    target = checked_index(target, 0, C, f"{name} target ({C} classes)")
    if weight is not None:
        weight = to_var(weight)
        w_t = reindex(weight, (M,), ["@e0(i0)"], 0, (), [target])
        if keep is not None:
            w_t = w_t * keep
    else:
        w_t = keep
    picked = _gather_class(logp, target)
    nll = -picked if w_t is None else -picked * w_t
    if label_smoothing:
        eps = float(label_smoothing)
        if weight is not None:
            smooth = -(logp * weight.reshape((1, C))).sum(1)
        else:
            smooth = -logp.sum(1)
        if keep is not None:
            smooth = smooth * keep
        loss = nll * (1 - eps) + smooth * (eps / C)
    else:
        loss = nll
    if reduction == "mean":
        denom = float(M) if w_t is None else w_t.sum()
        return loss.sum() / denom
    if reduction == "none" or reduction is None:
        return loss.reshape(elem_shape)
    return _reduce(loss, reduction, name)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """PyTorch's F.cross_entropy: input (N, C) or (N, C, d1, ...) logits; target
    class indices (N,) / (N, d1, ...) or class probabilities shaped like input."""
    del size_average, reduce
    x = to_float(to_var(input))
    target = to_var(target)
    logp, elem = _flatten_classes(log_softmax(x, 1 if x.ndim > 1 else 0), "cross_entropy")
    if target.dtype.is_float and tuple(target.shape) == tuple(x.shape):
        C = logp.shape[1]
        t, _ = _flatten_classes(target, "cross_entropy")
        if label_smoothing:
            t = t * (1 - label_smoothing) + label_smoothing / C
        prod = logp * t
        if weight is not None:
            prod = prod * to_var(weight).reshape((1, C))
        loss = -prod.sum(1)
        if reduction == "none":
            return loss.reshape(elem)
        return _reduce(loss, reduction, "cross_entropy")
    return _nll(logp, target, weight, ignore_index, reduction, label_smoothing, elem,
                "cross_entropy")


def cross_entropy_loss(output, target, weight=None, ignore_index=None, reduction="mean"):
    """Jittor's nn.cross_entropy_loss (no ignore_index unless given)."""
    return cross_entropy(output, target, weight, ignore_index=ignore_index,
                         reduction=reduction)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    del size_average, reduce
    x = to_float(to_var(input))
    logp, elem = _flatten_classes(x, "nll_loss")
    return _nll(logp, target, weight, ignore_index, reduction, 0.0, elem, "nll_loss")


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """target * (log target - input) pointwise (input holds log-probabilities);
    'batchmean' divides the sum by the batch size."""
    del size_average, reduce
    x, t = _pair(input, target, "kl_div")
    if log_target:
        loss = t.exp() * (t - x)
    else:
        safe = where(t > 0, t, 1.0)
        loss = where(t > 0, t * (safe.log() - x), 0.0)
    if reduction == "batchmean":
        return loss.sum() / (x.shape[0] if x.ndim else 1)
    return _reduce(loss, reduction, "kl_div")


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            if reduce is False:
                reduction = "none"
            elif size_average is False:
                reduction = "sum"
            else:
                reduction = "mean"
        self.reduction = reduction

    def _constant(self, name, value):
        """Class weights and the like: buffers, not parameters."""
        if value is None:
            object.__setattr__(self, name, None)
        else:
            self.register_buffer(name, to_var(value))


class MSELoss(_Loss):
    def execute(self, input, target):
        return mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    def execute(self, input, target):
        return l1_loss(input, target, self.reduction)


class SmoothL1Loss(_Loss):
    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def execute(self, input, target):
        return smooth_l1_loss(input, target, self.reduction, self.beta)


class HuberLoss(_Loss):
    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def execute(self, input, target):
        return huber_loss(input, target, self.reduction, self.delta)


class BCELoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self._constant("weight", weight)

    def execute(self, input, target):
        return binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self._constant("weight", weight)
        self._constant("pos_weight", pos_weight)

    def execute(self, input, target):
        return binary_cross_entropy_with_logits(input, target, self.weight,
                                                reduction=self.reduction,
                                                pos_weight=self.pos_weight)


class CrossEntropyLoss(_Loss):
    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        super().__init__(size_average, reduce, reduction)
        self._constant("weight", weight)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def execute(self, input, target):
        return cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_Loss):
    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self._constant("weight", weight)
        self.ignore_index = ignore_index

    def execute(self, input, target):
        return nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                        reduction=self.reduction)


class KLDivLoss(_Loss):
    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def execute(self, input, target):
        return kl_div(input, target, reduction=self.reduction, log_target=self.log_target)
