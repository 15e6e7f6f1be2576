"""The CUDA renderer and NVRTC, checked without a GPU (src/backend/cuda/):
with KILN_COMPILE_CHECK=cuda every kernel a program makes is also printed as
CUDA C++ and compiled to PTX for compute_90, and must compile. Each test
runs a program in a fresh process with its own kernel cache, so that every
kernel is new to it. Skipped, with the reason, where NVRTC is missing."""
import json
import os
import subprocess
import sys

import pytest

import kiln as jt
from kiln import _C

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.join(HERE, "..", "..", "python")


def _nvrtc_missing():
    if os.environ.get("KILN_COMPILE_CHECK") == "cuda":
        return None  # the check is on in this process: NVRTC loaded (and must stay on)
    try:
        _C.set_compile_check("cuda")
    except RuntimeError as e:
        return str(e)
    _C.set_compile_check(None)
    return None


NVRTC_MISSING = _nvrtc_missing()
pytestmark = pytest.mark.skipif(NVRTC_MISSING is not None, reason=f"no NVRTC: {NVRTC_MISSING}")

# Every op family, in the dtypes its kernels are specialised for: element-wise
# (unary, binary, casts, where), reductions over rows, columns and everything
# (each fold, each accumulator type), scatters (each fold, atomic and
# disjoint), gathers with index checks, random numbers, and the kernels of a
# small network's training step.
MATRIX = r"""
import json, sys
import numpy as np
import kiln as jt
r = np.random.default_rng(0)
outs = []
floats = ["float16", "bfloat16", "float32", "float64"]
ints = ["bool", "int8", "uint8", "int16", "int32", "int64"]
def arr(dtype, shape=(6, 5)):
    if dtype == "bool":
        return jt.array(r.random(shape) < 0.5)
    if dtype in ints:
        return jt.array(r.integers(-3, 4, size=shape).astype(dtype if dtype != "uint8" else "int64")).cast(dtype)
    return jt.array(r.uniform(0.1, 0.9, size=shape)).cast(dtype)
for t in ["float16", "float64"]:   # float32 and bfloat16 meet the same code in the reductions below
    x = arr(t)
    for op in ["exp", "log", "sqrt", "rsqrt", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
               "tanh", "asinh", "atanh", "sigmoid", "erf", "log2", "exp2", "log1p", "expm1", "floor", "ceil",
               "round", "trunc", "abs", "sign"]:
        outs.append(getattr(jt, op)(x))
    outs.append(jt.acosh(x + 1))
    outs += [x + x, x - x, x * x, x / (x + 1), x // 0.3, x % 0.3, x ** x, jt.arctan2(x, x + 1),
             jt.maximum(x, x * 2), jt.minimum(x, x * 2), x < 0.5, x == x, jt.logical_and(x > 0.2, x < 0.7)]
for t in ["bool", "int8", "int64"]:
    x, y = arr(t), arr(t)
    outs += [x.cast("int32"), jt.logical_not(x), x == y, x != y]
    if t != "bool":
        outs += [x + y, x - y, x * y, x // (y * 0 + 2), x % (y * 0 + 3), -x, abs(x), x & y, x | y, x ^ y, ~x,
                 jt.maximum(x, y), jt.sign(x), x << 1, x >> 1, x ** 2]
for t in floats + ["bool", "int32", "int64"]:
    x = arr(t, (4, 3, 5))
    c = x.cast("float32") if t == "bool" else x
    for op in ["sum", "prod", "max", "min", "mean"]:
        for dims in [None, 2, 0, (0, 2), 1]:
            outs.append(getattr(c, op)() if dims is None else getattr(c, op)(dims))
    outs += [x.any(), x.all(1), c.argmax(2)[0], c.argmin(0)[0]]
    if t in ints and t != "bool":
        outs += [jt.reduce_bitwise_and(x, 1), jt.reduce_bitwise_or(x, 0), jt.reduce_bitwise_xor(x, 2)]
    for op in ["add", "multiply", "maximum", "minimum"]:
        outs.append(c.reshape(60).reindex_reduce(op, [3], ["i0 % 3"]))   # atomic: no dim owns its targets
        outs.append(c.reindex_reduce(op, [3, 5], ["i0 % 3", "i2"]))       # parallel over i2, serial over i0
        outs.append(c.reindex_reduce(op, [4, 3], ["i0", "i1"]))           # disjoint over i0, i1
x = arr("float32", (8, 16))
idx = jt.array(r.integers(0, 8, size=5))
outs += [x[idx], x[1:7:2, ::3], x.transpose(), x.reshape(4, 32).sum(0), jt.where(x > 0.5, x, -x),
         x.cumsum(1), jt.nn.softmax(x, 1), jt.nn.log_softmax(x, 0), x.argsort(1)[0],
         jt.rand(4, 4), jt.randn(4, 4), jt.rand(4, 4, dtype="float64"), jt.randint(0, 9, (3, 3))]
with jt.no_grad():   # layer norm's own kernel, with and without its vectors
    outs += [jt.nn.layer_norm(x, 16, x[0], x[1]), jt.nn.layer_norm(x, 16)]
h = jt.zeros(8).scatter(0, jt.array([1, 3, 3, 5]), jt.array([1.0, 2.0, 3.0, 4.0]), reduce="add")
outs.append(h)
model = jt.nn.Sequential(jt.nn.Conv2d(3, 4, 3, padding=1), jt.nn.BatchNorm2d(4), jt.nn.ReLU(), jt.nn.MaxPool2d(2),
                         jt.nn.Flatten(), jt.nn.Linear(4 * 4 * 4, 10))
opt = jt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
img = jt.array(r.standard_normal((2, 3, 8, 8)).astype("float32"))
loss = jt.nn.cross_entropy_loss(model(img), jt.array([1, 7]))
opt.step(loss)
outs.append(loss)
jt.sync(outs)
for o in outs:
    o.numpy()
print(json.dumps(jt.counters()))
"""


def run(program, cache, env=None):
    e = dict(os.environ, KILN_CACHE_DIR=str(cache), KILN_COMPILE_CHECK="cuda",
             PYTHONPATH=os.path.abspath(PYTHON_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    e.update(env or {})
    p = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=e, timeout=600)
    return p


def test_every_kernel_of_the_op_matrix_compiles_for_cuda(tmp_path):
    p = run(MATRIX, tmp_path)
    assert p.returncode == 0, p.stderr[-4000:]
    c = json.loads(p.stdout.strip().splitlines()[-1])
    # every kernel the CPU compiled was also compiled for CUDA, the group
    # forms of launches grouped as one (the optimiser's) included
    assert c["group_forms"] > 0, c
    assert c["kernels_checked"] >= c["kernels_compiled"] > 200, c
    kernels = os.path.join(tmp_path, "kernels")
    ptx = [f for f in os.listdir(kernels) if f.endswith(".ptx")]
    assert len(ptx) == c["kernels_checked"]
    # the forms the renderer chooses are all there: grid-stride loops,
    # warp-shuffle block reductions split over blocks, scatters with an
    # init kernel, atomic and compare-and-swap updates
    sources = "".join(open(os.path.join(kernels, f)).read() for f in os.listdir(kernels) if f.endswith(".cu"))
    for form in ["gridDim.x * KL_BLOCK", "__shfl_down_sync", "atomicAdd(count, 1u)", "kl_kernel_init",
                 "atomicAdd(&out[", "kl_atomic(&out[", "kl_f16_load", "kl_bf16_store", "kl_index_fail",
                 "kl_uniform_f32"]:
        assert form in sources, form

    # a second process finds every CUDA kernel in the cache and compiles none
    again = run(MATRIX, tmp_path)
    assert again.returncode == 0, again.stderr[-4000:]
    c2 = json.loads(again.stdout.strip().splitlines()[-1])
    assert c2["kernels_checked"] == 0 and c2["kernels_compiled"] == 0, c2


def test_contiguous_maps_load_and_store_16_bytes_at_a_time(tmp_path):
    # the fused chain's map (every array read at its linear index): on arrays
    # on 16-byte boundaries a thread takes four consecutive floats, which
    # NVRTC turns into one 16-byte load and store; a map that reads loop
    # indexes (a transpose) keeps the strided form
    p = run("import numpy as np\nimport kiln as jt\n"
            "x = jt.array(np.ones(1000, np.float32))\n"
            "((x * 2 + 1).exp() * x).sync()\n"
            "y = jt.array(np.ones((32, 48), np.float32))\n"
            "(y.transpose() + 1).sync()\n", tmp_path)
    assert p.returncode == 0, p.stderr[-4000:]
    kernels = os.path.join(tmp_path, "kernels")
    texts = {f: open(os.path.join(kernels, f)).read() for f in os.listdir(kernels) if f.endswith((".cu", ".ptx"))}
    chain = [f for f, t in texts.items() if f.endswith(".cu") and "__builtin_assume_aligned" in t and "expf" in t]
    assert len(chain) == 1, sorted(texts)
    ptx = texts[chain[0][:-3] + ".ptx"]
    assert "ld.global.v4.f32" in ptx and "st.global.v4.f32" in ptx, ptx[-3000:]
    transposes = [t for f, t in texts.items() if f.endswith(".cu") and "i1" in t and "expf" not in t]
    assert transposes and all("__builtin_assume_aligned" not in t for t in transposes)


def test_a_missing_nvrtc_is_named(tmp_path):
    p = run("import kiln", tmp_path, env={"KILN_NVRTC": "/nonexistent/libnvrtc.so.99"})
    assert p.returncode != 0
    assert "NVRTC is not available" in p.stderr and "/nonexistent/libnvrtc.so.99" in p.stderr, p.stderr[-2000:]


def test_compile_check_names_only_known_backends():
    with pytest.raises(ValueError, match="no backend \"metal\""):
        _C.set_compile_check("metal")


def test_checked_kernels_do_not_count_as_compiled_or_hits(tmp_path):
    """The device's counters stay the device's: kernel-count assertions hold
    with the check on (the whole suite runs with it in scripts/test.sh)."""
    prog = "import json, kiln as jt\nx = jt.array([1.0, 2.0])\n(x * 3 + 1).sum().numpy()\nprint(json.dumps(jt.counters()))"
    p = run(prog, tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    c = json.loads(p.stdout.strip().splitlines()[-1])
    assert c["kernels_checked"] == c["kernels_compiled"] >= 1, c
    assert c["cache_hits_disk"] == 0, c
