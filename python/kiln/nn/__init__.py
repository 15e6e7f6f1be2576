"""kiln.nn: Module and Parameter (module.py), the layers (modules/, one file
per family), every function (functional.py), init, and the optimisers and
clip_grad_norm_, which Jittor's nn also offers."""
from .module import Module, Parameter
from . import functional, modules
from .functional import *  # noqa: F401,F403
from .modules import *  # noqa: F401,F403
from ..attention import TorchMultiheadAttention as MultiheadAttention
from .. import init
from ..optim import Adagrad, Adam, AdamW, Optimizer, RMSprop, SGD, clip_grad_norm_
from . import utils
from .complex import ComplexNumber

clip_grad_norm = clip_grad_norm_

__all__ = (functional.__all__ + modules.__all__ +
           ["Module", "Parameter", "MultiheadAttention", "init", "clip_grad_norm_",
            "clip_grad_norm", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
