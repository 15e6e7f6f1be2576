"""jt.profile_scope: kiln's own profile of the kernels a block runs.

    with jt.profile_scope() as report:
        model(x).sync()

While the block runs, every launch (fused kernel, library call, alias) is
timed by the core; on exit the launches are grouped by root op and fused
ops, and `report` is filled with Jittor's table: a header row ("Name",
"FileName", "Count", "TotalTime", "%,cum%", "AvgTime", "MinTime", "MaxTime",
"Input", "Output", "InOut", "Compute"), then one row per group, costliest
first; times in nanoseconds and byte counts as strings, as Jittor gives
them. The table is printed unless print_report=False. Jittor re-runs each op
warmup + rerun times to time it; kiln times the block's own launches
(re-running a kernel outside its sync is not possible), so warmup and rerun
are accepted and unused."""
import contextlib
import sys

from . import _C

__all__ = ["profile_scope"]

HEADER = ["Name", "FileName", "Count", "TotalTime", "%,cum%", "AvgTime", "MinTime", "MaxTime",
          "Input", "Output", "InOut", "Compute"]


def _report(records):
    groups = {}
    for name, ops, ms, inb, outb in records:
        g = groups.setdefault((name, ops), [0, 0.0, float("inf"), 0.0, 0, 0])
        g[0] += 1
        g[1] += ms
        g[2] = min(g[2], ms)
        g[3] = max(g[3], ms)
        g[4] += inb
        g[5] += outb
    total = sum(g[1] for g in groups.values()) or 1.0
    rows, cum = [list(HEADER)], 0.0
    for (name, ops), (n, ms, lo, hi, inb, outb) in sorted(groups.items(), key=lambda kv: -kv[1][1]):
        cum += ms
        ns = ms * 1e6
        seconds = max(ms * 1e-3, 1e-12)
        rows.append([f"{name} [{ops}]" if ops else name, "kiln", str(n), f"{ns:.0f}",
                     f"{100 * ms / total:.1f}%,{100 * cum / total:.1f}%", f"{ns / n:.0f}",
                     f"{lo * 1e6:.0f}", f"{hi * 1e6:.0f}", f"{inb / seconds:.0f}", f"{outb / seconds:.0f}",
                     f"{(inb + outb) / seconds:.0f}", "0"])
    return rows


def _print(rows, stream=None):
    stream = stream or sys.stdout
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    keep = [0, 2, 3, 4, 5, 10]   # name, count, total, %, average, bytes/s
    for r in rows:
        stream.write("  ".join(r[i].rjust(widths[i]) if i else r[i][:70].ljust(min(widths[i], 70))
                               for i in keep) + "\n")


@contextlib.contextmanager
def profile_scope(warmup=0, rerun=0, print_report=True, **flags):
    """Profiles the kernels the block runs (see the module's docstring);
    flags given are set for the block, as in flag_scope."""
    del warmup, rerun
    from ._flags import flag_scope
    report = []
    was = _C.profile_enabled()
    _C.profile_take()       # launches before the block are not its own
    _C.profile_enable(True)
    try:
        with flag_scope(**flags):
            yield report
            _C.sync_all()   # what the block left pending runs inside it
    finally:
        records = _C.profile_take()
        _C.profile_enable(was)
    report.extend(_report(records))
    if print_report and len(report) > 1:
        _print(report)
