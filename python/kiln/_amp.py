"""Jittor's half-precision dtype rules, for float16 and bfloat16 ("half")
vars. kiln computes half values in float32 inside kernels either way; these
rules decide only which dtype results are stored in:

- a sum or mean of a half var is float32, and so are the precision-sensitive
  ("white") ops exp, log and pow of half vars — unless jt.flags.amp_reg has
  bit 4 (reductions) or bit 8 (white ops) set, or amp_level is 3 or more;
- a half var combined with a float scalar var (one element, as a full
  reduction gives) stays half, as with a Python number;
- with amp_reg bit 16, float32 data made by jt.array and the random
  functions is stored as float16."""
from ._core import state

KEEP_REDUCE, KEEP_WHITE, ARRAYS_HALF = 4, 8, 16
WHITE_OPS = frozenset(("exp", "log", "pow"))


def is_half(dt):
    return dt.name in ("float16", "bfloat16")


def _keeps(bit):
    return bool(getattr(state, "amp_reg", 0) & bit) or getattr(state, "amp_level", 0) >= 3


def reduce_dtype(dt, op):
    """The dtype a sum/mean of a dt var is stored in (None: dt itself)."""
    if op in ("sum", "mean", "add") and is_half(dt) and not _keeps(KEEP_REDUCE):
        return "float32"
    return None


def white_dtype(dt, op):
    """The dtype a white op of a dt var is computed and stored in (None: dt)."""
    if op in WHITE_OPS and is_half(dt) and not _keeps(KEEP_WHITE):
        return "float32"
    return None


def keep_half(a, b, promoted):
    """promoted, or the half dtype of a or b when the other is a float scalar var."""
    if not promoted.is_float or is_half(promoted):
        return promoted
    for h, s in ((a, b), (b, a)):
        if is_half(h.dtype) and s.dtype.is_float and not is_half(s.dtype) and s.numel() == 1 \
                and h.numel() != 1:
            return h.dtype
    return promoted


def creation_dtype(dt):
    """float32 data is made as float16 under amp_reg bit 16."""
    if dt.name == "float32" and getattr(state, "amp_reg", 0) & ARRAYS_HALF:
        from ._dtype import as_dtype
        return as_dtype("float16")
    return dt
