"""jt.core: the counts Jittor programs read to watch the graph's memory.
kiln's graph keeps one node per var (a var holds the op that makes it), so:

- number_of_lived_vars: vars that exist (held by Python, or by the graph as
  an input some live var still needs);
- number_of_hold_vars: vars Python holds (jt.Var objects alive);
- number_of_lived_ops: vars still holding their op — pending, or kept so
  that a gradient can be taken through them;
- liveness_info(): the three as a dict, equal between two training steps
  when nothing leaks.

dump_all_graphs() lists every var that exists, with its op (Jittor's debugging
dump; the format is below), and _print_var_slice logs how an index (x[...])
is read."""
import numpy as np

from . import _C
from ._log import LOG

__all__ = ["number_of_lived_vars", "number_of_hold_vars", "number_of_lived_ops", "liveness_info",
           "dump_all_graphs", "var_line"]


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


class Graphs:
    """What dump_all_graphs returns: nodes_info (one line per node), and per
    node the indices of its inputs and outputs in nodes_info."""

    def __init__(self, nodes_info, inputs, outputs):
        self.nodes_info, self.inputs, self.outputs = nodes_info, inputs, outputs

    def __repr__(self):
        return "\n".join(self.nodes_info)


def _dims(shape):
    return "[" + "".join(f"{d}," for d in shape) + "]"


def var_line(info, consumers):
    """One var as Jittor's dumps print it, with kiln's figures:
    Var(id:held:read_by:i<inputs>:o<consumers>:s<computed>:b<bytes>,dtype,name,buffer)[shape,]
    held: handles the program holds; read_by: ops that read it; inputs: of
    the op it still holds (0 once it keeps no graph); s1 once its value
    exists (a var fused into its consumers stays s0); bytes: its value's;
    buffer: the id of the memory holding its value (views such as reshapes
    share their input's), 0 when it has none."""
    vid, user, graph, inputs, computed, nbytes, buffer, op, dtype, shape, name = info
    name = name if name is not None else f"{op}_{vid}"
    return (f"Var({vid}:{user}:{graph}:i{len(inputs)}:o{consumers}:s{computed}:b{nbytes},{dtype},"
            f"{name},{buffer}){_dims(shape)}")


def dump_all_graphs():
    """Every var that exists (held by the program or kept by the graph) and
    every op still held, oldest first, as Graphs. A var line is var_line's;
    an op line is Op(id:i<inputs>:o1:s<ran>,op->id), id being its output's
    (in kiln an op belongs to the var it makes)."""
    infos = _C.live_vars()
    consumers = {}
    for info in infos:
        for i in info[3]:
            consumers[i] = consumers.get(i, 0) + 1
    nodes, inputs, outputs, var_at = [], [], [], {}
    for info in infos:
        vid = info[0]
        var_at[vid] = len(nodes)
        nodes.append(var_line(info, consumers.get(vid, 0)))
        inputs.append([])
        outputs.append([])
        if info[3]:
            op_at = len(nodes)
            nodes.append(f"Op({vid}:i{len(info[3])}:o1:s{info[4]},{info[7]}->{vid})")
            inputs.append([var_at[i] for i in info[3] if i in var_at])
            outputs.append([var_at[vid]])
            inputs[var_at[vid]].append(op_at)
            for i in info[3]:
                if i in var_at:
                    outputs[var_at[i]].append(op_at)
    return Graphs(nodes, inputs, outputs)
