"""kiln.io.pth reads torch.save checkpoints (zip and legacy formats) without torch.

torch is imported here only to WRITE checkpoints; every load happens in a child
process where importing torch raises ImportError, and which checks at the end
that 'torch' never entered sys.modules.  The child pickles what it loaded (plain
containers of NumPy arrays) back to this process for comparison."""
import collections
import io
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = textwrap.dedent(r"""
    import io, os, pickle, sys, traceback

    class _BlockTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this process")
            return None

    sys.meta_path.insert(0, _BlockTorch())

    import kiln
    from kiln.io import pth as _pth

    jobs = pickle.load(open(sys.argv[1], "rb"))
    results = {}
    for name, (how, path, kwargs) in jobs.items():
        try:
            if how == "load":
                value = _pth.load_pth(path, **kwargs)
            elif how == "load_bytesio":
                value = _pth.load_pth(io.BytesIO(open(path, "rb").read()), **kwargs)
            elif how == "load_stream":     # a non-seekable file object
                r, w = os.pipe()
                data = open(path, "rb").read()
                if os.fork() == 0:
                    os.close(r); os.write(w, data); os._exit(0)
                os.close(w)
                with os.fdopen(r, "rb", buffering=0) as fr:
                    value = _pth.load_pth(fr, **kwargs)
                os.wait()
            elif how == "is_pth":
                value = _pth.is_pth(path)
            results[name] = ("ok", value)
        except Exception as e:
            results[name] = ("error", type(e).__name__, str(e),
                             isinstance(e, pickle.UnpicklingError))
    assert "torch" not in sys.modules, "torch was imported"
    assert not any(m.startswith("torch.") for m in sys.modules)
    with open(sys.argv[2], "wb") as f:
        pickle.dump(results, f)
""")


def load_without_torch(tmp_path, jobs):
    """jobs: name -> (how, path, kwargs); returns name -> ('ok', value) or
    ('error', type name, message, is_unpickling_error)."""
    jobs_file, out_file, script = tmp_path / "jobs.pkl", tmp_path / "out.pkl", tmp_path / "child.py"
    with open(jobs_file, "wb") as f:
        pickle.dump({k: (h, str(p), kw) for k, (h, p, kw) in jobs.items()}, f)
    script.write_text(CHILD)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(ROOT, "python") + os.pathsep + env.get("PYTHONPATH", "")
    run = subprocess.run([sys.executable, str(script), str(jobs_file), str(out_file)],
                         capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    with open(out_file, "rb") as f:
        return pickle.load(f)


def save_both(obj, directory, stem):
    z, l = directory / f"{stem}.pth", directory / f"{stem}_legacy.pth"
    torch.save(obj, z)
    torch.save(obj, l, _use_new_zipfile_serialization=False)
    return {"zip": z, "legacy": l}


def expect_np(t, half_to_float=True):
    t = t.detach()
    if t.dtype == torch.bfloat16 or (t.dtype == torch.float16 and half_to_float):
        t = t.float()
    return t.numpy()


def assert_same(got, want, where="obj", half_to_float=True):
    if isinstance(want, torch.Tensor):
        assert isinstance(got, np.ndarray), f"{where}: {type(got).__name__} is no ndarray"
        w = expect_np(want, half_to_float)
        assert got.dtype == w.dtype, f"{where}: dtype {got.dtype} != {w.dtype}"
        assert got.shape == w.shape, f"{where}: shape {got.shape} != {w.shape}"
        assert got.flags.c_contiguous and got.flags.owndata and got.flags.writeable, where
        np.testing.assert_array_equal(got, w, err_msg=where)
    elif isinstance(want, dict):
        assert type(got) is type(want), f"{where}: {type(got).__name__} != {type(want).__name__}"
        assert list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
        for k in want:
            assert_same(got[k], want[k], f"{where}[{k!r}]", half_to_float)
    elif isinstance(want, (list, tuple)):
        assert type(got) is type(want) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]", half_to_float)
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r} != {want!r}"


class Evil:
    """Unpickling this would run a shell command creating MARKER."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class EvilEval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w').close()",))


class EvilGetattr:
    """Reaches os.system through builtins.getattr on an allowed object."""

    def __reduce__(self):
        return (getattr, (collections.OrderedDict, "__init__"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Write every checkpoint with torch, then load them all in one torch-free child."""
    d = tmp_path_factory.mktemp("pth")
    torch.manual_seed(0)
    want, jobs, files = {}, {}, {}

    def add(name, obj, **kwargs):
        want[name] = obj
        for fmt, path in save_both(obj, d, name).items():
            jobs[f"{name}/{fmt}"] = ("load", path, kwargs)
            files[f"{name}/{fmt}"] = path

    models = {
        "linear": torch.nn.Linear(5, 3),
        "conv": torch.nn.Conv2d(3, 8, 3, padding=1),
        "bn": torch.nn.BatchNorm2d(4),
        "embedding": torch.nn.Embedding(10, 6),
        "net": torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4),
                                   torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4, 2),
                                   torch.nn.Embedding(3, 2)),
    }
    bn = models["bn"]
    bn.train()
    for _ in range(3):  # non-trivial running stats and num_batches_tracked
        bn(torch.randn(2, 4, 5, 5))
    for name, m in models.items():
        add("sd_" + name, m.state_dict())

    base = torch.arange(60, dtype=torch.float32).reshape(6, 10)
    add("views", {
        "transposed": base.t(),
        "sliced": base[2:5, 3:9],               # storage offset 23, row stride 10
        "row": base[4],                          # offset 40
        "strided": base[::2, 1::3],
        "column": base[:, 7],
        "expanded": torch.arange(3.0).expand(4, 3),   # stride 0
        "permuted": torch.arange(24).reshape(2, 3, 4).permute(2, 0, 1),
        "base": base,                            # shares storage with all of the above
    })
    shared = torch.arange(12, dtype=torch.int64)
    add("shared", [shared[:6].view(2, 3), shared[6:].view(3, 2), shared])

    r = torch.randn(4, 5)
    add("dtypes", collections.OrderedDict([
        ("float32", r),
        ("float64", r.double()),
        ("float16", r.half()),
        ("bfloat16", r.bfloat16()),
        ("int64", torch.tensor([-(2 ** 40), 0, 2 ** 62])),
        ("int32", torch.tensor([[-7, 2 ** 30]], dtype=torch.int32)),
        ("int16", torch.tensor([-300, 300], dtype=torch.int16)),
        ("uint8", torch.tensor([0, 128, 255], dtype=torch.uint8)),
        ("int8", torch.tensor([-128, 0, 127], dtype=torch.int8)),
        ("bool", torch.tensor([[True, False], [False, True]])),
        ("scalar", torch.tensor(2.5)),
        ("empty", torch.zeros(0, 4)),
        ("half_view", r.half().t()[1:]),
    ]))
    add("keep_half", {"h": r.half(), "b": r.bfloat16()}, half_to_float=False)

    lin = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
    lin(torch.randn(3, 2)).sum().backward()
    opt.step()
    add("checkpoint", {
        "epoch": 7, "best": 0.91, "arch": "linear", "tags": ("a", "b"), "raw": b"\x00\xff",
        "model": lin.state_dict(),
        "state_dict": models["net"].state_dict(),
        "optimizer": opt.state_dict(),
        "history": [torch.tensor([1.0, 2.0]), {"nested": [torch.ones(2, 2, dtype=torch.int32)]}],
        "param": torch.nn.Parameter(torch.randn(2, 3)),
        "grad_tensor": torch.randn(3, requires_grad=True),
    })
    add("tensor_only", torch.randn(2, 3, 4).transpose(0, 2))

    # file objects
    jobs["fileobj/zip"] = ("load_bytesio", files["checkpoint/zip"], {})
    jobs["fileobj/legacy"] = ("load_bytesio", files["checkpoint/legacy"], {})
    jobs["stream/zip"] = ("load_stream", files["views/zip"], {})
    jobs["stream/legacy"] = ("load_stream", files["views/legacy"], {})

    # malicious checkpoints: the payload would create a marker file
    markers = {}
    for kind, make in (("system", Evil), ("eval", EvilEval)):
        marker = d / f"PWNED_{kind}"
        markers[kind] = marker
        obj = {"weight": torch.ones(2), "payload": make(str(marker))}
        for fmt, path in save_both(obj, d, f"evil_{kind}").items():
            jobs[f"evil_{kind}/{fmt}"] = ("load", path, {})
    for fmt, path in save_both({"x": EvilGetattr()}, d, "evil_getattr").items():
        jobs[f"evil_getattr/{fmt}"] = ("load", path, {})
    for fmt, path in save_both(torch.nn.Linear(2, 2), d, "whole_module").items():
        jobs[f"whole_module/{fmt}"] = ("load", path, {})

    # truncated / damaged files
    for fmt in ("zip", "legacy"):
        data = files["checkpoint/" + fmt].read_bytes()
        for frac in (0.1, 0.5, 0.9):
            p = d / f"trunc_{fmt}_{frac}.pth"
            p.write_bytes(data[:int(len(data) * frac)])
            jobs[f"trunc/{fmt}/{frac}"] = ("load", p, {})
        p = d / f"trunc_{fmt}_minus1.pth"
        p.write_bytes(data[:-1])
        jobs[f"trunc/{fmt}/minus1"] = ("load", p, {})
    empty = d / "empty.pth"
    empty.write_bytes(b"")
    jobs["empty"] = ("load", empty, {})
    text = d / "text.pth"
    text.write_text("hello, I am not a checkpoint\n")
    jobs["text"] = ("load", text, {})

    # sniffing
    plain = d / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    npz = d / "arrays.npz"
    np.savez(npz, a=np.ones(3))
    for name, path in (("zip", files["checkpoint/zip"]), ("legacy", files["checkpoint/legacy"]),
                       ("plain", plain), ("npz", npz), ("text", text), ("empty", empty),
                       ("missing", d / "nope.pth")):
        jobs[f"sniff/{name}"] = ("is_pth", path, {})

    got = load_without_torch(d, jobs)
    return {"want": want, "got": got, "markers": markers, "dir": d}


def ok(world, key):
    res = world["got"][key]
    assert res[0] == "ok", f"{key} failed: {res}"
    return res[1]


def err(world, key):
    res = world["got"][key]
    assert res[0] == "error", f"{key} loaded but should have failed: {res}"
    return res


FORMATS = ["zip", "legacy"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("model", ["linear", "conv", "bn", "embedding", "net"])
def test_state_dicts(world, model, fmt):
    want = world["want"]["sd_" + model]
    got = ok(world, f"sd_{model}/{fmt}")
    assert isinstance(got, collections.OrderedDict)
    assert_same(got, want)


@pytest.mark.parametrize("fmt", FORMATS)
def test_batchnorm_buffers(world, fmt):
    got = ok(world, f"sd_bn/{fmt}")
    assert list(got) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert got["num_batches_tracked"].dtype == np.int64
    assert got["num_batches_tracked"].shape == () and int(got["num_batches_tracked"]) == 3
    assert not np.allclose(got["running_mean"], 0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_state_dict_metadata_survives(world, fmt):
    got = ok(world, f"sd_net/{fmt}")
    assert getattr(got, "_metadata", None) == getattr(world["want"]["sd_net"], "_metadata")


@pytest.mark.parametrize("fmt", FORMATS)
def test_non_contiguous_views(world, fmt):
    want, got = world["want"]["views"], ok(world, f"views/{fmt}")
    assert_same(got, want)
    assert got["sliced"][0, 0] == 23 and got["row"][0] == 40
    assert got["expanded"].strides != (0, 4)  # materialised, not a stride-0 view


@pytest.mark.parametrize("fmt", FORMATS)
def test_shared_storage(world, fmt):
    got = ok(world, f"shared/{fmt}")
    assert_same(got, world["want"]["shared"])
    a, b, whole = got
    a[0, 0] = 100  # independent copies
    assert whole[0] == 0 and b[0, 0] == 6


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_dtype(world, fmt):
    got = ok(world, f"dtypes/{fmt}")
    assert_same(got, world["want"]["dtypes"])
    kinds = {k: v.dtype for k, v in got.items()}
    assert kinds["float16"] == np.float32 and kinds["bfloat16"] == np.float32
    assert kinds["float64"] == np.float64 and kinds["bool"] == np.bool_
    assert kinds["int8"] == np.int8 and kinds["uint8"] == np.uint8
    assert kinds["int32"] == np.int32 and kinds["int64"] == np.int64
    assert got["scalar"].shape == () and got["empty"].shape == (0, 4)
    # bfloat16 -> float32 is exact: the values are the bf16-rounded float32s
    np.testing.assert_array_equal(got["bfloat16"],
                                  world["want"]["dtypes"]["bfloat16"].float().numpy())


@pytest.mark.parametrize("fmt", FORMATS)
def test_half_to_float_false_keeps_float16(world, fmt):
    got = ok(world, f"keep_half/{fmt}")
    assert got["h"].dtype == np.float16 and got["b"].dtype == np.float32
    assert_same(got, world["want"]["keep_half"], half_to_float=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_training_checkpoint(world, fmt):
    got = ok(world, f"checkpoint/{fmt}")
    assert_same(got, world["want"]["checkpoint"])
    assert got["epoch"] == 7 and got["raw"] == b"\x00\xff"
    assert "momentum_buffer" in got["optimizer"]["state"][0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_bare_tensor(world, fmt):
    assert_same(ok(world, f"tensor_only/{fmt}"), world["want"]["tensor_only"])


@pytest.mark.parametrize("how", ["fileobj", "stream"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_file_objects(world, how, fmt):
    want = world["want"]["checkpoint" if how == "fileobj" else "views"]
    assert_same(ok(world, f"{how}/{fmt}"), want)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["system", "eval"])
def test_malicious_checkpoint_is_refused(world, kind, fmt):
    _, typ, msg, is_unpickling = err(world, f"evil_{kind}/{fmt}")
    assert is_unpickling, typ
    assert "refusing" in msg
    forbidden = {"system": ("posix.system", "os.system", "nt.system"),
                 "eval": ("builtins.eval",)}[kind]
    assert any(f"'{g}'" in msg for g in forbidden), msg
    assert not world["markers"][kind].exists(), "the payload ran!"


@pytest.mark.parametrize("fmt", FORMATS)
def test_getattr_gadget_is_refused(world, fmt):
    _, _, msg, is_unpickling = err(world, f"evil_getattr/{fmt}")
    assert is_unpickling and "'builtins.getattr'" in msg


@pytest.mark.parametrize("fmt", FORMATS)
def test_whole_module_pickle_is_refused_with_hint(world, fmt):
    _, _, msg, is_unpickling = err(world, f"whole_module/{fmt}")
    assert is_unpickling
    assert "torch.nn.modules.linear.Linear" in msg and "state_dict" in msg


@pytest.mark.parametrize("frac", ["0.1", "0.5", "0.9", "minus1"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_file_gives_clear_error(world, fmt, frac):
    _, typ, msg, is_unpickling = err(world, f"trunc/{fmt}/{frac}")
    assert typ == "PthError" and is_unpickling
    assert "truncated or corrupt" in msg, msg


def test_not_a_checkpoint(world):
    for key in ("empty", "text"):
        _, typ, msg, _ = err(world, key)
        assert typ == "PthError" and "not a PyTorch checkpoint" in msg


def test_is_pth_sniffing(world):
    g = {k.split("/")[1]: ok(world, k) for k in world["got"] if k.startswith("sniff/")}
    assert g == {"zip": True, "legacy": True, "plain": False, "npz": False, "text": False,
                 "empty": False, "missing": False}


def test_loader_source_never_imports_torch():
    src = open(os.path.join(ROOT, "python", "kiln", "io", "pth.py")).read()
    assert "import torch" not in src


# ---- in-process unit checks that need no torch at load time ----

def test_crafted_out_of_bounds_tensor_is_refused(tmp_path):
    """A hand-written zip checkpoint whose tensor claims more elements than its
    storage holds must not read past the buffer."""
    import zipfile
    from kiln.io import pth as _pth

    # Build the pickle by hand: _rebuild_tensor_v2(persistent storage, 0, (100,), (1,), ...)
    buf = io.BytesIO()
    buf.write(b"\x80\x02")
    buf.write(b"ctorch._utils\n_rebuild_tensor_v2\n")
    buf.write(b"(")                                      # MARK for the args tuple
    buf.write(b"(X\x07\x00\x00\x00storage")              # persistent id tuple
    buf.write(b"ctorch\nFloatStorage\n")
    buf.write(b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04t")
    buf.write(b"Q")                                      # BINPERSID
    buf.write(b"K\x00")                                  # offset 0
    buf.write(b"Kd\x85")                                 # size (100,)
    buf.write(b"K\x01\x85")                              # stride (1,)
    buf.write(b"\x89")                                   # requires_grad False
    buf.write(b"ccollections\nOrderedDict\n)R")          # backward hooks
    buf.write(b"tR.")
    p = tmp_path / "oob.pth"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("oob/data.pkl", buf.getvalue())
        z.writestr("oob/data/0", np.arange(4, dtype="<f4").tobytes())
    with pytest.raises(pickle.UnpicklingError, match="reaches element 99"):
        _pth.load_pth(p)
    # the same with a sane size loads
    good = buf.getvalue().replace(b"Kd\x85", b"K\x03\x85")
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("oob/data.pkl", good)
        z.writestr("oob/data/0", np.arange(4, dtype="<f4").tobytes())
    np.testing.assert_array_equal(_pth.load_pth(p), [0.0, 1.0, 2.0])


def _zip_checkpoint(path, pkl, records=()):
    import zipfile
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("ck/data.pkl", pkl)
        for key, data in records:
            z.writestr(f"ck/data/{key}", data)
    return path


def test_build_opcode_cannot_patch_globals(tmp_path):
    """BUILD on an allow-listed global sets attributes on it; that must touch only a
    throwaway object, never kiln's own functions or argparse.Namespace."""
    import argparse
    from kiln.io import pth as _pth
    before = _pth._rebuild_parameter.__defaults__
    pkl = (b"\x80\x02ctorch._utils\n_rebuild_parameter\n"
           b"(N}X\x0c\x00\x00\x00__defaults__(K\x01K\x02tstb"
           b"0cargparse\nNamespace\n(N}X\x05\x00\x00\x00pwnedK\x01stb.")
    got = _pth.load_pth(_zip_checkpoint(tmp_path / "b.pth", pkl))
    assert _pth._rebuild_parameter.__defaults__ == before
    assert not hasattr(argparse.Namespace, "pwned")
    assert issubclass(got, argparse.Namespace)


def test_namespace_args_load(tmp_path):
    import argparse
    from kiln.io import pth as _pth
    p = tmp_path / "ns.pth"
    torch.save({"args": argparse.Namespace(lr=0.1, arch="resnet"), "w": torch.ones(2)}, p)
    got = _pth.load_pth(p)
    assert isinstance(got["args"], argparse.Namespace)
    assert got["args"].lr == 0.1 and got["args"].arch == "resnet"
    again = pickle.loads(pickle.dumps(got["args"]))
    assert type(again) is argparse.Namespace and vars(again) == vars(got["args"])


def test_error_names_the_file(tmp_path):
    from kiln.io import pth as _pth
    p = tmp_path / "cut.pth"
    torch.save({"w": torch.ones(100)}, p)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(_pth.PthError, match="cut.pth: PyTorch checkpoint is truncated"):
        _pth.load_pth(p)


def test_is_pth_rejects_kiln_own_files_and_restores_position(tmp_path):
    """jt.load dispatches on is_pth: kiln's own jt.save files must not be claimed."""
    import kiln as jt
    from kiln.io import pth as _pth
    if hasattr(jt, "save"):
        p = tmp_path / "kiln_own.pkl"
        jt.save({"w": jt.array(np.ones(3, dtype="float32"))}, p)
        assert not _pth.is_pth(p)
    p = tmp_path / "t.pth"
    torch.save({"w": torch.ones(3)}, p)
    with open(p, "rb") as f:
        f.read(3)
        _pth.is_pth(f)
        assert f.tell() == 3                       # the position is restored
        f.seek(0)
        assert _pth.is_pth(f) and f.tell() == 0
        np.testing.assert_array_equal(_pth.load_pth(f)["w"], np.ones(3, dtype="float32"))
