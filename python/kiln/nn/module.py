"""jt.Module (= jt.nn.Module): the base class of layers and models. Parameters
and buffers are Var attributes, found by walking the module's attributes (also
inside lists, tuples and dicts, as Jittor allows); names follow PyTorch's
(``layer1.0.conv1.weight``) so that state dicts move between the two."""
import collections
import warnings
import weakref

import numpy as np

from .. import _C

from .. import _core
from .._core import Var, array, cast, to_var

__all__ = ["Module", "Parameter", "RemovableHandle", "make_module", "parameter_value",
           "update_state", "take_dirty_state"]

# State vars (running statistics) updated since the last optimizer step:
# id -> weak reference. Optimizer.step computes them with the parameters so
# that their update chains never grow.
_DIRTY = {}


def update_state(var, value):
    """var = value for a buffer, with no gradient path. A previous update that
    is still pending is computed first, so chains stay one step long even
    without an optimizer."""
    if not var.is_computed:
        _C.sync([var])
    var.update(value)
    _DIRTY[id(var)] = weakref.ref(var)
    return var


def take_dirty_state():
    """The buffers updated since the last call that are not computed yet."""
    vs = [v for v in (r() for r in _DIRTY.values()) if v is not None and not v.is_computed]
    _DIRTY.clear()
    return vs

_BUFFERS = "_kiln_buffers"          # names of the Var attributes that are buffers
_NON_PERSISTENT = "_kiln_non_persistent"
# Names of Var attributes recomputed from parameters before each call (weight
# norm's weight from weight_g and weight_v): neither parameters nor state, and
# assigned as they are, so that their gradient reaches what they came from.
_DERIVED = "_kiln_derived"
_PRE_HOOKS = "_kiln_forward_pre_hooks"    # handle id -> hook(module, args[, kwargs])
_POST_HOOKS = "_kiln_forward_hooks"       # handle id -> hook(module, args, output[, kwargs])


class RemovableHandle:
    """What PyTorch's register_forward_hook returns: remove() unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks):
        self.hooks_dict_ref, self.id = weakref.ref(hooks), RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self):
        hooks = self.hooks_dict_ref()
        if hooks is not None:
            hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class _HookDict(dict):
    """A dict that a weak reference can point to (RemovableHandle holds one)."""


def Parameter(data, requires_grad=True):
    """PyTorch's nn.Parameter: a Var (copied from data) that requires grad."""
    v = array(data)
    v = cast(v, "float32") if not v.dtype.is_float else v
    v.requires_grad = bool(requires_grad)
    v._kiln_param = True
    return v


def _is_var(v):
    return isinstance(v, Var)


def parameter_value(value, like=None, name="value"):
    """A state-dict entry (Var, NumPy array, number, or torch tensor) as a Var."""
    if isinstance(value, Var):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):
        value = value.detach().cpu().numpy()      # a torch tensor
    a = np.asarray(value)
    if a.dtype == object:
        raise TypeError(f"{name}: cannot load an object of type {type(value).__name__}")
    if like is not None and a.dtype != like.dtype.np:
        a = a.astype(like.dtype.np)
    return array(a)


class _Members(list):
    """A list (Jittor returns lists) that is also an iterator, so that
    PyTorch's next(model.parameters()) works too."""

    _pos = 0

    def __next__(self):
        if self._pos >= len(self):
            raise StopIteration
        self._pos += 1
        return self[self._pos - 1]


class _IncompatibleKeys(collections.namedtuple("IncompatibleKeys",
                                               ["missing_keys", "unexpected_keys"])):
    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()


class Module:
    """Base class for layers and models (Jittor's jt.Module; PyTorch's nn.Module).
    Subclasses define ``execute`` (Jittor) or ``forward`` (PyTorch); calling the
    module calls it. Subclasses need not call ``super().__init__()``."""

    training = True

    def __init__(self, *args, **kwargs):
        del args, kwargs
        self.__dict__.setdefault(_BUFFERS, set())
        self.__dict__.setdefault(_NON_PERSISTENT, set())
        self.__dict__.setdefault("training", True)

    # ---- calling ----
    def __call__(self, *args, **kwargs):
        pre = self.__dict__.get(_PRE_HOOKS)
        if pre:
            for hook in list(pre.values()):
                # Jittor passes keyword arguments to hooks only when there are some
                r = hook(self, args, kwargs) if kwargs else hook(self, args)
                if r is not None:
                    args = r if isinstance(r, tuple) else (r,)
        result = self.execute(*args, **kwargs)
        post = self.__dict__.get(_POST_HOOKS)
        if post:
            for hook in list(post.values()):
                r = hook(self, args, result, kwargs) if kwargs else hook(self, args, result)
                if r is not None:
                    result = r
        return result

    # ---- hooks ----
    def _hooks(self, which):
        hooks = self.__dict__.get(which)
        if hooks is None:
            hooks = self.__dict__[which] = _HookDict()
        return hooks

    def _add_hook(self, which, hook):
        hooks = self._hooks(which)
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook):
        """hook(module, args) runs before each call (PyTorch); keyword
        arguments, when given, follow as a third argument (Jittor). A value it
        returns (a tuple, or one input) replaces the positional inputs. Returns
        a handle whose remove() unregisters it."""
        return self._add_hook(_PRE_HOOKS, hook)

    register_pre_forward_hook = register_forward_pre_hook   # Jittor's spelling

    def register_forward_hook(self, hook):
        """hook(module, args, output) runs after each call; keyword arguments,
        when given, follow as a fourth argument (Jittor). A value it returns
        replaces the output. Returns a handle whose remove() unregisters it."""
        return self._add_hook(_POST_HOOKS, hook)

    def remove_forward_hook(self):
        """Jittor's: unregisters the forward hooks."""
        self._hooks(_POST_HOOKS).clear()

    def remove_pre_forward_hook(self):
        """Jittor's: unregisters the pre-forward hooks."""
        self._hooks(_PRE_HOOKS).clear()

    def _set_derived(self, name, value):
        """Sets an attribute recomputed from the module's parameters (weight
        norm's weight): not a parameter, not saved, its graph kept. value None
        makes name an ordinary attribute again."""
        derived = self.__dict__.setdefault(_DERIVED, set())
        if value is None:
            derived.discard(name)
            self.__dict__.pop(name, None)
        else:
            derived.add(name)
            object.__setattr__(self, name, value)

    def execute(self, *args, **kwargs):
        if type(self).forward is not Module.forward:
            return self.forward(*args, **kwargs)
        raise NotImplementedError(f"{type(self).__name__} defines neither execute() nor forward()")

    def forward(self, *args, **kwargs):
        if type(self).execute is not Module.execute:
            return self.execute(*args, **kwargs)
        raise NotImplementedError(f"{type(self).__name__} defines neither execute() nor forward()")

    # ---- registration ----
    def __setattr__(self, name, value):
        d = self.__dict__
        if name in d.get(_DERIVED, ()):
            object.__setattr__(self, name, value)
            return
        if isinstance(value, Var):
            bufs = d.setdefault(_BUFFERS, set())
            if name in bufs or name.startswith("_") and not getattr(value, "_kiln_param", False):
                pass
            elif getattr(value, "_kiln_param", False) or value.requires_grad:
                if value._rg is not True and value.dtype.is_float:
                    value.requires_grad = True
            else:
                bufs.add(name)
        elif value is not None and name in d.get(_BUFFERS, ()):
            d[_BUFFERS].discard(name)
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self.__dict__.get(_BUFFERS, set()).discard(name)
        object.__delattr__(self, name)

    def register_buffer(self, name, tensor, persistent=True):
        """A Var attribute that is state (saved, loaded) but not a parameter."""
        self.__dict__.setdefault(_BUFFERS, set()).add(name)
        np_ = self.__dict__.setdefault(_NON_PERSISTENT, set())
        if persistent:
            np_.discard(name)
        else:
            np_.add(name)
        if tensor is not None and not isinstance(tensor, Var):
            tensor = array(tensor)
        object.__setattr__(self, name, tensor)

    def register_parameter(self, name, param):
        if param is not None:
            param = to_var(param)
            param._kiln_param = True
        self.__dict__.get(_BUFFERS, set()).discard(name)
        setattr(self, name, param)

    def __getattr__(self, name):
        """Only for names normal lookup misses (and explicit calls, as
        Jittor's tests make): the instance's own attribute, else AttributeError."""
        d = object.__getattribute__(self, "__dict__")
        if name in d:
            return d[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    @property
    def _modules(self):
        """PyTorch's view of the child modules: name -> module, in order."""
        return collections.OrderedDict(self._own()[2])

    @property
    def _parameters(self):
        """PyTorch's view of this module's own parameters: name -> Var, in order."""
        return collections.OrderedDict(self._own()[0])

    @property
    def _buffers(self):
        return collections.OrderedDict(self._own()[1])

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {type(module).__name__} is not a Module")
        object.__setattr__(self, str(name), module)

    register_module = add_module

    # ---- walking ----
    def _own(self):
        """(params, buffers, children) of this module, each a list of (name, obj)."""
        params, buffers, children = [], [], []
        bufs = self.__dict__.get(_BUFFERS, ())
        derived = self.__dict__.get(_DERIVED, ())
        for k, v in self.__dict__.items():
            if k.startswith("_kiln") or k in derived:
                continue
            if isinstance(v, Var):
                if k in bufs:
                    buffers.append((k, v))
                elif not k.startswith("_") or getattr(v, "_kiln_param", False):
                    params.append((k, v))
            elif isinstance(v, Module):
                children.append((k, v))
            elif isinstance(v, (list, tuple)):
                for i, item in enumerate(v):
                    if isinstance(item, Module):
                        children.append((f"{k}.{i}", item))
                    elif isinstance(item, Var) and not k.startswith("_"):
                        params.append((f"{k}.{i}", item))
            elif isinstance(v, dict) and not k.startswith("_"):
                for i, item in v.items():
                    if isinstance(item, Module):
                        children.append((f"{k}.{i}", item))
        return params, buffers, children

    def named_children(self):
        return _Members(self._own()[2])

    def children(self):
        return _Members(m for _, m in self._own()[2])

    def named_modules(self, memo=None, prefix=""):
        return _Members(self._walk_modules(set() if memo is None else memo, prefix))

    def _walk_modules(self, memo, prefix):
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._own()[2]:
            yield from m._walk_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return _Members(m for _, m in self.named_modules())

    def _named_members(self, which, recurse=True):
        seen = set()
        mods = self.named_modules() if recurse else [("", self)]
        for prefix, m in mods:
            for name, v in m._own()[which]:
                if id(v) in seen:
                    continue
                seen.add(id(v))
                yield (f"{prefix}.{name}" if prefix else name), v

    def named_parameters(self, prefix="", recurse=True):
        return _Members(((f"{prefix}.{name}" if prefix else name), v)
                        for name, v in self._named_members(0, recurse))

    def parameters(self, recurse=True):
        """The parameters (Vars that are trained), as a list (Jittor) that is
        also an iterator (PyTorch's next(model.parameters()))."""
        return _Members(v for _, v in self._named_members(0, recurse))

    def named_buffers(self, prefix="", recurse=True):
        return _Members(((f"{prefix}.{name}" if prefix else name), v)
                        for name, v in self._named_members(1, recurse))

    def buffers(self, recurse=True):
        return _Members(v for _, v in self._named_members(1, recurse))

    # ---- state ----
    def state_dict(self, destination=None, prefix="", keep_vars=True):
        """Parameters then persistent buffers, module by module, in PyTorch's
        order and naming. Values are the Vars themselves."""
        del keep_vars
        out = collections.OrderedDict() if destination is None else destination
        params, buffers, children = self._own()
        skip = self.__dict__.get(_NON_PERSISTENT, ())
        for name, v in params:
            out[prefix + name] = v
        for name, v in buffers:
            if name not in skip:
                out[prefix + name] = v
        for name, m in children:
            m.state_dict(out, prefix + name + ".")
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copies values into the parameters and buffers, keeping the Vars (so an
        optimizer holding them sees the new values). Values may be Vars, NumPy
        arrays or torch tensors. strict: missing or unexpected keys are errors;
        a shape mismatch is always an error."""
        own = self.state_dict()
        given = collections.OrderedDict(state_dict)
        missing = [k for k in own if k not in given]
        unexpected = [k for k in given if k not in own]
        errors = []
        loads = []
        for k, target in own.items():
            if k not in given:
                continue
            value = given[k]
            if value is None:
                continue
            try:
                v = parameter_value(value, target, k)
            except TypeError as e:
                errors.append(str(e))
                continue
            vshape = tuple(v.shape)
            if vshape != tuple(target.shape):
                if k.endswith("num_batches_tracked") and v.numel() == 1:
                    v = v.reshape(target.shape)
                else:
                    errors.append(f"size mismatch for {k}: copying a param with shape "
                                  f"{vshape} from checkpoint, the shape in current model is "
                                  f"{tuple(target.shape)}.")
                    continue
            loads.append((target, v))
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: " +
                              ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " +
                              ", ".join(f'"{k}"' for k in missing) + ".")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        for target, v in loads:
            if target._rg:
                target.update(v)
            else:
                target.assign(v.detach())
        for m in self.modules():
            hook = getattr(m, "_after_load", None)
            if hook is not None:
                hook()
        return _IncompatibleKeys(missing, unexpected)

    def load_parameters(self, params):
        """Jittor's load_parameters: a non-strict load that warns about keys
        that do not match."""
        r = self.load_state_dict(params, strict=False)
        if r.missing_keys:
            warnings.warn(f"load_parameters: missing parameters: {r.missing_keys}")
        if r.unexpected_keys:
            warnings.warn(f"load_parameters: unused parameters: {r.unexpected_keys}")
        return r

    def save(self, path, all_ranks=False):
        """Saves the state dict (NumPy arrays, pickled) to path (Jittor);
        under mpirun only rank 0 writes unless all_ranks."""
        from ..io import checkpoint as _io
        _io.save(self.state_dict(), path, all_ranks=all_ranks)

    def load(self, path, allow_pickle=False):
        """Loads a file written by save() or jt.save(model.state_dict()), or a
        PyTorch checkpoint; allow_pickle as in jt.load (unsafe when True)."""
        from ..io import checkpoint as _io
        self.load_parameters(_io.load(path, allow_pickle=allow_pickle))

    # ---- modes ----
    def train(self, mode=True):
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    @property
    def is_train(self):
        return self.training

    def is_training(self):
        return self.training

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        del set_to_none
        for p in self.parameters():
            p.grad = None

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def _cast(self, dt):
        """Float parameters and buffers to dtype dt, in place (the same Vars)."""
        for m in self.modules():
            for v in list(m.__dict__.values()):
                if isinstance(v, Var) and v.dtype.is_float and v.dtype != dt:
                    _core.rebind(v, cast(v.detach(), dt))
        return self

    def float(self):
        return self._cast("float32")

    def double(self):
        return self._cast("float64")

    def half(self):
        return self._cast("float16")

    def float16(self):
        return self.half()

    def bfloat16(self):
        return self._cast("bfloat16")

    def float32(self):
        return self.float()

    def float64(self):
        return self.double()

    def to(self, *args, **kwargs):
        """Only dtype conversions mean anything on the CPU backend."""
        for a in list(args) + list(kwargs.values()):
            if a in ("float32", "float64", "float16", "bfloat16") or getattr(a, "is_float", False):
                return self._cast(a)
        return self

    def cuda(self, device=None):
        del device
        return self

    def cpu(self):
        return self

    def mpi_param_broadcast(self, root=0):
        """Under mpirun, every parameter and buffer takes the root rank's value."""
        from .. import distributed
        if distributed.world_size == 1:
            return
        vs = [v for _, v in self.state_dict().items() if isinstance(v, Var)]
        for v in vs:
            v.update(distributed.mpi_broadcast(v.detach(), root))
        _C.sync(vs)

    # ---- display ----
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = []
        for name, m in self._own()[2]:
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        head = f"{type(self).__name__}(" + (f"{extra}" if extra else "")
        return head + "\n" + "\n".join(lines) + "\n)"

    def __getstate__(self):
        """Pickling and copy.deepcopy: Vars travel as data, so which of them
        are trainable leaves is recorded and restored."""
        state = dict(self.__dict__)
        state["_kiln_rg"] = [k for k, v in self.__dict__.items()
                             if isinstance(v, Var) and v._rg]
        return state

    def __setstate__(self, state):
        state = dict(state)
        rg = state.pop("_kiln_rg", ())
        self.__dict__.update(state)
        for k in rg:
            v = self.__dict__[k]
            v.requires_grad = True
            v._kiln_param = True


def make_module(func, exec_n_args=1):
    """A Module class from a function (Jittor's jt.make_module): the class's
    constructor takes func's extra arguments, and calling an instance on
    exec_n_args inputs calls func(*inputs, *extra args, **extra keywords)."""
    class MadeModule(Module):
        def __init__(self, *args, **kwargs):
            super().__init__()
            self._args, self._kwargs = args, kwargs

        def execute(self, *inputs):
            if len(inputs) != exec_n_args:
                raise TypeError(f"{func.__name__}: takes {exec_n_args} input(s), got {len(inputs)}")
            return func(*inputs, *self._args, **self._kwargs)

        def extra_repr(self):
            return ", ".join([repr(a) for a in self._args] + [f"{k}={v!r}" for k, v in self._kwargs.items()])

    MadeModule.__name__ = MadeModule.__qualname__ = func.__name__
    return MadeModule
