"""Reading PyTorch checkpoints (``torch.save`` files) without importing torch.

Two on-disk formats are understood:

* the zip format written by ``torch.save`` since PyTorch 1.6: a zip archive
  holding ``<archive>/data.pkl`` (the pickled object), one raw record
  ``<archive>/data/<key>`` per storage and, in recent versions,
  ``<archive>/byteorder``;
* the legacy format written with ``_use_new_zipfile_serialization=False``:
  back-to-back pickles of the magic number, the protocol version and a
  ``sys_info`` dict, then the pickled object, then the sorted list of storage
  keys, then for every key an int64 element count followed by the raw
  little-endian bytes.

The pickles are read with a *restricted* unpickler: ``find_class`` resolves
only the handful of globals a checkpoint of tensors needs (the tensor and
parameter rebuild functions, the ``torch.*Storage`` types, ``torch.Size``,
dtypes, ``collections.OrderedDict`` and a few harmless builtins); any other
global -- ``os.system``, ``builtins.eval``, a user's model class -- raises
:class:`PthError` (a ``pickle.UnpicklingError`` and ``ValueError``) naming it, before anything
is called.  Loading a checkpoint therefore cannot run code.

What comes back: the checkpoint's own containers (``OrderedDict`` state
dicts, dicts with ``'state_dict'``/``'model'``/``'optimizer'`` keys, lists,
tuples, numbers, strings) with every tensor and parameter replaced by a
freshly allocated, C-contiguous NumPy array of the same shape.  Strides and
storage offsets are honoured (views are materialised; two tensors sharing a
storage get two independent arrays).  ``requires_grad`` and backward hooks
are dropped.  dtypes map as follows:

    float32 -> float32      float64 -> float64
    float16 -> float32 (``half_to_float=False`` keeps float16)
    bfloat16 -> float32 (NumPy has no bfloat16; exact, bf16 is a float32 prefix)
    int64, int32, int16, int8, uint8, bool, complex64/128 -> the same dtype

A bare storage object (rare) comes back as a :class:`PthStorage`, which
``numpy.asarray`` converts.  Tensor locations (``cuda:0``...) are ignored:
everything lands in host memory.
"""
import io
import lzma
import os
import struct
import zipfile
import zlib

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .safe_pickle import CheckpointError, Pending, file_size, restricted_load

__all__ = ["load_pth", "is_pth", "PthError", "PthStorage"]

MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
PROTOCOL_VERSION = 1001


class PthError(CheckpointError):
    """A PyTorch checkpoint that cannot (or must not) be loaded (a
    pickle.UnpicklingError and a ValueError)."""


# logical dtype -> (raw little-endian NumPy dtype of the bytes on disk)
_RAW = {
    "float32": "<f4", "float64": "<f8", "float16": "<f2", "bfloat16": "<u2",
    "int64": "<i8", "int32": "<i4", "int16": "<i2", "int8": "i1", "uint8": "u1",
    "bool": "?", "complex64": "<c8", "complex128": "<c16",
}

_STORAGE_TYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "UntypedStorage": "uint8",
    "_UntypedStorage": "uint8",
}

_TORCH_DTYPES = {
    "float32": "float32", "float": "float32", "float64": "float64", "double": "float64",
    "float16": "float16", "half": "float16", "bfloat16": "bfloat16",
    "int64": "int64", "long": "int64", "int32": "int32", "int": "int32",
    "int16": "int16", "short": "int16", "int8": "int8", "uint8": "uint8", "bool": "bool",
    "complex64": "complex64", "cfloat": "complex64", "complex128": "complex128",
    "cdouble": "complex128",
}


class _StorageType:
    """Stands for ``torch.FloatStorage`` and friends inside a checkpoint."""
    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype

    def __repr__(self):
        return "torch." + self.name


class _TorchDtype:
    """Stands for ``torch.float32`` and friends inside a checkpoint."""
    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype

    def __repr__(self):
        return "torch." + self.dtype


class _TensorType:
    """Stands for ``torch.Tensor`` / ``torch.nn.Parameter`` (only ever passed to
    ``_rebuild_from_type_v2``, which ignores it)."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


class PthStorage:
    """A storage read from a checkpoint: ``data`` is the raw 1-D array (bfloat16 as
    uint16 bit patterns), ``dtype`` the logical dtype name."""
    __slots__ = ("data", "dtype", "key", "half_to_float")

    def __init__(self, data, dtype, key, half_to_float=True):
        self.data, self.dtype, self.key, self.half_to_float = data, dtype, key, half_to_float

    def numpy(self):
        return _finish(np.array(self.data), self.dtype, self.half_to_float)

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __len__(self):
        return 0 if self.data is None else len(self.data)

    def __repr__(self):
        return f"PthStorage(dtype={self.dtype}, size={len(self)})"


def _finish(a, dtype, half_to_float):
    """Raw copied array -> the array handed to the user (native byte order)."""
    if dtype == "bfloat16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    if dtype == "float16" and half_to_float:
        return a.astype(np.float32)
    native = np.dtype(_RAW[dtype]).newbyteorder("=")
    return a.astype(native, copy=False)


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


# A tensor whose strides repeat elements (stride 0: torch.expand) is written
# out in full; past these bounds it is taken for a crafted file.
_EXPANSION = 64
_MAX_EXPANDED_BYTES = 256 << 20


def _numel(size):
    n = 1
    for s in size:
        n *= s
    return n


def _materialise(storage, offset, size, stride, dtype=None):
    if not isinstance(storage, PthStorage):
        raise PthError(f"tensor rebuilt from a {type(storage).__name__}, not a storage")
    try:
        size, stride = tuple(size), tuple(stride)
    except TypeError:
        raise PthError("tensor size/stride is not a sequence") from None
    if not (_is_int(offset) and all(map(_is_int, size)) and all(map(_is_int, stride))):
        raise PthError(f"bad tensor geometry: offset={offset!r} size={size!r} stride={stride!r}")
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride) \
            or offset < 0:
        raise PthError(f"bad tensor geometry: offset={offset} size={size} stride={stride}")
    data, logical = storage.data, storage.dtype
    if data is None:  # first pass over a legacy file: storages not read yet
        return None
    if not (isinstance(data, np.ndarray) and data.ndim == 1 and data.flags.c_contiguous
            and logical in _RAW and data.dtype.kind != "O"
            and data.dtype.newbyteorder("<") == np.dtype(_RAW[logical]).newbyteorder("<")):
        raise PthError(f"corrupt storage object {storage!r}")
    if dtype is not None and dtype != logical:
        # an untyped (byte) storage reinterpreted by _rebuild_tensor_v3
        raw = np.dtype(_RAW[dtype])
        if data.dtype.byteorder == ">":
            raw = raw.newbyteorder(">")
        n = data.nbytes // raw.itemsize
        data = np.frombuffer(data.tobytes()[:n * raw.itemsize], dtype=raw)
        logical = dtype
    size = tuple(int(s) for s in size)
    stride = tuple(int(s) for s in stride)
    offset = int(offset)
    if 0 in size:
        out = np.empty(size, dtype=data.dtype)
    else:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= len(data):
            raise PthError(
                f"tensor of size {size}, stride {stride}, offset {offset} reaches element "
                f"{last} of a storage of {len(data)} elements (corrupt checkpoint?)")
        item = data.itemsize
        covered = last - offset + 1
        n_out = _numel(size)
        if n_out > covered and n_out * item > max(_MAX_EXPANDED_BYTES, _EXPANSION * data.nbytes):
            raise PthError(
                f"tensor of size {size}, stride {stride} repeats {covered} stored elements "
                f"{n_out // covered}-fold ({n_out * item} bytes from a {data.nbytes}-byte "
                "storage): "
                "refusing to allocate it (crafted checkpoint?)")
        view = as_strided(data[offset:], shape=size, strides=[s * item for s in stride],
                          writeable=False)
        try:
            out = np.array(view, copy=True, order="C")
        except MemoryError:
            raise PthError(f"tensor of size {size} does not fit in memory") from None
    return _finish(out, logical, storage.half_to_float)


# ---- the allow-listed callables a checkpoint may name ----

# Tensors come back as stand-ins (see _safe_pickle): no NumPy object is in
# the pickle's hands while it is read.

def _rebuild_tensor(storage, storage_offset, size, stride):
    return Pending(_materialise(storage, storage_offset, size, stride), "tensor")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return Pending(_materialise(storage, storage_offset, size, stride), "tensor")


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
    if not isinstance(dtype, _TorchDtype):
        raise PthError(f"_rebuild_tensor_v3 given dtype {dtype!r}")
    return Pending(_materialise(storage, storage_offset, size, stride, dtype.dtype), "tensor")


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    # func can only be one of the allow-listed callables: find_class resolves nothing else
    if not callable(func) or not isinstance(args, tuple):
        raise PthError(f"_rebuild_from_type_v2 given {func!r}, {args!r}")
    return func(*args)


def _torch_size(*args):
    return tuple(*args)


def _torch_device(*args):
    return ":".join(str(a) for a in args)


def _no_ctor(name):
    def f(*args, **kwargs):
        raise PthError(f"{name} is a type marker and cannot be called")
    return f


def _resolve(module, name, budget):
    """The torch globals a checkpoint of tensors names (the rest: _safe_pickle)."""
    if module == "torch._utils":
        f = {"_rebuild_tensor": _rebuild_tensor, "_rebuild_tensor_v2": _rebuild_tensor_v2,
             "_rebuild_tensor_v3": _rebuild_tensor_v3, "_rebuild_parameter": _rebuild_parameter,
             "_rebuild_parameter_with_state": _rebuild_parameter_with_state}.get(name)
        if f is not None:
            return f
    elif module == "torch._tensor" and name == "_rebuild_from_type_v2":
        return _rebuild_from_type_v2
    elif module in ("torch", "torch.cuda"):
        if name in _STORAGE_TYPES:
            return _StorageType(name, _STORAGE_TYPES[name])
        if module == "torch":
            if name in _TORCH_DTYPES:
                return _TorchDtype(_TORCH_DTYPES[name])
            if name == "Size":
                return _torch_size
            if name == "device":
                return _torch_device
            if name == "Tensor":
                return _TensorType("torch.Tensor")
    elif module == "torch.storage" and name == "UntypedStorage":
        return _StorageType(name, "uint8")
    elif module == "torch.nn.parameter" and name == "Parameter":
        return _TensorType("torch.nn.Parameter")
    return None


def _no_persistent(pid):
    raise PthError(f"unexpected persistent id {pid!r} outside the checkpoint's object")


def _str(v):
    return v.decode("ascii") if isinstance(v, bytes) else v


def _parse_pid(pid, legacy):
    if not isinstance(pid, tuple) or not pid:
        raise PthError(f"unexpected persistent id {pid!r}")
    typename = _str(pid[0])
    if typename == "module" and legacy:
        raise PthError("the checkpoint pickles a whole nn.Module; it cannot be read without "
                       "the model's code -- save and load model.state_dict() instead")
    if typename != "storage" or len(pid) != (6 if legacy else 5):
        raise PthError(f"unexpected persistent id {pid!r}")
    storage_type, key, numel = pid[1], _str(pid[2]), pid[4]
    if not isinstance(storage_type, _StorageType):
        raise PthError(f"unexpected storage type {storage_type!r}")
    if not isinstance(key, str) or not _is_int(numel) or numel < 0:
        raise PthError(f"unexpected persistent id {pid!r}")
    view = pid[5] if legacy else None
    return storage_type.dtype, key, int(numel), view


def _truncated(what, err=None):
    msg = f"PyTorch checkpoint is truncated or corrupt: {what}"
    if err is not None:
        msg += f" ({type(err).__name__}: {err})"
    return PthError(msg)


def _unpickle(f, persistent_load, what, limit=None, finished=True):
    return restricted_load(f, "a PyTorch checkpoint", persistent_load, _resolve, limit,
                           damaged=lambda e: _truncated(f"could not read {what}", e),
                           error=PthError, finished=finished)


# ---- zip format ----

# deflate cannot inflate more than ~1032-fold; a record claiming more is crafted
_MAX_INFLATE = 1100

# what zipfile raises on a damaged or unusual archive (unsupported versions
# and methods, encryption, bad headers, inflate errors)
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, OSError,
               EOFError, ValueError, KeyError, OverflowError, struct.error, zlib.error, lzma.LZMAError)

def _load_zip(f, half_to_float):
    try:
        zf = zipfile.ZipFile(f)
    except _ZIP_ERRORS as e:
        raise _truncated("its zip directory cannot be read", e) from None
    with zf:
        names = zf.namelist()
        pkls = sorted((n for n in names if n == "data.pkl" or
                       (n.endswith("/data.pkl") and n.count("/") == 1)), key=len)
        if not pkls:
            if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
                raise PthError("this is a TorchScript archive (torch.jit.save), not a "
                               "torch.save checkpoint; it is not supported")
            raise PthError("zip archive without a data.pkl record: not a PyTorch checkpoint")
        prefix = pkls[0][:-len("data.pkl")]
        order = "<"
        if prefix + "byteorder" in names:
            try:
                big = zf.read(prefix + "byteorder").strip() == b"big"
            except _ZIP_ERRORS as e:
                raise _truncated("its byteorder record cannot be read", e) from None
            order = ">" if big else "<"
        cache = {}

        def persistent_load(pid):
            dtype, key, numel, _ = _parse_pid(pid, legacy=False)
            if key in cache:
                return cache[key]
            name = prefix + "data/" + key
            rdt = np.dtype(_RAW[dtype])
            if order == ">":
                rdt = rdt.newbyteorder(">")
            need = numel * rdt.itemsize
            try:
                info = zf.getinfo(name)
            except KeyError:
                raise PthError(f"storage record '{name}' missing from the checkpoint") from None
            # sizes are checked against the archive before anything is read
            if info.file_size < need:
                raise _truncated(f"storage '{key}' holds {info.file_size // rdt.itemsize} "
                                 f"elements, {numel} expected")
            if info.compress_type != zipfile.ZIP_STORED and need > _MAX_INFLATE * info.compress_size:
                raise PthError(f"storage record '{name}' claims to inflate {info.compress_size} "
                               f"bytes to {need}: refusing (crafted archive?)")
            try:
                with zf.open(info) as r:
                    raw = r.read(need)
            except _ZIP_ERRORS as e:
                raise _truncated(f"storage record '{name}' cannot be read", e) from None
            if len(raw) < need:
                raise _truncated(f"storage '{key}' holds {len(raw) // rdt.itemsize} elements, "
                                 f"{numel} expected")
            arr = np.frombuffer(raw, dtype=rdt, count=numel)
            s = cache[key] = PthStorage(arr, dtype, key, half_to_float)
            return s

        try:
            pf = zf.open(prefix + "data.pkl")
        except _ZIP_ERRORS as e:
            raise _truncated("data.pkl cannot be read", e) from None
        with pf:
            try:
                return _unpickle(pf, persistent_load, "data.pkl",
                                 limit=zf.getinfo(prefix + "data.pkl").file_size)
            except PthError:
                raise
            except _ZIP_ERRORS as e:
                raise _truncated("data.pkl cannot be read", e) from None


# ---- legacy format ----

def _load_legacy(f, half_to_float):
    magic = _unpickle(f, _no_persistent, "the magic number")
    if magic != MAGIC_NUMBER:
        raise PthError("not a PyTorch checkpoint (invalid magic number)")
    proto = _unpickle(f, _no_persistent, "the protocol version")
    if proto != PROTOCOL_VERSION:
        raise PthError(f"unsupported legacy PyTorch protocol version {proto!r}")
    sys_info = _unpickle(f, _no_persistent, "sys_info")
    if not isinstance(sys_info, dict):
        raise PthError("corrupt legacy checkpoint: sys_info is not a dict")
    body = f.tell()

    # pass 1: learn which storages exist (and their dtypes) without building tensors
    meta = {}

    def scan(pid):
        dtype, key, numel, view = _parse_pid(pid, legacy=True)
        if meta.setdefault(key, dtype) != dtype:
            raise PthError(f"storage '{key}' used with two dtypes")
        return PthStorage(None, dtype, key, half_to_float)

    _unpickle(f, scan, "the checkpoint's object", finished=False)
    keys = _unpickle(f, _no_persistent, "the storage key list")
    if not isinstance(keys, list) or not all(isinstance(k, (str, bytes)) for k in keys):
        raise PthError("corrupt legacy checkpoint: bad storage key list")
    keys = [_str(k) for k in keys]
    missing = set(meta) - set(keys)
    if missing:
        raise PthError(f"corrupt legacy checkpoint: storages {sorted(missing)} not stored")
    arrays = {}
    for key in keys:
        if key not in meta:
            raise PthError(f"corrupt legacy checkpoint: unreferenced storage '{key}'")
        rdt = np.dtype(_RAW[meta[key]])
        head = f.read(8)
        if len(head) < 8:
            raise _truncated(f"the size of storage '{key}' is cut off")
        numel = int.from_bytes(head, "little", signed=True)
        if numel < 0:
            raise PthError(f"corrupt legacy checkpoint: storage '{key}' has size {numel}")
        nbytes = numel * rdt.itemsize
        left = file_size(f)
        if left is not None and nbytes > left:
            raise _truncated(f"storage '{key}' declares {nbytes} bytes, the file has {left} left")
        raw = f.read(nbytes)
        if len(raw) < nbytes:
            raise _truncated(f"storage '{key}' has {len(raw)} of its {nbytes} bytes")
        arrays[key] = np.frombuffer(raw, dtype=rdt)

    # pass 2: the real object, with the storages filled in
    f.seek(body)
    built = {}

    def persistent_load(pid):
        dtype, key, numel, view = _parse_pid(pid, legacy=True)
        if view is None:
            if key not in built:
                built[key] = PthStorage(arrays[key], dtype, key, half_to_float)
            return built[key]
        try:
            view_key, off, n = view
            view_key = _str(view_key)
            off, n = int(off), int(n)
        except (TypeError, ValueError):
            raise PthError(f"bad storage view {view!r}") from None
        if view_key not in built:
            root = arrays[key]
            if off < 0 or n < 0 or off + n > len(root):
                raise PthError(f"storage view {view!r} outside storage '{key}'")
            built[view_key] = PthStorage(root[off:off + n], dtype, view_key, half_to_float)
        return built[view_key]

    return _unpickle(f, persistent_load, "the checkpoint's object")


# ---- entry points ----

_ZIP_MAGIC = b"PK\x03\x04"


def _sniff_legacy(head):
    try:
        return _unpickle(io.BytesIO(head), _no_persistent, "the magic number") == MAGIC_NUMBER
    except Exception:
        return False


def _open(path_or_file):
    """-> (file object, whether we opened it)."""
    if isinstance(path_or_file, (str, bytes, os.PathLike)):
        return open(path_or_file, "rb"), True
    f = path_or_file
    if not hasattr(f, "read"):
        raise TypeError(f"expected a path or a binary file object, got {type(f).__name__}")
    try:
        seekable = f.seekable()
    except Exception:
        seekable = False
    if not seekable:
        f = io.BytesIO(f.read())
    return f, False


def is_pth(path_or_file):
    """True when the file looks like a ``torch.save`` checkpoint: a zip archive
    with a ``<name>/data.pkl`` record (or a damaged zip, so that loading reports
    what is wrong), or a file that starts with the legacy pickled magic number.
    A file object's position is restored."""
    try:
        f, opened = _open(path_or_file)
    except (OSError, TypeError):
        return False
    try:
        start = f.tell()
        head = f.read(64)
        try:
            if head[:4] == _ZIP_MAGIC:
                f.seek(start)
                try:
                    with zipfile.ZipFile(f) as zf:
                        return any(n == "data.pkl" or (n.endswith("/data.pkl") and
                                                       n.count("/") == 1)
                                   for n in zf.namelist())
                except _ZIP_ERRORS:
                    return True
            return _sniff_legacy(head)
        finally:
            f.seek(start)
    except OSError:
        return False
    finally:
        if opened:
            f.close()


def load_pth(path_or_file, *, half_to_float=True):
    """Load a ``torch.save`` checkpoint (zip or legacy format) without torch.

    Returns the saved object with tensors as NumPy arrays (see the module
    docstring for the dtype mapping; ``half_to_float=False`` keeps float16).
    Raises :class:`PthError` (a ``pickle.UnpicklingError``) for a forbidden
    global, a truncated or corrupt file, or a file that is no checkpoint."""
    f, opened = _open(path_or_file)
    try:
        return _load(f, half_to_float)
    except PthError as e:
        if opened:
            raise PthError(f"{os.fsdecode(path_or_file)}: {e}") from None
        raise
    finally:
        if opened:
            f.close()


def _load(f, half_to_float):
    start = f.tell()
    head = f.read(512)
    f.seek(start)
    if head[:4] == _ZIP_MAGIC:
        return _load_zip(f, half_to_float)
    if len(head) == 0:
        raise PthError("empty file: not a PyTorch checkpoint")
    if head[257:262] == b"ustar":
        raise PthError("this is an early (tar-format, PyTorch < 0.4) checkpoint, which is "
                       "not supported; re-save it with a recent torch.save")
    if head[:1] in (b"\x80", b"L", b"I", b"J", b"\x8a"):
        return _load_legacy(f, half_to_float)
    raise PthError("not a PyTorch checkpoint (neither a zip archive nor a legacy pickle)")
