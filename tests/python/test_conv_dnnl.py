"""float32 convolutions, which the core runs with oneDNN (src/opt/conv.c):
forward and both gradients against PyTorch across strides, padding,
dilation and groups; the counters show the library ran all three; with
KILN_DNNL=0 (a new process) the same layers run as kernels and agree."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import kiln as jt
from kiln import nn

torch = pytest.importorskip("torch")
HAS_DNNL = jt._C.has_library("dnnl")
if os.environ.get("KILN_TEST_REQUIRE_DNNL") == "1" and not HAS_DNNL:
    # scripts/test.sh sets this where the package is installed: skipping would hide a break
    raise RuntimeError("oneDNN (libdnnl.so.2) is installed but kiln could not load it")
needs_dnnl = pytest.mark.skipif(not HAS_DNNL, reason="oneDNN (libdnnl.so.2) not installed")

CASES = [  # C, O, kernel, keyword arguments, input spatial shape
    (4, 8, 3, dict(padding=1), (7, 6)),
    (4, 8, 3, dict(stride=2), (9, 9)),
    (4, 6, 3, dict(padding=(2, 1), dilation=(1, 2)), (8, 7)),
    (4, 8, 3, dict(groups=2, padding=1), (6, 6)),
    (6, 6, 3, dict(groups=6, padding=1, stride=2), (7, 8)),
    (3, 5, (2, 4), dict(stride=(3, 1)), (10, 9)),
    (8, 16, 1, dict(), (5, 5)),
]


def run_layers(layer, tlayer, r, x_shape):
    """kiln's layer and PyTorch's (weights copied) on the same float32 input:
    (output, input grad, weight grad) of each for a random output gradient,
    and the library calls kiln made for them."""
    x = r.randn(*x_shape).astype("float32")
    layer.load_state_dict({n: p.detach().numpy() for n, p in tlayer.state_dict().items()})
    xt = torch.from_numpy(x).requires_grad_()
    yt = tlayer(xt)
    dy = r.randn(*yt.shape).astype("float32")
    (yt * torch.from_numpy(dy)).sum().backward()
    xv = jt.array(x)
    xv.requires_grad = True
    before = jt.counters()["library_calls"]
    y = layer(xv)
    gx, gw = jt.grad((y * jt.array(dy)).sum(), [xv, layer.weight])
    jt.sync([y, gx, gw])
    calls = jt.counters()["library_calls"] - before
    return ((y.numpy(), gx.numpy(), gw.numpy()),
            (yt.detach().numpy(), xt.grad.numpy(), tlayer.weight.grad.numpy()), calls)


def run_both(C, O, k, kw, spatial, nd=2):
    r = np.random.RandomState(C * 100 + O)
    tconv = (torch.nn.Conv2d if nd == 2 else torch.nn.Conv1d)(C, O, k, **kw)
    conv = (nn.Conv2d if nd == 2 else nn.Conv1d)(C, O, k, **kw)
    got, want, _ = run_layers(conv, tconv, r, (2, C, *spatial))
    return got, want


@needs_dnnl
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_conv2d_float32_matches_torch(case):
    got, want = run_both(*case)
    for g, w, name in zip(got, want, ("output", "input grad", "weight grad")):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4, err_msg=name)


@needs_dnnl
def test_conv1d_float32_matches_torch():
    got, want = run_both(3, 4, 3, dict(stride=2, padding=1, groups=1), (11,), nd=1)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


@needs_dnnl
def test_forward_and_both_gradients_call_the_library():
    x, w = jt.randn(2, 4, 6, 6), jt.randn(5, 4, 3, 3)
    before = jt.counters()["library_calls"]
    y = nn.conv2d(x, w, padding=1)
    jt.sync(jt.grad((y * y).sum(), [x, w]) + [y])
    assert jt.counters()["library_calls"] - before == 3


SCRIPT = """
import json, sys, numpy as np
sys.path.insert(0, {path!r})
import kiln as jt
from kiln import nn
r = np.random.RandomState(0)
x, w = jt.array(r.randn(2, 4, 7, 6).astype('float32')), jt.array(r.randn(6, 2, 3, 3).astype('float32'))
y = nn.conv2d(x, w, stride=2, padding=1, groups=2)
gx, gw = jt.grad((y * y).sum(), [x, w])
jt.sync([y, gx, gw])
print(json.dumps(dict(has=jt._C.has_library('dnnl'), calls=jt.counters()['library_calls'],
                      y=y.numpy().tolist(), gx=gx.numpy().tolist(), gw=gw.numpy().tolist())))
"""


def test_kiln_dnnl_0_runs_the_same_convolutions_as_kernels():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "python")
    out = {}
    for flag in ("1", "0"):
        env = dict(os.environ, KILN_DNNL=flag)
        p = subprocess.run([sys.executable, "-c", SCRIPT.format(path=os.path.abspath(path))],
                           env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        out[flag] = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["0"]["has"] is False
    if out["1"]["has"]:
        assert out["1"]["calls"] >= 3
    for key in ("y", "gx", "gw"):
        np.testing.assert_allclose(out["1"][key], out["0"][key], rtol=1e-4, atol=1e-4)


@needs_dnnl
@pytest.mark.parametrize("nd,C,O,k,kw,spatial", [
    (2, 4, 6, 3, dict(), (4, 5)),
    (2, 4, 6, 3, dict(stride=2, padding=1, output_padding=1), (5, 4)),
    (2, 4, 6, 3, dict(stride=3, dilation=2, groups=2), (4, 4)),
    (2, 3, 5, (2, 4), dict(stride=(2, 1), padding=(0, 1)), (6, 5)),
    (1, 3, 2, 4, dict(stride=2, padding=1), (7,)),
], ids=repr)
def test_conv_transpose_float32_runs_three_library_calls(nd, C, O, k, kw, spatial):
    """A transposed convolution is written as the scatter form, a convolution's
    input gradient; forward and both gradients go to oneDNN and match PyTorch."""
    r = np.random.RandomState(C * 10 + O)
    tl = (torch.nn.ConvTranspose2d if nd == 2 else torch.nn.ConvTranspose1d)(C, O, k, **kw)
    layer = (nn.ConvTranspose2d if nd == 2 else nn.ConvTranspose1d)(C, O, k, **kw)
    got, want, calls = run_layers(layer, tl, r, (2, C, *spatial))
    assert calls == 3
    for g, w, name in zip(got, want, ("output", "input grad", "weight grad")):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4, err_msg=name)
