"""Activation layers (ReLU, GELU, Softmax, PReLU, ...), each calling its
function in kiln.nn.functional; element-wise meta-ops, so they fuse into
their neighbours."""
import math

from ..._core import to_float, to_var, where
from ..module import Module
from ..._reduce import log_softmax, softmax
from .. import functional as F
__all__ = [
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "GELU", "SiLU", "Swish", "Sigmoid", "Tanh",
    "Softmax", "LogSoftmax", "Softplus", "Hardswish", "Hardsigmoid", "Hardtanh", "Mish",
    "SELU", "Softsign", "Tanhshrink", "LogSigmoid", "Relu", "Relu6", "Leaky_relu",
]


class ReLU(Module):
    def __init__(self, inplace=False):
        super().__init__()
        del inplace

    def execute(self, x):
        return F.relu(x)


class ReLU6(ReLU):
    def execute(self, x):
        return F.relu6(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        del inplace
        self.negative_slope = negative_slope

    def execute(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class PReLU(Module):
    """Learned negative slope; PyTorch's default init 0.25."""

    def __init__(self, num_parameters=1, init=0.25, dtype="float32"):
        super().__init__()
        from ...init import constant
        self.num_parameters = num_parameters
        self.weight = constant((num_parameters,), dtype, init)

    def execute(self, x):
        return F.prelu(x, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class ELU(Module):
    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        del inplace
        self.alpha = alpha

    def execute(self, x):
        return F.elu(x, self.alpha)


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def execute(self, x):
        if self.approximate == "tanh":
            x = to_float(to_var(x))
            c = math.sqrt(2.0 / math.pi)
            return x * 0.5 * ((x + x * x * x * 0.044715) * c).tanh() + x * 0.5
        return F.gelu(x)


class SiLU(ReLU):
    def execute(self, x):
        return F.silu(x)


Swish = SiLU
Relu, Relu6, Leaky_relu = ReLU, ReLU6, LeakyReLU     # Jittor's spellings


class Sigmoid(Module):
    def execute(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    def execute(self, x):
        return F.tanh(x)


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
        return F.softplus(x, self.beta, self.threshold)


class Hardswish(ReLU):
    def execute(self, x):
        return F.hardswish(x)


class Hardsigmoid(ReLU):
    def execute(self, x):
        return F.hardsigmoid(x)


class Hardtanh(Module):
    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        del inplace
        self.min_val, self.max_val = min_val, max_val

    def execute(self, x):
        return F.hardtanh(x, self.min_val, self.max_val)


class Mish(ReLU):
    def execute(self, x):
        return F.mish(x)


class SELU(ReLU):
    def execute(self, x):
        return F.selu(x)


class Softsign(Module):
    def execute(self, x):
        return F.softsign(x)


class Tanhshrink(Module):
    def execute(self, x):
        x = to_var(x)
        return x - F.tanh(x)


class LogSigmoid(Module):
    def execute(self, x):
        return F.logsigmoid(x)
