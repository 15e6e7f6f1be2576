"""SqueezeNet 1.0 and 1.1, laid out as torchvision's: ``features`` (convs,
max pools and Fire modules with ``squeeze``/``expand1x1``/``expand3x3``) and
``classifier`` (dropout, a 1x1 conv to the classes, ReLU, global average)."""
from .. import init as _init
from .. import nn
from .._shape import concat, flatten
from ._utils import TorchvisionModule, is_conv, no_pretrained, zero_bias

__all__ = ["SqueezeNet", "Fire", "squeezenet1_0", "squeezenet1_1"]


class Fire(nn.Module):
    def __init__(self, inplanes, squeeze_planes, expand1x1_planes, expand3x3_planes):
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def execute(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return concat([self.expand1x1_activation(self.expand1x1(x)),
                       self.expand3x3_activation(self.expand3x3(x))], 1)


class SqueezeNet(TorchvisionModule):
    def __init__(self, version="1_0", num_classes=1000, dropout=0.5):
        super().__init__()
        self.num_classes = num_classes
        if version == "1_0":
            self.features = nn.Sequential(
                nn.Conv2d(3, 96, kernel_size=7, stride=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(96, 16, 64, 64),
                Fire(128, 16, 64, 64),
                Fire(128, 32, 128, 128),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(256, 32, 128, 128),
                Fire(256, 48, 192, 192),
                Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(512, 64, 256, 256),
            )
        elif version == "1_1":
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, kernel_size=3, stride=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(64, 16, 64, 64),
                Fire(128, 16, 64, 64),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(128, 32, 128, 128),
                Fire(256, 32, 128, 128),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(256, 48, 192, 192),
                Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256),
                Fire(512, 64, 256, 256),
            )
        else:
            raise ValueError(f"Unsupported SqueezeNet version {version}: 1_0 or 1_1 expected")
        final_conv = nn.Conv2d(512, self.num_classes, kernel_size=1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), final_conv, nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d((1, 1)))
        for m in self.modules():
            if is_conv(m):
                if m is final_conv:
                    _init.normal_(m.weight, 0.0, 0.01)
                else:
                    _init.kaiming_uniform_(m.weight)
                zero_bias(m)

    def execute(self, x):
        x = self.features(x)
        x = self.classifier(x)
        return flatten(x, 1)


def squeezenet1_0(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """SqueezeNet 1.0. Input: (N, 3, H, W), H and W at least 21 (224 natively)."""
    no_pretrained("squeezenet1_0", pretrained, weights, kwargs)
    return SqueezeNet("1_0", num_classes=num_classes, **kwargs)


def squeezenet1_1(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """SqueezeNet 1.1: 2.4x less computation than 1.0 at the same accuracy.
    Input: (N, 3, H, W), H and W at least 17 (224 natively)."""
    no_pretrained("squeezenet1_1", pretrained, weights, kwargs)
    return SqueezeNet("1_1", num_classes=num_classes, **kwargs)
