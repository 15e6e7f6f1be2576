"""DenseNet-BC 121/161/169/201, laid out as torchvision's: ``features``
(``conv0``, ``norm0``, ``denseblock1``.. with ``denselayer1``.., transitions,
``norm5``) and ``classifier``. Checkpoints that use the old names of the
original torchvision release (``denselayer1.norm.1.weight``) are renamed
when loaded."""
import collections
import re

from .. import init as _init
from .. import nn
from .._shape import concat, flatten
from ._utils import TorchvisionModule, init_bn, is_bn, is_conv, is_linear, no_pretrained, zero_bias

__all__ = ["DenseNet", "densenet121", "densenet161", "densenet169", "densenet201"]


class _DenseLayer(nn.Module):
    def __init__(self, num_input_features, growth_rate, bn_size, drop_rate,
                 memory_efficient=False):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1,
                               stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1,
                               padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient   # accepted for compatibility; unused

    def execute(self, inputs):
        prev = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        x = concat(list(prev), 1) if len(prev) > 1 else prev[0]
        out = self.conv1(self.relu1(self.norm1(x)))
        out = self.conv2(self.relu2(self.norm2(out)))
        if self.drop_rate > 0:
            out = nn.dropout(out, p=self.drop_rate, training=self.training)
        return out


class _DenseBlock(nn.Module):
    def __init__(self, num_layers, num_input_features, bn_size, growth_rate, drop_rate,
                 memory_efficient=False):
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(num_input_features + i * growth_rate, growth_rate=growth_rate,
                                bn_size=bn_size, drop_rate=drop_rate,
                                memory_efficient=memory_efficient)
            self.add_module("denselayer%d" % (i + 1), layer)

    def execute(self, init_features):
        # torchvision concatenates the whole list before every layer; growing one
        # concatenation gives the same values with fewer, simpler kernels
        x = init_features
        for _, layer in self.named_children():
            x = concat([x, layer(x)], 1)
        return x


class _Transition(nn.Sequential):
    def __init__(self, num_input_features, num_output_features):
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1,
                              bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(TorchvisionModule):
    """Densenet-BC ("Densely Connected Convolutional Networks").
    growth_rate: filters each layer adds (k); block_config: layers per block;
    num_init_features: filters of the first conv; bn_size: the bottleneck's
    width in multiples of k; drop_rate: dropout after each dense layer."""

    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                 bn_size=4, drop_rate=0, num_classes=1000, memory_efficient=False):
        super().__init__()
        self.features = nn.Sequential(collections.OrderedDict([
            ("conv0", nn.Conv2d(3, num_init_features, kernel_size=7, stride=2, padding=3,
                                bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ]))
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(num_layers=num_layers, num_input_features=num_features,
                                bn_size=bn_size, growth_rate=growth_rate, drop_rate=drop_rate,
                                memory_efficient=memory_efficient)
            self.features.add_module("denseblock%d" % (i + 1), block)
            num_features = num_features + num_layers * growth_rate
            if i != len(block_config) - 1:
                trans = _Transition(num_input_features=num_features,
                                    num_output_features=num_features // 2)
                self.features.add_module("transition%d" % (i + 1), trans)
                num_features = num_features // 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)

        for m in self.modules():
            if is_conv(m):
                _init.kaiming_normal_(m.weight)
            elif is_bn(m):
                init_bn(m)
            elif is_linear(m):
                zero_bias(m)

    def execute(self, x):
        features = self.features(x)
        out = nn.relu(features)
        out = nn.adaptive_avg_pool2d(out, (1, 1))
        out = flatten(out, 1)
        return self.classifier(out)

    _LEGACY = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|"
        r"running_var|num_batches_tracked))$")

    def load_state_dict(self, state_dict, strict=True):
        """As Module.load_state_dict, also accepting the legacy key names
        (``norm.1.weight`` for ``norm1.weight``) of the first torchvision
        checkpoints."""
        renamed = collections.OrderedDict()
        for key, value in state_dict.items():
            m = self._LEGACY.match(key)
            renamed[m.group(1) + m.group(2) if m else key] = value
        return super().load_state_dict(renamed, strict)


def _densenet(name, growth_rate, block_config, num_init_features, pretrained, num_classes,
              weights, kwargs):
    no_pretrained(name, pretrained, weights, kwargs)
    return DenseNet(growth_rate, block_config, num_init_features, num_classes=num_classes,
                    **kwargs)


def densenet121(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """DenseNet-121. Input: (N, 3, H, W), H and W at least 29 (224 natively)."""
    return _densenet("densenet121", 32, (6, 12, 24, 16), 64, pretrained, num_classes, weights,
                     kwargs)


def densenet161(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """DenseNet-161."""
    return _densenet("densenet161", 48, (6, 12, 36, 24), 96, pretrained, num_classes, weights,
                     kwargs)


def densenet169(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """DenseNet-169."""
    return _densenet("densenet169", 32, (6, 12, 32, 32), 64, pretrained, num_classes, weights,
                     kwargs)


def densenet201(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """DenseNet-201."""
    return _densenet("densenet201", 32, (6, 12, 48, 32), 64, pretrained, num_classes, weights,
                     kwargs)
