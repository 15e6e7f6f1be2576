"""kiln.init (jt.init): weight initialisation. PyTorch's in-place forms
(xavier_uniform_, kaiming_normal_, constant_, ...; same fan computations and
gains) and Jittor's constructors (gauss, uniform, constant, invariant_uniform,
...). Random values come from the core's counter-based RNG, so they are
reproducible under jt.seed."""
import math

import numpy as np

from . import _C
from ._core import Var, out
from ._dtype import as_dtype

__all__ = [
    "calculate_gain", "calculate_fan_in_and_fan_out", "uniform_", "normal_", "constant_",
    "zeros_", "ones_", "eye_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
    "kaiming_normal_", "trunc_normal_", "uniform", "gauss", "constant", "zero", "one",
    "xavier_uniform", "xavier_gauss", "kaiming_uniform", "kaiming_normal", "invariant_uniform",
    "relu_invariant_gauss", "fill", "zero_", "one_", "gauss_", "invariant_uniform_",
    "relu_invariant_gauss_",
]


def _shape(shape):
    if isinstance(shape, int):
        return (shape,)
    return tuple(int(s) for s in shape)


def _random(shape, dtype, kind, a, b):
    return out(_C.random(_shape(shape), as_dtype(dtype).code, kind, float(a), float(b)))


def _full(shape, value, dtype):
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    return out(_C.full(_shape(shape), value, as_dtype(dtype).code))


def _fill(var, value):
    """Makes var hold value, in place (no gradient path), and returns var."""
    if not isinstance(var, Var):
        raise TypeError(f"init: expected a Var, got {type(var).__name__}")
    var.update(value)
    return var


# ---- gains and fans (PyTorch's) ----

def calculate_gain(nonlinearity, param=None):
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid", "identity")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def calculate_fan_in_and_fan_out(var):
    """PyTorch's: fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field."""
    shape = _shape(var.shape if isinstance(var, Var) else var)
    if len(shape) < 2:
        raise ValueError("fan in and fan out can not be computed for a var with fewer than "
                         f"2 dims (shape {shape})")
    receptive = 1
    for s in shape[2:]:
        receptive *= s
    return shape[1] * receptive, shape[0] * receptive


_calculate_fan_in_and_fan_out = calculate_fan_in_and_fan_out


def _fan(var, mode):
    fan_in, fan_out = calculate_fan_in_and_fan_out(var)
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")


# ---- in place (PyTorch) ----

def uniform_(var, a=0.0, b=1.0):
    return _fill(var, _random(var.shape, var.dtype, "uniform", a, b))


def normal_(var, mean=0.0, std=1.0):
    return _fill(var, _random(var.shape, var.dtype, "normal", mean, std))


gauss_ = normal_


def trunc_normal_(var, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """Normal values truncated to [a, b], by inverse-CDF sampling of a uniform
    drawn between the bounds' CDF values."""
    lo = 0.5 * (1 + math.erf((a - mean) / std / math.sqrt(2)))
    hi = 0.5 * (1 + math.erf((b - mean) / std / math.sqrt(2)))
    u = _random(var.shape, "float64", "uniform", 2 * lo - 1, 2 * hi - 1)
    u = u.minimum(1 - 1e-12).maximum(-1 + 1e-12)
    # erfinv by Newton on erf (a few steps are plenty from a good start)
    x = u * 0.886226925 + u * u * u * 0.2320136
    for _ in range(6):
        f = x.erf() - u
        x = x - f / ((-(x * x)).exp() * (2 / math.sqrt(math.pi)))
    v = (x * (std * math.sqrt(2)) + mean).minimum(b).maximum(a)
    return _fill(var, v)


def constant_(var, value=0.0):
    return _fill(var, _full(var.shape, value, var.dtype))


def zeros_(var):
    return constant_(var, 0.0)


def ones_(var):
    return constant_(var, 1.0)


zero_, one_ = zeros_, ones_


def eye_(var):
    from ._create import eye
    if var.ndim != 2:
        raise ValueError(f"eye_: expected a 2-d var, got shape {var.shape}")
    return _fill(var, eye(var.shape[0], var.shape[1], var.dtype))


def xavier_uniform_(var, gain=1.0):
    fan_in, fan_out = calculate_fan_in_and_fan_out(var)
    a = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return uniform_(var, -a, a)


def xavier_normal_(var, gain=1.0):
    fan_in, fan_out = calculate_fan_in_and_fan_out(var)
    return normal_(var, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)))


def kaiming_uniform_(var, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(var, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(var, -bound, bound)


def kaiming_normal_(var, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(var, mode))
    return normal_(var, 0.0, std)


# ---- constructors (Jittor) ----

def uniform(shape, dtype="float32", low=0.0, high=1.0):
    return _random(shape, dtype, "uniform", low, high)


def gauss(shape, dtype="float32", mean=0.0, std=1.0):
    return _random(shape, dtype, "normal", mean, std)


def constant(shape, dtype="float32", value=0.0):
    return _full(shape, value, dtype)


fill = constant


def zero(shape, dtype="float32"):
    return _full(shape, 0.0, dtype)


def one(shape, dtype="float32"):
    return _full(shape, 1.0, dtype)


def xavier_uniform(shape, dtype="float32", gain=1.0):
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    a = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return uniform(shape, dtype, -a, a)


def xavier_gauss(shape, dtype="float32", gain=1.0):
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    return gauss(shape, dtype, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)))


def kaiming_uniform(shape, dtype="float32", a=0, mode="fan_in", nonlinearity="leaky_relu"):
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode))
    bound = math.sqrt(3.0) * std
    return uniform(shape, dtype, -bound, bound)


def kaiming_normal(shape, dtype="float32", a=0, mode="fan_in", nonlinearity="leaky_relu"):
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode))
    return gauss(shape, dtype, 0.0, std)


def invariant_uniform_(var, mode="fan_in"):
    return _fill(var, invariant_uniform(var.shape, var.dtype, mode))


def relu_invariant_gauss_(var, mode="fan_in"):
    return _fill(var, relu_invariant_gauss(var.shape, var.dtype, mode))


def invariant_uniform(shape, dtype="float32", mode="fan_in"):
    """Jittor's: uniform with bound sqrt(3 / fan)."""
    bound = math.sqrt(3.0 / _fan(shape, mode))
    return uniform(shape, dtype, -bound, bound)


def relu_invariant_gauss(shape, dtype="float32", mode="fan_in"):
    """Jittor's: normal with std sqrt(2 / fan)."""
    return gauss(shape, dtype, 0.0, math.sqrt(2.0 / _fan(shape, mode)))
