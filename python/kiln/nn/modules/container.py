"""Container modules: Sequential, ModuleList, ModuleDict, ParameterList,
ParameterDict. Children are attributes named "0", "1", ... (or the dict's
keys), so parameter names match PyTorch's (``features.0.weight``)."""
import collections

from ..._core import Var
from ..module import Module, Parameter

__all__ = ["Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"]


class _Indexed(Module):
    """Children stored as attributes "0", "1", ... in order."""

    def _items(self):
        return [v for k, v in self.__dict__.items() if k.isdigit()]

    def _set_all(self, items):
        for k in [k for k in self.__dict__ if k.isdigit()]:
            object.__delattr__(self, k)
        for i, m in enumerate(items):
            self._put(str(i), m)

    def _put(self, key, m):
        object.__setattr__(self, key, m)

    def __len__(self):
        return len(self._items())

    def __iter__(self):
        return iter(self._items())

    def __getitem__(self, idx):
        items = self._items()
        if isinstance(idx, slice):
            return type(self)(items[idx])
        return items[idx]

    def __setitem__(self, idx, m):
        items = self._items()
        items[idx] = m
        self._set_all(items)

    def __delitem__(self, idx):
        items = self._items()
        del items[idx]
        self._set_all(items)

    def append(self, m):
        self._put(str(len(self)), m)
        return self

    def extend(self, ms):
        for m in ms:
            self.append(m)
        return self

    def insert(self, index, m):
        items = self._items()
        items.insert(index, m)
        self._set_all(items)


class _Call(Module):
    """A plain function as a step of a Sequential (Jittor allows any callable)."""

    def __init__(self, fn):
        super().__init__()
        object.__setattr__(self, "_kiln_fn", fn)

    def execute(self, *args, **kwargs):
        return self._kiln_fn(*args, **kwargs)

    def __repr__(self):
        return f"{getattr(self._kiln_fn, '__name__', type(self._kiln_fn).__name__)}()"


def _step(m):
    """A Sequential's step: a Module, or any callable wrapped as one."""
    if m is None or isinstance(m, Module):
        return m
    if isinstance(m, type) or not callable(m):
        raise TypeError(f"Sequential: a step must be a Module or a function, got {m!r}")
    return _Call(m)


class Sequential(_Indexed):
    """Calls its modules in order. Accepts modules (or plain functions, as
    Jittor does), a list of them, or an OrderedDict of named modules."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], collections.OrderedDict):
            for k, m in args[0].items():
                self.add_module(k, _step(m))
            return
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            args = args[0]
        for i, m in enumerate(args):
            self.add_module(str(i), _step(m))

    def _items(self):
        return [m._kiln_fn if isinstance(m, _Call) else m for _, m in self._own()[2]]

    def keys(self):
        """The steps' names: positions as ints, as Jittor's Sequential gives them."""
        return [int(k) if k.isdigit() else k for k, _ in self._own()[2]]

    def _named(self):
        return list(self._own()[2])

    def __getitem__(self, idx):
        named = self._named()
        if isinstance(idx, str):
            return getattr(self, idx)
        if isinstance(idx, slice):
            return Sequential(collections.OrderedDict(named[idx]))
        return named[idx][1]

    def _set_all(self, items):
        for k, _ in self._named():
            object.__delattr__(self, k)
        for i, m in enumerate(items):
            self.add_module(str(i), _step(m))

    def append(self, m):
        self.add_module(str(len(self)), _step(m))
        return self

    def execute(self, x, *args, **kwargs):
        for i, m in enumerate(self._items()):
            x = m(x, *args, **kwargs) if i == 0 else m(x)
        return x


class ModuleList(_Indexed):
    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _put(self, key, m):
        if not isinstance(m, Module):
            raise TypeError(f"ModuleList: {type(m).__name__} is not a Module")
        object.__setattr__(self, key, m)


class ParameterList(_Indexed):
    def __init__(self, parameters=None):
        super().__init__()
        if parameters is not None:
            self.extend(parameters)

    def _put(self, key, p):
        if not isinstance(p, Var) or not getattr(p, "_kiln_param", False):
            p = Parameter(p)
        self.register_parameter(key, p)


class _Keyed(Module):
    def _keys(self):
        return [k for k in self.__dict__ if not k.startswith("_") and k != "training"]

    def __getitem__(self, key):
        return self.__dict__[key]

    def __setitem__(self, key, value):
        self._put(key, value)

    def __delitem__(self, key):
        delattr(self, key)

    def __contains__(self, key):
        return key in self._keys()

    def __len__(self):
        return len(self._keys())

    def __iter__(self):
        return iter(self._keys())

    def keys(self):
        return self._keys()

    def items(self):
        return [(k, self.__dict__[k]) for k in self._keys()]

    def values(self):
        return [self.__dict__[k] for k in self._keys()]

    def update(self, mapping):
        for k, v in (mapping.items() if hasattr(mapping, "items") else mapping):
            self._put(k, v)

    def pop(self, key):
        v = self[key]
        del self[key]
        return v


class ModuleDict(_Keyed):
    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def _put(self, key, m):
        self.add_module(key, m)


class ParameterDict(_Keyed):
    def __init__(self, parameters=None):
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def _put(self, key, p):
        if not isinstance(p, Var) or not getattr(p, "_kiln_param", False):
            p = Parameter(p)
        self.register_parameter(key, p)
