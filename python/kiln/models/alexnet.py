"""AlexNet ("One weird trick for parallelizing convolutional neural networks"),
laid out as torchvision's: ``features``, ``avgpool``, ``classifier``."""
from .. import nn
from .._shape import flatten
from ._utils import TorchvisionModule, no_pretrained

__all__ = ["AlexNet", "alexnet"]


class AlexNet(TorchvisionModule):
    def __init__(self, num_classes=1000, dropout=0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def execute(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = flatten(x, 1)
        return self.classifier(x)


def alexnet(pretrained=False, num_classes=1000, weights=None, **kwargs):
    """AlexNet; parameter names and shapes are torchvision's (``features.0.weight``, ...).
    Input: (N, 3, H, W), H and W at least 63 (224 natively)."""
    no_pretrained("alexnet", pretrained, weights, kwargs)
    return AlexNet(num_classes=num_classes, **kwargs)
