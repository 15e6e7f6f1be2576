"""Convolution results kept in oneDNN's layout (src/opt/layout.c): under
no_grad, a result only further convolutions read (as their input or their
residual) is left in the library's blocked layout and read in it, without
the reorders to row-major and back; the profile's op text says which arrays
stayed so. Anything else that reads the result -- a kernel, the user, a
later sync, a gradient -- keeps it row-major. Every case is checked against
the same graph with gradients enabled (nothing kept) and NumPy in float64."""
import numpy as np
import pytest

import kiln as jt
from kiln import nn

pytestmark = pytest.mark.skipif(not jt._C.has_library("dnnl"), reason="oneDNN (libdnnl.so.2) not installed")

KEPT_RESULT, KEPT_INPUT = "result in library layout", "input in library layout"


def conv_ref(x, w, b=None, padding=1):
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    out = np.zeros((n, o, h - kh + 1, wd - kw + 1))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,oc->nohw", x[:, :, i:i + out.shape[2], j:j + out.shape[3]],
                             w[:, :, i, j].astype(np.float64))
    return out if b is None else out + b.astype(np.float64)[None, :, None, None]


def profiled(fn):
    with jt.profile_scope(print_report=False) as rows:
        out = fn()
    return out, [r[0] for r in rows[1:] for _ in range(int(r[2]))]


def both(a, b):
    """a and b computed in one sync."""
    jt.sync([a, b])
    return a.numpy(), b.numpy()


def count(names, text):
    return sum(text in n for n in names)


def convs(channels, r):
    layers = [nn.Conv2d(a, b, 3, padding=1) for a, b in zip(channels, channels[1:])]
    for layer in layers:
        layer.bias.update(jt.array(r.standard_normal(layer.bias.shape).astype("float32")))
    return layers


def stack_ref(layers, x):
    for layer in layers:
        x = np.maximum(conv_ref(x, layer.weight.numpy(), layer.bias.numpy()), 0)
    return x


@pytest.mark.parametrize("channels", [(16, 32, 32, 16), (8, 16, 24, 16), (5, 16, 16, 3)])
def test_a_stack_of_convolutions(channels):
    r = np.random.default_rng(0)
    layers = convs(channels, r)
    x_np = r.standard_normal((2, channels[0], 9, 8)).astype("float32")
    x = jt.array(x_np)

    def forward():
        y = x
        for layer in layers:
            y = nn.relu(layer(y))
        return y.numpy()
    with jt.no_grad():
        got, names = profiled(forward)
    np.testing.assert_allclose(got, stack_ref(layers, x_np), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got, forward(), rtol=1e-5, atol=1e-5)
    # the last result is read as an array; the others may stay blocked
    # where both sides agree on the layout (oneDNN's choice per shape)
    kept = count(names, KEPT_RESULT)
    assert kept <= len(layers) - 1 and count(names, KEPT_INPUT) == kept, names
    if channels == (16, 32, 32, 16):
        assert kept == 2, names


def test_results_read_by_others_stay_row_major():
    r = np.random.default_rng(1)
    c1, c2 = convs((16, 16, 16), r)
    x_np = r.standard_normal((1, 16, 6, 6)).astype("float32")
    x = jt.array(x_np)
    y1_ref = np.maximum(conv_ref(x_np, c1.weight.numpy(), c1.bias.numpy()), 0)
    y2_ref = np.maximum(conv_ref(y1_ref, c2.weight.numpy(), c2.bias.numpy()), 0)
    with jt.no_grad():
        # a kernel reads it too
        y1 = nn.relu(c1(x))
        (s, y2), names = profiled(lambda: both(y1.sum(), nn.relu(c2(y1))))
        assert count(names, KEPT_RESULT) == 0, names
        np.testing.assert_allclose(s, y1_ref.sum(), rtol=1e-4)
        np.testing.assert_allclose(y2, y2_ref, rtol=1e-4, atol=1e-4)
        # the user holds it and reads it afterwards
        y1 = nn.relu(c1(x))
        y2, names = profiled(lambda: nn.relu(c2(y1)).numpy())
        assert count(names, KEPT_RESULT) == 0, names
        np.testing.assert_allclose(y1.numpy(), y1_ref, rtol=1e-4, atol=1e-4)
        # a consumer outside the sync reads it later
        y1 = nn.relu(c1(x))
        later = y1 * 2
        y2 = nn.relu(c2(y1))
        del y1
        got, names = profiled(lambda: y2.numpy())
        assert count(names, KEPT_RESULT) == 0, names
        np.testing.assert_allclose(got, y2_ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(later.numpy(), 2 * y1_ref, rtol=1e-4, atol=1e-4)


def test_gradients_after_a_forward_sync():
    """With gradients enabled nothing stays blocked: the backward pass,
    built after the forward ran, reads the inputs as arrays."""
    r = np.random.default_rng(2)
    c1, c2 = convs((16, 16, 16), r)
    x = jt.array(r.standard_normal((1, 16, 5, 5)).astype("float32"))
    y = nn.relu(c2(nn.relu(c1(x))))
    loss = (y * y).sum()
    _, names = profiled(lambda: loss.item())
    assert count(names, KEPT_RESULT) == 0, names
    g = jt.grad(loss, [c1.weight])[0].numpy()
    eps = 1e-5  # the loss is NumPy's float64: a small step misses the ReLUs' kinks
    w = c1.weight.numpy().astype(np.float64)

    def loss_of(w1):
        y1 = np.maximum(conv_ref(x.numpy(), w1, c1.bias.numpy()), 0)
        y2 = np.maximum(conv_ref(y1, c2.weight.numpy(), c2.bias.numpy()), 0)
        return (y2 * y2).sum()
    for idx in [(0, 0, 0, 0), (3, 5, 1, 2), (15, 15, 2, 2)]:
        d = np.zeros_like(w)
        d[idx] = eps
        num = (loss_of(w + d) - loss_of(w - d)) / (2 * eps)
        np.testing.assert_allclose(g[idx], num, rtol=1e-3, atol=1e-3)


def test_resnet50_keeps_its_blocks_blocked():
    from kiln.models import resnet50
    jt.set_global_seed(0)
    model = resnet50(num_classes=10)
    model.eval()
    x = jt.array(np.random.default_rng(3).standard_normal((1, 3, 64, 64)).astype("float32"))
    with jt.no_grad():
        got, names = profiled(lambda: model(x).numpy())
    # 53 convolutions: the max pool reads the stem's result and the average
    # pool the last block's; every other result stays blocked, the
    # downsampling blocks' (read through a stop_grad as a residual) too
    assert count(names, KEPT_RESULT) == 50, names
    assert count(names, KEPT_INPUT) == 49, names  # the stem and the two max-pool readers are not
    # the grad-mode forward keeps nothing, so its convolutions run oneDNN's
    # row-major form (another implementation, another summation order):
    # through 53 layers they agree to 1e-5 of the logits' scale
    unkept = model(x).numpy()
    np.testing.assert_allclose(got, unkept, rtol=1e-5, atol=1e-5 * np.abs(unkept).max())
