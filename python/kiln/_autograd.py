"""Autograd on the core's kl_grad: jt.grad (Jittor), Var.backward and .grad
(PyTorch), and no_grad / enable_grad."""
import functools

from . import _C
from ._core import Leaf, Var, array, grad_mode, out, state, to_var
from ._create import zeros_like

__all__ = ["grad", "backward", "no_grad", "enable_grad", "is_grad_enabled", "stop_grad", "detach"]


def _core_grad(y, dy, xs):
    """The core's grad; custom rules' memos are dropped when it returns."""
    try:
        return _C.grad(y, dy, xs)
    finally:
        from ._function import grad_done
        grad_done()


def _link_grads(grads, y, dy):
    """Gradients depend on what y (and dy) depend on: keep them linked so that
    they can be differentiated again."""
    deps = (y,) if dy is None else (y, dy)
    return [out(g, *deps) for g in grads]


def grad(loss, targets, retain_graph=True, grad_output=None):
    """Gradients of loss (summed when it is not a scalar) with respect to each
    target: one Var for one target, else a list. Targets cut by stop_grad get
    zeros; integer and bool targets have no gradient and raise TypeError, as
    in Jittor."""
    del retain_graph  # the graph is functional: nothing to free
    loss = to_var(loss)
    if not loss.dtype.is_float:
        raise TypeError(f"grad: the output is {loss.dtype}; only a float output can be differentiated")
    single = isinstance(targets, _C.Var)
    ts = [targets] if single else list(targets)
    for i, t in enumerate(ts):
        if not isinstance(t, Var):
            raise TypeError(f"grad: targets must be Vars, got {type(t).__name__}")
        if not t.dtype.is_float:
            raise TypeError(f"grad: target {i} is {t.dtype}; only float vars have gradients "
                            "(cast it to a float dtype before it is used)")
    dy = None if grad_output is None else to_var(grad_output)
    wanted = [t for t in ts if t.requires_grad]
    for t in wanted:
        if t._rg is None:
            # a target is a parameter: graphs built from it from now on stay
            # differentiable after a sync, and in-place updates keep it a leaf
            t.requires_grad = True
    got = iter(_link_grads(_core_grad(loss, dy, wanted), loss, dy)) if wanted else iter(())
    grads = [next(got) if t.requires_grad else zeros_like(t) for t in ts]
    return grads[0] if single else grads


def _leaves(gn):
    """The Leaf links reachable from an autograd link, each once."""
    found, seen, stack = [], set(), [gn]
    while stack:
        g = stack.pop()
        if g is None or id(g) in seen:
            continue
        seen.add(id(g))
        if isinstance(g, Leaf):
            v = g.ref()
            if v is not None and v._rg:
                found.append((v, g))
        else:
            stack.extend(g)
    return found


def backward(self, grad=None, retain_graph=False, create_graph=False):
    """Accumulates d(self)/d(leaf) into leaf.grad for every var marked
    requires_grad=True that self depends on (PyTorch's backward)."""
    del retain_graph
    leaves = _leaves(self._gn)
    if not leaves:
        raise RuntimeError("backward: the var does not depend on any var with "
                           "requires_grad=True (set x.requires_grad = True, or use jt.grad)")
    dy = None if grad is None else to_var(grad)
    gs = _core_grad(self, dy, [link.h for _, link in leaves])
    for (v, _), g in zip(leaves, gs):
        if create_graph:
            g = out(g, self)
        else:
            g = g.detach()
        v.grad = g if v.grad is None else v.grad + g


class no_grad:
    """Context manager (and decorator): ops built inside are cut from autograd.
    The mode is the calling thread's own (a contextvars.ContextVar)."""

    _enabled = False

    def __init__(self):
        self._tokens = []

    def __enter__(self):
        self._tokens.append(grad_mode.set(self._enabled))
        return self

    def __exit__(self, *exc):
        token = self._tokens.pop()
        try:
            grad_mode.reset(token)
        except ValueError:  # entered in another thread or context: restore its value
            grad_mode.set(token.old_value if token.old_value is not token.MISSING else True)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapped


class enable_grad(no_grad):
    _enabled = True


def is_grad_enabled():
    return state.grad_enabled


def stop_grad(x):
    """The same value with no gradient path (a new var; Var.stop_grad() is in place)."""
    return array(x).detach() if not isinstance(x, Var) else x.detach()


def detach(x):
    return stop_grad(x)
