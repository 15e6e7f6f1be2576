"""Weight normalisation (Jittor's jittor.weightnorm): a parameter w is
replaced by two parameters, a direction v (w's shape) and a magnitude g, and
recomputed as w = g * v / ||v|| before every call of the module, so that
gradients reach g and v.

As in Jittor, ||v|| is the 2-norm along ``dim`` (kept as a size-1 dim, so g
has w's shape with that dim 1; dim None means -1). This is not
torch.nn.utils.weight_norm's convention, where dim is the one dim the norm is
NOT taken over."""
from ._core import Var
from ._reduce import norm
from .nn.module import _PRE_HOOKS, Module

__all__ = ["WeightNorm", "weight_norm", "remove_weight_norm"]


def _weight_norm(v, g, dim):
    return v * (g / norm(v, 2, dim, keepdim=True))


class WeightNorm:
    """The pre-forward hook that recomputes module.<name> from <name>_g and <name>_v."""

    def __init__(self, name, dim):
        self.name = name
        self.dim = -1 if dim is None else dim
        self.handle = None

    def compute_weight(self, module):
        g = getattr(module, self.name + "_g")
        v = getattr(module, self.name + "_v")
        return _weight_norm(v, g, self.dim)

    @staticmethod
    def apply(module, name, dim):
        if not isinstance(module, Module):
            raise TypeError(f"weight_norm: expected a Module, got {type(module).__name__}")
        if _find(module, name) is not None:
            raise RuntimeError(f"Cannot register two weight_norm hooks on the same parameter "
                               f"{name}")
        weight = getattr(module, name, None)
        if not isinstance(weight, Var):
            raise AttributeError(f"weight_norm: {type(module).__name__} has no parameter {name!r}")
        if not weight.dtype.is_float:
            raise TypeError(f"weight_norm: parameter {name!r} must be float, got {weight.dtype}")
        fn = WeightNorm(name, dim)
        if not -weight.ndim <= fn.dim < max(weight.ndim, 1):
            raise ValueError(f"weight_norm: dim {dim} is out of range for parameter {name!r} of "
                             f"shape {tuple(weight.shape)}")
        delattr(module, name)
        # g and v start from w, so the module computes what it did before
        module.register_parameter(name + "_g", norm(weight, 2, fn.dim, keepdim=True).detach())
        module.register_parameter(name + "_v", weight.detach().clone())
        module._set_derived(name, fn.compute_weight(module))
        fn.handle = module.register_forward_pre_hook(fn)
        return fn

    def remove(self, module):
        """Makes the weight an ordinary parameter again, with its current value."""
        weight = self.compute_weight(module).detach()
        self.handle.remove()
        module._set_derived(self.name, None)
        delattr(module, self.name + "_g")
        delattr(module, self.name + "_v")
        module.register_parameter(self.name, weight)

    def __call__(self, module, inputs, kwargs=None):
        del inputs, kwargs
        module._set_derived(self.name, self.compute_weight(module))


def _find(module, name):
    hooks = module.__dict__.get(_PRE_HOOKS) or {}
    for hook in hooks.values():
        if isinstance(hook, WeightNorm) and hook.name == name:
            return hook
    return None


def weight_norm(module, name, dim):
    """Reparameterises module.<name> as <name>_g * <name>_v / ||<name>_v||
    (norm along dim); returns the module.

    Example::

        class MatMul(jt.nn.Module):
            def __init__(self, weight):
                super().__init__()
                self.linear = jt.array(weight)

            def execute(self, x):
                return jt.matmul(self.linear, x)

        m = weight_norm(MatMul(weight), 'linear', -1)   # parameters linear_g, linear_v
    """
    WeightNorm.apply(module, name, dim)
    return module


def remove_weight_norm(module, name="weight"):
    """Undoes weight_norm: module.<name> is a parameter again (its current
    value); <name>_g and <name>_v are gone. Returns the module."""
    fn = _find(module, name)
    if fn is None:
        raise ValueError(f"weight_norm of {name!r} not found in {type(module).__name__}")
    fn.remove(module)
    return module
