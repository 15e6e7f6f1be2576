"""GoogLeNet (Inception v1), laid out as torchvision's: ``conv1``..``conv3``,
``inception3a``..``inception5b`` (branches ``branch1``..``branch4``), the
auxiliary heads ``aux1``/``aux2`` (present when aux_logits=True, the default,
and used only in training), ``fc``.

As in torchvision, googlenet() builds aux_logits=True, transform_input=False;
torchvision's pretrained checkpoint was trained with transform_input=True
(inputs normalised the ImageNet way, re-normalised inside the model), so pass
transform_input=True when loading it. In eval mode the model returns the
logits; in training with aux heads it returns GoogLeNetOutputs(logits,
aux_logits2, aux_logits1)."""
import collections

from .. import nn
from .._shape import concat, flatten
from ._utils import TorchvisionModule, no_pretrained, trunc_normal_init

__all__ = ["GoogLeNet", "GoogLeNetOutputs", "googlenet", "BasicConv2d", "Inception",
           "InceptionAux"]

GoogLeNetOutputs = collections.namedtuple("GoogLeNetOutputs",
                                          ["logits", "aux_logits2", "aux_logits1"])
_GoogLeNetOutputs = GoogLeNetOutputs


def transform_input(x):
    """Converts inputs normalised with ImageNet's mean/std to the (x - 0.5) / 0.5
    normalisation the ported TensorFlow weights expect."""
    chans = [x[:, c:c + 1] * (s / 0.5) + (m - 0.5) / 0.5
             for c, (m, s) in enumerate(((0.485, 0.229), (0.456, 0.224), (0.406, 0.225)))]
    return concat(chans, 1)


class BasicConv2d(nn.Module):
    """Conv (no bias), BatchNorm (eps 0.001), ReLU."""

    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def execute(self, x):
        return nn.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj,
                 conv_block=None):
        super().__init__()
        if conv_block is None:
            conv_block = BasicConv2d
        self.branch1 = conv_block(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(conv_block(in_channels, ch3x3red, kernel_size=1),
                                     conv_block(ch3x3red, ch3x3, kernel_size=3, padding=1))
        # kernel_size=3 instead of 5 is torchvision's (a known bug kept for its weights)
        self.branch3 = nn.Sequential(conv_block(in_channels, ch5x5red, kernel_size=1),
                                     conv_block(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            conv_block(in_channels, pool_proj, kernel_size=1))

    def execute(self, x):
        return concat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    def __init__(self, in_channels, num_classes, conv_block=None, dropout=0.7):
        super().__init__()
        if conv_block is None:
            conv_block = BasicConv2d
        self.conv = conv_block(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def execute(self, x):
        x = nn.adaptive_avg_pool2d(x, (4, 4))
        x = flatten(self.conv(x), 1)
        x = nn.relu(self.fc1(x))
        x = self.dropout(x)
        return self.fc2(x)


class GoogLeNet(TorchvisionModule):
    def __init__(self, num_classes=1000, aux_logits=True, transform_input=False,
                 init_weights=None, blocks=None, dropout=0.2, dropout_aux=0.7):
        super().__init__()
        if blocks is None:
            blocks = [BasicConv2d, Inception, InceptionAux]
        if init_weights is None:
            init_weights = True
        if len(blocks) != 3:
            raise ValueError(f"blocks length should be 3 instead of {len(blocks)}")
        conv_block, inception_block, inception_aux_block = blocks
        self.aux_logits = aux_logits
        self.transform_input = transform_input

        self.conv1 = conv_block(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = conv_block(64, 64, kernel_size=1)
        self.conv3 = conv_block(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = inception_block(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = inception_block(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception4a = inception_block(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = inception_block(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = inception_block(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = inception_block(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = inception_block(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        self.inception5a = inception_block(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = inception_block(832, 384, 192, 384, 48, 128, 128)

        if aux_logits:
            self.aux1 = inception_aux_block(512, num_classes, dropout=dropout_aux)
            self.aux2 = inception_aux_block(528, num_classes, dropout=dropout_aux)
        else:
            self.aux1 = None
            self.aux2 = None

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

        if init_weights:
            trunc_normal_init(self, 0.01)

    def _transform_input(self, x):
        return transform_input(x) if self.transform_input else x

    def execute(self, x):
        x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.inception3a(x)
        x = self.inception3b(x)
        x = self.maxpool3(x)
        x = self.inception4a(x)
        with_aux = self.training and self.aux_logits
        aux1 = self.aux1(x) if with_aux and self.aux1 is not None else None
        x = self.inception4b(x)
        x = self.inception4c(x)
        x = self.inception4d(x)
        aux2 = self.aux2(x) if with_aux and self.aux2 is not None else None
        x = self.inception4e(x)
        x = self.maxpool4(x)
        x = self.inception5a(x)
        x = self.inception5b(x)
        x = flatten(self.avgpool(x), 1)
        x = self.fc(self.dropout(x))
        if with_aux:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


def googlenet(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """GoogLeNet (torchvision's: aux_logits=True, transform_input=False by default;
    the aux heads run only in training). Input: (N, 3, H, W), H and W at least 15
    (224 natively)."""
    no_pretrained("googlenet", pretrained, weights, kwargs)
    return GoogLeNet(num_classes=num_classes, **kwargs)
