"""kiln.optim (jt.optim): SGD, Adam, AdamW, RMSprop, Adagrad with PyTorch's
update rules, param groups and state_dict. Two ways to train:

    optimizer.step(loss)                  # Jittor: gradients by jt.grad, then the update
    loss.backward(); optimizer.step(); optimizer.zero_grad()   # PyTorch

Each step computes every new value from detached vars (no gradient path),
syncs them in one go, and rebinds the parameters with Var.update, so the
graph never chains across iterations and memory stays flat.
Positional arguments follow Jittor where it differs from PyTorch
(SGD(params, lr, momentum, weight_decay, dampening, nesterov)); Adam's third
positional argument may be betas (PyTorch) or eps (Jittor)."""
import math
import numbers
from collections.abc import Sequence

import numpy as np

from . import distributed
from ._autograd import grad as _grad
from ._core import Var, to_var
from ._create import zeros_like
from ._flags import sync
from .nn.module import parameter_value, take_dirty_state

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "clip_grad_norm_",
           "clip_grad_norm", "lr_scheduler"]


def _is_var(x):
    return isinstance(x, Var)


def _params_of(params):
    if isinstance(params, Var):
        return [params]
    return list(params)


class _GroupGrads(Sequence):
    """Jittor's param_group["grads"]: the gradient of each of the group's
    parameters, in order, read live from p.grad (zeros before backward)."""

    def __init__(self, params):
        self._params = params

    def __len__(self):
        return len(self._params)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        p = self._params[i]
        return p.grad if p.grad is not None else zeros_like(p)


_RUNTIME_KEYS = ("params", "grads")   # rebuilt from the parameters, never saved


class Optimizer:
    """Base class: holds param groups (dicts with 'params' and hyperparameters),
    per-parameter state, and the step machinery; subclasses define _update."""

    _state_keys = ()

    def __init__(self, params, defaults):
        # Jittor's base class is also used directly: Optimizer(params, lr),
        # a plain gradient step
        self.defaults = dict(defaults) if isinstance(defaults, dict) else {"lr": defaults}
        self.param_groups = []
        self._explicit_lr = []
        self.state = {}          # id(param) -> dict of state values
        self._owns_grads = False
        params = _params_of(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)
        if distributed.world_size > 1:
            self._broadcast_params()

    def _broadcast_params(self):
        """Under MPI every rank starts from rank 0's parameters."""
        ps = self._all_params()
        for p in ps:
            p.update(distributed.mpi_broadcast(p.detach(), 0))
        sync(ps)

    def add_param_group(self, group):
        group = dict(group)
        ps = _params_of(group["params"])
        for p in ps:
            if not _is_var(p):
                raise TypeError(f"optimizer can only optimize Vars, got {type(p).__name__}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in ps):
            raise ValueError("some parameters appear in more than one parameter group")
        self._explicit_lr.append("lr" in group)
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        group["params"] = ps
        group["grads"] = _GroupGrads(ps)
        self.param_groups.append(group)

    # ---- Jittor's lr attribute ----
    @property
    def lr(self):
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        """Sets the lr of every group that did not set its own."""
        self.defaults["lr"] = value
        for g, explicit in zip(self.param_groups, self._explicit_lr):
            if not explicit or len(self.param_groups) == 1:
                g["lr"] = value

    def _all_params(self):
        return [p for g in self.param_groups for p in g["params"]]

    # ---- gradients ----
    def zero_grad(self, set_to_none=True):
        del set_to_none
        for p in self._all_params():
            p.grad = None
        self._owns_grads = False

    def backward(self, loss, retain_graph=False):
        """Jittor's optimizer.backward(loss): gradients of loss for every
        parameter that requires grad, added to p.grad."""
        del retain_graph
        ps = [p for p in self._all_params() if p.requires_grad and p.dtype.is_float]
        if not ps:
            raise RuntimeError("optimizer.backward: no parameter requires grad")
        gs = _grad(loss, ps)
        for p, g in zip(ps, gs):
            g = g.detach()
            p.grad = g if p.grad is None else (p.grad + g).detach()
        self._owns_grads = True

    def clip_grad_norm(self, max_norm, norm_type=2):
        """Scales every p.grad so that their joint norm is at most max_norm;
        returns the norm before clipping (a Var)."""
        return clip_grad_norm_(self._all_params(), max_norm, norm_type)

    # ---- the step ----
    def step(self, loss=None, retain_graph=False):
        """Updates the parameters from p.grad; with loss (Jittor), computes the
        gradients first and clears them afterwards. The loss is computed in
        the same sync and then forgets its graph (unless retain_graph), as
        PyTorch frees it after backward: a loss kept in a list must not hold
        the step's activations."""
        if loss is not None:
            if callable(loss) and not _is_var(loss):   # PyTorch's closure
                loss = loss()
                if _is_var(loss) and not self._any_grad():
                    self.backward(loss)
            else:
                self.backward(loss, retain_graph)
        todo, found = [], []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None or not p.requires_grad or not p.dtype.is_float:
                    continue
                g = to_var(p.grad).detach()
                if g.shape != p.shape:
                    raise ValueError(f"optimizer: gradient of shape {g.shape} does not match "
                                     f"parameter of shape {p.shape}")
                if g.dtype != p.dtype:
                    g = g.astype(p.dtype)
                found.append((group, p, g))
        if distributed.world_size > 1 and found:
            # every rank's gradients averaged, computed in this step's sync
            averaged = distributed.all_reduce_bucketed([g for _, _, g in found], "mean")
            found = [(group, p, g) for (group, p, _), g in zip(found, averaged)]
        for group, p, g in found:
            st = self.state.setdefault(id(p), {})
            new_p, new_st = self._update(p.detach(), g, st, group)
            # state is never differentiated: cut it, or each step's buffers
            # would keep the previous step's (every float var keeps its graph)
            new_st = {k: v.detach() if _is_var(v) else v for k, v in new_st.items()}
            todo.append((p, new_p, st, new_st, g))
        if todo:
            pending = [t[1] for t in todo]
            for _, _, _, new_st, _ in todo:
                pending.extend(v for v in new_st.values() if _is_var(v))
            if not self._owns_grads:
                pending.extend(t[4] for t in todo)
            if _is_var(loss):
                pending.append(loss)
            sync(pending)
            for p, new_p, st, new_st, g in todo:
                st.update(new_st)
                p.update(new_p)
                if not self._owns_grads:
                    p.grad = g
            sync([t[0] for t in todo] + take_dirty_state())
        else:
            sync(take_dirty_state())
        if _is_var(loss) and not retain_graph:
            loss._release_graph()
        if self._owns_grads:
            self.zero_grad()
        return loss

    def find_grad(self, p):
        """The gradient backward() gave parameter p (Jittor's opt_grad)."""
        for q in self._all_params():
            if q is p:
                return p.grad if p.grad is not None else zeros_like(p)
        raise ValueError("find_grad: the var is not a parameter of this optimizer")

    def _any_grad(self):
        return any(p.grad is not None for p in self._all_params())

    def _update(self, p, g, state, group):
        """The base class's step (Jittor's Optimizer): p - lr * g."""
        return p - g * group["lr"], {}

    # ---- state ----
    def state_dict(self):
        """PyTorch's layout: {'state': {index: {...}}, 'param_groups': [{...,
        'params': [indices]}]}, with Vars for tensors."""
        index, groups, k = {}, [], 0
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index[id(p)] = k
                ids.append(k)
                k += 1
            d = {key: v for key, v in g.items() if key not in _RUNTIME_KEYS}
            d["params"] = ids
            groups.append(d)
        state = {}
        for p in self._all_params():
            st = self.state.get(id(p))
            if st:
                state[index[id(p)]] = dict(st)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"load_state_dict: {len(groups)} parameter groups given, the "
                             f"optimizer has {len(self.param_groups)}")
        params = {}
        for saved, g in zip(groups, self.param_groups):
            if len(saved["params"]) != len(g["params"]):
                raise ValueError("load_state_dict: a parameter group has "
                                 f"{len(saved['params'])} parameters, the optimizer's has "
                                 f"{len(g['params'])}")
            for i, p in zip(saved["params"], g["params"]):
                params[i] = p
            for key, v in saved.items():
                if key not in _RUNTIME_KEYS:
                    g[key] = tuple(v) if isinstance(v, list) and key == "betas" else v
        self.state = {}
        for i, st in state_dict["state"].items():
            p = params.get(int(i))
            if p is None:
                continue
            new = {}
            for key, v in st.items():
                if key == "step":
                    new[key] = int(v.item() if _is_var(v) else np.asarray(v).item())
                elif isinstance(v, numbers.Number):
                    new[key] = v
                else:
                    new[key] = parameter_value(v, p, key).astype(p.dtype).detach()
            self.state[id(p)] = new


def _buffer(state, key, like, init=0.0):
    v = state.get(key)
    if v is None:
        from ._create import full
        v = full(like.shape, init, like.dtype)
    return v


class SGD(Optimizer):
    """PyTorch's SGD: weight decay, momentum with dampening, Nesterov. Nesterov
    with dampening is allowed, as Jittor allows it (PyTorch refuses it): the
    step is g + momentum * buf with buf's dampened update."""

    _state_keys = ("momentum_buffer",)

    def __init__(self, params, lr, momentum=0, weight_decay=0, dampening=0, nesterov=False,
                 maximize=False):
        if lr < 0:
            raise ValueError(f"SGD: invalid learning rate {lr}")
        if nesterov and momentum <= 0:
            raise ValueError("SGD: Nesterov momentum requires momentum > 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _update(self, p, g, state, group):
        if group["maximize"]:
            g = -g
        wd, m = group["weight_decay"], group["momentum"]
        if wd:
            g = g + p * wd
        new = {}
        if m:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = g
            else:
                buf = buf * m + g * (1 - group["dampening"])
            new["momentum_buffer"] = buf
            g = g + buf * m if group["nesterov"] else buf
        return p - g * group["lr"], new


class Adam(Optimizer):
    """PyTorch's Adam (bias-corrected, eps outside the square root), amsgrad."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, maximize=False):
        if isinstance(betas, numbers.Number) and isinstance(eps, (tuple, list)):
            betas, eps = eps, betas            # Jittor's order: (params, lr, eps, betas)
        if not 0 <= betas[0] < 1 or not 0 <= betas[1] < 1:
            raise ValueError(f"{type(self).__name__}: invalid betas {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def _update(self, p, g, state, group):
        if group["maximize"]:
            g = -g
        b1, b2 = group["betas"]
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        if wd:
            if self._decoupled:
                p = p * (1 - lr * wd)
            else:
                g = g + p * wd
        step = state.get("step", 0) + 1
        m = _buffer(state, "exp_avg", p) * b1 + g * (1 - b1)
        v = _buffer(state, "exp_avg_sq", p) * b2 + g * g * (1 - b2)
        new = {"step": step, "exp_avg": m, "exp_avg_sq": v}
        bc1, bc2 = 1 - b1 ** step, 1 - b2 ** step
        if group["amsgrad"]:
            vmax = _buffer(state, "max_exp_avg_sq", p).maximum(v)
            new["max_exp_avg_sq"] = vmax
            v = vmax
        denom = v.sqrt() * (1 / math.sqrt(bc2)) + eps
        return p - m / denom * (lr / bc1), new


class AdamW(Adam):
    """Adam with decoupled weight decay (p *= 1 - lr * weight_decay); PyTorch's
    default weight_decay 0.01."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, maximize=False):
        if alpha < 0.5 < eps:                  # Jittor's order: (params, lr, eps, alpha)
            alpha, eps = eps, alpha
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _update(self, p, g, state, group):
        if group["maximize"]:
            g = -g
        a, eps, wd, mom = group["alpha"], group["eps"], group["weight_decay"], group["momentum"]
        if wd:
            g = g + p * wd
        sq = _buffer(state, "square_avg", p) * a + g * g * (1 - a)
        new = {"step": state.get("step", 0) + 1, "square_avg": sq}
        if group["centered"]:
            ga = _buffer(state, "grad_avg", p) * a + g * (1 - a)
            new["grad_avg"] = ga
            avg = (sq - ga * ga).sqrt() + eps
        else:
            avg = sq.sqrt() + eps
        if mom:
            buf = _buffer(state, "momentum_buffer", p) * mom + g / avg
            new["momentum_buffer"] = buf
            return p - buf * group["lr"], new
        return p - g / avg * group["lr"], new


class Adagrad(Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))

    def _update(self, p, g, state, group):
        if group["maximize"]:
            g = -g
        if group["weight_decay"]:
            g = g + p * group["weight_decay"]
        step = state.get("step", 0) + 1
        clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        s = _buffer(state, "sum", p, group["initial_accumulator_value"]) + g * g
        return p - g / (s.sqrt() + group["eps"]) * clr, {"step": step, "sum": s}


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """PyTorch's clip_grad_norm_: scales the gradients (p.grad) in place so that
    their joint norm is at most max_norm; returns the total norm (a Var)."""
    ps = [p for p in _params_of(parameters) if p.grad is not None]
    if not ps:
        from ._create import zeros
        return zeros(())
    norm_type = float(norm_type)
    gs = [to_var(p.grad).detach() for p in ps]
    if math.isinf(norm_type):
        total = None
        for g in gs:
            m = g.abs().max()
            total = m if total is None else total.maximum(m)
    else:
        acc = None
        for g in gs:
            s = (g.abs() ** norm_type).sum() if norm_type != 2 else (g * g).sum()
            acc = s if acc is None else acc + s
        total = acc ** (1.0 / norm_type) if norm_type != 2 else acc.sqrt()
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} is "
                           "non-finite")
    coef = (float(max_norm) / (total + 1e-6)).minimum(1.0)
    for p, g in zip(ps, gs):
        p.grad = (g * coef).detach()
    return total


clip_grad_norm = clip_grad_norm_

from . import lr_scheduler  # noqa: E402
