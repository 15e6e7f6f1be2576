"""jt.core: the counts Jittor programs read to watch the graph's memory.
kiln's graph keeps one node per var (a var holds the op that makes it), so:

- number_of_lived_vars: vars that exist (held by Python, or by the graph as
  an input some live var still needs);
- number_of_hold_vars: vars Python holds (jt.Var objects alive);
- number_of_lived_ops: vars still holding their op — pending, or kept so
  that a gradient can be taken through them;
- liveness_info(): the three as a dict, equal between two training steps
  when nothing leaks."""
from . import _C

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
