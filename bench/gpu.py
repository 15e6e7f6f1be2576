"""The GPU benchmarks (issue: the GPU backend), kiln against the PyTorch of
the machine in one run, written as users write them: results read with
item()/numpy(), inference under no_grad. Run by scripts/gpu_check.sh on a
machine with an NVIDIA GPU; prints one line per case with both times and
the ratio (PyTorch's time / kiln's: above 1, kiln is faster)."""
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import median_time  # noqa: E402

import kiln as jt  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

jt.flags.use_cuda = 1
dev = "cuda"


def line(name, t_kiln, t_torch, note=""):
    ratio = f"{t_torch / t_kiln:5.2f}x" if t_torch else "  n/a"
    torch_ms = f"{t_torch * 1e3:9.3f}" if t_torch else "      n/a"
    print(f"{name:36s} kiln {t_kiln * 1e3:9.3f} ms  torch {torch_ms} ms  {ratio}  {note}", flush=True)


def torch_time(fn):
    if torch is None:
        return None

    def run():
        fn()
        torch.cuda.synchronize()
    return median_time(run)


# the fused chain on 64M float32 (goal: <= 0.11 ms of device time, ~90% of copy bandwidth)
N = 64 << 20
x_np = np.random.RandomState(0).uniform(-1, 1, N).astype(np.float32)
x = jt.array(x_np)
want = float((np.exp(2 * x_np.astype(np.float64) + 1) * x_np).sum())
got = ((x * 2 + 1).exp() * x).sum().item()
t_k = median_time(lambda: ((x * 2 + 1).exp() * x).sum().item())
xt = torch.from_numpy(x_np).to(dev) if torch else None
t_t = torch_time(lambda: ((xt * 2 + 1).exp() * xt).sum().item()) if torch else None
line("fused chain 64M (item)", t_k, t_t, f"rel err {abs(got - want) / abs(want):.1e}")

# softmax over 16384 x 4096
s_np = np.random.RandomState(1).standard_normal((16384, 4096)).astype(np.float32)
s = jt.array(s_np)


def kiln_softmax():
    jt.nn.softmax(s, 1).sync()
    jt.sync_all(True)


t_k = median_time(kiln_softmax)
st = torch.from_numpy(s_np).to(dev) if torch else None
t_t = torch_time(lambda: torch.softmax(st, 1)) if torch else None
line("softmax 16384x4096", t_k, t_t)

# matmul 8192^3 in float32 (cuBLAS on both sides, TF32 off on both)
m_np = np.random.RandomState(2).standard_normal((8192, 8192)).astype(np.float32)
ma, mb = jt.array(m_np), jt.array(m_np.T.copy())


def kiln_matmul():
    (ma @ mb).sync()
    jt.sync_all(True)


t_k = median_time(kiln_matmul, repeat=5, warmup=2)
if torch:
    ta, tb = torch.from_numpy(m_np).to(dev), torch.from_numpy(m_np.T.copy()).to(dev)
t_t = torch_time(lambda: ta @ tb) if torch else None
line("matmul 8192^3 float32", t_k, t_t, f"{2 * 8192 ** 3 / t_k / 1e12:.1f} TFLOP/s")

# tiny-op overhead: one add of two 1-element vars, read back
a, b = jt.array([1.0]), jt.array([2.0])
t_k = median_time(lambda: (a + b).item(), repeat=200)
at, bt = (torch.tensor([1.0], device=dev), torch.tensor([2.0], device=dev)) if torch else (None, None)
t_t = torch_time(lambda: (at + bt).item()) if torch else None
line("tiny op (item)", t_k, t_t)

# ResNet-18/50 at batch 64 in float32: inference (eval, no_grad, logits read
# with numpy()) and a training step (SGD with momentum, loss read with item()),
# with torchvision's weights loaded through load_state_dict
import kiln.models as models  # noqa: E402

try:
    import torchvision
except ImportError:
    torchvision = None
X = np.random.RandomState(3).rand(64, 3, 224, 224).astype(np.float32)
Y = np.random.RandomState(4).randint(0, 1000, 64).astype(np.int64)
for name in ("resnet18", "resnet50"):
    km = getattr(models, name)()
    tm = getattr(torchvision.models, name)() if torchvision is not None and torch is not None else None
    if tm is not None:
        km.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
        tm = tm.to(dev)
    x, y = jt.array(X), jt.array(Y)
    km.eval()

    def kiln_infer():
        with jt.no_grad():
            return km(x).numpy()
    t_k = median_time(kiln_infer, repeat=10, warmup=2)
    t_t = None
    if tm is not None:
        tm.eval()
        xt = torch.from_numpy(X).to(dev)

        def torch_infer():
            with torch.no_grad():
                return tm(xt).cpu().numpy()
        t_t = median_time(torch_infer, repeat=10, warmup=2)
    line(f"{name} inference batch 64", t_k, t_t)
    km.train()
    opt = jt.optim.SGD(km.parameters(), 0.01, momentum=0.9)

    def kiln_step():
        loss = jt.nn.cross_entropy_loss(km(x), y)
        opt.step(loss)
        return loss.item()
    t_k = median_time(kiln_step, repeat=10, warmup=2)
    t_t = None
    if tm is not None:
        tm.train()
        topt = torch.optim.SGD(tm.parameters(), 0.01, momentum=0.9)
        yt = torch.from_numpy(Y).to(dev)

        def torch_step():
            topt.zero_grad()
            loss = torch.nn.functional.cross_entropy(tm(xt), yt)
            loss.backward()
            topt.step()
            return loss.item()
        t_t = median_time(torch_step, repeat=10, warmup=2)
    line(f"{name} training step batch 64", t_k, t_t)

# the cold compile of the chain in a fresh process with an empty cache (goal < 1 s)
env = dict(os.environ, KILN_CACHE_DIR=f"/tmp/kiln-cold-{os.getpid()}")
prog = ("import time, kiln as jt\njt.flags.use_cuda = 1\nx = jt.array([1.0, 2.0])\nt = time.perf_counter()\n"
        "((x * 2 + 1).exp() * x).sum().item()\nprint(time.perf_counter() - t)")
cold = float(subprocess.run([sys.executable, "-c", prog], env=env, capture_output=True, text=True,
                            check=True).stdout.strip().splitlines()[-1])
line("cold compile + run of the chain", cold, None, "(a fresh process, empty cache)")

# unified memory: work twice the size of the device's free memory (the rest
# held by a PyTorch ballast) runs, its least recently used arrays moved to
# host memory and back (a line on stderr says so)
if torch is not None:
    jt.gc()
    free, _ = torch.cuda.mem_get_info()
    room = 4 << 30
    ballast = torch.empty(max(free - room, 0), dtype=torch.uint8, device=dev)
    n = (1 << 30) // 4                      # 1 GB of float32 an array; 8 of each: 16 GB on 4 GB free
    t0 = time.perf_counter()
    params = [jt.full((n,), k + 1.0) for k in range(8)]
    grads = [jt.full((n,), 0.5) for _ in range(8)]
    for sweep in range(2):
        for k in range(8):
            params[k] = params[k] - 0.1 * grads[k]
            params[k].sync()
    got = [float(p[:4].sum().item()) for p in params]
    t_um = time.perf_counter() - t0
    want = [4 * (k + 1.0 - 0.1) for k in range(8)]
    moved = jt.counters().get("bytes_moved_to_host", 0)
    ok = all(abs(g - w) < 1e-3 for g, w in zip(got, want))
    line("unified memory: 16 GB on 4 GB free", t_um, None,
         f"{moved / 1e9:.1f} GB moved to host, values {'right' if ok else 'WRONG'}")
    del params, grads, ballast
