"""MNASNet (B1 variant) at depth multipliers 0.5, 0.75, 1.0, 1.3, laid out as
torchvision's: ``layers`` (a Sequential: stem, stacks of inverted residuals
with a ``layers`` Sequential each, final 1x1 conv) and ``classifier``."""
from .. import init as _init
from .. import nn
from ._utils import TorchvisionModule, init_bn, is_bn, is_conv, is_linear, no_pretrained, zero_bias

__all__ = ["MNASNet", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"]

# Paper suggests 0.9997 momentum, for TensorFlow. Equivalent PyTorch momentum is 1 - 0.9997.
_BN_MOMENTUM = 1 - 0.9997


class _InvertedResidual(nn.Module):
    def __init__(self, in_ch, out_ch, kernel_size, stride, expansion_factor, bn_momentum=0.1):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride should be 1 or 2 instead of {stride}")
        if kernel_size not in (3, 5):
            raise ValueError(f"kernel_size should be 3 or 5 instead of {kernel_size}")
        mid_ch = in_ch * expansion_factor
        self.apply_residual = in_ch == out_ch and stride == 1
        self.layers = nn.Sequential(
            # pointwise
            nn.Conv2d(in_ch, mid_ch, 1, bias=False),
            nn.BatchNorm2d(mid_ch, momentum=bn_momentum),
            nn.ReLU(inplace=True),
            # depthwise
            nn.Conv2d(mid_ch, mid_ch, kernel_size, padding=kernel_size // 2, stride=stride,
                      groups=mid_ch, bias=False),
            nn.BatchNorm2d(mid_ch, momentum=bn_momentum),
            nn.ReLU(inplace=True),
            # linear pointwise, no activation
            nn.Conv2d(mid_ch, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch, momentum=bn_momentum),
        )

    def execute(self, x):
        if self.apply_residual:
            return self.layers(x) + x
        return self.layers(x)


def _stack(in_ch, out_ch, kernel_size, stride, exp_factor, repeats, bn_momentum):
    """A stack of inverted residuals; only the first changes size (no skip)."""
    if repeats < 1:
        raise ValueError(f"repeats should be >= 1, instead got {repeats}")
    first = _InvertedResidual(in_ch, out_ch, kernel_size, stride, exp_factor,
                              bn_momentum=bn_momentum)
    rest = [_InvertedResidual(out_ch, out_ch, kernel_size, 1, exp_factor, bn_momentum=bn_momentum)
            for _ in range(1, repeats)]
    return nn.Sequential(first, *rest)


def _round_to_multiple_of(val, divisor, round_up_bias=0.9):
    """Rounds val to a multiple of divisor, up unless that is no more than 10%
    above the lower multiple: (83, 8) -> 80, (84, 8) -> 88."""
    if not 0.0 < round_up_bias < 1.0:
        raise ValueError(f"round_up_bias should be greater than 0.0 and smaller than 1.0 "
                         f"instead of {round_up_bias}")
    new_val = max(divisor, int(val + divisor / 2) // divisor * divisor)
    return new_val if new_val >= round_up_bias * val else new_val + divisor


def _get_depths(alpha):
    depths = [32, 16, 24, 40, 80, 96, 192, 320]
    return [_round_to_multiple_of(depth * alpha, 8) for depth in depths]


class MNASNet(TorchvisionModule):
    """MNASNet (https://arxiv.org/pdf/1807.11626.pdf), the B1 variant. This is
    the current (version 2) layout, whose stem scales with alpha; checkpoints
    of the version-1 layout for alpha != 1 (fixed 32/16-channel stem) do not
    load."""

    _version = 2

    def __init__(self, alpha, num_classes=1000, dropout=0.2):
        super().__init__()
        if alpha <= 0.0:
            raise ValueError(f"alpha should be greater than 0.0 instead of {alpha}")
        self.alpha = alpha
        self.num_classes = num_classes
        depths = _get_depths(alpha)
        layers = [
            # first layer: regular conv
            nn.Conv2d(3, depths[0], 3, padding=1, stride=2, bias=False),
            nn.BatchNorm2d(depths[0], momentum=_BN_MOMENTUM),
            nn.ReLU(inplace=True),
            # depthwise separable, no skip
            nn.Conv2d(depths[0], depths[0], 3, padding=1, stride=1, groups=depths[0], bias=False),
            nn.BatchNorm2d(depths[0], momentum=_BN_MOMENTUM),
            nn.ReLU(inplace=True),
            nn.Conv2d(depths[0], depths[1], 1, padding=0, stride=1, bias=False),
            nn.BatchNorm2d(depths[1], momentum=_BN_MOMENTUM),
            # MNASNet blocks: stacks of inverted residuals
            _stack(depths[1], depths[2], 3, 2, 3, 3, _BN_MOMENTUM),
            _stack(depths[2], depths[3], 5, 2, 3, 3, _BN_MOMENTUM),
            _stack(depths[3], depths[4], 5, 2, 6, 3, _BN_MOMENTUM),
            _stack(depths[4], depths[5], 3, 1, 6, 2, _BN_MOMENTUM),
            _stack(depths[5], depths[6], 5, 2, 6, 4, _BN_MOMENTUM),
            _stack(depths[6], depths[7], 3, 1, 6, 1, _BN_MOMENTUM),
            # final mapping to the classifier's input
            nn.Conv2d(depths[7], 1280, 1, padding=0, stride=1, bias=False),
            nn.BatchNorm2d(1280, momentum=_BN_MOMENTUM),
            nn.ReLU(inplace=True),
        ]
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True),
                                        nn.Linear(1280, num_classes))
        for m in self.modules():
            if is_conv(m):
                _init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                zero_bias(m)
            elif is_bn(m):
                init_bn(m)
            elif is_linear(m):
                _init.kaiming_uniform_(m.weight, mode="fan_out", nonlinearity="sigmoid")
                zero_bias(m)

    def execute(self, x):
        x = self.layers(x)
        x = x.mean([2, 3])     # global average pool, dropping H and W
        return self.classifier(x)


def _mnasnet(name, alpha, pretrained, num_classes, weights, kwargs):
    no_pretrained(name, pretrained, weights, kwargs)
    return MNASNet(alpha, num_classes=num_classes, **kwargs)


def mnasnet0_5(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """MNASNet with depth multiplier 0.5. Input: (N, 3, H, W), any size (224 natively)."""
    return _mnasnet("mnasnet0_5", 0.5, pretrained, num_classes, weights, kwargs)


def mnasnet0_75(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """MNASNet with depth multiplier 0.75."""
    return _mnasnet("mnasnet0_75", 0.75, pretrained, num_classes, weights, kwargs)


def mnasnet1_0(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """MNASNet with depth multiplier 1.0."""
    return _mnasnet("mnasnet1_0", 1.0, pretrained, num_classes, weights, kwargs)


def mnasnet1_3(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """MNASNet with depth multiplier 1.3."""
    return _mnasnet("mnasnet1_3", 1.3, pretrained, num_classes, weights, kwargs)
