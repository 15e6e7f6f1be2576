"""Convolutions and matrix products reach their library (oneDNN/BLAS) however
the model is run: no_grad, eval(), train(), frozen parameters, after
load_state_dict, with stop_grad/detach and casts in the graph. The pattern
passes (src/opt/) see through the stop_grads no_grad adds; the counters show
which path ran, and every mode gives the same numbers."""
import numpy as np
import pytest

import kiln as jt
from kiln import nn

CONVS, LINEARS = 2, 1   # the library calls of one forward of Net


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def execute(self, x):
        x = nn.relu(self.bn(self.conv1(x)))
        x = nn.relu(self.conv2(x))
        return self.fc(x.reshape((x.shape[0], -1)))


def library_calls(fn):
    before = jt.counters()["library_calls"]
    out = fn()
    return jt.counters()["library_calls"] - before, out


@pytest.fixture
def setup():
    jt.set_global_seed(3)
    net = Net()
    net.eval()
    x = jt.array(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype("float32"))
    calls, want = library_calls(lambda: net(x).numpy())
    assert calls == CONVS + LINEARS, f"{calls} library calls in plain eval(), expected {CONVS + LINEARS}"
    return net, x, want


def check_mode(fn, want, label):
    calls, got = library_calls(fn)
    assert calls == CONVS + LINEARS, f"{label}: {calls} library calls, expected {CONVS + LINEARS}"
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=label)


def test_no_grad_inference(setup):
    net, x, want = setup

    def run():
        with jt.no_grad():
            return net(x).numpy()
    check_mode(run, want, "no_grad")


def test_no_grad_decorator(setup):
    net, x, want = setup
    check_mode(jt.no_grad()(lambda: net(x).numpy()), want, "@no_grad")


def test_frozen_parameters(setup):
    net, x, want = setup
    for p in net.parameters():
        p.requires_grad = False
    check_mode(lambda: net(x).numpy(), want, "requires_grad=False")


def test_after_load_state_dict(setup):
    net, x, want = setup
    other = Net()
    other.load_state_dict(net.state_dict())
    other.eval()

    def run():
        with jt.no_grad():
            return other(x).numpy()
    check_mode(run, want, "load_state_dict")


def test_stop_grad_detach_and_casts_on_the_input(setup):
    net, x, want = setup
    check_mode(lambda: net(x.detach()).numpy(), want, "detach")
    check_mode(lambda: net(jt.stop_grad(x)).numpy(), want, "stop_grad")
    check_mode(lambda: net(x.float32()).numpy(), want, "identity cast")
    # a real cast is a kernel of its own whose result the library reads
    check_mode(lambda: net(x.float64().float32()).numpy(), want, "float64 and back")


def test_train_mode_forward_and_backward():
    jt.set_global_seed(3)
    net = Net()
    net.train()
    x = jt.array(np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype("float32"))
    calls, _ = library_calls(lambda: net(x).numpy())
    assert calls == CONVS + LINEARS
    # a weighted sum: the output gradient is an array (ones would make the
    # linear layer's input gradient a column sum, not a product)
    weights = jt.array(np.random.default_rng(2).standard_normal((2, 10)).astype("float32"))
    loss = (net(x) * weights).sum()
    grads = jt.grad(loss, net.parameters())
    before = jt.counters()["library_calls"]
    jt.sync(grads)
    calls = jt.counters()["library_calls"] - before
    # the convolutions' forward again (the ReLUs' gradients read their outputs;
    # nothing reads the linear layer's), then per conv the input (not for the
    # first) and weight gradients, per linear both
    assert calls == CONVS + (2 * CONVS - 1) + 2 * LINEARS, calls


def test_resnet18_no_grad_uses_the_library():
    from kiln.models import resnet18
    jt.set_global_seed(0)
    model = resnet18(num_classes=10)
    model.eval()
    x = jt.array(np.random.default_rng(2).standard_normal((1, 3, 32, 32)).astype("float32"))
    calls_grad, want = library_calls(lambda: model(x).numpy())
    with jt.no_grad():
        calls, got = library_calls(lambda: model(x).numpy())
    assert calls_grad == calls == 21, (calls_grad, calls)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def kernels_launched(fn):
    before = jt.counters()["kernels_launched"]
    out = fn()
    return jt.counters()["kernels_launched"] - before, out


@pytest.mark.parametrize("log", [False, True])
def test_softmax_is_one_kernel_in_every_mode(log):
    """softmax / log-softmax along a dim run as one kernel of their own (a
    pass per row, no library) under no_grad and in a forward with gradients
    enabled; the gradient, built later from the meta-ops, is still right."""
    fn = jt.nn.log_softmax if log else jt.nn.softmax
    r = np.random.default_rng(4)
    x_np = r.standard_normal((16, 5, 40)).astype("float32")
    x64 = x_np.astype(np.float64)
    p = np.exp(x64 - x64.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    want = np.log(p) if log else p
    x = jt.array(x_np)
    with jt.no_grad():
        kernels, got = kernels_launched(lambda: fn(x, dim=1).numpy())
    assert kernels == 1, f"no_grad: {kernels} kernels"
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    xg = jt.array(x_np)
    xg.requires_grad = True
    y = fn(xg, dim=1)
    kernels, got = kernels_launched(lambda: y.numpy())
    assert kernels == 1, f"forward with grad: {kernels} kernels"
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    w = r.standard_normal(x_np.shape)
    (gx,) = jt.grad((y * jt.array(w.astype("float32"))).sum(), [xg])
    # d/dx of sum(w * softmax): p * (w - sum(w * p)); of sum(w * log_softmax): w - p * sum(w)
    if log:
        want_g = w - p * w.sum(1, keepdims=True)
    else:
        want_g = p * (w - (w * p).sum(1, keepdims=True))
    np.testing.assert_allclose(gx.numpy(), want_g, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("affine", ["weight and bias", "weight", "none"])
def test_layer_norm_is_one_kernel_under_no_grad(affine):
    """Layer norm over the last dim runs as one kernel of its own under
    no_grad (a pass per row: src/opt/layernorm.c), against NumPy in float64;
    with gradients enabled it stays the meta-op kernels (a backward pass
    reads their mean and variance) and gives the same values."""
    r = np.random.default_rng(5)
    x_np = (r.standard_normal((6, 7, 300)) * 3 + 2).astype("float32")
    ln = nn.LayerNorm(300, elementwise_affine=affine != "none", bias=affine == "weight and bias")
    if affine != "none":
        ln.weight.update(jt.array(r.standard_normal(300).astype("float32")))
    if affine == "weight and bias":
        ln.bias.update(jt.array(r.standard_normal(300).astype("float32")))
    x64 = x_np.astype(np.float64)
    want = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    if affine != "none":
        want = want * ln.weight.numpy()
    if affine == "weight and bias":
        want = want + ln.bias.numpy()
    x = jt.array(x_np)
    with jt.no_grad():
        kernels, got = kernels_launched(lambda: ln(x).numpy())
    assert kernels == 1, f"no_grad: {kernels} kernels"
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    kernels, plain = kernels_launched(lambda: ln(x).numpy())
    assert kernels > 1, "with gradients the meta-op kernels run"
    np.testing.assert_allclose(got, plain, rtol=1e-6, atol=1e-6)


def test_layer_norm_forms_the_kernel_leaves_alone():
    """Normalised over two dims, with a statistic the caller reads, or with
    one array as both weight and bias: the meta-op kernels, still right."""
    r = np.random.default_rng(6)
    x_np = r.standard_normal((4, 3, 50)).astype("float32")
    x = jt.array(x_np)
    x64 = x_np.astype(np.float64)

    def ref(a, axes):
        return (a - a.mean(axes, keepdims=True)) / np.sqrt(a.var(axes, keepdims=True) + 1e-5)
    with jt.no_grad():
        kernels, got = kernels_launched(lambda: jt.nn.layer_norm(x, (3, 50)).numpy())
        assert kernels > 1
        np.testing.assert_allclose(got, ref(x64, (1, 2)), rtol=1e-5, atol=1e-5)
        wb = jt.array(r.standard_normal(50).astype("float32"))
        got = jt.nn.layer_norm(x, 50, wb, wb).numpy()
        np.testing.assert_allclose(got, ref(x64, -1) * wb.numpy() + wb.numpy(), rtol=1e-5, atol=1e-5)
        mean = x.mean(-1, keepdims=True)
        y = (x - mean) * ((x - mean) * (x - mean)).mean(-1, keepdims=True).add(1e-5).rsqrt()
        jt.sync([y, mean])
        np.testing.assert_allclose(y.numpy(), ref(x64, -1), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(mean.numpy(), x64.mean(-1, keepdims=True), rtol=1e-6, atol=1e-6)
