"""Soak test (not in CI): trains the digits CNN for many steps with batch
sizes and data-loader worker counts that change as it goes, and every 500
steps prints the process's RSS and kiln's allocator figures, so that memory
growth shows. Goals: RSS flat after warm-up; what the allocator holds (in
use and cached) bounded relative to the peak in use (at most twice the peak
in use, or 64 MiB, whichever is more).

    PYTHONPATH=python /usr/bin/python3 bench/soak.py [steps] [--every N]

Ends with a verdict line: RSS growth from the first report after warm-up to
the last, and the largest held/peak ratio seen. Exits 1 when RSS grew more
than 10% or 64 MiB (whichever is larger) after warm-up, or when the
allocator ever held more than its bound."""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

import numpy as np  # noqa: E402

import kiln as jt  # noqa: E402
from kiln.dataset import DataLoader  # noqa: E402
from digits_cnn import Net, split  # noqa: E402


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Samples:
    """A map-style dataset over arrays (picklable, for any start method)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


# (batch size, workers) in turn, one phase per report interval
PHASES = [(32, 0), (64, 2), (17, 1), (128, 0), (48, 2), (8, 0), (96, 1), (32, 2)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("steps", nargs="?", type=int, default=5000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=1000, help="steps before RSS must stay flat")
    args = ap.parse_args()

    jt.seed(0)
    (xtr, ytr), (xte, yte) = split(0)
    data = Samples(xtr, ytr)
    model = Net()
    opt = jt.optim.Adam(model.parameters(), 1e-3)
    loss_fn = jt.nn.CrossEntropyLoss()
    print(f"soak: {args.steps} steps, report every {args.every}; kiln {jt.__version__}")
    print(f"{'step':>6} {'batch':>5} {'wrk':>3} {'loss':>7} {'rss MiB':>8} {'in use':>8} "
          f"{'cached':>8} {'peak':>8} {'vars':>6} {'kernels':>7} {'s/100':>6}")
    step, phase = 0, 0
    reports, worst_ratio, over_bound = [], 0.0, 0
    t0 = time.perf_counter()
    while step < args.steps:
        batch, workers = PHASES[phase % len(PHASES)]
        loader = DataLoader(data, batch_size=batch, shuffle=True, num_workers=workers,
                            drop_last=True)
        target = min(args.steps, (step // args.every + 1) * args.every)
        loss_value = float("nan")
        while step < target:
            for x, y in loader:
                loss = loss_fn(model(x), y)
                opt.step(loss)
                step += 1
                if step % 50 == 0:
                    loss_value = loss.item()
                if step >= target:
                    break
        jt.sync_all()
        c = jt.counters()
        mib = 2**-20
        r = rss_mib()
        held = c["bytes_in_use"] + c["bytes_cached"]
        worst_ratio = max(worst_ratio, held / max(c["peak_bytes_in_use"], 1))
        over_bound += held > max(2 * c["peak_bytes_in_use"], 64 << 20)
        reports.append((step, r))
        took = (time.perf_counter() - t0) / args.every * 100
        t0 = time.perf_counter()
        print(f"{step:>6} {batch:>5} {workers:>3} {loss_value:>7.4f} {r:>8.1f} "
              f"{c['bytes_in_use'] * mib:>8.2f} {c['bytes_cached'] * mib:>8.2f} "
              f"{c['peak_bytes_in_use'] * mib:>8.2f} {c['vars_alive']:>6} "
              f"{c['kernels_compiled']:>7} {took:>6.2f}", flush=True)
        phase += 1

    model.eval()
    with jt.no_grad():
        acc = float((model(jt.array(xte)).numpy().argmax(1) == yte).mean())
    after = [r for s, r in reports if s > args.warmup] or [reports[-1][1]]
    growth = after[-1] - after[0]
    allowed = max(64.0, 0.1 * after[0])
    print(f"soak: test accuracy {acc:.3f}; RSS after warm-up {after[0]:.1f} -> {after[-1]:.1f} MiB "
          f"({growth:+.1f}, allowed {allowed:.0f}); held/peak at most {worst_ratio:.2f}, "
          f"over max(2 peak, 64 MiB) {over_bound} times")
    return 0 if growth <= allowed and not over_bound else 1


if __name__ == "__main__":
    sys.exit(main())
