"""Custom gradients in Python: Jittor's jt.Function (execute / grad methods)
and jt.numpy_code (NumPy functions as an op, with NumPy gradients).

Both rest on the core's custom_grad op: an output carries its value and the
inputs it came from, and when a gradient reaches it the core asks a Python
function for each input's share."""
from collections.abc import Sequence

import numpy as np

from . import _C
from ._core import Var, array, out, to_var
from ._create import zeros
from ._dtype import as_dtype

__all__ = ["Function", "numpy_code"]


# memos filled during one kl_grad call, emptied when it returns: a memo kept
# longer would hold gradient vars whose graph leads back to the output that
# holds the rule (a cycle through the core that Python cannot collect)
_filled_memos = []


def grad_done():
    """Forgets what rules computed during the gradient call that just ended."""
    while _filled_memos:
        _filled_memos.pop().clear()


def _shares(rule, index, outputs):
    """The gradient callback of output `index`: rule(douts) returns one
    gradient per input; the other outputs' gradients are zeros (a rule is
    linear in them, so the core's sum over outputs is the whole gradient).
    The rule runs once per gradient reaching the output, not once per input."""
    kinds = [(o.shape, o.dtype) for o in outputs]   # not the outputs: their memory may go
    memo = {}

    def share(dout, i):
        if memo.get("dout") != dout._id:
            douts = [zeros(shape, dtype=dtype) for shape, dtype in kinds]
            douts[index] = dout
            memo["dout"], memo["grads"] = dout._id, rule(douts)
            _filled_memos.append(memo)
        g = memo["grads"][i]
        return None if g is None else to_var(g)

    return share


def _attach(values, inputs, rule):
    """values, each carrying rule's gradients to inputs."""
    if not inputs:
        return list(values)
    return [out(_C.custom_grad(v.detach(), inputs, _shares(rule, j, values)), *inputs)
            for j, v in enumerate(values)]


class Function:
    """A custom op in Python (Jittor's jt.Function). Subclasses define
    execute(*args), computing the outputs from kiln ops, and grad(*douts),
    returning one gradient (or None) per argument of execute. Gradients of the
    outputs flow to the Var arguments only through grad: execute's own ops
    see its inputs cut from the graph, so save what grad needs on self.

        class Square(jt.Function):
            def execute(self, x):
                self.x = x
                return x * x
            def grad(self, dout):
                return dout * self.x * 2

        y = Square()(x)          # or Square.apply(x)
    """

    def execute(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define execute()")

    def grad(self, *douts):
        raise NotImplementedError(f"{type(self).__name__} must define grad()")

    @classmethod
    def apply(cls, *args, **kwargs):
        return cls()(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        args = list(args)
        taped = []      # (argument position, the Var the gradient goes to)
        for i, a in enumerate(args):
            if isinstance(a, Var) and a.requires_grad:
                taped.append((i, a))
                args[i] = a.detach()
        result = self.execute(*args, **kwargs)
        many = isinstance(result, Sequence) and not isinstance(result, str)
        results = list(result) if many else [result]
        var_at = [k for k, r in enumerate(results) if isinstance(r, Var)]
        n_args = len(args)
        name = type(self).__name__

        def rule(douts):
            got = self.grad(*douts)
            got = list(got) if isinstance(got, Sequence) else [got]
            if len(got) != n_args and not (len(got) == len(taped) and n_args != len(taped)):
                raise ValueError(f"{name}.grad returned {len(got)} gradients for {n_args} arguments "
                                 f"of execute")
            if len(got) == n_args:
                got = [got[i] for i, _ in taped]
            return got

        attached = _attach([results[k] for k in var_at], [v for _, v in taped], rule)
        for k, v in zip(var_at, attached):
            results[k] = v
        return (type(result)(results) if isinstance(result, tuple) else results) if many else results[0]


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) and x and isinstance(x[0], (list, tuple)) else None


def numpy_code(shape, dtype, inputs, forward, backward=None, data=None):
    """An op whose value is computed by NumPy (Jittor's jt.numpy_code).
    forward(np, d) fills d["outputs"] (preallocated arrays of the given
    shapes and dtypes) from d["inputs"] (arrays of the input Vars). For one
    output, shape and dtype are a shape and a dtype; for several, lists of
    them, and a list of Vars is returned. backward[i](np, d) fills
    d["outputs"][0] with the gradient of input i given d["dout"], the
    gradient of output d["out_index"]. Extra items of `data` are passed too.
    The NumPy code runs when the op is called (its inputs are computed
    first), and the gradients when jt.grad asks for them."""
    shapes = _as_list(shape)
    single = shapes is None
    shapes = [tuple(shape)] if single else [tuple(s) for s in shapes]
    dtypes = [dtype] if single else list(dtype)
    if len(dtypes) != len(shapes):
        raise ValueError(f"numpy_code: {len(shapes)} output shapes but {len(dtypes)} dtypes")
    inputs = [to_var(x) for x in inputs]
    backward = list(backward or [])
    extra = dict(data or {})
    arrays = [x.numpy() for x in inputs]
    outs = [np.empty(s, dtype=as_dtype(d).np) for s, d in zip(shapes, dtypes)]
    forward(np, dict(extra, inputs=arrays, outputs=outs))
    values = [array(o) for o in outs]
    taped = [i for i, x in enumerate(inputs) if x.requires_grad and i < len(backward)]

    def rule_for(index):
        def rule(douts):   # douts: this output's gradient alone
            dout = douts[0].numpy()
            grads = []
            for i in taped:
                g = np.zeros(arrays[i].shape, arrays[i].dtype)
                backward[i](np, dict(extra, inputs=arrays, outputs=[g], dout=dout, out_index=index))
                grads.append(array(g))
            return grads
        return rule

    results = [_attach([v], [inputs[i] for i in taped], rule_for(j))[0] for j, v in enumerate(values)]
    return results[0] if single else results
