"""jt.save / jt.load: pickle, with every Var turned into a NumPy array, written
atomically (a temp file in the same folder, then os.replace) so that a crash
never leaves a half-written file. load(path) is the one entry point that other
formats (PyTorch .pth) can extend."""
import os
import pickle
import tempfile

from .._core import Var
from .safe_pickle import CheckpointError, restricted_load

__all__ = ["save", "load", "to_numpy_tree", "CheckpointError"]


def to_numpy_tree(obj):
    """obj with Vars replaced by NumPy arrays, through dicts, lists, tuples and
    modules (which become their state dicts)."""
    from ..nn.module import Module
    if isinstance(obj, Var):
        return obj.numpy()
    if isinstance(obj, Module):
        return to_numpy_tree(obj.state_dict())
    if isinstance(obj, dict):
        return type(obj)((k, to_numpy_tree(v)) for k, v in obj.items()) \
            if type(obj) is not dict else {k: to_numpy_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_numpy_tree(v) for v in obj]
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(to_numpy_tree(v) for v in obj)
    return obj


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save(obj, path, all_ranks=False):
    """Pickles obj (Vars as NumPy arrays) to path, atomically. Under mpirun
    only rank 0 writes (the ranks hold the same model) unless all_ranks."""
    from .. import distributed
    path = os.fspath(path)
    if distributed.rank != 0 and not all_ranks:
        return
    data = to_numpy_tree(obj)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kiln-save-", dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from others
        with os.fdopen(fd, "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load(path, map_location=None, allow_pickle=False):
    """What save() wrote (the object with NumPy arrays where Vars were; load
    them into a model with load_state_dict / load_parameters), or a PyTorch
    checkpoint (read without torch).

    Both are read with an allow-list unpickler that builds only arrays,
    tensors and plain containers and never runs code; a file naming anything
    else raises CheckpointError (a ValueError) naming it. allow_pickle=True
    reads kiln's files with Python's unrestricted pickle instead: UNSAFE, a
    pickle can run any code, so only for files you trust."""
    del map_location
    path = os.fspath(path)
    with open(path, "rb") as f:
        from . import pth as _pth
        if _pth.is_pth(f):  # a PyTorch checkpoint, read without torch
            return _pth.load_pth(f)
        head = f.read(2)
        f.seek(0)
        if head[:1] != b"\x80":
            raise CheckpointError(f"load: {path} is not a pickle written by kiln.save "
                                  f"(first bytes {head!r})")
        if allow_pickle:
            return pickle.load(f)
        try:
            return restricted_load(f, "a kiln checkpoint")
        except CheckpointError as e:
            hint = (" (pass allow_pickle=True only if you trust the file: it can run code)"
                    if "refusing to load the global" in str(e) else "")
            raise CheckpointError(f"load: {path}: {e}{hint}") from None
