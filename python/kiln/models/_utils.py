"""Helpers shared by the model zoo: the pretrained-weights refusal, channel
rounding, and the weight initialisations torchvision uses."""
import collections

import numpy as np

from .. import init as _init
from .. import nn

__all__ = ["no_pretrained", "make_divisible", "PretrainedUnavailableError", "TorchvisionModule"]


class PretrainedUnavailableError(RuntimeError):
    """Raised by a model constructor given pretrained=True (or weights=...):
    kiln does not download anything."""


def no_pretrained(name, pretrained=False, weights=None, kwargs=None):
    """Refuses pretrained weights with a message saying how to load a file,
    and drops torchvision's ``progress`` argument (meaningless here)."""
    if kwargs is not None:
        kwargs.pop("progress", None)
    if pretrained or weights is not None:
        raise PretrainedUnavailableError(
            f"kiln.models.{name}: pretrained weights cannot be downloaded here (kiln never "
            f"fetches anything from the network). Build the model with pretrained=False and "
            f"load a checkpoint file instead, e.g.\n"
            f"    model = kiln.models.{name}()\n"
            f"    model.load_state_dict(jt.load('{name}.pth'))\n"
            f"(a torchvision state_dict saved with torch.save loads unchanged; "
            f"kiln.io.load_pth reads .pth files without torch).")


def make_divisible(v, divisor, min_value=None):
    """The TensorFlow rule torchvision uses to round channel counts: the nearest
    multiple of divisor, never below min_value nor more than 10% below v."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def is_conv(m):
    return isinstance(m, nn.Conv2d)


def is_bn(m):
    return isinstance(m, nn.BatchNorm2d) or type(m).__name__ == "GroupNorm"


def is_linear(m):
    return isinstance(m, nn.Linear)


def init_bn(m):
    if getattr(m, "weight", None) is not None:
        _init.constant_(m.weight, 1.0)
    if getattr(m, "bias", None) is not None:
        _init.constant_(m.bias, 0.0)


def zero_bias(m):
    if getattr(m, "bias", None) is not None:
        _init.constant_(m.bias, 0.0)


def trunc_normal_init(model, default_std):
    """GoogLeNet's / Inception v3's: truncated normal (+-2) conv and linear
    weights (std from a layer's ``stddev`` attribute, else default_std), unit
    BatchNorm."""
    for m in model.modules():
        if is_conv(m) or is_linear(m):
            std = float(getattr(m, "stddev", default_std))
            _init.trunc_normal_(m.weight, mean=0.0, std=std, a=-2.0, b=2.0)
        elif is_bn(m):
            init_bn(m)


class TorchvisionModule(nn.Module):
    """Base of the zoo's top-level models: load_state_dict also takes the
    checkpoints of PyTorch < 0.4.1 (most of torchvision's original ImageNet
    weights), whose BatchNorm layers have no ``num_batches_tracked``: the
    missing counters are set to 0, as PyTorch's own loader does."""

    def load_state_dict(self, state_dict, strict=True):
        state = collections.OrderedDict(state_dict)
        suffix = "num_batches_tracked"
        for key in self.state_dict():
            if key.endswith(suffix) and key not in state and \
                    key[:-len(suffix)] + "running_mean" in state:
                state[key] = np.zeros((), np.int64)
        return super().load_state_dict(state, strict)
