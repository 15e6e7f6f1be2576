"""The Var class and the thin wrappers every other op is built from: each wraps
one C meta-op, applies Python's weak typing to scalars and records autograd links."""
import contextvars
import numbers
import os
import weakref

import numpy as np

from . import _C
from ._dtype import DTYPES, as_dtype

_BF16_CODE = as_dtype("bfloat16").code

__all__ = ["Var", "array"]


# A fork (a DataLoader worker) waits for a sync another thread is running,
# so the child's copy of the context is whole.
os.register_at_fork(before=_C.wait_idle)

# Whether ops record gradients: per thread (and per asyncio task), so that
# no_grad in one thread leaves models built in another untouched.
grad_mode = contextvars.ContextVar("kiln_grad_enabled", default=True)


class _State:
    """Process-wide flags (jt.flags), and grad mode through grad_mode."""
    lazy = True
    check_indices = os.environ.get("KILN_CHECK_INDICES", "1") != "0"
    log_v = int(os.environ.get("KILN_LOG_V", "0") or 0)

    @property
    def grad_enabled(self):
        return grad_mode.get()

    @grad_enabled.setter
    def grad_enabled(self, on):
        grad_mode.set(bool(on))


state = _State()
class Leaf:
    """Autograd link of a Var marked requires_grad=True: backward() fills its
    .grad. Holds the value the graph was built from, even if the Var is rebound."""

    __slots__ = ("ref", "h")

    def __init__(self, var):
        self.ref = weakref.ref(var)
        self.h = var._alias()


def merge_links(inputs):
    """The autograd link of an op's output: its inputs' links, or None."""
    gn = None
    for x in inputs:
        g = x._gn
        if g is not None and g is not gn:
            gn = g if gn is None else (gn, g)
    return gn


def stopped(x):
    """x cut from the graph: one stop_grad op, never two in a row."""
    # an alias only of a var that is itself cut: a parameter updated in place
    # is a stop_grad op too, yet gradients are taken with respect to it
    o = x._alias() if x._op == "stop_grad" and not x._rg else _C.stop_grad(x)
    o._stop = True
    return o


def out(o, *inputs):
    """Finishes a Var fresh from a C op: autograd link, no_grad, eager mode."""
    if grad_mode.get():
        gn = merge_links(inputs)
        if gn is not None:
            o._gn = gn
    else:
        o = stopped(o)
    if not state.lazy:
        _C.sync([o])
    return o


class Var(_C.Var):
    """A variable of kiln's lazy graph (Jittor's jt.Var): ops on it build the
    graph; numpy(), item(), sync() compute it."""

    __array_ufunc__ = None   # NumPy defers to Var's reflected operators
    __hash__ = object.__hash__
    grad = None              # filled by backward()
    _gn = None               # autograd link (see Leaf)
    _rg = None               # requires_grad as set by the user
    _stop = False            # made by stop_grad/detach/no_grad
    _name = None
    _view_of = None          # (var, index): a basic-index view of var (writes go through)

    def __init__(self, data=None, dtype=None):
        if data is not None:
            self._rebind(array(data, dtype))

    # ---- description ----
    @property
    def dtype(self):
        return DTYPES[self._dtype_code]

    def numel(self):
        return self._numel

    def size(self, dim=None):
        s = self.shape
        return s if dim is None else s[dim]

    def name(self, new_name=None):
        """Gets the var's name, or sets it and returns the var (Jittor)."""
        if new_name is None:
            return self._name if self._name is not None else f"{self._op}_{self._id}"
        self._name = new_name
        self._set_name(str(new_name))
        return self

    def __repr__(self):
        try:
            body = np.array2string(self.numpy(), separator=", " if self.ndim else " ",
                                   prefix="jt.Var(")
        except Exception as e:  # a failing computation must not hide the var
            body = f"<error: {e}>"
        return f"jt.Var({body}, dtype={self.dtype})"

    __str__ = __repr__

    # ---- data ----
    def sync(self, device_sync=False, weak_sync=True):
        """Computes the var. Jittor's flags change nothing here: on the CPU
        the value is complete when sync returns (device_sync), and kiln
        computes nothing a sync does not need (weak_sync)."""
        del device_sync, weak_sync
        _C.sync([self])
        return self

    def __array__(self, dtype=None):
        if self._dtype_code == _BF16_CODE:   # no buffer format: float32 values
            a = self.numpy()
            return a if dtype is None else a.astype(dtype)
        # NumPy tries the buffer first; this makes its errors surface
        a = np.asarray(memoryview(self))
        return a if dtype is None else a.astype(dtype)

    # numpy() (in C, kiln/_C/var.c): a writable NumPy array of the value,
    # computed first if needed; a copy (made with the GIL released), except
    # for a temporary whose memory no one else can see (`f(x).numpy()`),
    # whose memory the array takes over.

    @property
    def data(self):
        """A read-only NumPy view of the data (zero-copy; for bfloat16, which
        NumPy lacks, a read-only float32 copy)."""
        if self._dtype_code == _BF16_CODE:
            a = self.numpy()
            a.flags.writeable = False
            return a
        return np.asarray(memoryview(self))

    @data.setter
    def data(self, value):
        self.assign(value)

    def item(self):
        if self._numel != 1:
            raise ValueError(f"item(): the var has {self._numel} elements, not one "
                             f"(shape {self.shape})")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d var")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d var")
        return (self[i] for i in range(self.shape[0]))

    def __bool__(self):
        if self._numel != 1:
            raise ValueError(f"the truth value of a var with {self._numel} elements is "
                             f"ambiguous (shape {self.shape}); use any() or all()")
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if not (self.dtype.is_int or self.dtype.is_bool):
            raise TypeError(f"only integer vars can be used as an index, not {self.dtype}")
        return int(self.item())

    def __reduce__(self):
        return (array, (self.numpy(),))

    # ---- gradient control ----
    @property
    def requires_grad(self):
        if self._rg is not None:
            return self._rg
        return self.dtype.is_float and not self._stop

    @requires_grad.setter
    def requires_grad(self, flag):
        if flag:
            self._rg = True
            self._keep_graph = True   # the core keeps graphs built from it after a sync
            self._gn = Leaf(self)
        else:
            self.stop_grad()
            self._rg = False

    def requires_grad_(self, flag=True):
        self.requires_grad = flag
        return self

    def _release_graph(self):
        """Once computed, forgets the graph that produced it (the core's ops
        and the autograd links, which hold parameter values): after a
        backward pass, as PyTorch frees it."""
        if self.is_computed:
            super()._release_graph()
            self._gn = None

    def stop_grad(self):
        """Stops gradients at this var, in place (Jittor); returns the var."""
        self._rebind(stopped(self))
        self._stop = True
        self._rg = None
        self._gn = None
        return self

    def detach(self):
        """The same value, cut from the graph."""
        return stopped(self)

    def is_stop_grad(self):
        return not self.requires_grad

    def assign(self, v):
        """Makes this var hold v's value (cast to this var's dtype); returns self."""
        return rebind(self, cast(to_var(v), self.dtype))

    def update(self, v):
        """assign() without a gradient path: for parameter updates."""
        return self.assign(to_var(v).detach())

    def clone(self):
        """A new Var with the same value (values are never changed in place:
        in-place ops rebind a Var, so sharing the value is a copy)."""
        return out(self._alias(), self)


_C.set_var_class(Var)


class Shape(tuple):
    """What Var.shape is: a tuple (as PyTorch's torch.Size) that also equals
    the list of the same dims, as Jittor's list shapes do."""

    __slots__ = ()

    def __eq__(self, other):
        if isinstance(other, list):
            other = tuple(other)
        return tuple.__eq__(self, other)

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = tuple.__hash__

    def numel(self):
        n = 1
        for d in self:
            n *= d
        return n


_C.set_shape_class(Shape)


def rebind(var, new):
    """In-place update: var now holds new's value. A var marked
    requires_grad=True stays a leaf (a fresh one, cut from how the new value
    was computed), as parameters do."""
    if var._rg:
        new = stopped(new)
        new._keep_graph = True
        var._rebind(new)
        var._stop = False
        var._gn = Leaf(var)
    else:
        var._rebind(new)
        var._stop = new._stop
        var._gn = new._gn
    return var


# ---- conversion ----

def _np_to_var(a):
    if a.dtype.kind == "O":
        raise TypeError("cannot convert an object array to a Var")
    if a.dtype.kind in "uc" and a.dtype != np.uint8:
        if a.dtype.kind == "c":
            raise TypeError(f"dtype {a.dtype} is not supported by kiln")
        if a.dtype.itemsize == 8 and a.size and a.max() >= 2**63:
            raise OverflowError(f"array: {a.dtype} value {a.max()} does not fit int64, kiln's "
                                "widest integer type (convert it to float64 first)")
        a = a.astype(np.int64 if a.dtype.itemsize >= 4 else np.int32)
    elif a.dtype.kind == "U" or a.dtype.kind == "S":
        raise TypeError(f"cannot convert a {a.dtype} array to a Var")
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if a.ndim > _C.MAX_DIMS:
        raise ValueError(f"array has {a.ndim} dims, at most {_C.MAX_DIMS} are supported")
    return _C.from_buffer(a if a.flags.c_contiguous else a.copy(order="C"))


def _py_default(a):
    """Lists and Python scalars: Jittor's defaults (float32, int32)."""
    if a.dtype == np.float64:
        return a.astype(np.float32)
    if a.dtype == np.int64 and (a.size == 0 or (a.min() >= -2**31 and a.max() < 2**31)):
        return a.astype(np.int32)
    return a


def array(data, dtype=None, requires_grad=False):
    """A Var from a Var, NumPy array, buffer, list or scalar (jt.array).
    float64 arrays stay float64; Python floats become float32, ints int32."""
    v = _array(data, dtype)
    if requires_grad:
        v.requires_grad = True
    return v


def _array(data, dtype):
    if isinstance(data, Var):
        v = data if dtype is None else cast(data, dtype)
        return data.clone() if v is data else v
    if isinstance(data, _C.Var):
        v = out(data._alias())
        return v if dtype is None else cast(v, dtype)
    if isinstance(data, (list, tuple)) and any(isinstance(d, _C.Var) for d in data):
        from ._shape import stack
        v = stack([array(d) for d in data])
        return v if dtype is None else cast(v, dtype)
    if dtype is not None:
        dt = as_dtype(dtype)
        v = out(_np_to_var(np.asarray(data, dtype=dt.np)))
        return v if v._dtype_code == dt.code else cast(v, dt)   # bfloat16: from float32
    if isinstance(data, (np.ndarray, np.generic)):
        data = np.asarray(data)
        if getattr(state, "auto_convert_64_to_32", 0) and data.dtype in (np.float64, np.int64):
            data = data.astype(np.float32 if data.dtype == np.float64 else np.int32)
        v = _np_to_var(data)
    elif isinstance(data, (bool, int, float, list, tuple)):
        v = _np_to_var(_py_default(np.asarray(data)))
        if getattr(state, "amp_reg", 0) and v._dtype_code == _FLOAT32.code:
            from ._amp import creation_dtype
            dt = creation_dtype(_FLOAT32)
            if dt is not _FLOAT32:
                return cast(out(v), dt)
    else:
        try:
            v = _C.from_buffer(data)
        except (TypeError, BufferError, ValueError):
            v = _np_to_var(np.asarray(data))
    return out(v)


_FLOAT32, _INT32, _INT64 = as_dtype("float32"), as_dtype("int32"), as_dtype("int64")


def _int_default(value):
    """Jittor's int32 for a Python int, or int64 when it does not fit."""
    return _INT32 if -2**31 <= value < 2**31 else _INT64


def scalar_dtype(value, other):
    """Weak typing: the dtype a Python scalar takes next to a var of dtype other."""
    t = type(value)
    if t is float:
        return other if other.is_float else _FLOAT32
    if t is int:
        return other if not other.is_bool else _int_default(value)
    if isinstance(value, (bool, np.bool_)):
        return other
    if isinstance(value, numbers.Integral):
        return other if not other.is_bool else _int_default(int(value))
    if isinstance(value, numbers.Real):
        return other if other.is_float else _FLOAT32
    raise TypeError(f"unsupported operand {value!r} of type {type(value).__name__}")


def is_scalar(x):
    t = type(x)
    if t is float or t is int or t is bool:
        return True
    return isinstance(x, (numbers.Number, np.bool_)) and not isinstance(x, np.ndarray)


def full_scalar(value, dt):
    """A rank-0 constant (it broadcasts and fuses into its consumer). An
    integer keeps every digit; one outside dt's range is an OverflowError."""
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    try:
        return _C.full((), value, dt.code)
    except OverflowError:
        raise OverflowError(f"the Python scalar {value!r} is out of range for {dt}, the dtype of "
                            f"the var it meets (as in NumPy 2); cast the var first, e.g. "
                            f"x.int64() or x.float64()") from None


def to_var(x):
    return x if isinstance(x, Var) else array(x)


def checked_index(x, lo, hi, what):
    """Integer var x as is, except that computing it raises IndexError (naming
    `what`) if a value falls outside [lo, hi); off with jt.flags.check_indices = 0."""
    if not state.check_indices:
        return x
    return out(_C.check_index(x, int(lo), int(hi), what), x)


# ---- the element-wise meta-ops ----

def cast(x, dt):
    dt = as_dtype(dt)
    x = to_var(x)
    if x._dtype_code == dt.code:
        return x
    return out(_C.cast(x, dt.code), x)


def to_float(x):
    """x as a float var (ints and bools become float32)."""
    return x if x.dtype.is_float else cast(x, "float32")


def unary(x, op, float_only=False):
    x = to_var(x)
    if float_only:
        x = to_float(x)
    return out(_C.unary(x, op), x)


def operands(a, b):
    """Two operands as vars of one dtype; Python scalars take the other's dtype."""
    if isinstance(a, Var):
        if isinstance(b, Var):
            if a._dtype_code != b._dtype_code:
                dt = DTYPES[_C.promote(a._dtype_code, b._dtype_code)]
                if dt.is_float:
                    from ._amp import keep_half
                    dt = keep_half(a, b, dt)
                return cast(a, dt), cast(b, dt)
            return a, b
        if is_scalar(b):
            dt = scalar_dtype(b, a.dtype)
            return (a if a._dtype_code == dt.code else cast(a, dt)), full_scalar(b, dt)
        return operands(a, array(b))
    if isinstance(b, Var):
        if is_scalar(a):
            dt = scalar_dtype(a, b.dtype)
            return full_scalar(a, dt), cast(b, dt)
        return operands(array(a), b)
    return operands(array(a), b)


def binary(a, b, op):
    if a.__class__ is Var and b.__class__ is Var and a._dtype_code == b._dtype_code:
        return out(_C.binary(a, b, op), a, b)  # the common case, without operands' checks (per-op overhead)
    a, b = operands(a, b)
    return out(_C.binary(a, b, op), a, b)


_FLOAT_CODES = frozenset(d.code for d in DTYPES if d.is_float)
_BOOL_CODE = as_dtype("bool").code


def _weak_scalar(value, code):
    """value as a rank-0 var of dtype code where weak typing keeps the var's
    dtype (a float next to a float var, an int next to a non-bool one), else
    None (binary() decides, and names an out-of-range value)."""
    t = value.__class__
    if (t is float and code in _FLOAT_CODES) or (t is int and code != _BOOL_CODE):
        try:
            return _C.full((), value, code)
        except OverflowError:
            return None
    return None


def binary_op(op):
    """The function of binary op (jt.add, Var.__add__): binary() with its
    common cases (two Vars of one dtype, a Var and a Python scalar that takes
    its dtype) and out() written inline, since on tiny arrays the Python calls
    are most of an op's cost (a + a 0.37 -> 0.25 us, a * 0.5 0.83 -> 0.47)."""
    c_binary, grad_enabled = _C.binary, grad_mode.get

    def f(a, b):
        if a.__class__ is Var and b.__class__ is Var:
            if a._dtype_code != b._dtype_code:
                return binary(a, b, op)
        elif a.__class__ is Var:
            s = _weak_scalar(b, a._dtype_code)
            if s is None:
                return binary(a, b, op)
            b = s
        elif b.__class__ is Var:
            s = _weak_scalar(a, b._dtype_code)
            if s is None:
                return binary(a, b, op)
            a = s
        else:
            return binary(a, b, op)
        o = c_binary(a, b, op)
        if grad_enabled():
            ga, gb = a._gn, b._gn   # merge_links of two
            if ga is not None or gb is not None:
                o._gn = gb if ga is None else ga if gb is None or gb is ga else (ga, gb)
        else:
            o = stopped(o)
        if not state.lazy:
            _C.sync([o])
        return o
    return f


def where(cond, a=None, b=None):
    """Where Operator: element-wise cond ? a : b (broadcasting). With cond alone (Jittor,
    NumPy): a tuple of int32 index Vars, one per dim, of cond's nonzero
    elements (computed on the host: the output's size depends on the data)."""
    if a is None and b is None:
        c = np.asarray(to_var(cond).numpy()) != 0
        return tuple(array(i.astype(np.int32)) for i in np.nonzero(c if c.ndim else c.reshape(1)))
    if a is None or b is None:
        raise TypeError("where: give cond alone, or cond, a and b")
    cond = cast(cond, "bool")
    a, b = operands(a, b)
    return out(_C.where(cond, a, b), cond, a, b)
