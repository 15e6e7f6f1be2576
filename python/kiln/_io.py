"""jt.save / jt.load: pickle, with every Var turned into a NumPy array, written
atomically (a temp file in the same folder, then os.replace) so that a crash
never leaves a half-written file. load(path) is the one entry point that other
formats (PyTorch .pth) can extend."""
import os
import pickle
import tempfile

from ._core import Var

__all__ = ["save", "load", "to_numpy_tree"]


def to_numpy_tree(obj):
    """obj with Vars replaced by NumPy arrays, through dicts, lists, tuples and
    modules (which become their state dicts)."""
    from ._module import Module
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


def save(obj, path):
    """Pickles obj (Vars as NumPy arrays) to path, atomically."""
    path = os.fspath(path)
    data = to_numpy_tree(obj)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kiln-save-", dir=folder)
    try:
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


def load(path, map_location=None):
    """What save() wrote: the object with NumPy arrays where Vars were (load
    them into a model with load_state_dict / load_parameters)."""
    del map_location
    path = os.fspath(path)
    with open(path, "rb") as f:
        from . import _pth
        if _pth.is_pth(f):  # a PyTorch checkpoint, read without torch
            return _pth.load_pth(path)
        head = f.read(2)
        f.seek(0)
        if head[:1] != b"\x80":
            raise ValueError(f"load: {path} is not a pickle written by kiln.save "
                             f"(first bytes {head!r})")
        return pickle.load(f)

