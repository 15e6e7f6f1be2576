"""Shared timing for the side-by-side benchmarks: kiln, PyTorch eager and
PyTorch's torch.compile get the same thread count and the same work, written
as users write it (no_grad inference, results read with numpy()/item()), and
medians are reported as PyTorch time / kiln time (above 1: kiln is faster).

BENCH_THREADS (default 2) sets the threads; BENCH_COMPILE=0 skips
torch.compile; BENCH_BUSY=1 (bench/run_all --busy) also times every case with
one other CPU-bound process running and prints each framework's slowdown."""
import contextlib
import os
import subprocess
import sys
import time

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import kiln as jt  # noqa: E402
from _timing import median_time  # noqa: E402,F401 (the benchmarks import it from here)

try:
    import torch  # noqa: E402
    torch.set_num_threads(THREADS)
except ImportError:  # the kiln side still runs
    torch = None

COMPILE = (torch is not None and hasattr(torch, "compile") and os.environ.get("BENCH_COMPILE", "1") != "0")
BUSY = os.environ.get("BENCH_BUSY") == "1"


def versions():
    """One line naming what is measured."""
    t = "none" if torch is None else torch.__version__
    c = "torch.compile (inductor)" if COMPILE else "no torch.compile"
    return f"kiln {jt.__version__}, torch {t}, {c}, numpy {__import__('numpy').__version__}"


@contextlib.contextmanager
def busy_machine():
    """One other CPU-bound process for the duration."""
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        yield
    finally:
        p.kill()
        p.wait()


def settled(fn, seconds=0.3):
    """fn after calling it for a while: a machine that stays busy is what the
    busy lines measure, not the first moments after it became busy."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
    return fn


def torch_compiled(fn):
    """torch.compile(fn), or None where it is unavailable (BENCH_COMPILE=0, old torch)."""
    return torch.compile(fn) if COMPILE else None


def torch_training_step(forward, optimizer, loss_fn, x, y):
    """One PyTorch training step as users write it: zero_grad, the loss,
    backward, step, and the loss read with item()."""
    def step():
        optimizer.zero_grad()
        loss = loss_fn(forward(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def _ms(s):
    return f"{s * 1e3:9.3f} ms" if s is not None else "      n/a   "


def _ratio(other, kiln_s):
    return f"{other / kiln_s:6.2f}x" if other is not None else "   n/a "


def compare(case, kiln_fn, torch_fn=None, compiled_fn=None, repeat=20, warmup=3, per=1, note=""):
    """Times each function that is given (per: calls one fn() stands for) and
    prints one line: kiln, PyTorch eager and torch.compile with their ratios.
    With BENCH_BUSY=1, times them again beside a busy process and prints each
    one's slowdown. Returns the kiln time."""
    fns = {"kiln": kiln_fn, "torch": torch_fn, "compiled": compiled_fn}
    quiet = {k: (median_time(f, repeat, warmup) / per if f is not None else None) for k, f in fns.items()}
    k = quiet["kiln"]
    print(f"{case:<40} kiln {_ms(k)}   torch {_ms(quiet['torch'])} {_ratio(quiet['torch'], k)}   "
          f"compiled {_ms(quiet['compiled'])} {_ratio(quiet['compiled'], k)} {note}".rstrip(), flush=True)
    if BUSY:
        with busy_machine():
            busy = {n: (median_time(settled(f), repeat, 1) / per if f is not None else None) for n, f in fns.items()}
        parts = [f"{n} {busy[n] / quiet[n]:5.2f}x" for n in fns if busy[n] is not None]
        print(f"  {'busy: slowdown':<38} " + "   ".join(parts), flush=True)
    return k


def new_process_seconds(code, cache):
    """Runs code (which prints its own timing last) in a new Python process
    with KILN_CACHE_DIR=cache; returns that float."""
    env = dict(os.environ, KILN_CACHE_DIR=cache,
               PYTHONPATH=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])
