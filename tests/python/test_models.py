"""kiln.models: every torchvision 0.14 backbone builds, runs, and has exactly
torchvision's parameter/buffer names and shapes; for a set of them (one or
more per family) torchvision's randomly initialised weights, saved with
torch.save, load into kiln in a process where torch cannot be imported and
give torchvision's outputs.

torch/torchvision are used only in this process, to write checkpoints and
reference outputs; the kiln side of the comparison runs in one child process
(a sys.meta_path hook makes ``import torch*`` raise ImportError there).

Forward passes use small inputs where the architecture allows (the output
shape does not depend on it: adaptive/global pooling); the comparisons run at
the native sizes (224, inception_v3 299). KILN_TEST_MODELS_NATIVE=1 runs the
per-model forward test at the native sizes too (about 2 more minutes)."""
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import kiln as jt
import kiln.models as km

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ALL = list(km.MODELS)
NATIVE = {"inception_v3": 299}
# smallest convenient inputs (inception_v3 needs 75, alexnet 63)
SMALL = {"inception_v3": 75, "alexnet": 64, "googlenet": 32}
SMALL_DEFAULT = 32
FULL_NATIVE = os.environ.get("KILN_TEST_MODELS_NATIVE", "") not in ("", "0")

# models compared numerically with torchvision (at least one per family)
COMPARED = ["alexnet", "vgg11", "resnet18", "resnet50", "resnext50_32x4d", "squeezenet1_1",
            "densenet121", "googlenet", "inception_v3", "mobilenet_v2", "mnasnet0_5",
            "shufflenet_v2_x1_0"]
RTOL = 1e-4


def native_size(name):
    return NATIVE.get(name, 224)


def test_dir_lists_every_model():
    names = dir(km)
    for n in ALL:
        assert n in names, n
        assert callable(getattr(km, n))
    for n in ["alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn",
              "vgg19_bn", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
              "resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2", "wide_resnet101_2",
              "squeezenet1_0", "squeezenet1_1", "densenet121", "densenet161", "densenet169",
              "densenet201", "googlenet", "inception_v3", "mobilenet_v2", "mnasnet0_5",
              "mnasnet0_75", "mnasnet1_0", "mnasnet1_3", "shufflenet_v2_x0_5",
              "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"]:
        assert n in ALL, n
    assert km.list_models() == sorted(ALL)


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "googlenet"])
def test_pretrained_is_refused_clearly(name):
    with pytest.raises(RuntimeError) as e:
        getattr(km, name)(pretrained=True)
    assert isinstance(e.value, km.PretrainedUnavailableError)
    msg = str(e.value)
    assert "cannot be downloaded" in msg and "load_state_dict" in msg and name in msg
    with pytest.raises(km.PretrainedUnavailableError):
        getattr(km, name)(weights="IMAGENET1K_V1")


def test_num_classes_and_kwargs():
    m = km.resnet18(num_classes=10)
    assert tuple(m.fc.weight.shape) == (10, 512)
    assert km.get_model("squeezenet1_1", num_classes=7).classifier[1].weight.shape[0] == 7
    g = km.googlenet(aux_logits=False)
    assert g.aux1 is None and not any(k.startswith("aux") for k in g.state_dict())
    assert km.inception_v3(aux_logits=False).AuxLogits is None
    assert km.googlenet().transform_input is False and km.googlenet().aux_logits is True
    assert km.inception_v3().transform_input is False and km.inception_v3().aux_logits is True
    with pytest.raises(ValueError):
        km.get_model("resnet9000")


# ---- forward passes ----

@pytest.mark.parametrize("name", ALL)
def test_forward(name):
    size = native_size(name) if FULL_NATIVE else SMALL.get(name, SMALL_DEFAULT)
    model = getattr(km, name)(num_classes=17)
    model.eval()
    x = jt.array(np.random.default_rng(0).standard_normal((1, 3, size, size)).astype("float32"))
    y = model(x)
    assert isinstance(y, jt.Var)
    assert tuple(y.shape) == (1, 17)
    assert np.all(np.isfinite(y.numpy()))


@pytest.mark.parametrize("name,size,n_out", [("googlenet", 64, 3), ("inception_v3", 299, 2)])
def test_aux_heads_in_training(name, size, n_out):
    """Training mode returns the named tuple with the aux logits (torchvision's
    eager behaviour); eval mode returns the logits alone."""
    model = getattr(km, name)(num_classes=5)
    x = jt.array(np.random.default_rng(1).standard_normal((2, 3, size, size)).astype("float32"))
    out = model(x)
    assert isinstance(out, tuple) and len(out) == n_out
    for o in out:
        assert tuple(o.shape) == (2, 5)
    assert out.logits is out[0]
    model.eval()
    assert isinstance(model(x), jt.Var)


def test_transform_input():
    g = km.googlenet(transform_input=True, aux_logits=False)
    x = np.random.default_rng(2).standard_normal((1, 3, 4, 4)).astype("float32")
    y = g._transform_input(jt.array(x)).numpy()
    for c, (m, s) in enumerate(((0.485, 0.229), (0.456, 0.224), (0.406, 0.225))):
        np.testing.assert_allclose(y[:, c], x[:, c] * (s / 0.5) + (m - 0.5) / 0.5, rtol=1e-6)


# ---- names and shapes against torchvision ----

@contextlib.contextmanager
def _no_torch_init(torch):
    """Skips torch's weight initialisation (only shapes are compared here)."""
    init = torch.nn.init
    saved = {k: getattr(init, k) for k in dir(init)
             if k.endswith("_") and not k.startswith("_") and callable(getattr(init, k))}
    try:
        for k in saved:
            setattr(init, k, lambda t, *a, **kw: t)
        yield
    finally:
        for k, f in saved.items():
            setattr(init, k, f)


@pytest.mark.parametrize("name", ALL)
def test_state_dict_matches_torchvision(name):
    torch = pytest.importorskip("torch")
    tvm = pytest.importorskip("torchvision.models")
    import warnings
    with _no_torch_init(torch), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = getattr(tvm, name)()
    want = [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    got = [(k, tuple(v.shape)) for k, v in getattr(km, name)().state_dict().items()]
    assert dict(got) == dict(want), (
        f"missing {sorted(set(dict(want)) - set(dict(got)))[:5]}, "
        f"unexpected {sorted(set(dict(got)) - set(dict(want)))[:5]}, "
        f"shapes {[(k, s, dict(got).get(k)) for k, s in want if dict(got).get(k, s) != s][:5]}")
    assert [k for k, _ in got] == [k for k, _ in want]      # the same order too
    params = [k for k, _ in ref.named_parameters()]
    assert [k for k, _ in getattr(km, name)().named_parameters()] == params


# ---- torchvision's weights and outputs, reproduced without torch ----

CHILD = textwrap.dedent(r"""
    import json, os, sys, time

    class _BlockTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch.") or name.startswith("torchvision"):
                raise ImportError(f"{name} is blocked in this process")
            return None

    sys.meta_path.insert(0, _BlockTorch())
    import numpy as np
    import kiln as jt
    import kiln.models as km
    from kiln.io import pth as _pth

    def load(path):
        try:
            return jt.load(path), "jt.load"
        except Exception:
            if not _pth.is_pth(path):
                raise
            return _pth.load_pth(path), "kiln.io.load_pth"

    folder, names = sys.argv[1], sys.argv[2:]
    report = {}
    for name in names:
        t = time.time()
        try:
            state, how = load(os.path.join(folder, name + ".pth"))
            kwargs = json.load(open(os.path.join(folder, name + ".json")))
            model = getattr(km, name)(**kwargs)
            r = model.load_state_dict(state)
            assert not r.missing_keys and not r.unexpected_keys
            model.eval()
            x = jt.array(np.load(os.path.join(folder, name + "_in.npy")))
            y = model(x).numpy()
            np.save(os.path.join(folder, name + "_kiln.npy"), y)
            report[name] = {"ok": True, "loader": how, "seconds": time.time() - t}
        except Exception as e:
            import traceback
            report[name] = {"ok": False, "error": traceback.format_exc()}
        print(name, report[name].get("seconds"), flush=True)
    assert "torch" not in sys.modules and not any(m.startswith("torch") for m in sys.modules)
    json.dump(report, open(os.path.join(folder, "report.json"), "w"))
""")


def _randomise_batchnorm(torch, model, gen):
    """Non-trivial BatchNorm statistics and affine parameters, so that eval-mode
    BatchNorm is really exercised (fresh ones are the identity)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                m.num_batches_tracked.fill_(7)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """Runs torchvision and (in one torch-free child) kiln on COMPARED; returns
    {name: (torchvision output, kiln output or None, child report)}."""
    torch = pytest.importorskip("torch")
    tvm = pytest.importorskip("torchvision.models")
    import warnings
    folder = tmp_path_factory.mktemp("models")
    refs = {}
    torch_seconds = {}
    for name in COMPARED:
        torch.manual_seed(0)
        kwargs = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = getattr(tvm, name)(**kwargs)
        _randomise_batchnorm(torch, model, torch.Generator().manual_seed(1))
        model.eval()
        size = native_size(name)
        x = np.random.default_rng(3).standard_normal((1, 3, size, size)).astype(np.float32)
        t = time.time()
        with torch.no_grad():
            refs[name] = model(torch.from_numpy(x)).numpy()
        torch_seconds[name] = time.time() - t
        torch.save(model.state_dict(), str(folder / f"{name}.pth"))
        (folder / f"{name}.json").write_text(json.dumps(kwargs))
        np.save(folder / f"{name}_in.npy", x)
        del model
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    t = time.time()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(folder)] + COMPARED, env=env,
                          capture_output=True, text=True, timeout=1200)
    child_seconds = time.time() - t
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((folder / "report.json").read_text())
    out = {}
    for name in COMPARED:
        path = folder / f"{name}_kiln.npy"
        out[name] = (refs[name], np.load(path) if path.exists() else None, report[name])
    out["_seconds"] = child_seconds
    return out


@pytest.mark.parametrize("name", COMPARED)
def test_torchvision_weights_give_torchvision_outputs(compared, name):
    ref, got, rep = compared[name]
    assert rep["ok"], rep.get("error")
    assert got is not None and got.shape == ref.shape
    err = float(np.abs(got.astype(np.float64) - ref).max() / np.abs(ref).max())
    print(f"{name}: max relative error {err:.3g} ({rep['loader']}, {rep['seconds']:.1f}s)")
    assert err <= RTOL, f"{name}: max relative error {err:.3g} > {RTOL}"
    assert np.argmax(got) == np.argmax(ref)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_training_step_matches_torchvision(name):
    """Train mode (batch statistics, running-stat updates) and the gradients of
    every parameter, in float64 (in float32 the gradients of biases that feed a
    BatchNorm are ~0 and pure rounding)."""
    torch = pytest.importorskip("torch")
    tvm = pytest.importorskip("torchvision.models")
    kwargs = {"num_classes": 10}
    if name == "mobilenet_v2":
        kwargs["dropout"] = 0.0              # no random masks to reproduce
    torch.manual_seed(0)
    ref = getattr(tvm, name)(**kwargs).double().train()
    model = getattr(km, name)(**kwargs)
    model.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    model.double().train()
    x = np.random.default_rng(4).standard_normal((4, 3, 64, 64))
    yt = ref(torch.from_numpy(x))
    (yt * yt).mean().backward()
    y = model(jt.array(x))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-9, atol=1e-12)
    names = [k for k, _ in model.named_parameters()]
    grads = jt.grad((y * y).mean(), model.parameters())
    want = dict(ref.named_parameters())
    scale = max(float(p.grad.abs().max()) for p in ref.parameters())
    for k, g in zip(names, grads):
        err = float(np.abs(g.numpy() - want[k].grad.numpy()).max()) / scale
        assert err < 1e-9, f"{name}: gradient of {k} differs by {err:.3g} (of the largest)"
    state, ref_state = model.state_dict(), ref.state_dict()
    for k, v in ref_state.items():
        if "running" in k or k.endswith("num_batches_tracked"):
            np.testing.assert_allclose(state[k].numpy(), v.numpy(), rtol=1e-9, atol=1e-12,
                                       err_msg=k)


def test_checkpoints_without_num_batches_tracked_load():
    """PyTorch < 0.4.1 checkpoints (torchvision's original weights) have no
    num_batches_tracked; PyTorch sets the counters to 0, and so does kiln."""
    ref = km.resnet18()
    state = {k: v.numpy() for k, v in ref.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    m = km.resnet18()
    r = m.load_state_dict(state)
    assert not r.missing_keys and not r.unexpected_keys
    assert int(m.bn1.num_batches_tracked.numpy()) == 0
    np.testing.assert_array_equal(m.fc.weight.numpy(), state["fc.weight"])


def test_dense_layer_takes_a_list():
    """torchvision's _DenseLayer takes the list of previous feature maps."""
    from kiln.models.densenet import _DenseLayer
    layer = _DenseLayer(8, growth_rate=4, bn_size=2, drop_rate=0)
    layer.eval()
    r = np.random.default_rng(5)
    a, b = (r.standard_normal((1, 5, 6, 6)).astype("float32"),
            r.standard_normal((1, 3, 6, 6)).astype("float32"))
    y1 = layer([jt.array(a), jt.array(b)]).numpy()
    y2 = layer(jt.array(np.concatenate([a, b], 1))).numpy()
    assert y1.shape == (1, 4, 6, 6)
    np.testing.assert_allclose(y1, y2, rtol=1e-6, atol=1e-6)


def test_legacy_densenet_names_load():
    """The first torchvision DenseNet checkpoints named 'norm.1' for 'norm1'."""
    m = km.densenet121()
    state = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v.numpy()
             for k, v in m.state_dict().items()}
    assert any(".norm.1." in k for k in state)
    r = km.densenet121().load_state_dict(state)
    assert not r.missing_keys and not r.unexpected_keys


def test_resnet_pth_example(tmp_path):
    """examples/resnet_pth.py loads a resnet18 .pth and prints 5 classes."""
    torch = pytest.importorskip("torch")
    tvm = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    path = tmp_path / "r18.pth"
    torch.save(tvm.resnet18().state_dict(), str(path))
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "resnet_pth.py"),
                           str(path), "--size", "64"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith(("1.", "5."))]
    assert len(lines) == 2, proc.stdout
