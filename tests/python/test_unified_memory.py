"""Unified memory (src/core/residency.c): when a device is full, buffers the
running kernel does not need move to host memory, least recently used
first, and come back when read, so work larger than the device runs (here
a running sum and an optimiser's sweeps over parameters and gradients four
times the device's size, against NumPy); a line says so, and
KILN_UNIFIED_MEMORY=0 turns it off (an out-of-memory error). Shown on the
CUDA emulator made 4 MB small (KILN_EMULATE_MEMORY), in fresh processes."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.abspath(os.path.join(HERE, "..", "..", "python"))

PROGRAM = r"""
import json
import numpy as np
import kiln as jt
from kiln import _C
r = np.random.default_rng(0)
arrays = [r.standard_normal(250_000).astype(np.float32) for _ in range(8)]   # 1 MB each, 8 MB in all
_C.set_device("cuda-emulate")
xs = [jt.array(a) for a in arrays]                  # more than the device holds: the oldest move out
total = xs[0]
for x in xs[1:]:
    total = total + x * 0.5                        # each kernel brings its inputs back
    total.sync()                                   # (one kernel of all nine would not fit)
got = total.numpy()
want = arrays[0].astype(np.float64) + sum(a.astype(np.float64) * 0.5 for a in arrays[1:])
assert np.allclose(got, want, rtol=1e-5, atol=1e-5), np.abs(got - want).max()
assert np.array_equal(xs[0].numpy(), arrays[0])     # a moved buffer reads back unchanged
# an optimiser's updates over parameters and gradients that do not fit at once
params = [jt.array(a) for a in arrays]
grads = [jt.array(a[::-1].copy()) for a in arrays]
want_p = [a.astype(np.float64) for a in arrays]
for sweep in range(3):
    for k in range(8):
        params[k] = params[k] - 0.1 * grads[k] * (sweep + 1)
        params[k].sync()
        want_p[k] = want_p[k] - 0.1 * arrays[k][::-1].astype(np.float64) * (sweep + 1)
for p, w in zip(params, want_p):
    assert np.allclose(p.numpy(), w, rtol=1e-5, atol=1e-5)
print(json.dumps({"counters": jt.counters()}))
"""


def run(env, program=PROGRAM):
    e = dict(os.environ, KILN_EMULATE_MEMORY=str(4 << 20),
             PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    e.update(env)
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=e, timeout=900)


# A CUDA code op (its kernels given the device's memory) whose two 1 MB
# inputs were moved to host memory, with a 3 MB output: 5 MB will not fit in
# 4. Its inputs come back first and are held, so making the output cannot
# move them, nor can bringing an input back move the output: a clean
# out-of-memory error, not a kernel writing to memory that was given back.
CODE_OP_TOO_LARGE = r"""
import numpy as np
import kiln as jt
from kiln import _C
_C.set_device("cuda-emulate")
a, b = jt.array(np.ones(250_000, np.float32)), jt.array(np.ones(250_000, np.float32))
others = [jt.array(np.zeros(250_000, np.float32)) for _ in range(4)]   # a and b move out
del others
out = jt.code([750_000], "float32", [a, b], cuda_src='''
    __global__ void spread(const float *a, const float *b, float *y, int n, int m) {
        for (int i = threadIdx.x; i < m; i += blockDim.x) y[i] = a[i % n] + b[i % n];
    }
    spread<<<1, 64>>>(in0_p, in1_p, out0_p, in0_shape0, out0_shape0);
''')
try:
    out.numpy()
except MemoryError as e:
    print("refused:", e)
"""


def test_a_code_op_larger_than_the_device_is_refused_cleanly(tmp_path):
    p = run({"KILN_CACHE_DIR": str(tmp_path)}, CODE_OP_TOO_LARGE)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "refused: code: out of memory for output 0" in p.stdout, p.stdout + p.stderr[-2000:]


def test_work_larger_than_the_device_runs_through_host_memory(tmp_path):
    p = run({"KILN_CACHE_DIR": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["counters"]["bytes_moved_to_host"] >= 4 << 20, out["counters"]
    assert "device memory full: moved" in p.stderr and "to host memory" in p.stderr
    assert p.stderr.count("device memory full") <= 8  # said when the total moved doubles, not at every kernel


def test_turned_off_a_full_device_is_an_out_of_memory_error(tmp_path):
    p = run({"KILN_CACHE_DIR": str(tmp_path), "KILN_UNIFIED_MEMORY": "0"})
    assert p.returncode != 0
    assert "MemoryError" in p.stderr and "out of memory" in p.stderr, p.stderr[-3000:]
    assert "device memory full" not in p.stderr
