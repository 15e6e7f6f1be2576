"""Unpickling that cannot run code and cannot allocate more than a file holds.

Every checkpoint kiln reads (its own ``jt.save`` files and PyTorch's
``torch.save`` files, see ``_pth.py``) goes through :class:`RestrictedUnpickler`:

* ``find_class`` resolves only an allow-list: plain builtins, ``OrderedDict``,
  ``argparse.Namespace``, the few NumPy globals that rebuild arrays and
  scalars, plus whatever the format adds (PyTorch's tensor rebuild functions).
  Anything else raises :class:`CheckpointError` naming the global, before
  anything is called.
* Sizes are bounded by the file: reads go through :class:`BoundedReader`, so a
  pickle that declares a 2**60-byte string fails as truncated instead of asking
  for the memory; the allow-listed callables refuse arguments that would make
  them allocate more than the file could describe (``bytearray(10**12)``,
  ``list(range(10**12))``, ``ndarray`` shapes larger than the file).

The unrestricted unpickler is used only when a caller passes
``allow_pickle=True`` (documented as unsafe: a pickle can run any code).
"""
import _compat_pickle
import builtins
import collections
import pickle
import pickletools
import struct
import types

import numpy as np

__all__ = ["CheckpointError", "BoundedReader", "RestrictedUnpickler", "restricted_load",
           "file_size", "Pending", "finish"]


class CheckpointError(pickle.UnpicklingError, ValueError):
    """A checkpoint that cannot (or must not) be loaded; the message says why."""


def file_size(f):
    """Bytes from f's position to its end (None when f cannot seek)."""
    try:
        here = f.tell()
        end = f.seek(0, 2)
        f.seek(here)
        return end - here
    except (OSError, AttributeError, ValueError):
        return None


class BoundedReader:
    """A read-only view of at most `limit` bytes of f: a read asking for more
    gets what is there, so the unpickler reports truncation instead of
    allocating what a crafted length field asks for."""

    def __init__(self, f, limit):
        self._f, self.left = f, limit

    def read(self, n=-1):
        if n is None or n < 0 or n > self.left:
            n = self.left
        data = self._f.read(n)
        self.left -= len(data)
        return data

    def readinto(self, buf):
        view = memoryview(buf).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def readline(self, size=-1):
        if size is None or size < 0 or size > self.left:
            size = self.left
        line = self._f.readline(size)
        self.left -= len(line)
        return line

    def tell(self):
        return self._f.tell()


def _too_big(what, n, budget):
    return CheckpointError(f"{what} would allocate {n} elements, more than a {budget}-byte "
                           f"file can describe (crafted or corrupt checkpoint?)")


def _guard_builtin(name, budget):
    """A builtin constructor that refuses arguments asking for memory the file
    does not hold: an integer size (bytearray(n), bytes(n)) or a long range."""
    real = getattr(builtins, name)

    def call(*args, **kwargs):
        for a in list(args) + list(kwargs.values()):
            if name in ("bytes", "bytearray") and isinstance(a, int):
                raise CheckpointError(f"refusing {name}({a}): a checkpoint cannot ask for a "
                                      "buffer by size")
            if isinstance(a, range) and len(a) > budget:
                raise _too_big(f"{name}(range(...))", len(a), budget)
        return real(*args, **kwargs)

    call.__name__ = name
    return call


_SAFE_BUILTINS = {
    "set", "frozenset", "slice", "complex", "range", "tuple", "list", "dict", "bytearray",
    "bytes", "int", "float", "str", "bool",
}


def _encode(obj, encoding="utf-8", errors="strict"):
    # protocol-2 pickles store bytes as _codecs.encode(text, 'latin1')
    if not isinstance(obj, str) or str(encoding).lower().replace("_", "-") not in (
            "latin1", "latin-1", "utf-8", "utf8"):
        raise CheckpointError(f"refusing _codecs.encode({type(obj).__name__}, {encoding!r})")
    return obj.encode(encoding, errors)


def _numel(shape):
    n = 1
    for s in shape:
        n *= int(s)
    return n


# ---- NumPy objects: built by kiln, never handed to the pickle ----
#
# A pickle may apply BUILD (__setstate__) to any object it holds, and NumPy's
# own __setstate__ functions are not hardened: a crafted dtype state crashes
# NumPy 1.24 (a segfault). So no NumPy object exists while unpickling: the
# allow-listed NumPy globals make Pending stand-ins that take their state
# through checks of kiln's own, and finish() swaps in the real arrays,
# dtypes and scalars once the pickle is read.

class Pending:
    """A NumPy object to be: its value once built, else None."""
    __slots__ = ("value", "what")

    def __init__(self, value=None, what="array"):
        self.value, self.what = value, what

    def __setstate__(self, state):
        raise CheckpointError(f"a pickle sets the state of a NumPy {self.what} twice")


def _plain_dtype(d, what="dtype"):
    """d (a real dtype or a pending one) as a NumPy dtype of plain numbers."""
    if isinstance(d, Pending):
        if not isinstance(d.value, np.dtype):
            raise CheckpointError(f"{what}: {d.what} is not a dtype")
        d = d.value
    if not isinstance(d, np.dtype):
        if isinstance(d, bytes):
            d = d.decode("ascii", "replace")
        if not isinstance(d, str):
            raise CheckpointError(f"{what}: bad dtype {d!r:.100}")
        try:
            d = np.dtype(d)
        except (TypeError, ValueError, SyntaxError) as e:
            # SyntaxError: NumPy parses comma strings ("f6,") with ast.literal_eval
            raise CheckpointError(f"{what}: bad dtype {d!r:.100} ({e})") from None
    if d.kind not in "biufc" or d.fields is not None or d.subdtype is not None:
        raise CheckpointError(f"{what}: dtype {d} is not supported in a checkpoint (plain "
                              "numbers only)")
    return d


class _PendingDtype(Pending):
    """numpy.dtype(spec, align, copy) then BUILD (version, byteorder, None,
    None, None, -1, -1, flags): the one state plain dtypes pickle with."""
    __slots__ = ()

    def __init__(self, spec, *args, **kwargs):
        if not isinstance(spec, (str, bytes)):
            raise CheckpointError(f"numpy.dtype({spec!r}): only a type name is accepted")
        spec = spec.decode("ascii", "replace") if isinstance(spec, bytes) else spec
        super().__init__(_plain_dtype(spec, f"numpy.dtype({spec!r})"), "dtype")

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)
                and state[1] in ("<", ">", "|", "=") and state[2:5] == (None, None, None)):
            raise CheckpointError(f"unsupported dtype state {state!r:.200}")
        if state[1] in "<>" and self.value.itemsize > 1:
            self.value = self.value.newbyteorder(state[1])


def _numel_checked(shape, what, budget, itemsize=1):
    if not isinstance(shape, tuple):
        shape = (shape,)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise CheckpointError(f"{what}: bad shape {shape!r:.200}")
    n = _numel(shape)
    if n * itemsize > budget:
        raise _too_big(what, n * itemsize, budget)
    return shape, n


class _PendingArray(Pending):
    """numpy.core.multiarray._reconstruct(ndarray, shape, dtype) then BUILD
    (version, shape, dtype, is_fortran, raw bytes)."""
    __slots__ = ("budget",)

    def __init__(self, budget):
        super().__init__(None, "array")
        self.budget = budget

    def __setstate__(self, state):
        if self.value is not None or not isinstance(state, tuple) or len(state) not in (4, 5):
            raise CheckpointError(f"unsupported array state {state!r:.200}")
        if len(state) == 4:          # an old pickle without the version
            state = (1,) + state
        _, shape, dtype, fortran, raw = state
        dtype = _plain_dtype(dtype, "array")
        shape, n = _numel_checked(shape, "array", self.budget, dtype.itemsize)
        if isinstance(raw, str):     # protocol 0-2 strings hold the bytes as latin-1
            raw = raw.encode("latin-1")
        if not isinstance(raw, (bytes, bytearray)) or len(raw) != n * dtype.itemsize:
            raise CheckpointError(f"array of shape {shape} and dtype {dtype}: its data is "
                                  f"{type(raw).__name__} of {len(raw) if hasattr(raw, '__len__') else '?'} "
                                  f"bytes, {n * dtype.itemsize} expected")
        flat = np.frombuffer(raw, dtype=dtype, count=n)
        self.value = flat.reshape(shape, order="F" if fortran else "C").copy(order="K")


def _numpy_global(module, name, budget):
    """The NumPy globals that pickled arrays, dtypes and scalars name, as
    makers of Pending stand-ins with their sizes checked against the file."""
    if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        if name == "scalar":
            def scalar(dtype, data=None):
                dtype = _plain_dtype(dtype, "numpy scalar")
                if isinstance(data, str):
                    data = data.encode("latin-1")
                if not isinstance(data, bytes) or len(data) != dtype.itemsize:
                    raise CheckpointError(f"numpy scalar of {dtype}: bad data {data!r:.100}")
                return Pending(np.frombuffer(data, dtype=dtype)[0], "scalar")
            return scalar
        if name == "_reconstruct":
            def reconstruct(subtype, shape, dtype):
                if subtype is not _NDARRAY:
                    raise CheckpointError(f"refusing to rebuild an array of type {subtype!r}")
                _numel_checked(shape, "an array", budget, _plain_dtype(dtype, "array").itemsize)
                return _PendingArray(budget)
            return reconstruct
    elif module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
        def frombuffer(buf, dtype, shape, order):
            # the bytes are already read from the file: only their view is made here
            dtype = _plain_dtype(dtype, "array")
            shape, n = _numel_checked(shape, "array", budget, dtype.itemsize)
            buf = memoryview(buf).cast("B")
            if len(buf) != n * dtype.itemsize or order not in ("C", "F"):
                raise CheckpointError(f"array of shape {shape} and dtype {dtype}: "
                                      f"{len(buf)} bytes of data, order {order!r:.20}")
            return Pending(np.frombuffer(buf, dtype=dtype).reshape(shape, order=order), "array")
        return frombuffer
    elif module == "numpy":
        if name == "ndarray":
            return _NDARRAY
        if name == "dtype":
            return _PendingDtype
    elif module == "numpy.dtypes" and name.endswith("DType"):
        t = getattr(np, "dtypes", None) and getattr(np.dtypes, name, None)
        if isinstance(t, type) and issubclass(t, np.dtype):
            def make(*args, **kwargs):
                return Pending(_plain_dtype(t(), f"numpy.dtypes.{name}"), "dtype")
            return make
    return None


class _NdarrayMarker:
    """Stands for numpy.ndarray inside a pickle (only _reconstruct takes it)."""
    __slots__ = ()

    def __repr__(self):
        return "numpy.ndarray"


_NDARRAY = _NdarrayMarker()


def finish(obj):
    """obj with every Pending replaced by its NumPy value, through dicts,
    lists, tuples, sets and objects' __dict__ (in place where mutable)."""
    done = {}

    def walk(o, depth):
        if depth > 10000:
            raise CheckpointError("a checkpoint nested more than 10000 levels deep")
        if isinstance(o, Pending):
            if o.value is None:
                raise CheckpointError(f"a NumPy {o.what} without its state")
            return o.value
        if isinstance(o, (str, bytes, int, float, complex, bool, type(None), np.ndarray, np.generic)):
            return o
        key = id(o)
        if key in done:
            return done[key]
        done[key] = o
        if isinstance(o, dict):
            items = [(walk(k, depth + 1), walk(v, depth + 1)) for k, v in o.items()]
            o.clear()
            o.update(items)
        elif isinstance(o, list):
            o[:] = [walk(v, depth + 1) for v in o]
        elif isinstance(o, tuple) and type(o) is tuple:
            new = tuple(walk(v, depth + 1) for v in o)
            done[key] = new
            return new
        elif isinstance(o, (set, frozenset)):
            new = type(o)(walk(v, depth + 1) for v in o)
            done[key] = new
            return new
        elif hasattr(o, "__dict__") and not isinstance(o, type):
            for k, v in list(vars(o).items()):
                vars(o)[k] = walk(v, depth + 1)
        return o

    try:
        return walk(obj, 0)
    except RecursionError:
        raise CheckpointError("a checkpoint nested too deeply") from None
    except TypeError as e:           # an array where a hashable was needed
        raise CheckpointError(f"a checkpoint's containers cannot hold what it put in "
                              f"them ({e})") from None


def _namespace_type():
    """A fresh subclass of argparse.Namespace for each lookup, so that a crafted
    pickle (BUILD on the class itself) cannot patch argparse.Namespace; instances
    pickle back as plain argparse.Namespace objects."""
    import argparse

    class Namespace(argparse.Namespace):
        def __reduce__(self):
            return (argparse.Namespace, (), dict(self.__dict__))

    return Namespace


def _fresh(f):
    """A throwaway wrapper per lookup: a pickle's BUILD opcode can set attributes on
    the objects find_class returns, which must not alter kiln's functions."""
    def call(*args, **kwargs):
        return f(*args, **kwargs)
    call.__name__ = f.__name__
    return call


def common_global(module, name, budget):
    """The globals every checkpoint format may name (None: not allowed)."""
    if module == "__builtin__":  # Python 2 pickles
        module = "builtins"
    if module == "collections" and name == "OrderedDict":
        return collections.OrderedDict
    if module == "builtins" and name in _SAFE_BUILTINS:
        if name in ("bytes", "bytearray", "list", "tuple", "set", "frozenset", "dict"):
            return _guard_builtin(name, budget)
        return getattr(builtins, name)
    if module == "_codecs" and name == "encode":
        return _encode
    if module == "argparse" and name == "Namespace":  # the 'args' entry of many checkpoints
        return _namespace_type()
    if module.startswith("numpy"):
        return _numpy_global(module, name, budget)
    return None


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals: `resolve(module,
    name, budget)` for the format's own, then the common ones. `what` names the
    format in errors ("a PyTorch checkpoint", "a kiln checkpoint")."""

    def __init__(self, file, persistent_load=None, resolve=None, budget=1 << 62,
                 what="a checkpoint"):
        super().__init__(file, encoding="utf-8")
        self._persistent, self._resolve = persistent_load, resolve
        self._budget, self._what = budget, what

    def find_class(self, module, name):
        # protocol-2 pickles spell Python 3 names the Python 2 way
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        obj = self._resolve(module, name, self._budget) if self._resolve else None
        if obj is None:
            obj = common_global(module, name, self._budget)
        if isinstance(obj, types.FunctionType):
            obj = _fresh(obj)
        if obj is None:
            hint = ""
            if name[:1].isupper() and module != "builtins":
                hint = (" (a checkpoint that pickles a whole model or other object cannot be "
                        "read without that object's code; save and load model.state_dict() "
                        "instead)")
            raise CheckpointError(
                f"refusing to load the global '{module}.{name}' from {self._what}: only "
                f"arrays, tensors and plain containers are allowed{hint}")
        return obj

    def persistent_load(self, pid):
        if self._persistent is None:
            raise CheckpointError(f"unexpected persistent id {pid!r} in {self._what}")
        return self._persistent(pid)


_MEMO_PUTS = ("PUT", "BINPUT", "LONG_BINPUT")


def _check_lengths(f, limit):
    """Walks the pickle's opcodes once, reading every counted string through
    a BoundedReader, and rewinds. The C unpickler allocates what a pickle
    declares before it reads it: a BINBYTES8 or BYTEARRAY8 object at its
    declared length, and a memo table as large as the largest PUT index; so
    a length or index the file cannot back is refused first (a real pickle's
    memo indices count its objects, fewer than its bytes). The walk sees the
    opcodes the C unpickler runs only where frames are whole: a FRAME inside
    a frame, or an opcode across a frame's end, makes the C unpickler drop
    the rest of the frame and run bytes this walk never read (a fuzzed
    checkpoint hid a terabyte BYTEARRAY8 so), so both are refused, as
    Python's own unpickler refuses them."""
    start = f.tell()
    frame_end = None  # of the frame being walked (a file position)
    for op, arg, pos in pickletools.genops(BoundedReader(f, limit)):
        if frame_end is not None and pos > frame_end:
            raise CheckpointError("a pickle opcode runs past the end of its frame (crafted or corrupt)")
        if frame_end is not None and pos == frame_end:
            frame_end = None
        if op.name == "FRAME":
            if frame_end is not None:
                raise CheckpointError("a pickle frame begins inside another frame (crafted or corrupt)")
            frame_end = pos + 9 + arg
        if op.name in _MEMO_PUTS and arg > limit:
            raise CheckpointError(f"a pickle of {limit} bytes puts memo entry {arg} "
                                  "(crafted or corrupt)")
    f.seek(start)


# what a damaged pickle raises inside the unpickler
# (SystemError: NumPy's __setstate__ functions answer bad states with it)
UNPICKLE_ERRORS = (EOFError, pickle.UnpicklingError, ValueError, IndexError, TypeError, KeyError,
                   AttributeError, struct.error, MemoryError, OverflowError, RecursionError,
                   SystemError)


def restricted_load(f, what, persistent_load=None, resolve=None, limit=None, damaged=None,
                    error=CheckpointError, finished=True):
    """One pickle from f through RestrictedUnpickler, reading at most `limit`
    bytes (default: the rest of the file). A refusal raises `error` (a
    CheckpointError subclass); damage raises damaged(exception) (default: an
    `error` saying `what` is truncated or corrupt). finished=False leaves the
    Pending stand-ins in place (a first pass that only looks)."""
    if limit is None:
        limit = file_size(f)
    budget = limit if limit is not None else 1 << 62
    try:
        if limit is not None:
            _check_lengths(f, limit)
        src = f if limit is None else BoundedReader(f, limit)
        obj = RestrictedUnpickler(src, persistent_load, resolve, budget, what).load()
        return finish(obj) if finished else obj
    except CheckpointError as e:
        if isinstance(e, error):
            raise
        raise error(str(e)) from None
    except UNPICKLE_ERRORS as e:
        if damaged is not None:
            raise damaged(e) from None
        raise error(f"{what} is truncated or corrupt: could not read it "
                              f"({type(e).__name__}: {e})") from None
