"""ResNet 18/34/50/101/152, ResNeXt and Wide ResNet, laid out as torchvision's
(ResNet v1.5: the stride of a Bottleneck is on its 3x3 conv): ``conv1``,
``bn1``, ``layer1``..``layer4`` (Sequentials of blocks with ``conv1``,
``bn1``, ..., ``downsample``), ``fc``."""
from .. import init as _init
from .. import nn
from .._shape import flatten
from ._utils import TorchvisionModule, init_bn, is_bn, is_conv, no_pretrained

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "conv3x3", "conv1x1", "resnet18", "resnet34",
           "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
           "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"]


def conv3x3(in_planes, out_planes, stride=1, groups=1, dilation=1):
    """3x3 convolution, padded to keep the size (at stride 1), no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation,
                     groups=groups, bias=False, dilation=dilation)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 dilation=1, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("Dilation > 1 not supported in BasicBlock")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def execute(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 dilation=1, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def execute(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(TorchvisionModule):
    def __init__(self, block, layers, num_classes=1000, zero_init_residual=False, groups=1,
                 width_per_group=64, replace_stride_with_dilation=None, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        self.inplanes = 64
        self.dilation = 1
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError("replace_stride_with_dilation should be None or a 3-element tuple, "
                             f"got {replace_stride_with_dilation}")
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2,
                                       dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2,
                                       dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2,
                                       dilate=replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        for m in self.modules():
            if is_conv(m):
                _init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif is_bn(m):
                init_bn(m)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck) and m.bn3.weight is not None:
                    _init.constant_(m.bn3.weight, 0.0)
                elif isinstance(m, BasicBlock) and m.bn2.weight is not None:
                    _init.constant_(m.bn2.weight, 0.0)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                norm_layer(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width,
                        previous_dilation, norm_layer)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups,
                                base_width=self.base_width, dilation=self.dilation,
                                norm_layer=norm_layer))
        return nn.Sequential(*layers)

    def execute(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = flatten(self.avgpool(x), 1)
        return self.fc(x)


def _resnet(name, block, layers, pretrained, num_classes, weights, kwargs, **overrides):
    no_pretrained(name, pretrained, weights, kwargs)
    kwargs.update(overrides)
    return ResNet(block, layers, num_classes=num_classes, **kwargs)


def resnet18(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """ResNet-18. Input: (N, 3, H, W), any H, W >= 32 (224 natively)."""
    return _resnet("resnet18", BasicBlock, [2, 2, 2, 2], pretrained, num_classes, weights, kwargs)


def resnet34(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """ResNet-34."""
    return _resnet("resnet34", BasicBlock, [3, 4, 6, 3], pretrained, num_classes, weights, kwargs)


def resnet50(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """ResNet-50 (v1.5)."""
    return _resnet("resnet50", Bottleneck, [3, 4, 6, 3], pretrained, num_classes, weights, kwargs)


def resnet101(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """ResNet-101 (v1.5)."""
    return _resnet("resnet101", Bottleneck, [3, 4, 23, 3], pretrained, num_classes, weights,
                   kwargs)


def resnet152(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """ResNet-152 (v1.5)."""
    return _resnet("resnet152", Bottleneck, [3, 8, 36, 3], pretrained, num_classes, weights,
                   kwargs)


def resnext50_32x4d(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """ResNeXt-50 32x4d."""
    return _resnet("resnext50_32x4d", Bottleneck, [3, 4, 6, 3], pretrained, num_classes, weights,
                   kwargs, groups=32, width_per_group=4)


def resnext101_32x8d(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """ResNeXt-101 32x8d."""
    return _resnet("resnext101_32x8d", Bottleneck, [3, 4, 23, 3], pretrained, num_classes,
                   weights, kwargs, groups=32, width_per_group=8)


def resnext101_64x4d(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """ResNeXt-101 64x4d."""
    return _resnet("resnext101_64x4d", Bottleneck, [3, 4, 23, 3], pretrained, num_classes,
                   weights, kwargs, groups=64, width_per_group=4)


def wide_resnet50_2(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """Wide ResNet-50-2: ResNet-50 with twice the channels in each bottleneck's 3x3."""
    return _resnet("wide_resnet50_2", Bottleneck, [3, 4, 6, 3], pretrained, num_classes, weights,
                   kwargs, width_per_group=128)


def wide_resnet101_2(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """Wide ResNet-101-2."""
    return _resnet("wide_resnet101_2", Bottleneck, [3, 4, 23, 3], pretrained, num_classes,
                   weights, kwargs, width_per_group=128)
