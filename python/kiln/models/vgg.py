"""VGG 11/13/16/19, with or without BatchNorm, laid out as torchvision's:
``features`` (a Sequential of conv/bn/relu/maxpool), ``avgpool``, ``classifier``."""
from .. import init as _init
from .. import nn
from .._shape import flatten
from ._utils import TorchvisionModule, init_bn, is_bn, is_conv, is_linear, no_pretrained, zero_bias

__all__ = ["VGG", "make_layers", "cfgs", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16",
           "vgg16_bn", "vgg19", "vgg19_bn"]

cfgs = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
          "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512,
          512, 512, "M"],
}


class VGG(TorchvisionModule):
    def __init__(self, features, num_classes=1000, init_weights=True, dropout=0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        if init_weights:
            for m in self.modules():
                if is_conv(m):
                    _init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    zero_bias(m)
                elif is_bn(m):
                    init_bn(m)
                elif is_linear(m):
                    _init.normal_(m.weight, 0.0, 0.01)
                    zero_bias(m)

    def execute(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = flatten(x, 1)
        return self.classifier(x)


def make_layers(cfg, batch_norm=False):
    layers = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = nn.Conv2d(in_channels, v, kernel_size=3, padding=1)
            layers += [conv, nn.BatchNorm2d(v), nn.ReLU(inplace=True)] if batch_norm else \
                [conv, nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


def _vgg(name, cfg, batch_norm, pretrained, num_classes, weights, kwargs):
    no_pretrained(name, pretrained, weights, kwargs)
    return VGG(make_layers(cfgs[cfg], batch_norm=batch_norm), num_classes=num_classes, **kwargs)


def vgg11(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """VGG-11 (configuration A). Input: (N, 3, H, W), H and W at least 32 (224 natively)."""
    return _vgg("vgg11", "A", False, pretrained, num_classes, weights, kwargs)


def vgg11_bn(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """VGG-11 with BatchNorm."""
    return _vgg("vgg11_bn", "A", True, pretrained, num_classes, weights, kwargs)


def vgg13(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """VGG-13 (configuration B)."""
    return _vgg("vgg13", "B", False, pretrained, num_classes, weights, kwargs)


def vgg13_bn(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """VGG-13 with BatchNorm."""
    return _vgg("vgg13_bn", "B", True, pretrained, num_classes, weights, kwargs)


def vgg16(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """VGG-16 (configuration D)."""
    return _vgg("vgg16", "D", False, pretrained, num_classes, weights, kwargs)


def vgg16_bn(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """VGG-16 with BatchNorm."""
    return _vgg("vgg16_bn", "D", True, pretrained, num_classes, weights, kwargs)


def vgg19(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """VGG-19 (configuration E)."""
    return _vgg("vgg19", "E", False, pretrained, num_classes, weights, kwargs)


def vgg19_bn(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """VGG-19 with BatchNorm."""
    return _vgg("vgg19_bn", "E", True, pretrained, num_classes, weights, kwargs)
