"""kiln.nn.functional: every function of kiln.nn. The activations are here;
each layer family's own functions (conv2d, max_pool2d, batch_norm,
cross_entropy_loss, ...) live beside its layers in kiln/nn/modules/ and are
listed here. Each is a composition of meta-ops."""
import math

from .._core import binary, to_float, to_var, unary, where
from .._reduce import log_softmax, logsumexp, matmul, softmax

__all__ = [
    "relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "silu", "swish",
    "softplus", "softmax", "log_softmax", "logsumexp", "matmul",
    "hardswish", "hardsigmoid", "hardtanh", "prelu", "mish", "selu", "softsign", "logsigmoid",
]


def relu(x):
    return binary(x, 0, "maximum")


def relu6(x):
    return binary(binary(x, 0, "maximum"), 6, "minimum")


def leaky_relu(x, scale=0.01):
    x = to_var(x)
    return where(x > 0, x, x * scale)


def elu(x, alpha=1.0):
    x = to_float(to_var(x))
    return where(x > 0, x, (x.exp() - 1) * alpha)


def sigmoid(x):
    return unary(x, "sigmoid", True)


def tanh(x):
    return unary(x, "tanh", True)


def gelu(x):
    """The exact GELU: x * Phi(x), with erf."""
    x = to_float(to_var(x))
    return x * 0.5 * (unary(x * (1 / math.sqrt(2.0)), "erf") + 1)


def silu(x):
    x = to_float(to_var(x))
    return x * unary(x, "sigmoid")


swish = silu


def softplus(x, beta=1.0, threshold=20.0):
    x = to_float(to_var(x))
    bx = x * beta
    soft = (binary(bx, threshold, "minimum").exp() + 1).log() / beta
    return where(bx > threshold, x, soft)


def hardsigmoid(x):
    x = to_float(to_var(x))
    return (x + 3).maximum(0).minimum(6) / 6


def hardswish(x):
    x = to_float(to_var(x))
    return x * (x + 3).maximum(0).minimum(6) / 6


def hardtanh(x, min_val=-1.0, max_val=1.0):
    return to_var(x).maximum(min_val).minimum(max_val)


def prelu(x, weight):
    """max(0, x) + weight * min(0, x), weight per channel (dim 1) or one value."""
    x, weight = to_var(x), to_var(weight)
    if weight.numel() > 1:
        if x.ndim < 2 or x.shape[1] != weight.numel():
            raise ValueError(f"prelu: {weight.numel()} weights do not match the channels of "
                             f"input of shape {x.shape}")
        weight = weight.reshape((1, weight.numel()) + (1,) * (x.ndim - 2))
    else:
        weight = weight.reshape(())
    return where(x > 0, x, x * weight)


def mish(x):
    x = to_float(to_var(x))
    return x * softplus(x).tanh()


def selu(x):
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    return elu(x, alpha) * scale


def softsign(x):
    x = to_float(to_var(x))
    return x / (x.abs() + 1)


def logsigmoid(x):
    x = to_float(to_var(x))
    return -softplus(-x)


# ---- the layer families' functions (defined with their layers) ----
from .modules.linear import linear, embedding, dropout, dropout2d  # noqa: E402
from .modules.conv import (conv, conv1d, conv2d, conv3d, conv_transpose,  # noqa: E402
                           conv_transpose1d, conv_transpose2d, conv_transpose3d, fold, unfold)
from .modules.pooling import (adaptive_avg_pool1d, adaptive_avg_pool2d,  # noqa: E402
                              adaptive_avg_pool3d, adaptive_max_pool1d, adaptive_max_pool2d,
                              avg_pool1d, avg_pool2d, avg_pool3d, max_pool1d, max_pool2d,
                              max_pool3d, max_unpool1d, max_unpool2d, max_unpool3d, pool, pool3d)
from .modules.normalization import batch_norm, group_norm, instance_norm, layer_norm  # noqa: E402
from .modules.resize import (affine_grid, grid_sample, interpolate, pad,  # noqa: E402
                             pixel_shuffle, pixel_unshuffle, resize, upsample)
from .modules.loss import (bce_loss, binary_cross_entropy,  # noqa: E402
                           binary_cross_entropy_with_logits, cross_entropy, cross_entropy_loss,
                           huber_loss, kl_div, l1_loss, mse_loss, nll_loss, smooth_l1_loss)

__all__ += [
    "linear", "embedding", "dropout", "dropout2d", "conv", "conv1d", "conv2d", "conv3d",
    "conv_transpose", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "unfold", "fold",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "avg_pool1d", "avg_pool2d", "avg_pool3d", "max_pool1d", "max_pool2d",
    "max_pool3d", "max_unpool1d", "max_unpool2d", "max_unpool3d", "pool", "pool3d",
    "batch_norm", "group_norm", "instance_norm", "layer_norm", "affine_grid", "grid_sample",
    "interpolate", "pad", "pixel_shuffle",
    "pixel_unshuffle", "resize", "upsample", "bce_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "cross_entropy", "cross_entropy_loss", "huber_loss",
    "kl_div", "l1_loss", "mse_loss", "nll_loss", "smooth_l1_loss",
]
