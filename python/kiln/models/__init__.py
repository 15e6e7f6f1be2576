"""kiln.models: the classification backbones of torchvision 0.14 (and
Jittor's model zoo), with torchvision's constructors, module structure and
parameter/buffer names, so a torchvision ``state_dict`` loads unchanged::

    import kiln as jt
    from kiln import models
    model = models.resnet50()
    model.load_state_dict(jt.load("resnet50.pth"))   # or kiln.io.load_pth(...)
    model.eval()
    logits = model(images)                           # (N, 3, 224, 224) -> (N, 1000)

Every constructor takes (pretrained=False, num_classes=1000, **kwargs), the
kwargs being those of the model's class. Nothing is downloaded:
pretrained=True raises PretrainedUnavailableError saying how to load a file.
Inputs are NCHW float32 normalised the ImageNet way."""
# everything imported here is re-exported (see __all__)
from ._utils import PretrainedUnavailableError  # noqa: F401
from .alexnet import AlexNet, alexnet  # noqa: F401
from .vgg import VGG, vgg11, vgg11_bn, vgg13, vgg13_bn  # noqa: F401
from .vgg import vgg16, vgg16_bn, vgg19, vgg19_bn  # noqa: F401
from .resnet import ResNet, BasicBlock, Bottleneck  # noqa: F401
from .resnet import resnet18, resnet34, resnet50, resnet101, resnet152  # noqa: F401
from .resnet import resnext50_32x4d, resnext101_32x8d, resnext101_64x4d  # noqa: F401
from .resnet import wide_resnet50_2, wide_resnet101_2  # noqa: F401
from .squeezenet import SqueezeNet, squeezenet1_0, squeezenet1_1  # noqa: F401
from .densenet import DenseNet, densenet121, densenet161, densenet169, densenet201  # noqa: F401
from .googlenet import GoogLeNet, GoogLeNetOutputs, googlenet  # noqa: F401
from .inception import Inception3, InceptionOutputs, inception_v3  # noqa: F401
from .mobilenet import MobileNetV2, mobilenet_v2  # noqa: F401
from .mnasnet import MNASNet, mnasnet0_5, mnasnet0_75, mnasnet1_0, mnasnet1_3  # noqa: F401
from .shufflenetv2 import ShuffleNetV2, shufflenet_v2_x0_5, shufflenet_v2_x1_0  # noqa: F401
from .shufflenetv2 import shufflenet_v2_x1_5, shufflenet_v2_x2_0  # noqa: F401

MODELS = (
    "alexnet",
    "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
    "wide_resnet50_2", "wide_resnet101_2",
    "squeezenet1_0", "squeezenet1_1",
    "densenet121", "densenet161", "densenet169", "densenet201",
    "googlenet", "inception_v3", "mobilenet_v2",
    "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
)


def list_models():
    """The names of the model constructors, as torchvision.models.list_models()."""
    return sorted(MODELS)


def get_model(name, **kwargs):
    """Builds the model of that name: get_model("resnet50", num_classes=10)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return globals()[name](**kwargs)


__all__ = list(MODELS) + [
    "AlexNet", "VGG", "ResNet", "BasicBlock", "Bottleneck", "SqueezeNet", "DenseNet",
    "GoogLeNet", "GoogLeNetOutputs", "Inception3", "InceptionOutputs", "MobileNetV2", "MNASNet",
    "ShuffleNetV2", "PretrainedUnavailableError", "list_models", "get_model",
]
