"""Shared timing for the side-by-side benchmarks: both frameworks get the same
thread count, every timed call ends with a sync, and medians are reported."""
import os
import statistics
import subprocess
import sys
import time

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import kiln as jt  # noqa: E402

try:
    import torch  # noqa: E402
    torch.set_num_threads(THREADS)
except ImportError:  # the kiln side still runs
    torch = None


def median_time(fn, repeat=20, warmup=3):
    """Median wall time of fn() in seconds; fn must finish its own work (sync)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(case, kiln_s, torch_s, note=""):
    """One line per case: both medians and PyTorch time / kiln time (>1: kiln faster)."""
    if torch_s is None:
        print(f"{case:<40} kiln {kiln_s * 1e3:9.3f} ms   torch    n/a      {note}")
        return None
    ratio = torch_s / kiln_s
    print(f"{case:<40} kiln {kiln_s * 1e3:9.3f} ms   torch {torch_s * 1e3:9.3f} ms   ratio {ratio:6.2f}x {note}")
    return ratio


def new_process_seconds(code, cache):
    """Runs code (which prints its own timing last) in a new Python process
    with KILN_CACHE_DIR=cache; returns that float."""
    env = dict(os.environ, KILN_CACHE_DIR=cache,
               PYTHONPATH=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])
