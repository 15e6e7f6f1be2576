"""Activation layers (ReLU, GELU, Softmax, PReLU, ...) and the functional
forms that nn.py does not already have (hardswish, hardsigmoid, prelu, ...).
Each is element-wise meta-ops, so it fuses into its neighbours."""
import math

from ._core import to_float, to_var, where
from ._module import Module
from ._reduce import log_softmax, softmax
from . import nn as _nn

__all__ = [
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "GELU", "SiLU", "Swish", "Sigmoid", "Tanh",
    "Softmax", "LogSoftmax", "Softplus", "Hardswish", "Hardsigmoid", "Hardtanh", "Mish",
    "SELU", "Softsign", "Tanhshrink", "LogSigmoid", "hardswish", "hardsigmoid", "hardtanh",
    "prelu", "mish", "selu", "softsign", "logsigmoid", "Relu", "Relu6", "Leaky_relu",
]


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
    return x * _nn.softplus(x).tanh()


def selu(x):
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    return _nn.elu(x, alpha) * scale


def softsign(x):
    x = to_float(to_var(x))
    return x / (x.abs() + 1)


def logsigmoid(x):
    x = to_float(to_var(x))
    return -_nn.softplus(-x)


class ReLU(Module):
    def __init__(self, inplace=False):
        super().__init__()
        del inplace

    def execute(self, x):
        return _nn.relu(x)


class ReLU6(ReLU):
    def execute(self, x):
        return _nn.relu6(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        del inplace
        self.negative_slope = negative_slope

    def execute(self, x):
        return _nn.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class PReLU(Module):
    """Learned negative slope; PyTorch's default init 0.25."""

    def __init__(self, num_parameters=1, init=0.25, dtype="float32"):
        super().__init__()
        from .init import constant
        self.num_parameters = num_parameters
        self.weight = constant((num_parameters,), dtype, init)

    def execute(self, x):
        return prelu(x, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class ELU(Module):
    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        del inplace
        self.alpha = alpha

    def execute(self, x):
        return _nn.elu(x, self.alpha)


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def execute(self, x):
        if self.approximate == "tanh":
            x = to_float(to_var(x))
            c = math.sqrt(2.0 / math.pi)
            return x * 0.5 * ((x + x * x * x * 0.044715) * c).tanh() + x * 0.5
        return _nn.gelu(x)


class SiLU(ReLU):
    def execute(self, x):
        return _nn.silu(x)


Swish = SiLU
Relu, Relu6, Leaky_relu = ReLU, ReLU6, LeakyReLU     # Jittor's spellings


class Sigmoid(Module):
    def execute(self, x):
        return _nn.sigmoid(x)


class Tanh(Module):
    def execute(self, x):
        return _nn.tanh(x)


class Softmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = -1 if dim is None else dim

    def execute(self, x):
        return softmax(x, self.dim)


class LogSoftmax(Softmax):
    def execute(self, x):
        return log_softmax(x, self.dim)


class Softplus(Module):
    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def execute(self, x):
        return _nn.softplus(x, self.beta, self.threshold)


class Hardswish(ReLU):
    def execute(self, x):
        return hardswish(x)


class Hardsigmoid(ReLU):
    def execute(self, x):
        return hardsigmoid(x)


class Hardtanh(Module):
    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        del inplace
        self.min_val, self.max_val = min_val, max_val

    def execute(self, x):
        return hardtanh(x, self.min_val, self.max_val)


class Mish(ReLU):
    def execute(self, x):
        return mish(x)


class SELU(ReLU):
    def execute(self, x):
        return selu(x)


class Softsign(Module):
    def execute(self, x):
        return softsign(x)


class Tanhshrink(Module):
    def execute(self, x):
        x = to_var(x)
        return x - _nn.tanh(x)


class LogSigmoid(Module):
    def execute(self, x):
        return logsigmoid(x)
