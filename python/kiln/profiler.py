"""jt.profiler and jt.profile_scope: kiln's own profile of the kernels it runs.

    with jt.profile_scope() as report:
        model(x).sync()

or, as Jittor's programs also write it,

    jt.profiler.start()
    model(x).sync()
    jt.profiler.stop()
    rows = jt.profiler.report()

While profiling, every launch (fused kernel, library call, alias) is timed
by the core; the launches are grouped by root op and fused ops into
Jittor's table: a header row ("Name", "FileName", "Count", "TotalTime",
"%,cum%", "AvgTime", "MinTime", "MaxTime", "Input", "Output", "InOut",
"Compute"), then one row per group, costliest first; times in nanoseconds
and byte rates (bytes/s) as strings, as Jittor gives them. Jittor re-runs
each op warmup + rerun times to time it; kiln times the launches the
program makes (re-running a kernel outside its sync is not possible), so
warmup and rerun are accepted and unused."""
import contextlib
import contextvars
import sys

from . import _C

__all__ = ["profile_scope", "start", "stop", "report", "report_and_clear"]

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


# what stop() collected, for report(): per thread of control, like flags
_collected = contextvars.ContextVar("kiln_profiler_records", default=())


def start(warmup=0, rerun=0):
    """Starts recording every launch (Jittor's jt.profiler.start); what ran
    before is not part of the profile."""
    del warmup, rerun
    _C.sync_all()           # work queued before start is not the profile's
    _C.profile_take()
    _collected.set(())
    _C.profile_enable(True)


def stop():
    """Stops recording; pending work runs first, so it is part of the profile."""
    _C.sync_all()
    records = _C.profile_take()
    _C.profile_enable(False)
    _collected.set(_collected.get() + tuple(records))


def report():
    """The table of what was recorded between start() and stop() (header row first)."""
    return _report(_collected.get())


def report_and_clear():
    rows = report()
    _collected.set(())
    return rows


@contextlib.contextmanager
def profile_scope(warmup=0, rerun=0, print_report=True, **flags):
    """Profiles the kernels the block runs (see the module's docstring);
    flags given are set for the block, as in flag_scope."""
    from ._flags import flag_scope
    rows = []
    was, before = _C.profile_enabled(), _collected.get()
    start(warmup, rerun)
    try:
        with flag_scope(**flags):
            yield rows
    finally:
        stop()
        rows.extend(report())
        _collected.set(before)
        _C.profile_enable(was)
    if print_report and len(rows) > 1:
        _print(rows)
