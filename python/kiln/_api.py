"""Puts the training API on the kiln package (jt.Module, jt.optim, jt.init,
jt.lr_scheduler, jt.dataset, jt.transform, jt.save, jt.load) and makes
``kiln.nn.functional`` an importable alias of kiln.nn. Imported at the end of
kiln.nn, so it runs while kiln itself is still importing."""
import sys

from . import _io, _module, init, nn

_pkg = sys.modules[__package__]
_pkg.Module = _module.Module
_pkg.init = init
nn.init = init                  # torch.nn.init spelling
_pkg.save = _io.save
_pkg.load = _io.load
sys.modules[__package__ + ".nn.functional"] = nn
nn.functional = nn


def _extend_nn_all():
    """from kiln.nn import * gives the layers and losses too."""
    from . import (_activation, _containers, _conv, _linear, _losses, _norm, _pool,
                   _resize)
    names = list(getattr(nn, "__all__", []))
    for mod in (_containers, _activation, _linear, _conv, _pool, _norm, _resize, _losses):
        names += [n for n in mod.__all__ if n not in names]
    names += [n for n in ("Module", "Parameter", "init", "clip_grad_norm_", "clip_grad_norm",
                          "SGD", "Adam", "AdamW", "RMSprop", "Adagrad") if n not in names]
    nn.__all__ = names

from . import lr_scheduler, optim  # noqa: E402

_pkg.optim = optim
_pkg.lr_scheduler = lr_scheduler
for _name in ("Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"):
    setattr(nn, _name, getattr(optim, _name))
nn.clip_grad_norm = nn.clip_grad_norm_ = optim.clip_grad_norm_
_extend_nn_all()


class _Utils:
    """jt.nn.utils: clip_grad_norm_."""
    clip_grad_norm_ = staticmethod(optim.clip_grad_norm_)
    clip_grad_norm = staticmethod(optim.clip_grad_norm_)


nn.utils = _Utils()

from . import dataset, transform  # noqa: E402

_pkg.dataset = dataset
_pkg.transform = transform
