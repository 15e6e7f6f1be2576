"""kiln.io: saving and loading. jt.save / jt.load (checkpoint.py); the
allow-list unpickler every load goes through, so that a file can neither run
code nor exhaust memory (safe_pickle.py); PyTorch's checkpoint formats, read
without torch (pth.py)."""
from .checkpoint import load, save, to_numpy_tree
from .pth import PthError, is_pth, load_pth
from .safe_pickle import CheckpointError

__all__ = ["save", "load", "to_numpy_tree", "CheckpointError", "PthError", "is_pth", "load_pth"]
