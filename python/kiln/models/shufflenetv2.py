"""ShuffleNet v2 at widths 0.5, 1.0, 1.5, 2.0, laid out as torchvision's:
``conv1``, ``stage2``..``stage4`` (InvertedResidual blocks with ``branch1``,
``branch2``), ``conv5``, ``fc``."""
from .. import nn
from .._shape import concat, transpose
from ._utils import TorchvisionModule, no_pretrained

__all__ = ["ShuffleNetV2", "InvertedResidual", "channel_shuffle", "shufflenet_v2_x0_5",
           "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"]


def channel_shuffle(x, groups):
    """Interleaves the channels of groups groups: (N, g*c, H, W) read as
    (N, g, c, H, W), transposed to (N, c, g, H, W), flattened back."""
    n, c, h, w = x.shape
    x = x.reshape((n, groups, c // groups, h, w))
    x = transpose(x, 1, 2)
    return x.reshape((n, c, h, w))


def _depthwise_conv(i, o, kernel_size, stride=1, padding=0, bias=False):
    return nn.Conv2d(i, o, kernel_size, stride, padding, bias=bias, groups=i)


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride):
        super().__init__()
        if not 1 <= stride <= 3:
            raise ValueError("illegal stride value")
        self.stride = stride
        branch_features = oup // 2
        if stride == 1 and inp != branch_features << 1:
            raise ValueError(f"Invalid combination of stride {stride}, inp {inp} and oup {oup} "
                             "values. If stride == 1 then inp should be equal to oup // 2 << 1.")
        if stride > 1:
            self.branch1 = nn.Sequential(
                _depthwise_conv(inp, inp, kernel_size=3, stride=stride, padding=1),
                nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch_features, kernel_size=1, stride=1, padding=0, bias=False),
                nn.BatchNorm2d(branch_features),
                nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else branch_features, branch_features, kernel_size=1,
                      stride=1, padding=0, bias=False),
            nn.BatchNorm2d(branch_features),
            nn.ReLU(inplace=True),
            _depthwise_conv(branch_features, branch_features, kernel_size=3, stride=stride,
                            padding=1),
            nn.BatchNorm2d(branch_features),
            nn.Conv2d(branch_features, branch_features, kernel_size=1, stride=1, padding=0,
                      bias=False),
            nn.BatchNorm2d(branch_features),
            nn.ReLU(inplace=True),
        )

    depthwise_conv = staticmethod(_depthwise_conv)

    def execute(self, x):
        if self.stride == 1:
            half = x.shape[1] // 2
            x1, x2 = x[:, :half], x[:, half:]
            out = concat([x1, self.branch2(x2)], 1)
        else:
            out = concat([self.branch1(x), self.branch2(x)], 1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(TorchvisionModule):
    def __init__(self, stages_repeats, stages_out_channels, num_classes=1000,
                 inverted_residual=InvertedResidual):
        super().__init__()
        if len(stages_repeats) != 3:
            raise ValueError("expected stages_repeats as list of 3 positive ints")
        if len(stages_out_channels) != 5:
            raise ValueError("expected stages_out_channels as list of 5 positive ints")
        self._stage_out_channels = list(stages_out_channels)
        input_channels = 3
        output_channels = self._stage_out_channels[0]
        self.conv1 = nn.Sequential(
            nn.Conv2d(input_channels, output_channels, 3, 2, 1, bias=False),
            nn.BatchNorm2d(output_channels),
            nn.ReLU(inplace=True),
        )
        input_channels = output_channels
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for name, repeats, output_channels in zip(("stage2", "stage3", "stage4"), stages_repeats,
                                                  self._stage_out_channels[1:]):
            seq = [inverted_residual(input_channels, output_channels, 2)]
            seq += [inverted_residual(output_channels, output_channels, 1)
                    for _ in range(repeats - 1)]
            setattr(self, name, nn.Sequential(*seq))
            input_channels = output_channels
        output_channels = self._stage_out_channels[-1]
        self.conv5 = nn.Sequential(
            nn.Conv2d(input_channels, output_channels, 1, 1, 0, bias=False),
            nn.BatchNorm2d(output_channels),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(output_channels, num_classes)

    def execute(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.stage2(x)
        x = self.stage3(x)
        x = self.stage4(x)
        x = self.conv5(x)
        x = x.mean([2, 3])     # global average pool
        return self.fc(x)


def _shufflenetv2(name, pretrained, num_classes, weights, kwargs, *args):
    no_pretrained(name, pretrained, weights, kwargs)
    return ShuffleNetV2(*args, num_classes=num_classes, **kwargs)


def shufflenet_v2_x0_5(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """ShuffleNet v2 with 0.5x output channels. Input: (N, 3, H, W), any size
    (224 natively)."""
    return _shufflenetv2("shufflenet_v2_x0_5", pretrained, num_classes, weights, kwargs,
                         [4, 8, 4], [24, 48, 96, 192, 1024])


def shufflenet_v2_x1_0(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """ShuffleNet v2 with 1.0x output channels."""
    return _shufflenetv2("shufflenet_v2_x1_0", pretrained, num_classes, weights, kwargs,
                         [4, 8, 4], [24, 116, 232, 464, 1024])


def shufflenet_v2_x1_5(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """ShuffleNet v2 with 1.5x output channels."""
    return _shufflenetv2("shufflenet_v2_x1_5", pretrained, num_classes, weights, kwargs,
                         [4, 8, 4], [24, 176, 352, 704, 1024])


def shufflenet_v2_x2_0(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """ShuffleNet v2 with 2.0x output channels."""
    return _shufflenetv2("shufflenet_v2_x2_0", pretrained, num_classes, weights, kwargs,
                         [4, 8, 4], [24, 244, 488, 976, 2048])
