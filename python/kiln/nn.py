"""kiln.nn: the functional activations and losses, each a composition of
meta-ops (layers come later)."""
import math

from ._core import binary, to_float, to_var, unary, where
from ._reduce import log_softmax, logsumexp, matmul, softmax

__all__ = [
    "relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "silu", "swish",
    "softplus", "softmax", "log_softmax", "logsumexp", "matmul", "mse_loss",
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


def mse_loss(output, target):
    d = to_var(output) - target
    return (d * d).mean()


# ---- layers, containers and losses (Module-based; see the files named) ----
from ._module import Module, Parameter  # noqa: E402
from ._containers import *  # noqa: E402,F401,F403
from ._activation import *  # noqa: E402,F401,F403
from ._linear import *  # noqa: E402,F401,F403
from ._conv import *  # noqa: E402,F401,F403
from ._pool import *  # noqa: E402,F401,F403
from ._norm import *  # noqa: E402,F401,F403
from ._resize import *  # noqa: E402,F401,F403
from ._losses import *  # noqa: E402,F401,F403
from . import _api  # noqa: E402,F401  (jt.Module, jt.optim, jt.save, ...)
