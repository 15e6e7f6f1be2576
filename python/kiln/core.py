"""jt.core: the counts Jittor programs read to watch the graph's memory.
kiln's graph keeps one node per var (a var holds the op that makes it), so:

- number_of_lived_vars: vars that exist (held by Python, or by the graph as
  an input some live var still needs);
- number_of_hold_vars: vars Python holds (jt.Var objects alive);
- number_of_lived_ops: vars still holding their op — pending, or kept so
  that a gradient can be taken through them;
- liveness_info(): the three as a dict, equal between two training steps
  when nothing leaks.

It also has _print_var_slice, Jittor's debugging hook that logs how an index
(x[...]) is read."""
import numpy as np

from . import _C
from ._log import LOG

__all__ = ["number_of_lived_vars", "number_of_hold_vars", "number_of_lived_ops", "liveness_info"]


def _counts():
    # read as they are: programs call these every step, and a full
    # gc.collect() each time would cost more than the step (Vars held only
    # by reference cycles count until Python's collector frees them)
    c = _C.counters()
    return c["vars_alive"], c["vars_held"], c["ops_alive"]


def _collected_counts():
    """The counts after Python's collector has freed Vars held only by
    reference cycles (programs ask these once, to check a number)."""
    import gc
    gc.collect()
    return _counts()


def number_of_lived_vars():
    return _collected_counts()[0]


def number_of_hold_vars():
    return _collected_counts()[1]


def number_of_lived_ops():
    return _collected_counts()[2]


def liveness_info():
    lived, held, ops = _counts()
    return {"hold_vars": held, "lived_vars": lived, "lived_ops": ops}


def _slice_item(it):
    if it is None:
        return "-"
    if it is Ellipsis:
        return "..."
    if isinstance(it, slice):
        return ":".join("" if v is None else str(v) for v in (it.start, it.stop, it.step))
    if isinstance(it, np.ndarray):
        # host index arrays reach the kernel as int32 (int64 past 2**31
        # elements of the indexed dim, which is not known here)
        dtype = "bool" if it.dtype == np.bool_ else "int32"
        return f"{dtype}[{''.join(f'{d},' for d in it.shape)}]"
    if hasattr(it, "dtype") and hasattr(it, "shape"):     # an index Var
        return f"{it.dtype}[{''.join(f'{d},' for d in it.shape)}]"
    return str(it)


def _print_var_slice(index):
    """Logs (jt.LOG.i) the index as kiln reads it, one item per entry:
    ints, start:stop:step slices, '-' for None, '...' for Ellipsis, and
    dtype[shape] for index arrays: `x[[0, 1], ::2]` is "[int32[2,],::2,]"."""
    from ._index import _normalize_items
    LOG.i("[" + "".join(_slice_item(it) + "," for it in _normalize_items(index)) + "]")
