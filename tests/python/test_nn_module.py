"""jt.Module: execute/forward, parameter discovery and PyTorch naming,
containers, state_dict round trips (also with PyTorch), strict-mode errors,
train/eval, requires_grad_, and jt.save / jt.load."""
import os
import pickle

import numpy as np
import pytest

import kiln as jt
from kiln import nn


class Block(nn.Module):
    """A ResNet basic block, PyTorch-style (forward)."""

    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.layer1 = nn.Sequential(Block(4), Block(4))
        self.head = nn.ModuleDict({"fc": nn.Linear(4, 3)})
        self.scale = nn.Parameter(np.ones(1, np.float32))

    def forward(self, x):
        x = self.layer1(self.stem(x)).mean([2, 3])
        return self.head["fc"](x) * self.scale


def torch_net(t):
    tn = t.nn

    class TBlock(tn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1 = tn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn1 = tn.BatchNorm2d(c)
            self.relu = tn.ReLU()
            self.conv2 = tn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn2 = tn.BatchNorm2d(c)

        def forward(self, x):
            return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + x)

    class TNet(tn.Module):
        def __init__(self):
            super().__init__()
            self.stem = tn.Conv2d(1, 4, 3, padding=1)
            self.layer1 = tn.Sequential(TBlock(4), TBlock(4))
            self.head = tn.ModuleDict({"fc": tn.Linear(4, 3)})
            self.scale = tn.Parameter(t.ones(1))

        def forward(self, x):
            x = self.layer1(self.stem(x)).mean([2, 3])
            return self.head["fc"](x) * self.scale

    return TNet()


def test_names_match_pytorch():
    t = pytest.importorskip("torch")
    ours, theirs = Net(), torch_net(t)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert len(list(ours.children())) == len(list(theirs.children()))


def test_weights_move_both_ways_with_pytorch():
    t = pytest.importorskip("torch")
    ours, theirs = Net(), torch_net(t)
    ours.load_state_dict(theirs.state_dict())            # torch tensors in
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6)).astype(np.float32)
    ours.eval()
    theirs.eval()
    want = theirs(t.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(jt.array(x)).numpy(), want, rtol=1e-4, atol=1e-5)
    theirs2 = torch_net(t)
    theirs2.load_state_dict({k: t.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
    theirs2.eval()
    np.testing.assert_allclose(theirs2(t.from_numpy(x)).detach().numpy(), want, rtol=1e-5)


def test_parameters_and_buffers():
    net = Net()
    ps = net.parameters()
    assert all(p.requires_grad for p in ps)
    assert len(ps) == 1 + 2 + 2 * 6 + 2   # scale, stem, 2 blocks of 6, the head
    names = dict(net.named_parameters())
    assert next(net.parameters()) is ps[0]          # PyTorch's idiom works on the list
    assert "layer1.0.bn1.running_mean" not in names
    assert "layer1.0.bn1.running_mean" in net.state_dict()
    assert "layer1.1.bn2.num_batches_tracked" in net.state_dict()
    assert net.state_dict()["layer1.1.bn2.num_batches_tracked"].dtype == "int64"


def test_execute_and_forward():
    class A(nn.Module):
        def execute(self, x):
            return x * 2

    class B(nn.Module):
        def forward(self, x):
            return x + 1

    x = jt.array([1.0, 2.0])
    np.testing.assert_array_equal(A()(x).numpy(), [2, 4])
    np.testing.assert_array_equal(B()(x).numpy(), [2, 3])
    np.testing.assert_array_equal(A().forward(x).numpy(), [2, 4])
    with pytest.raises(NotImplementedError):
        nn.Module()(x)


def test_jittor_style_attributes_without_super_init():
    class J(nn.Module):
        def __init__(self):            # Jittor code often skips super().__init__()
            self.w = jt.random((3, 2))
            self.layers = [nn.Linear(2, 2), nn.Linear(2, 1)]
            self.const = jt.ones(2).stop_grad()

        def execute(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    j = J()
    names = [n for n, _ in j.named_parameters()]
    assert names == ["w", "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    assert "const" in j.state_dict()
    assert j(jt.ones((4, 2))).shape == (4, 1)
    j.eval()
    assert not j.layers[0].training


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[1], nn.ReLU)
    assert isinstance(seq[-1], nn.Linear)
    assert len(seq[:2]) == 2
    seq.append(nn.Sigmoid())
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"]
    from collections import OrderedDict
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]
    ml = nn.ModuleList([nn.Linear(1, 1) for _ in range(3)])
    assert len(ml) == 3 and len(ml.parameters()) == 6
    ml.append(nn.Linear(1, 2))
    assert "3.weight" in ml.state_dict()
    with pytest.raises(TypeError):
        ml.append(3)
    md = nn.ModuleDict({"a": nn.Linear(1, 1)})
    md["b"] = nn.Linear(1, 2)
    assert list(md.keys()) == ["a", "b"] and "b" in md
    pl = nn.ParameterList([np.ones(2), np.zeros(3)])
    assert [n for n, _ in pl.named_parameters()] == ["0", "1"]


def test_strict_errors_name_keys_and_shapes():
    net = Net()
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    del state["stem.bias"]
    state["extra.weight"] = np.zeros(2)
    with pytest.raises(RuntimeError) as e:
        Net().load_state_dict(state)
    msg = str(e.value)
    assert 'Missing key(s) in state_dict: "stem.bias"' in msg
    assert 'Unexpected key(s) in state_dict: "extra.weight"' in msg
    r = Net().load_state_dict(state, strict=False)
    assert r.missing_keys == ["stem.bias"] and r.unexpected_keys == ["extra.weight"]
    bad = {k: v.numpy() for k, v in net.state_dict().items()}
    bad["head.fc.weight"] = np.zeros((2, 4), np.float32)
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"size mismatch for head.fc.weight: copying a "
                                               r"param with shape \(2, 4\) from checkpoint, the "
                                               r"shape in current model is \(3, 4\)"):
            Net().load_state_dict(bad, strict=strict)


def test_load_state_dict_keeps_vars_and_sets_values():
    a, b = Net(), Net()
    w = b.stem.weight
    b.load_state_dict(a.state_dict())
    assert b.stem.weight is w                  # same Var: an optimizer keeps seeing it
    assert w.requires_grad
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=k)


def test_load_parameters_warns():
    net = Net()
    params = {k: v.numpy() for k, v in net.state_dict().items()}
    params["nope"] = np.zeros(1)
    with pytest.warns(UserWarning, match="nope"):
        Net().load_parameters(params)


def test_train_eval_requires_grad():
    net = Net()
    assert net.training and net.layer1[0].bn1.training and net.is_train
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    net.requires_grad_(True)
    assert all(p.requires_grad for p in net.parameters())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net"


def test_backward_fills_grad_of_module_parameters():
    lin = nn.Linear(3, 2)
    x = jt.array(np.ones((4, 3), np.float32))
    lin(x).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), np.full((2, 3), 4.0))
    np.testing.assert_allclose(lin.bias.grad.numpy(), [4.0, 4.0])
    lin.zero_grad()
    assert lin.weight.grad is None


def test_deepcopy_and_pickle_keep_trainable_parameters():
    import copy
    net = Net()
    for clone in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert [n for n, _ in clone.named_parameters()] == [n for n, _ in net.named_parameters()]
        assert [n for n, _ in clone.named_buffers()] == [n for n, _ in net.named_buffers()]
        np.testing.assert_array_equal(clone.stem.weight.numpy(), net.stem.weight.numpy())
        clone(jt.ones((1, 1, 4, 4))).sum().backward()
        assert clone.stem.weight.grad is not None and net.stem.weight.grad is None


def test_double_and_repr():
    net = Net().double()
    assert all(p.dtype == "float64" for p in net.parameters())
    assert all(p.requires_grad for p in net.parameters())
    assert net(jt.array(np.ones((1, 1, 4, 4)))).dtype == "float64"
    text = repr(Net())
    assert "(stem): Conv2d(1, 4, kernel_size=(3, 3)" in text and "(layer1): Sequential" in text


def test_save_load_round_trip(tmp_path):
    net = Net()
    path = tmp_path / "net.pkl"
    jt.save(net.state_dict(), path)
    loaded = jt.load(path)
    assert isinstance(loaded["stem.weight"], np.ndarray)
    other = Net()
    other.load_state_dict(loaded)
    x = jt.array(np.random.default_rng(1).standard_normal((2, 1, 5, 5)).astype(np.float32))
    net.eval()
    other.eval()
    np.testing.assert_array_equal(net(x).numpy(), other(x).numpy())
    net.save(str(tmp_path / "m.pkl"))
    third = Net()
    third.load(str(tmp_path / "m.pkl"))
    np.testing.assert_array_equal(third.stem.bias.numpy(), net.stem.bias.numpy())
    # nested objects, Vars anywhere
    jt.save({"epoch": 3, "vars": [jt.array([1, 2])], "t": (jt.ones(2),)}, tmp_path / "o.pkl")
    o = jt.load(tmp_path / "o.pkl")
    assert o["epoch"] == 3 and o["vars"][0].tolist() == [1, 2] and o["t"][0].shape == (2,)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".kiln-save-")]


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "keep.pkl"
    jt.save({"a": 1}, path)

    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(pickle, "dump", boom)
    with pytest.raises(OSError):
        jt.save({"a": 2}, path)
    assert jt.load(path) == {"a": 1}            # the old file is untouched
    assert os.listdir(tmp_path) == ["keep.pkl"]  # and no temp file is left
